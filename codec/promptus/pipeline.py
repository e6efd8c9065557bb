"""Video -> Promptus streams + measured ladder, and stream -> frames (the two CLIs' library side).

:func:`encode_video` reads a video (centre square crop, resized to the generator's resolution),
fits every requested rank (from scratch, or derived from the highest rank by truncated SVD and a
short fine-tune), writes one stream per rank (``promptus_r{r}_n{N}.prmt``), decodes each stream
back exactly as a receiver would, scores the decoded frames against the source with LPIPS, and
writes the :class:`abr.ladder.Ladder` of what it produced (``ladder.json``).

Chunk accounting for the ladder: chunk ``j`` holds frames ``[j F, (j+1) F)`` (``F = chunk_s * fps``).
Keyframe ``k`` is needed to show frames ``k-N+1 .. k``, so its record is charged to the chunk of
frame ``k-1`` (frame 0's keyframe, the stream header and the first-frame latent to chunk 0, the
end record to the last chunk). Rung ``kbps`` is the stream's measured average bitrate; SPEC's
nominal rate ``8 (1101 r + 16) fps / N`` is kept in the metadata.

Rung switches: a receiver switching rank between chunks interpolates across the two ranks exactly
(:mod:`codec.promptus.prompt`) and anchors on the other rung's latent; each rung was fitted with
its own chain, so quality at a switch is not what the ladder says for either rung (not measured).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from abr.errors import InputError
from abr.ladder import Ladder, RungInfo, save_ladder
from abr.synthetic import promptus_kbps
from codec.promptus.bitstream import (
    KeyframeRecord,
    LatentRecord,
    Stream,
    StreamHeader,
    read_stream,
    write_stream,
)
from codec.promptus.fit import (
    FIT_PRESETS,
    FitConfig,
    VideoFit,
    dequantize_latent,
    derive_rank,
    fit_video,
    nested_init,
)
from codec.promptus.generator import PromptusGenerator
from codec.promptus.prompt import Factors
from codec.promptus.receiver import Receiver, Segment, get_receiver

__all__ = [
    "EncodeOptions",
    "EncodeResult",
    "encode_video",
    "stream_from_fit",
    "decode_frames",
    "decode_stream",
    "load_video",
    "chunk_bytes",
    "write_video",
    "FrameScorer",
    "LPIPS_MIN_SIDE",
]


@dataclass(frozen=True, slots=True)
class EncodeOptions:
    """Settings of :func:`encode_video`.

    :param ranks: ranks of the ladder's rungs.
    :param interval: keyframe interval N in frames.
    :param fit: fitting schedule (``rank`` and ``interval`` are overridden per rung).
    :param derive: fit only the highest rank; derive the others by truncated SVD + ``derive_iters`` fine-tuning.
    :param derive_iters: fine-tuning iterations per keyframe of a derived rank.
    :param nested: fit the ranks in ascending order, each starting from the previous rank's keyframes
        (:func:`~codec.promptus.fit.nested_init`; ``fit.iters`` iterations per keyframe, frame 0 included).
    :param receiver: receiver spec the prompts are fitted through (``promptus``, ``promptmobile-...``).
    :param fps: frame rate to convert the video to (None: the source rate).
    :param max_frames: encode only the first frames (None: all).
    :param chunk_s: ladder chunk duration in seconds.
    :param lpips_net: ``alex`` or ``vgg`` for the ladder's LPIPS; ``none`` uses (1 - SSIM) / 2 instead,
        marked in the metadata (for machines without LPIPS weights).
    :param coder: entropy coder of the records (``best``, ``ac``, ``lzma``, ``zlib``, ``raw``).
    :param lpips_weights: LPIPS weight file (default lookup of :mod:`codec.metrics.weights` otherwise).
    :param vgg_weights: torchvision VGG19 weights for the official perceptual term (``perceptual_kind="vgg19"``).
    """

    ranks: tuple[int, ...] = (2, 4, 8, 16)
    interval: int = 10
    fit: FitConfig = FIT_PRESETS["reference"]
    derive: bool = False
    derive_iters: int = 200
    nested: bool = False
    receiver: str = "promptus"
    fps: float | None = None
    max_frames: int | None = None
    chunk_s: float = 2.0
    lpips_net: str = "alex"
    coder: str = "best"
    lpips_weights: str | None = None
    vgg_weights: str | None = None

    def __post_init__(self) -> None:
        if not self.ranks or min(self.ranks) < 1:
            raise InputError(f"ranks must be positive integers, got {self.ranks}")
        if self.interval < 1:
            raise InputError(f"interval must be >= 1, got {self.interval}")
        if not self.chunk_s > 0:
            raise InputError(f"chunk_s must be > 0, got {self.chunk_s}")
        if self.derive and self.nested:
            raise InputError("derive (from the top rank down) and nested (from the bottom rank up) exclude each other")
        if self.lpips_net not in ("alex", "vgg", "none"):
            raise InputError(f"lpips_net must be alex, vgg or none, got {self.lpips_net!r}")
        object.__setattr__(self, "ranks", tuple(sorted(set(int(r) for r in self.ranks))))


@dataclass(frozen=True, eq=False)
class EncodeResult:
    """What :func:`encode_video` wrote: stream paths per rank, the ladder, and a summary per rank."""

    streams: dict[int, Path]
    ladder_path: Path
    ladder: Ladder
    summary: dict[int, dict[str, Any]]


# ---------------------------------------------------------------------------- video I/O
def load_video(
    path: str | os.PathLike[str], resolution: int, *, fps: float | None = None, max_frames: int | None = None
) -> tuple[np.ndarray, float]:
    """Frames ``(T, S, S, 3)`` uint8 (centre square crop resized to ``resolution``) and the frame rate."""
    from codec.video import iter_frames, probe

    info = probe(path, fps=fps)
    frames = list(iter_frames(path, fps=fps, crop_square=True, resize=resolution, max_frames=max_frames))
    if not frames:
        raise InputError("video has no frames", path=path)
    return np.stack(frames), float(fps or info.fps)


def write_video(frames: Iterator[np.ndarray] | Sequence[np.ndarray], path: str | os.PathLike[str], fps: float,
                crf: int = 12) -> int:
    """Write decoded frames: H.264 (``.mp4``/``.mkv``), or lossless FFV1 for ``.avi``; atomic, returns the count."""
    from codec.video import write_video as write

    if Path(path).suffix.lower() == ".avi":
        return write(path, frames, fps, codec="ffv1", pix_fmt="yuv444p")
    return write(path, frames, fps, options={"crf": str(crf), "preset": "medium"})


def _to_uint8(frames: torch.Tensor) -> np.ndarray:
    """``(n, 3, H, W)`` in [-1, 1] -> uint8 ``(n, H, W, 3)``."""
    x = ((frames.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


# ---------------------------------------------------------------------------- streams
def stream_from_fit(fit: VideoFit, generator: PromptusGenerator, fps: float) -> tuple[StreamHeader, LatentRecord,
                                                                                      list[KeyframeRecord]]:
    """The records of one fitted rank."""
    cfg = generator.config
    header = StreamHeader(
        generator=generator.identity(), fingerprint=generator.fingerprint(), receiver=fit.receiver,
        width=cfg.resolution, height=cfg.resolution, latent_shape=tuple(fit.first_latent.shape[1:]),
        prompt_shape=cfg.prompt_shape, rank=fit.rank, interval=fit.config.interval, fps=fps,
        seed=fit.config.noise_seed, n_frames=fit.n_frames, n_keyframes=len(fit.keyframes),
    )  # fmt: skip
    kfs = [KeyframeRecord(k.factors.u, k.factors.v, k.factors.u_q, k.factors.v_q, frame=k.frame, length=k.length)
           for k in fit.keyframes]
    return header, LatentRecord(fit.first_latent, fit.first_latent_q), kfs


def _check_generator(stream: Stream, generator: PromptusGenerator, source: object, strict: bool) -> None:
    h, cfg = stream.header, generator.config
    if (h.width, h.height) != (cfg.resolution, cfg.resolution) or h.prompt_shape != cfg.prompt_shape:
        raise InputError(
            f"stream is {h.width}x{h.height} with prompts {h.prompt_shape}; the generator makes "
            f"{cfg.resolution}x{cfg.resolution} from prompts {cfg.prompt_shape}", path=source)
    if strict and (h.generator != generator.identity() or h.fingerprint != generator.fingerprint()):
        raise InputError(
            f"stream was encoded with generator {h.generator!r} ({h.fingerprint}); the loaded one is "
            f"{generator.identity()!r} ({generator.fingerprint()}). Load the same weights, or pass "
            f"allow_mismatch / --allow-mismatch to decode anyway", path=source)


@torch.no_grad()
def decode_frames(
    stream: Stream, generator: PromptusGenerator, *, receiver: Receiver | str | None = None,
    source: object = "<stream>", strict: bool = True,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first frame index, uint8 frames (n, H, W, 3))`` segment by segment.

    :param receiver: receiver or spec to play with (default: the one recorded in the stream).
    :param strict: refuse a stream made with another generator (name or weight fingerprint).
    """
    _check_generator(stream, generator, source, strict)
    if receiver is None or isinstance(receiver, str):
        receiver = get_receiver(receiver or stream.header.receiver, generator)
    dev = generator.device
    lat = stream.latent
    z_prev = (torch.from_numpy(np.array(lat.q, dtype=np.float32)).to(dev) if lat.qp is None
              else dequantize_latent(lat.q, lat.qp, dev))
    if tuple(z_prev.shape) != tuple(receiver.latent_shape(1)):
        raise InputError(f"stream latent {tuple(z_prev.shape)} does not fit receiver {receiver.spec!r} "
                         f"({tuple(receiver.latent_shape(1))})", path=source)
    noise = receiver.noise(stream.header.seed)
    prev: Factors | None = None
    for kf in stream.keyframes:
        fac = kf.factors(dev)
        seg = Segment(prev if kf.frame > 0 else None, fac, kf.length, receiver.start_latent(z_prev, noise))
        frames, latents = receiver(seg)
        yield kf.frame - kf.length + 1, _to_uint8(frames)
        prev, z_prev = fac, latents[-1:]


def decode_stream(
    path: str | os.PathLike[str], out: str | os.PathLike[str], generator: PromptusGenerator, *,
    receiver: str | None = None, strict: bool = True, progress: bool = True,
) -> int:
    """Decode a stream file to a video file; returns the number of frames written."""
    from tqdm.auto import tqdm

    stream = read_stream(path)
    bar = tqdm(total=stream.header.n_frames, unit="frame", desc="decode", disable=not progress)

    def frames() -> Iterator[np.ndarray]:
        for _, seg in decode_frames(stream, generator, receiver=receiver, source=path, strict=strict):
            bar.update(len(seg))
            yield from seg

    try:
        return write_video(frames(), out, stream.header.fps)
    finally:
        bar.close()


# ---------------------------------------------------------------------------- ladder
def chunk_bytes(stream: Stream, frames_per_chunk: int, n_chunks: int) -> np.ndarray:
    """On-wire bytes charged to each chunk (see the module docstring)."""
    out = np.zeros(n_chunks, dtype=np.float64)
    out[0] += 6 + stream.header_bytes + stream.latent_bytes
    out[-1] += stream.end_bytes
    for kf, size in zip(stream.keyframes, stream.keyframe_bytes):
        chunk = 0 if kf.frame == 0 else min((kf.frame - 1) // frames_per_chunk, n_chunks - 1)
        out[chunk] += size
    return out


#: Frames smaller than this are upsampled (bilinear) to it before LPIPS: LPIPS was calibrated on 64x64
#: patches (BAPPS), and on 32x32 frames AlexNet's last three layers see a single 1x1 position.
LPIPS_MIN_SIDE = 64


class FrameScorer:
    """Per-frame distortion of decoded frames: LPIPS, or (1 - SSIM) / 2 when asked for ``none``.

    Frames under :data:`LPIPS_MIN_SIDE` pixels (the tiny generators') are scored after upsampling both the
    reference and the decoded frame, as float in [-1, 1], bilinearly to that side (:attr:`name` says so).
    """

    def __init__(self, net: str, weights: str | None, device: torch.device | str = "cpu"):
        self.net = net
        self.model = None
        self.upsampled_from: int | None = None
        if net != "none":
            from codec.metrics.lpips import LPIPS

            self.model = LPIPS(net, weights=weights).to(device)

    @property
    def name(self) -> str:
        if self.model is None:
            return "(1-ssim)/2 (no LPIPS weights requested)"
        up = self.upsampled_from
        return f"lpips-{self.net}" + (f" ({up}x{up} frames upsampled bilinearly to {LPIPS_MIN_SIDE}x"
                                      f"{LPIPS_MIN_SIDE})" if up else "")

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Differentiable LPIPS ``(N,)`` of float frames ``(N, 3, H, W)`` in [-1, 1], upsampled when small."""
        assert self.model is not None
        side = min(x.shape[-2:])
        if side < LPIPS_MIN_SIDE:
            self.upsampled_from = int(side)
            size = (LPIPS_MIN_SIDE * x.shape[-2] // side, LPIPS_MIN_SIDE * x.shape[-1] // side)
            x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
            y = torch.nn.functional.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return self.model(x, y)

    @torch.no_grad()
    def tensors(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 16) -> np.ndarray:
        """:meth:`distance` in batches, float64 ``(N,)``."""
        assert self.model is not None
        dev = next(self.model.parameters()).device
        out = [self.distance(x[i : i + batch_size].to(dev, torch.float32), y[i : i + batch_size].to(dev, torch.float32))
               .double().cpu() for i in range(0, x.shape[0], batch_size)]
        return torch.cat(out).numpy()

    def __call__(self, ref: np.ndarray, dist: np.ndarray) -> np.ndarray:
        """Per-frame score of uint8 ``(N, H, W, 3)`` frame pairs."""
        if self.model is not None:
            if min(ref.shape[1:3]) >= LPIPS_MIN_SIDE:
                return self.model.distance_frames(ref, dist)
            from codec.metrics.lpips import to_lpips_input

            return self.tensors(to_lpips_input(ref), to_lpips_input(dist))
        from codec.metrics.fidelity import ssim

        return (1.0 - np.asarray(ssim(ref, dist), dtype=np.float64)) / 2.0


def encode_video(
    video: str | os.PathLike[str],
    generator: PromptusGenerator,
    out_dir: str | os.PathLike[str],
    options: EncodeOptions = EncodeOptions(),
    *,
    frames: np.ndarray | None = None,
    fps: float | None = None,
    progress: bool = True,
) -> EncodeResult:
    """Encode ``video`` at every rank of ``options.ranks``; write streams, ``ladder.json`` and ``summary.json``.

    ``frames`` (uint8 ``(T, S, S, 3)``) and ``fps`` may be given instead of reading ``video`` (tests).
    Checkpoints go to ``out_dir/checkpoints``; rerunning the same command resumes.
    """
    from abr.ladder import DEFAULT_SEVERE_LPIPS, frame_lpips_stats

    out = Path(out_dir)
    side = generator.config.resolution
    if frames is None:
        frames, fps = load_video(video, side, fps=options.fps, max_frames=options.max_frames)
    elif fps is None:
        raise ValueError("fps is required with frames")
    assert fps is not None
    if frames.shape[1:3] != (side, side):
        raise InputError(f"frames are {frames.shape[2]}x{frames.shape[1]}, the generator makes {side}x{side}")
    receiver = get_receiver(options.receiver, generator)
    T = len(frames)
    ranks = options.ranks
    fits: dict[int, VideoFit] = {}
    derived: dict[int, bool] = {}
    base = replace(options.fit, interval=options.interval)
    order = sorted(ranks, reverse=True) if options.derive else list(ranks)
    for i, r in enumerate(order):
        nest = options.nested and i > 0
        tag = "-derived" if options.derive and r != max(ranks) else f"-nested{order[i - 1]}" if nest else ""
        ck = out / "checkpoints" / f"rank{r}{tag}"
        if nest:
            fits[r] = fit_video(receiver, frames, replace(base, rank=r), init=nested_init(fits[order[i - 1]], r),
                                checkpoint_dir=ck, lpips_weights=options.lpips_weights,
                                vgg_weights=options.vgg_weights, progress=progress)
            derived[r] = False
        elif options.derive and r != max(ranks):
            fits[r] = derive_rank(receiver, frames, fits[max(ranks)], r, iters=options.derive_iters,
                                  checkpoint_dir=ck, lpips_weights=options.lpips_weights,
                                  vgg_weights=options.vgg_weights, progress=progress)
            derived[r] = True
        else:
            fits[r] = fit_video(receiver, frames, replace(base, rank=r), checkpoint_dir=ck,
                                lpips_weights=options.lpips_weights, vgg_weights=options.vgg_weights,
                                progress=progress)
            derived[r] = False

    fpc = max(1, int(round(options.chunk_s * fps)))
    n_chunks = math.ceil(T / fpc)
    chunk_frames = np.array([min(fpc, T - j * fpc) for j in range(n_chunks)])
    scorer = FrameScorer(options.lpips_net, options.lpips_weights, generator.device)
    streams: dict[int, Path] = {}
    rungs, size, lp_mean, lp_p95, sev, summary = [], [], [], [], [], {}
    for r in ranks:
        header, latent, kfs = stream_from_fit(fits[r], generator, fps)
        path = out / f"promptus_r{r}_n{options.interval}.prmt"
        write_stream(path, header, latent, kfs, coder=options.coder)
        stream = read_stream(path)  # score exactly what a receiver gets
        streams[r] = path
        t0 = time.perf_counter()
        decoded = np.concatenate([seg for _, seg in decode_frames(stream, generator, receiver=receiver,
                                                                   source=path)])
        decode_s = time.perf_counter() - t0
        scores = scorer(frames, decoded)
        chunks = [scores[j * fpc : (j + 1) * fpc] for j in range(n_chunks)]
        mean, p95, frac = frame_lpips_stats(chunks, DEFAULT_SEVERE_LPIPS)
        bytes_ = chunk_bytes(stream, fpc, n_chunks)
        kbps = stream.total_bytes * 8.0 / (T / fps) / 1000.0
        rungs.append(RungInfo(family="promptus", decoder=receiver.name, kbps=kbps, rank=r,
                              interval=options.interval, label=f"promptus-r{r}"))
        size.append(bytes_)
        lp_mean.append(mean)
        lp_p95.append(p95)
        sev.append(frac)
        mse = ((decoded.astype(np.float64) - frames.astype(np.float64)) ** 2).reshape(T, -1).mean(axis=1)
        summary[r] = {
            "stream": path.name, "derived": derived[r], "fit_seconds": fits[r].seconds,
            "fit_iterations": fits[r].iterations, "fit_loss": fits[r].mean_loss,
            "lpips_mean": float(scores.mean()),
            "psnr_db": float(np.mean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10)))),
            "total_bytes": stream.total_bytes, "spec_payload_bytes": sum(k.raw_bytes for k in stream.keyframes),
            "keyframe_record_bytes": sum(stream.keyframe_bytes), "factor_raw_bytes": stream.factor_raw_bytes,
            "factor_coded_bytes": sum(stream.factor_coded_bytes), "entropy_gain": stream.entropy_gain,
            "first_latent_bytes": stream.latent_bytes, "kbps": kbps,
            "nominal_kbps": promptus_kbps(r, options.interval, fps), "decode_seconds": decode_s,
        }  # fmt: skip
    order_idx = np.argsort([g.kbps for g in rungs], kind="stable")
    pick = lambda rows: np.stack(rows, axis=1)[:, order_idx]  # noqa: E731
    ladder = Ladder(
        name=f"promptus:{Path(str(video)).stem}",
        rungs=tuple(rungs[i] for i in order_idx),
        duration_s=chunk_frames / fps,
        frames=chunk_frames,
        size_bytes=pick(size),
        lpips_mean=pick(lp_mean),
        lpips_p95=pick(lp_p95),
        severe_frac=pick(sev),
        metadata={
            "synthetic": False,
            "source": str(video),
            "codec": "promptus",
            "generator": generator.identity(),
            "generator_fingerprint": generator.fingerprint(),
            "receiver": receiver.spec,
            "quality_metric": scorer.name,
            "resolution": side,
            "fps": fps,
            "frames": T,
            "fit": base.to_dict(),
            "derived_ranks": [r for r in ranks if derived[r]],
            "nested_ranks": options.nested,
            "derive_iters": options.derive_iters if options.derive else None,
            "per_rank": {str(r): summary[r] for r in ranks},
            "note": "chunk bytes from the real bitstream records; kbps = measured average; rung switches "
                    "interpolate across ranks (not measured)",
        },
    )
    ladder_path = save_ladder(ladder, out / "ladder.json")
    (out / "summary.json").write_text(json.dumps({str(k): v for k, v in summary.items()}, indent=1) + "\n")
    return EncodeResult(streams, ladder_path, ladder, summary)

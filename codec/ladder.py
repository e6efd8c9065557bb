"""Measured classic-codec ladders: encode every chunk of a video at every rung, decode, measure.

``python -m codec.ladder VIDEO --codec h265 --kbps 50,100,200,400,800 --chunk-s 2 --out DIR``

The video is read as a stream (:func:`codec.video.iter_frames`, by default with Promptus's
preprocessing: centred square crop resized to 512x512) and cut into chunks of ``chunk_s``
seconds. Every chunk is encoded on its own at every target bitrate with PyAV (libx264,
libx265 or SVT-AV1), so each chunk is one closed GOP starting with an IDR frame (no scene-cut
keyframes inside), as in DASH/HLS segments. Rate control (x264/x265) is two-pass ABR at the
target bitrate by default (``--rate-control 2pass``), what an encoding engineer uses for a VOD ladder:
on the first chunks of the shared clips (2-s chunks at 512x512) the mean rate error is within 6%
from 110 kbit/s up (worst chunk 9%); x265 still overshoots by 8-11% on average at 50-75 kbit/s
(worst chunk 19%), against 20-27% (worst 30%) for one-pass VBV; and the key frame gets its share. The
alternatives are single-pass ABR capped by a VBV (``vbv``: ``maxrate`` = target, buffer = one
chunk; for rungs meant to be capped; it overshoots short chunks and starves the key frame at low
rates) and plain single-pass ABR (``abr``). x265 runs single-threaded (``pools=none``,
``frame-threads=1``) so that an encode is byte-identical from run to run (a resumed ladder equals an
uninterrupted one), and without its info SEI (``info=0``, about 2.4 kB of settings text per chunk,
10 kbit/s on a 2-s chunk); x264 is deterministic with its default threads. SVT-AV1 uses its own VBR,
which undershoots 2-s chunks (about 0.55-0.6 of the target on a 256x256 test here). Nominal rates
are targets: the ladder records the real bytes.
Each encoding is decoded again and measured against the
preprocessed RGB frames (the same reference a prompt codec is measured against):

- real bytes of the elementary stream (no container overhead);
- per-frame LPIPS (AlexNet v0.1 by default): mean, 95th percentile, and the fraction of frames
  above the severe threshold;
- per-frame PSNR (dB) over RGB, averaged per chunk (SSIM: :func:`codec.metrics.ssim`, not measured here
  because it costs as much CPU as LPIPS);
- encode and decode wall time (seconds, this machine, as configured).

Results are written per chunk (``DIR/chunks/chunk-00012.json``, atomically) and the ladder
(:class:`abr.Ladder`, ``DIR/ladder.json``) at the end, so an interrupted run resumes where it
stopped when started again with the same settings, and Ctrl-C leaves no partial file. Sizes,
LPIPS and severe fractions go into the ladder arrays; PSNR and timings into
``ladder.metadata["measurements"]`` (``(chunks, rungs)`` lists).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from abr.errors import InputError, cli_main, unknown_name
from abr.flags import add_chunk_flag, add_progress_flag, add_torch_device_flag
from abr.io import read_json, sha256_file, write_json_atomic
from abr.ladder import DEFAULT_SEVERE_LPIPS, Ladder, RungInfo, frame_lpips_stats, save_ladder
from codec.classic import (
    CODECS,
    PRESETS,
    RATE_CONTROLS,
    _codec,
    _to_yuv,
    decode_chunk,
    encode_chunk,
    encoder_version,
)

__all__ = [
    "ChunkResult", "LadderBuildConfig", "build_ladder", "display_view", "main", "measure_chunk", "rate_control_record",
]  # fmt: skip

BUILD_FORMAT = "promptabr-ladder-build"
BUILD_VERSION = 1


# --------------------------------------------------------------------------- config


@dataclass(frozen=True, slots=True)
class LadderBuildConfig:
    """Settings of a measured ladder build.

    :param codec: ``h264``, ``h265`` or ``av1``.
    :param kbps: target bitrates of the rungs, kbit/s.
    :param chunk_s: chunk duration in seconds (the frame count is rounded to whole frames).
    :param crop_square: cut the centred square before resizing (Promptus preprocessing).
    :param resize: output side in pixels (square), or None for the source size (must be even).
    :param max_s: use only the first ``max_s`` seconds of the video (None: all).
    :param fps: raw YUV: the file's rate; containers: convert to this rate (None: source rate).
    :param size: raw YUV frame size ``WxH`` (None: from the file name).
    :param preset: encoder preset (None: the codec's default).
    :param rate_control: x264/x265: ``2pass`` (two-pass ABR), ``vbv`` (one-pass ABR capped at the target,
        one-chunk buffer) or ``abr`` (one-pass ABR); SVT-AV1 always uses its own VBR.
    :param lpips_net: ``alex`` or ``vgg``.
    :param lpips_stride: measure LPIPS on every n-th frame (1: every frame).
    :param severe_lpips: a frame with LPIPS above this counts as severely distorted.
    :param min_last_chunk: keep a shorter last chunk only if it has at least this fraction of a chunk.
    :param batch_size: frames per LPIPS batch.
    :param display: measure LPIPS and PSNR on a view of every frame, source and decoded alike: the centred
        square resized (bicubic) to ``display x display``. This is the one display every rung of a mixed
        ladder shares (512: the Promptus output), so rungs coded at a clip's native size are scored on the
        same pixels as the 512x512 rungs. None: measure at the coded size.
    """

    codec: str = "h265"
    kbps: tuple[float, ...] = (50.0, 100.0, 200.0, 400.0, 800.0)
    chunk_s: float = 2.0
    crop_square: bool = True
    resize: int | None = 512
    max_s: float | None = None
    fps: float | None = None
    size: str | None = None
    preset: str | None = None
    rate_control: str = "2pass"
    lpips_net: str = "alex"
    lpips_stride: int = 1
    severe_lpips: float = DEFAULT_SEVERE_LPIPS
    min_last_chunk: float = 0.5
    batch_size: int = 8
    display: int | None = None

    def __post_init__(self) -> None:
        _codec(self.codec)
        if self.preset is not None and str(self.preset) not in PRESETS[self.codec]:
            raise unknown_name(f"{self.codec} preset", str(self.preset), PRESETS[self.codec])
        kbps = tuple(sorted(float(k) for k in self.kbps))
        if not kbps or not all(0 < k < 1e7 for k in kbps) or len(set(kbps)) != len(kbps):
            raise InputError(f"kbps must be distinct positive bitrates below 1e7, got {list(self.kbps)}")
        object.__setattr__(self, "kbps", kbps)
        if not 0 < self.chunk_s < 3600:
            raise InputError(f"chunk_s must be in (0, 3600) s, got {self.chunk_s}")
        if self.resize is not None and (self.resize <= 0 or self.resize % 2):
            raise InputError(f"resize must be a positive even number of pixels, got {self.resize}")
        if self.max_s is not None and not self.max_s > 0:
            raise InputError(f"max_s must be > 0, got {self.max_s}")
        if self.rate_control not in RATE_CONTROLS:
            raise unknown_name("rate control", self.rate_control, RATE_CONTROLS)
        if self.lpips_net not in ("alex", "vgg"):
            raise unknown_name("LPIPS net", self.lpips_net, ("alex", "vgg"))
        if self.lpips_stride < 1 or self.batch_size < 1:
            raise InputError("lpips_stride and batch_size must be >= 1")
        if not 0 < self.severe_lpips:
            raise InputError(f"severe_lpips must be > 0, got {self.severe_lpips}")
        if not 0 <= self.min_last_chunk <= 1:
            raise InputError(f"min_last_chunk must be in [0, 1], got {self.min_last_chunk}")
        if self.display is not None and not (isinstance(self.display, int) and self.display > 0):
            raise InputError(f"display must be a positive number of pixels, got {self.display}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON values; ``display`` only when set, so builds made before it existed resume."""
        doc = {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}
        if doc["display"] is None:
            del doc["display"]
        return doc


def rate_control_record(cfg: LadderBuildConfig, frames: int, fps: float) -> dict[str, Any]:
    """How a build's chunks are encoded: rate control, passes, and the encoder options of its first rung.

    Goes into the ladder's metadata and the build fingerprint, so the encoder settings behind every
    committed ladder are on record and a changed setting never resumes an old build.
    """
    spec = _codec(cfg.codec)
    two_pass = spec.x26x and cfg.rate_control == "2pass"
    rc_pass = 2 if two_pass else 0
    example = spec.options(frames, cfg.kbps[0], frames / fps, cfg.preset, cfg.rate_control, "STATS", rc_pass)
    return {
        "rate_control": cfg.rate_control if spec.x26x else "svt-av1 vbr",
        "passes": 2 if two_pass else 1,
        "fixed_params": spec.fixed,
        "options_first_rung": example,
        "note": {
            "2pass": "two-pass ABR at the target bitrate (pass 1 writes STATS, pass 2 reads it); no VBV cap",
            "vbv": "one-pass ABR with vbv-maxrate = target and vbv-bufsize = one chunk of the target",
            "abr": "one-pass ABR at the target bitrate, no VBV cap",
        }[cfg.rate_control] if spec.x26x else "SVT-AV1's own VBR at the target bitrate",
    }  # fmt: skip


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True, slots=True)
class ChunkResult:
    """Measurements of one chunk at every rung (lists are per rung).

    ``lpips`` holds the per-frame LPIPS of the measured frames (every ``lpips_stride``-th).
    """

    index: int
    start_frame: int
    frames: int
    duration_s: float
    size_bytes: list[int]
    lpips: list[list[float]]
    psnr_db: list[float]
    encode_s: list[float]
    decode_s: list[float]
    fingerprint: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ChunkResult:
        return cls(**{f.name: doc[f.name] for f in fields(cls)})


def measure_chunk(
    ref: np.ndarray,
    cfg: LadderBuildConfig,
    fps: float,
    lpips_model: Any,
    *,
    index: int = 0,
    start_frame: int = 0,
    fingerprint: str = "",
    on_rung: Callable[[], Any] | None = None,
) -> ChunkResult:
    """Encode ``ref`` (uint8 RGB ``(N, H, W, 3)``) at every rung of ``cfg``, decode and measure it.

    ``on_rung`` is called after each rung is encoded and decoded (a progress bar's update)."""
    yuv = _to_yuv(ref)
    sizes, enc_s, dec_s, decoded = [], [], [], []
    for kbps in cfg.kbps:
        enc = encode_chunk(yuv, cfg.codec, kbps, fps, preset=cfg.preset, rate_control=cfg.rate_control)
        frames, t_dec = decode_chunk(enc.packets, cfg.codec)
        if frames.shape != ref.shape:
            raise RuntimeError(f"decoder returned {frames.shape}, expected {ref.shape} (chunk {index}, {kbps} kbit/s)")
        sizes.append(enc.size_bytes)
        enc_s.append(round(enc.encode_s, 4))
        dec_s.append(round(t_dec, 4))
        decoded.append(frames)
        if on_rung is not None:
            on_rung()
    if cfg.display is not None:
        ref, decoded = display_view(ref, cfg.display), [display_view(d, cfg.display) for d in decoded]
    step = cfg.lpips_stride
    lp = lpips_model.distance_frames_many(ref[::step], [d[::step] for d in decoded], batch_size=cfg.batch_size)
    return ChunkResult(
        index=index,
        start_frame=start_frame,
        frames=len(ref),
        duration_s=len(ref) / fps,
        size_bytes=[int(s) for s in sizes],
        lpips=[[round(float(v), 6) for v in row] for row in lp],
        psnr_db=[round(float(np.mean(_frame_psnr(ref, d, cfg.batch_size))), 4) for d in decoded],
        encode_s=enc_s,
        decode_s=dec_s,
        fingerprint=fingerprint,
    )


def display_view(frames: np.ndarray, side: int) -> np.ndarray:
    """``(N, H, W, 3)`` frames as shown on a ``side x side`` display: the centred square, resized bicubically."""
    from codec.video import crop_resize

    return np.stack([crop_resize(f, True, (side, side)) for f in frames])


def _frame_psnr(ref: np.ndarray, dist: np.ndarray, batch: int) -> np.ndarray:
    """Per-frame PSNR in dB (capped at 100 dB for identical frames), in batches to bound memory."""
    from codec.metrics.fidelity import psnr

    out = [psnr(ref[i : i + batch], dist[i : i + batch]) for i in range(0, len(ref), batch)]
    return np.minimum(np.concatenate(out), 100.0)


# --------------------------------------------------------------------------- building


def _chunks(frames: Iterator[np.ndarray], chunk_frames: int, min_last: int) -> Iterator[tuple[int, np.ndarray]]:
    """Group a frame stream into ``(start_frame, stack)`` chunks; a short tail below ``min_last`` is dropped."""
    buf: list[np.ndarray] = []
    start = 0
    for frame in frames:
        buf.append(frame)
        if len(buf) == chunk_frames:
            yield start, np.stack(buf)
            start += len(buf)
            buf = []
    if buf and len(buf) >= max(min_last, 1):
        yield start, np.stack(buf)


def build_ladder(
    video: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    cfg: LadderBuildConfig | None = None,
    *,
    name: str | None = None,
    device: str | None = None,
    lpips_weights: str | os.PathLike[str] | None = None,
    progress: bool = True,
    on_chunk: Callable[[ChunkResult], None] | None = None,
) -> Ladder:
    """Measure a ladder of ``video`` into ``out_dir`` (resuming from chunk files already there).

    :param name: ladder name (default ``<codec>-measured:<video stem>``).
    :param device: torch device for LPIPS (default: CUDA when available, else CPU).
    :param on_chunk: called after each newly measured chunk (tests use it to interrupt a build).
    :returns: the ladder, also written to ``out_dir/ladder.json``.
    :raises InputError: unreadable video, bad settings, or an ``out_dir`` built with other settings.
    """
    import torch

    from codec.metrics.lpips import LPIPS
    from codec.video import iter_frames, probe

    cfg = cfg or LadderBuildConfig()
    video, out_dir = Path(video), Path(out_dir)
    info = probe(video, size=cfg.size, fps=cfg.fps if video.suffix.lower() == ".yuv" else None)
    raw = info.codec == "rawvideo"
    fps = info.fps if raw or cfg.fps is None else float(cfg.fps)
    chunk_frames = max(1, int(round(cfg.chunk_s * fps)))
    min_last = int(np.ceil(cfg.min_last_chunk * chunk_frames))
    max_frames = None if cfg.max_s is None else max(1, int(round(cfg.max_s * fps)))
    source = {
        "file": video.name,
        "sha256": sha256_file(video),
        "width": info.width,
        "height": info.height,
        "fps": fps,
        "source_fps": info.fps,
        "source_frames": info.frames,
        "source_codec": info.codec,
    }
    settings = cfg.to_dict()
    encoder = encoder_version(cfg.codec)  # part of the fingerprint: never mix encoder builds in one ladder
    rc = rate_control_record(cfg, chunk_frames, fps)
    fingerprint = hashlib.sha256(json.dumps([source, settings, encoder, rc], sort_keys=True).encode()).hexdigest()[:16]
    build_file = out_dir / "build.json"
    if build_file.exists():
        try:
            prev = read_json(build_file, "build record")
        except InputError as exc:
            raise InputError(f"{exc}; delete {out_dir} to start over") from None
        if not isinstance(prev, dict) or prev.get("fingerprint") != fingerprint:
            raise InputError(
                "this output folder holds a build of another video, with other settings or another encoder build; "
                "choose another --out or delete the folder",
                path=build_file,
            )
    else:
        write_json_atomic(
            build_file,
            {"format": BUILD_FORMAT, "version": BUILD_VERSION, "fingerprint": fingerprint, "source": source,
             "settings": settings},
        )  # fmt: skip

    expected = info.frames if raw or cfg.fps is None else int(info.frames * fps / info.fps)
    if max_frames is not None:
        expected = min(expected, max_frames)
    n_expected = expected // chunk_frames + (1 if expected % chunk_frames >= max(min_last, 1) else 0)
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = None
    results: list[ChunkResult] = []
    frames_it = iter_frames(
        video,
        size=cfg.size,
        fps=cfg.fps,
        crop_square=cfg.crop_square,
        resize=cfg.resize,
        max_frames=max_frames,
    )
    n_rungs = len(cfg.kbps)
    bar = _progress(n_expected * n_rungs, f"{cfg.codec} ladder {video.name}", progress)
    try:
        for index, (start, ref) in enumerate(_chunks(frames_it, chunk_frames, min_last)):
            if ref.shape[1] % 2 or ref.shape[2] % 2:
                raise InputError(f"frames are {ref.shape[2]}x{ref.shape[1]}; yuv420p needs even sizes (use --resize)")
            chunk_file = out_dir / "chunks" / f"chunk-{index:05d}.json"
            result = _load_chunk(chunk_file, fingerprint, start, len(ref))
            if result is None:
                if model is None:
                    model = LPIPS(cfg.lpips_net, weights=lpips_weights).to(dev)  # type: ignore[arg-type]
                bar.set_postfix_str(f"chunk {index + 1}")
                result = measure_chunk(ref, cfg, fps, model, index=index, start_frame=start, fingerprint=fingerprint,
                                       on_rung=lambda: bar.update(1))  # fmt: skip
                write_json_atomic(chunk_file, result.to_dict())
                if on_chunk is not None:
                    on_chunk(result)
            else:
                bar.update(n_rungs)  # finished by an earlier run
            results.append(result)
    finally:
        bar.close()
        frames_it.close()
    if not results:
        raise InputError(f"no complete chunk of {chunk_frames} frames in the video", path=video)
    ladder = _assemble(results, cfg, source, name or f"{cfg.codec}-measured:{video.stem}", rc)
    save_ladder(ladder, out_dir / "ladder.json")
    return ladder


def _load_chunk(path: Path, fingerprint: str, start: int, frames: int) -> ChunkResult | None:
    """A finished chunk's result, or None when it must be (re)measured."""
    if not path.exists():
        return None
    try:
        result = ChunkResult.from_dict(read_json(path, "chunk result"))
    except (ValueError, KeyError, TypeError):  # InputError is a ValueError
        return None  # unreadable: measure again (writes are atomic, so this only follows outside damage)
    if result.fingerprint != fingerprint or result.start_frame != start or result.frames != frames:
        return None
    return result


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="rung", disable=not enabled, leave=False)


def _assemble(results: list[ChunkResult], cfg: LadderBuildConfig, source: dict, name: str, rc: dict) -> Ladder:
    lp = [np.asarray(r.lpips[j]) for r in results for j in range(len(cfg.kbps))]
    shape = (len(results), len(cfg.kbps))
    mean, p95, severe = (s.reshape(shape) for s in frame_lpips_stats(lp, cfg.severe_lpips))
    rungs = tuple(RungInfo(family=cfg.codec, decoder=cfg.codec, kbps=float(k)) for k in cfg.kbps)
    measurements = {key: [getattr(r, key) for r in results] for key in ("psnr_db", "encode_s", "decode_s")}
    return Ladder(
        name=name,
        rungs=rungs,
        duration_s=np.array([r.duration_s for r in results]),
        frames=np.array([r.frames for r in results]),
        size_bytes=np.array([r.size_bytes for r in results], dtype=np.float64),
        lpips_mean=mean,
        lpips_p95=p95,
        severe_frac=severe,
        severe_lpips=cfg.severe_lpips,
        metadata={
            "synthetic": False,
            "measured": True,
            "source": f"measured with codec.ladder ({cfg.codec}) on {source['file']}",
            "video": source,
            "encoder": encoder_version(cfg.codec),  # cached: the same string as in the fingerprint
            "settings": cfg.to_dict(),
            "encoding": rc,
            "closed_gop": "every chunk is an independent stream starting with an IDR frame, no scene-cut keyframes",
            "reference": "preprocessed RGB frames (crop/resize as in settings); LPIPS v0.1 per frame"
            + (
                f"; LPIPS and PSNR on the centred square of source and decoded frames resized to "
                f"{cfg.display}x{cfg.display} (settings.display)"
                if cfg.display is not None
                else ""
            ),
            "measurements": measurements,
            "measurement_units": {
                "psnr_db": "dB (RGB, mean over frames)",
                "encode_s": "s per chunk",
                "decode_s": "s per chunk",
            },
        },  # fmt: skip
    )


# --------------------------------------------------------------------------- CLI


def _kbps_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated bitrates like 50,100,200, got {text!r}") from None


@cli_main
def main(argv: list[str] | None = None) -> int:
    d = LadderBuildConfig()
    ap = argparse.ArgumentParser(
        prog="python -m codec.ladder",
        description="Measure a classic-codec ladder (bytes, LPIPS, PSNR, times per chunk and rung) of a video.",
    )
    ap.add_argument("video", type=Path, help="video file (any container PyAV reads, or raw I420 .yuv)")
    ap.add_argument("--codec", default=d.codec, choices=sorted(CODECS), help=f"codec family (default {d.codec})")
    ap.add_argument(
        "--kbps", type=_kbps_list, default=d.kbps, help="target bitrates, kbit/s (default 50,100,200,400,800)"
    )
    add_chunk_flag(ap, d.chunk_s)
    ap.add_argument("--out", type=Path, required=True, help="output folder (ladder.json, build.json, chunks/)")
    ap.add_argument("--name", default=None, help="ladder name (default <codec>-measured:<video stem>)")
    ap.add_argument("--max-s", type=float, default=None, help="use only the first MAX_S seconds")
    ap.add_argument("--resize", type=int, default=d.resize, help="output side in pixels after the crop (default 512)")
    ap.add_argument("--no-crop", action="store_true", help="keep the full frame instead of the centred square")
    ap.add_argument("--no-resize", action="store_true", help="keep the (cropped) source size")
    ap.add_argument("--size", default=None, help="raw .yuv frame size WxH (default: from the file name)")
    ap.add_argument("--fps", type=float, default=None, help="raw .yuv frame rate; for containers: convert to this rate")
    ap.add_argument("--preset", default=None, help="encoder preset (default: medium for x264/x265, 8 for SVT-AV1)")
    ap.add_argument("--rate-control", default=d.rate_control, choices=RATE_CONTROLS,
                    help="x264/x265: 2pass (default: two-pass ABR; on 2-s 512x512 chunks of the shared clips the "
                         "mean rate error is within 6%% from 110 kbit/s up, +8-11%% at 50-75 kbit/s with x265), "
                         "vbv (one-pass ABR with a VBV cap at the target and a one-chunk buffer; overshoots "
                         "short chunks by 5-30%% and starves the key frame at low rates) or abr (one-pass ABR); "
                         "SVT-AV1 always uses its VBR")  # fmt: skip
    ap.add_argument("--lpips", dest="lpips_net", default=d.lpips_net, choices=("alex", "vgg"),
                    help="LPIPS backbone (default alex; as codec.encode's --lpips)")
    ap.add_argument("--lpips-net", dest="lpips_net", choices=("alex", "vgg"), help=argparse.SUPPRESS)
    ap.add_argument("--lpips-stride", type=int, default=d.lpips_stride, help="LPIPS on every n-th frame (default 1)")
    ap.add_argument("--lpips-weights", default=None, help="LPIPS weights file/folder (default: cache or download)")
    ap.add_argument("--display", type=int, default=None,
                    help="score LPIPS/PSNR on the centred square resized to DISPLAY x DISPLAY (e.g. 512 with "
                         "--no-crop --no-resize: native-size rungs scored like the 512x512 ones; "
                         "default: the coded size)")  # fmt: skip
    ap.add_argument("--severe", type=float, default=d.severe_lpips, help="severe-frame LPIPS threshold (default 0.25)")
    add_torch_device_flag(ap, help="torch device for LPIPS (default cuda if available, else cpu)")
    add_progress_flag(ap, dest="quiet")
    args = ap.parse_args(argv)
    try:
        cfg = LadderBuildConfig(
            codec=args.codec,
            kbps=args.kbps,
            chunk_s=args.chunk_s,
            crop_square=not args.no_crop,
            resize=None if args.no_resize else args.resize,
            max_s=args.max_s,
            fps=args.fps,
            size=args.size,
            preset=args.preset,
            rate_control=args.rate_control,
            lpips_net=args.lpips_net,
            lpips_stride=args.lpips_stride,
            severe_lpips=args.severe,
            display=args.display,
        )
        ladder = build_ladder(
            args.video, args.out, cfg, name=args.name, device=args.device, lpips_weights=args.lpips_weights,
            progress=not args.quiet,
        )  # fmt: skip
    except KeyboardInterrupt:
        done = len(list((args.out / "chunks").glob("chunk-*.json"))) if (args.out / "chunks").is_dir() else 0
        print(
            f"interrupted; {done} chunk(s) saved in {args.out}; run the same command again to resume", file=sys.stderr
        )
        return 130
    kbps = ladder.measured_kbps.mean(axis=0)
    print(f"wrote {args.out / 'ladder.json'}: {ladder.n_chunks} chunks x {ladder.n_rungs} rungs")
    print(f"encoder: {ladder.metadata['encoder']}")
    print("target_kbps  actual_kbps  lpips_mean  lpips_p95  severe_frac  psnr_db")
    psnr_db = np.array(ladder.metadata["measurements"]["psnr_db"]).mean(axis=0)
    for j, r in enumerate(ladder.rungs):
        print(
            f"{r.kbps:11g}  {kbps[j]:11.1f}  {ladder.lpips_mean[:, j].mean():10.4f}"
            f"  {ladder.lpips_p95[:, j].mean():9.4f}  {ladder.severe_frac[:, j].mean():11.3f}  {psnr_db[j]:7.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

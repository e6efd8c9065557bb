"""Import the official Promptus release's prompt files into our bitstream.

The official encoder (pku-netvideo/Promptus, ``inversion.py``) writes, per clip and rank, a folder
``results/rank{r}_interval{N}/`` holding (``../shared/PROMPTUS_OFFICIAL.md`` section 7):

- ``frame_{k:05d}.prompt`` per keyframe k: a ``torch.save`` dict ``{U: uint8 (77, r), V: uint8
  (r, 1024), U_scale, U_zero_point, V_scale, V_zero_point}`` (0-dim float32 tensors, saved on
  ``cuda:0``); the receiver's factors are ``scale * (q - zero_point)``, exactly our
  :class:`~codec.promptus.quant.QuantFactors`;
- ``init.pth``: frame 0's anchor latent, a float32 ``(1, 4, 64, 64)`` tensor (SD-VAE posterior
  sample x 0.18215).

Files are read with ``torch.load(weights_only=True)`` only (tensors and plain containers; no code
runs) and validated before use. The result is one of our streams (:mod:`codec.promptus.bitstream`)
whose receiver is ``promptus:noise=numpy`` (upstream's ``RandomState(seed)`` noise), so with the
SD-Turbo + TAESD weights it decodes with ``python -m codec.decode``. ``init.pth`` is kept as float32
(a bitstream ``F`` record, bit-exact); ``--latent uint8`` quantizes it into our smaller ``L`` record
instead (its error, at most half a step of ~0.04, reaches the start latent damped 20x by the 0.05
anchor). One difference, stated:

- the header's weight fingerprint is that of ``--model`` when given, else zeros (decode then needs
  ``--allow-mismatch``, since nothing here can vouch for which weights the prompts were fitted with).

Example::

    python -m codec.promptus.official Promptus/data/sky/results/rank8_interval10 --fps 30 --out sky_r8.prmt
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from abr.errors import InputError, cli_main
from codec.promptus.bitstream import KeyframeRecord, LatentRecord, StreamHeader, write_stream
from codec.promptus.fit import quantize_latent
from codec.promptus.quant import QParams, QuantFactors

__all__ = ["OfficialClip", "load_official_prompt", "load_official_init", "load_official_folder", "import_official"]

_PROMPT_NAME = re.compile(r"frame_(\d{5,})\.prompt")
_KEYS = ("U", "V", "U_scale", "U_zero_point", "V_scale", "V_zero_point")
#: SD-Turbo's frame side in pixels per latent cell.
_VAE_FACTOR = 8


def _load(path: Path, what: str) -> object:
    try:
        with warnings.catch_warnings():  # torch warns about raw pickles before refusing them
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means an unusable file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InputError(f"not a readable official {what} ({first})", path=path) from None


def _scalar(doc: dict, key: str, path: Path) -> float:
    t = doc[key]
    if not isinstance(t, torch.Tensor) or t.numel() != 1 or not t.is_floating_point():
        raise InputError(f"{key} must be a float scalar tensor", path=path)
    value = float(t.reshape(()))
    if not np.isfinite(value):
        raise InputError(f"{key} is not finite ({value})", path=path)
    return value


def load_official_prompt(path: str | os.PathLike[str]) -> QuantFactors:
    """One official ``frame_XXXXX.prompt`` as :class:`QuantFactors` (codes and parameters unchanged)."""
    path = Path(path)
    doc = _load(path, "prompt file")
    if not isinstance(doc, dict) or set(doc) != set(_KEYS):
        keys = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise InputError(f"an official prompt holds exactly {list(_KEYS)}, got {keys}", path=path)
    u, v = doc["U"], doc["V"]
    for name, t in (("U", u), ("V", v)):
        if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8 or t.ndim != 2 or min(t.shape) < 1:
            raise InputError(f"{name} must be a 2-D uint8 tensor", path=path)
    if u.shape[1] != v.shape[0]:
        raise InputError(f"U {tuple(u.shape)} and V {tuple(v.shape)} have different ranks", path=path)
    try:
        u_q = QParams(_scalar(doc, "U_scale", path), _scalar(doc, "U_zero_point", path))
        v_q = QParams(_scalar(doc, "V_scale", path), _scalar(doc, "V_zero_point", path))
    except ValueError as exc:
        raise InputError(str(exc), path=path) from None
    return QuantFactors(u.numpy().copy(), v.numpy().copy(), u_q, v_q)


def load_official_init(path: str | os.PathLike[str]) -> torch.Tensor:
    """``init.pth``: frame 0's float32 anchor latent ``(1, C, h, w)``."""
    path = Path(path)
    z = _load(path, "init latent")
    if not isinstance(z, torch.Tensor) or z.ndim != 4 or z.shape[0] != 1 or not z.is_floating_point():
        raise InputError("init.pth must hold one float tensor of shape (1, C, h, w)", path=path)
    z = z.float()
    if not torch.isfinite(z).all():
        raise InputError("init.pth holds non-finite values", path=path)
    return z


@dataclass(frozen=True, eq=False)
class OfficialClip:
    """An official results folder: keyframe indices, their factors, the anchor latent and file sizes."""

    frames: tuple[int, ...]
    keyframes: tuple[QuantFactors, ...]
    init: torch.Tensor
    prompt_file_bytes: tuple[int, ...]
    init_file_bytes: int

    @property
    def rank(self) -> int:
        return self.keyframes[0].rank

    @property
    def payload_bytes(self) -> tuple[int, ...]:
        """Per keyframe: uint8 factors plus the four float32 scalars (8,824 B at r = 8)."""
        return tuple(int(k.u.size + k.v.size + 16) for k in self.keyframes)


def load_official_folder(folder: str | os.PathLike[str]) -> OfficialClip:
    """Read and validate every ``frame_*.prompt`` and ``init.pth`` of an official results folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("not a folder (expected results/rank{r}_interval{N}/ of the official code)", path=folder)
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _PROMPT_NAME.fullmatch(p.name)))
    if not found:
        raise InputError("no frame_XXXXX.prompt files", path=folder)
    if found[0][0] != 0:
        raise InputError(f"the first keyframe is frame {found[0][0]}, not 0", path=folder)
    init_path = folder / "init.pth"
    if not init_path.is_file():
        raise InputError("init.pth (frame 0's latent) is missing; the receiver cannot start without it", path=folder)
    kfs = tuple(load_official_prompt(p) for _, p in found)
    for (_, p), q in zip(found, kfs):
        if q.u.shape != kfs[0].u.shape or q.v.shape != kfs[0].v.shape:
            raise InputError(f"factor shapes {q.u.shape}, {q.v.shape} differ from frame 0's", path=p)
    return OfficialClip(tuple(k for k, _ in found), kfs, load_official_init(init_path),
                        tuple(p.stat().st_size for _, p in found), init_path.stat().st_size)


def import_official(
    folder: str | os.PathLike[str], out: str | os.PathLike[str], *, fps: float = 30.0, seed: int = 88,
    generator: str = "sd-turbo", fingerprint: str = "0" * 16, coder: str = "best", latent: str = "float32",
) -> tuple[OfficialClip, int]:
    """Write an official results folder as one of our streams; returns the clip and the stream's size in bytes.

    Segment lengths are the gaps between keyframe indices (like the official ``realtime_demo``); the
    header's interval is the most common gap. Frames after the last keyframe were never coded upstream.
    ``latent``: ``float32`` (``init.pth`` bit-exact) or ``uint8`` (quantized, 4x smaller).
    """
    if latent not in ("float32", "uint8"):
        raise InputError(f"latent must be float32 or uint8, got {latent!r}")
    if not (np.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be a positive number, got {fps}")
    clip = load_official_folder(folder)
    frames = clip.frames
    gaps = np.diff(frames)
    interval = int(np.bincount(gaps).argmax()) if gaps.size else 1
    L, r = clip.keyframes[0].u.shape
    D = clip.keyframes[0].v.shape[1]
    c, h, w = clip.init.shape[1:]
    header = StreamHeader(
        generator=generator, fingerprint=fingerprint, receiver="promptus:noise=numpy",
        width=w * _VAE_FACTOR, height=h * _VAE_FACTOR, latent_shape=(c, h, w), prompt_shape=(L, D), rank=r,
        interval=interval, fps=float(fps), seed=int(seed), n_frames=frames[-1] + 1, n_keyframes=len(frames),
    )  # fmt: skip
    lat = LatentRecord(clip.init.numpy(), None) if latent == "float32" else LatentRecord(*quantize_latent(clip.init))
    kfs = [KeyframeRecord(k.u, k.v, k.u_q, k.v_q, frame=f, length=1 if i == 0 else f - frames[i - 1])
           for i, (f, k) in enumerate(zip(frames, clip.keyframes))]
    write_stream(out, header, lat, kfs, coder=coder)
    return clip, Path(out).stat().st_size


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m codec.promptus.official", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", help="official results folder (frame_XXXXX.prompt files and init.pth)")
    p.add_argument("--out", required=True, help="output stream (.prmt)")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate of the clip (the release states none; 30)")
    p.add_argument("--seed", type=int, default=88, help="seed of the shared noise (88 upstream)")
    p.add_argument("--model", help="SD-Turbo folder: records its weight fingerprint so decoding needs no "
                                   "--allow-mismatch")
    p.add_argument("--taesd", default="madebyollin/taesd", help="TAESD folder or hub id (with --model)")
    p.add_argument("--coder", choices=("best", "ac", "lzma", "zlib", "raw"), default="best", help="entropy coder")
    p.add_argument("--latent", choices=("float32", "uint8"), default="float32",
                   help="frame 0's latent: float32 as upstream sends it (default) or quantized to uint8 (4x smaller)")
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    name, fp = "sd-turbo", "0" * 16
    if args.model:
        from codec.promptus.generator import PromptusGenerator

        gen = PromptusGenerator.from_pretrained(args.model, args.taesd, device="cpu", dtype=torch.float32)
        name, fp = gen.identity(), gen.fingerprint()
    clip, size = import_official(args.folder, args.out, fps=args.fps, seed=args.seed, generator=name,
                                 fingerprint=fp, coder=args.coder, latent=args.latent)
    files = sum(clip.prompt_file_bytes) + clip.init_file_bytes
    print(f"{len(clip.frames)} keyframes, rank {clip.rank}: official files {files} B "
          f"(payload {sum(clip.payload_bytes)} B + init {clip.init_file_bytes} B) -> {args.out} {size} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())

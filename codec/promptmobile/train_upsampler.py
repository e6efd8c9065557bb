"""Train PromptMobile's x2 upsampler on frames of real videos.

    python -m codec.promptmobile.train_upsampler --videos ../shared/data/videos --out codec/data/upsampler-x2.pt

Training pairs: high-resolution patches of video frames (frames larger than the codec's 512-pixel
working size are first shrunk so their short side is 512) and their 2x2 box-filtered (area)
downsamplings. The real low-resolution input at run time is TAESD's decoding of a 32x32 latent,
which no pretrained weights let us produce here; area downsampling is the standard proxy and is
what the JSON beside the weights records. Loss: L1 in [-1, 1]; Adam with cosine learning-rate
decay; random crops and horizontal flips.

Validation: whole frames of held-out videos (``--val``), PSNR of the upsampler against bilinear and
bicubic upsampling of the same low-resolution frames; the numbers go into the JSON.

Long runs checkpoint every ``--ckpt-every`` steps to ``<out>.ckpt`` (atomically) and resume from it
when started again with the same arguments; the checkpoint is removed when training finishes.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from abr.errors import InputError, cli_main
from abr.flags import add_progress_flag
from abr.io import sha256_file, write_atomic

__all__ = ["TrainConfig", "read_frames", "train_upsampler", "main"]

#: Containers picked up from a folder; raw .yuv files (size from the name) only when named with --train.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".y4m", ".m4v")
#: Clips of ../shared/data/videos that are not used by default: openpose's clip is licensed for
#: non-commercial research only, so committed weights are not trained on it.
DEFAULT_EXCLUDE = ("openpose_video.avi",)
DEFAULT_VAL = ("carphone_pristine.mp4",)


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Training hyper-parameters (all recorded in the JSON beside the weights).

    :param steps: optimiser steps.
    :param batch: patches per step.
    :param patch: side of a high-resolution patch in pixels (even).
    :param lr: peak Adam learning rate (cosine decay to lr / 100).
    :param width: upsampler channels.
    :param body_layers: upsampler hidden convolutions.
    :param frame_stride: use every n-th frame of a video.
    :param max_side: frames whose short side exceeds this are shrunk to it (the codec's frame size).
    :param seed: seed of initialisation, crops and flips.
    """

    steps: int = 1200
    batch: int = 8
    patch: int = 64
    lr: float = 2e-3
    width: int = 32
    body_layers: int = 3
    frame_stride: int = 3
    max_side: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        if self.patch % 2 or self.patch < 8:
            raise InputError(f"--patch must be an even number >= 8, got {self.patch}")
        for name in ("steps", "batch", "frame_stride", "max_side"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise InputError(f"--lr must be > 0, got {self.lr}")


def read_frames(path: Path, stride: int = 1, max_side: int = 512) -> list[np.ndarray]:
    """Every ``stride``-th frame of a video as uint8 ``(H, W, 3)`` RGB, short side at most ``max_side``.

    Frames come from :func:`codec.video.iter_frames`; larger ones are shrunk (antialiased bilinear)
    and sizes are cut to even numbers so that 2x downsampling is exact.
    """
    import torch
    from torch.nn import functional as F

    from codec.video import iter_frames

    frames: list[np.ndarray] = []
    for i, rgb in enumerate(iter_frames(path)):
        if i % stride:
            continue
        h, w = rgb.shape[:2]
        if min(h, w) > max_side:
            f = max_side / min(h, w)
            t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
            t = F.interpolate(t, size=(round(h * f), round(w * f)), mode="bilinear", antialias=True)
            rgb = t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
        h, w = rgb.shape[:2]
        frames.append(np.ascontiguousarray(rgb[: h - h % 2, : w - w % 2]))
    if not frames:
        raise InputError("video has no frames", path=path)
    return frames


def _list_videos(folder: Path, names: tuple[str, ...] | None, exclude: tuple[str, ...]) -> list[Path]:
    if not folder.is_dir():
        raise InputError("video folder not found", path=folder)
    if names is not None:
        paths = [folder / n for n in names]
        for p in paths:
            if not p.is_file():
                raise InputError("video not found", path=p)
        return paths
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.name not in exclude)


def _to_tensor(frames: list[np.ndarray]):
    import torch

    return [torch.from_numpy(f).permute(2, 0, 1).float().div(127.5).sub(1.0) for f in frames]


def _sample_batch(frames, cfg: TrainConfig, rng: np.random.Generator):
    import torch
    from torch.nn import functional as F

    hr = []
    usable = [f for f in frames if min(f.shape[1:]) >= cfg.patch]
    for _ in range(cfg.batch):
        f = usable[rng.integers(len(usable))]
        y = rng.integers(0, f.shape[1] - cfg.patch + 1) // 2 * 2
        x = rng.integers(0, f.shape[2] - cfg.patch + 1) // 2 * 2
        p = f[:, y : y + cfg.patch, x : x + cfg.patch]
        hr.append(p.flip(-1) if rng.random() < 0.5 else p)
    hr_t = torch.stack(hr)
    return F.avg_pool2d(hr_t, 2), hr_t


def evaluate(model, frames) -> dict[str, float]:
    """Mean PSNR (dB) over ``frames`` of the upsampler, bilinear and bicubic x2 upsampling.

    Each frame is area-downsampled by 2 and upsampled back by each method.
    """
    import torch
    from torch.nn import functional as F

    from codec.metrics import psnr

    sums = {"upsampler": 0.0, "bilinear": 0.0, "bicubic": 0.0}
    with torch.no_grad():
        for f in frames:
            hr = f[None]
            lr = F.avg_pool2d(hr, 2)
            outs = {
                "upsampler": model(lr),
                "bilinear": F.interpolate(lr, scale_factor=2, mode="bilinear", align_corners=False),
                "bicubic": F.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False),
            }
            for k, v in outs.items():
                sums[k] += float(psnr(v.clamp(-1, 1), hr))
    return {f"psnr_{k}_db": round(v / len(frames), 3) for k, v in sums.items()}




def train_upsampler(
    train_videos: list[Path],
    val_videos: list[Path],
    out: Path,
    cfg: TrainConfig = TrainConfig(),
    *,
    ckpt_every: int = 250,
    progress: bool = True,
) -> dict:
    """Train an upsampler, save it to ``out`` with a JSON beside it, and return that JSON's content."""
    import torch
    from torch.nn import functional as F
    from tqdm import tqdm

    from codec.promptmobile.upsampler import Upsampler, UpsamplerConfig, save_upsampler

    if not train_videos:
        raise InputError("no training videos")
    torch.manual_seed(cfg.seed)
    train = [f for p in train_videos for f in _to_tensor(read_frames(p, cfg.frame_stride, cfg.max_side))]
    val = [f for p in val_videos for f in _to_tensor(read_frames(p, cfg.frame_stride, cfg.max_side))]
    if not any(min(f.shape[1:]) >= cfg.patch for f in train):
        raise InputError(f"no training frame is at least {cfg.patch} pixels on its short side")
    model = Upsampler(UpsamplerConfig(width=cfg.width, body_layers=cfg.body_layers))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps, eta_min=cfg.lr / 100)
    rng = np.random.default_rng(cfg.seed)
    ckpt = out.with_suffix(".ckpt")
    key = {"config": asdict(cfg), "train": [p.name for p in train_videos]}
    start, losses = 0, []
    if ckpt.is_file():
        doc = torch.load(ckpt, map_location="cpu", weights_only=False)
        if doc.get("key") == key:
            model.load_state_dict(doc["model"])
            opt.load_state_dict(doc["opt"])
            sched.load_state_dict(doc["sched"])
            rng.bit_generator.state = doc["rng"]
            start, losses = doc["step"], doc["losses"]
    t0 = time.time()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress, desc="upsampler")
    for step in bar:
        lr_t, hr_t = _sample_batch(train, cfg, rng)
        loss = F.l1_loss(model(lr_t), hr_t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(l1=f"{np.mean(losses[-50:]):.4f}")
        if (step + 1) % ckpt_every == 0 and step + 1 < cfg.steps:
            state = {"key": key, "model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                     "rng": rng.bit_generator.state, "step": step + 1, "losses": losses}
            write_atomic(ckpt, lambda p, state=state: torch.save(state, p))
    model.eval()
    info = {
        "trained_by": "python -m codec.promptmobile.train_upsampler",
        "train_config": asdict(cfg),
        "data": {
            "train": [{"file": p.name, "sha256": sha256_file(p)} for p in train_videos],
            "validation": [{"file": p.name, "sha256": sha256_file(p)} for p in val_videos],
            "train_frames": len(train),
            "validation_frames": len(val),
            "pairs": "high-resolution patches and their 2x2 area (box) downsampling, frames in [-1, 1]",
        },
        "final_train_l1": round(float(np.mean(losses[-100:])), 5) if losses else None,
        "validation": evaluate(model, val) if val else {},
        "macs_per_input_pixel": model.config.macs_per_input_pixel,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds_this_run": round(time.time() - t0, 1),
        "software": {"torch": torch.__version__, "python": platform.python_version()},
    }
    save_upsampler(model, out, info)
    ckpt.unlink(missing_ok=True)
    return info


def _default_videos() -> Path:
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "videos"


@cli_main
def main(argv: list[str] | None = None) -> int:
    d = TrainConfig()
    ap = argparse.ArgumentParser(prog="python -m codec.promptmobile.train_upsampler",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=Path, default=_default_videos(),
                    help="folder of videos (default ../shared/data/videos)")
    ap.add_argument("--train", nargs="+", default=None,
                    help="training videos in --videos (default: all but --val/--exclude)")
    ap.add_argument("--val", nargs="*", default=list(DEFAULT_VAL), help="held-out videos for validation")
    ap.add_argument("--exclude", nargs="*", default=list(DEFAULT_EXCLUDE), help="videos never used")
    ap.add_argument("--out", type=Path, default=Path("codec/data/upsampler-x2.pt"), help="weights file")
    for name in ("steps", "batch", "patch", "width", "body_layers", "frame_stride", "max_side", "seed"):
        ap.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(d, name))
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--ckpt-every", type=int, default=250)
    add_progress_flag(ap, dest="quiet")
    args = ap.parse_args(argv)
    cfg = TrainConfig(steps=args.steps, batch=args.batch, patch=args.patch, lr=args.lr, width=args.width,
                      body_layers=args.body_layers, frame_stride=args.frame_stride, max_side=args.max_side,
                      seed=args.seed)
    skip = tuple(args.exclude) + tuple(args.val)
    train = _list_videos(args.videos, tuple(args.train) if args.train else None, skip)
    val = _list_videos(args.videos, tuple(args.val), ()) if args.val else []
    info = train_upsampler(train, val, args.out, cfg, ckpt_every=args.ckpt_every, progress=not args.quiet)
    print(json.dumps(info["validation"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

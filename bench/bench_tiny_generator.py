"""Rank vs quality and interpolation-aware fitting, measured through the tiny learned generator.

    nice -n 10 python bench/bench_tiny_generator.py [--iters 150] [--model codec/data/tiny-generator]

The generator is :mod:`codec.promptus.train_tiny`'s (32x32 frames, 77 x 32 prompts, trained on three
shared clips); the frames are the held-out ``carphone_pristine.mp4``. Figures are about that tiny
model only, never Promptus/SD-Turbo quality. Writes ``bench/results/tiny_generator.json``:

- ``rank_sweep``: PSNR of frames 0, 10 and 20, each fitted alone (MSE loss, ``--iters`` batched Adam
  steps from the reference's uniform initialisation) at ranks 1, 2, 4 and 8;
- ``interpolation``: a 10-frame segment after keyframe 0 at rank 4; keyframe 10 fitted over all
  interpolated frames (the codec's interpolation-aware fit) vs to frame 10 alone. Same keyframes,
  same bytes; PSNR of frames 1..10 as played.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from abr.io import write_json_atomic  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    import torch

    from codec.promptus.train_tiny import (
        HELD_OUT,
        TINY_LEARNED,
        interpolation_vs_independent,
        load_clip,
        load_tiny_learned,
        rank_sweep,
    )  # fmt: skip

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=150, help="fitting steps per keyframe")
    ap.add_argument("--model", type=Path, default=TINY_LEARNED, help="tiny generator folder")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "tiny_generator.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    gen = load_tiny_learned(args.model)
    side = gen.config.resolution
    clip = load_clip(HELD_OUT, side, max_frames=21)
    x = torch.from_numpy(clip).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    t0 = time.time()
    ranks = rank_sweep(gen, x[[0, 10, 20]], iters=args.iters)
    inter = interpolation_vs_independent(gen, x[:11], rank=4, iters=args.iters)
    grey = float((10 * torch.log10(4.0 / x[[0, 10, 20]].square().mean(dim=(1, 2, 3)))).mean())
    res = {
        "label": "tiny learned generator (codec/data/tiny-generator), not Promptus/SD-Turbo quality",
        "held_out_clip": HELD_OUT, "resolution": side, "iters": args.iters,
        "rank_sweep_psnr_db": {str(r): v for r, v in ranks.items()},
        "rank_sweep_mean_psnr_db": {str(r): round(float(np.mean(v)), 2) for r, v in ranks.items()},
        "flat_grey_psnr_db": round(grey, 2),
        "interpolation": inter,
        "interpolation_mean_psnr_db": {"aware": round(float(np.mean(inter["psnr_interpolation_aware"])), 2),
                                       "independent": round(float(np.mean(inter["psnr_independent"])), 2)},
        "seconds": round(time.time() - t0, 1),
    }  # fmt: skip
    write_json_atomic(args.out, res, indent=1)
    print(json.dumps({k: res[k] for k in ("rank_sweep_mean_psnr_db", "flat_grey_psnr_db",
                                          "interpolation_mean_psnr_db", "seconds")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

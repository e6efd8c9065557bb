"""Rank vs quality and interpolation-aware fitting, measured through the tiny learned generator.

    nice -n 10 python bench/bench_tiny_generator.py [--iters 100] [--model codec/data/tiny-generator]

The generator is :mod:`codec.promptus.train_tiny`'s (32x32 frames, 77 x 32 prompts, trained on three
shared clips); the frames are the held-out ``carphone_pristine.mp4``. Figures are about that tiny
model only, never Promptus/SD-Turbo quality. Quality is LPIPS (AlexNet, v0.1) after upsampling both
frames bilinearly to 64x64 (:class:`codec.promptus.pipeline.FrameScorer`; LPIPS was calibrated on 64x64
patches) and PSNR at 32x32. Writes ``bench/results/tiny_generator.json``:

- ``rank_sweep``: frames 0, 10 and 20, each fitted alone (MSE loss, ``--iters`` batched Adam steps per
  rank) at ranks 1..8 with three schedules (:func:`codec.promptus.train_tiny.rank_sweep`):
  ``independent`` (every rank from the reference's uniform initialisation), ``nested`` (rank r+1 from
  rank r's solution, so rank r has had r x iters steps) and ``control`` (the nested chain at rank 1:
  same steps, no extra rank);
- ``--lpips-weight W`` fits with MSE + W x that LPIPS instead (``tiny_generator_lpips_loss.json``);
- ``interpolation``: a 10-frame segment after keyframe 0 at rank 4; keyframe 10 fitted over all
  interpolated frames (the codec's interpolation-aware fit) vs to frame 10 alone. Same keyframes,
  same bytes; quality of frames 1..10 as played.
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


def _means(d: dict) -> dict:
    return {str(r): round(float(np.mean(v)), 4) for r, v in d.items()}


def main(argv: list[str] | None = None) -> int:
    import torch

    from codec.promptus.pipeline import FrameScorer
    from codec.promptus.train_tiny import (
        HELD_OUT,
        SCHEDULES,
        TINY_LEARNED,
        interpolation_vs_independent,
        load_clip,
        load_tiny_learned,
        rank_sweep,
    )  # fmt: skip

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=100, help="fitting steps per keyframe and rank")
    ap.add_argument("--model", type=Path, default=TINY_LEARNED, help="tiny generator folder")
    ap.add_argument("--lpips-weight", type=float, default=0.0,
                    help="fitting loss = MSE + this x LPIPS (the measured one); default 0: MSE only")
    ap.add_argument("--mse-weight", type=float, default=1.0, help="weight of the MSE in the fitting loss (default 1)")
    ap.add_argument("--schedules", default=",".join(SCHEDULES), help="rank schedules to run (default: all)")
    ap.add_argument("--out", type=Path, help="results file (default bench/results/tiny_generator.json, "
                                             "tiny_generator_lpips_loss.json with --lpips-weight)")
    args = ap.parse_args(argv)
    if args.out is None:
        name = ("tiny_generator_lpips_only.json" if args.mse_weight == 0 else "tiny_generator_lpips_loss.json"
                if args.lpips_weight > 0 else "tiny_generator.json")
        args.out = ROOT / "bench" / "results" / name
    schedules = [s for s in args.schedules.split(",") if s]
    if not set(schedules) <= set(SCHEDULES) or not (args.lpips_weight >= 0 and args.mse_weight >= 0):
        ap.error(f"--schedules takes {','.join(SCHEDULES)}; --lpips-weight and --mse-weight must be >= 0")
    if not (args.lpips_weight > 0 or args.mse_weight > 0):
        ap.error("the fitting loss needs a positive --mse-weight or --lpips-weight")
    torch.set_num_threads(1)
    gen = load_tiny_learned(args.model)
    scorer = FrameScorer("alex", None)
    side = gen.config.resolution
    clip = load_clip(HELD_OUT, side, max_frames=21)
    x = torch.from_numpy(clip).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    ranks = tuple(range(1, 9))
    t0 = time.time()
    sweeps = {}
    for sched in schedules:
        res = rank_sweep(gen, x[[0, 10, 20]], ranks=ranks, iters=args.iters, schedule=sched, scorer=scorer,
                         lpips_weight=args.lpips_weight, mse_weight=args.mse_weight)
        sweeps[sched] = {"psnr_db": {str(r): v for r, v in res["psnr_db"].items()},
                         "lpips": {str(r): v for r, v in res["lpips"].items()},
                         "mean_psnr_db": _means(res["psnr_db"]), "mean_lpips": _means(res["lpips"])}
        print(sched, json.dumps(sweeps[sched]["mean_lpips"]), flush=True)
    inter = interpolation_vs_independent(gen, x[:11], rank=4, iters=args.iters, scorer=scorer,
                                         lpips_weight=args.lpips_weight, mse_weight=args.mse_weight)
    grey = float((10 * torch.log10(4.0 / x[[0, 10, 20]].square().mean(dim=(1, 2, 3)))).mean())
    flat = torch.zeros_like(x[[0, 10, 20]])
    res = {
        "label": "tiny learned generator, not Promptus/SD-Turbo quality", "model": str(args.model),
        "held_out_clip": HELD_OUT, "resolution": side, "iters": args.iters, "frames": [0, 10, 20],
        "fitting_loss": f"{args.mse_weight:g} x MSE + {args.lpips_weight:g} x LPIPS",
        "quality_metric": scorer.name,
        "rank_sweep": sweeps,
        "flat_grey_psnr_db": round(grey, 2),
        "flat_grey_lpips": round(float(scorer.tensors(flat, x[[0, 10, 20]]).mean()), 4),
        "interpolation": inter,
        "interpolation_mean": {
            "psnr_db": {"aware": round(float(np.mean(inter["psnr_interpolation_aware"])), 2),
                        "independent": round(float(np.mean(inter["psnr_independent"])), 2)},
            "lpips": {"aware": round(float(np.mean(inter["lpips_interpolation_aware"])), 4),
                      "independent": round(float(np.mean(inter["lpips_independent"])), 4)}},
        "seconds": round(time.time() - t0, 1),
    }  # fmt: skip
    write_json_atomic(args.out, res, indent=1)
    print(json.dumps({k: res[k] for k in ("flat_grey_psnr_db", "flat_grey_lpips", "interpolation_mean", "seconds")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

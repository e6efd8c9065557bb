"""LPIPS speed at 512x512: frame pairs per second, batched vs one pair at a time.

Run: ``python bench/bench_lpips.py [--net alex] [--pairs 32] [--device cpu]``. All figures come
from the same run on the same random frames (after one warm-up call each), so the ratios hold
even on a busy machine:

* one pair at a time (``LPIPS(x[i:i+1], y[i:i+1])``);
* batched (``LPIPS(x[i:i+B], y[i:i+B])``) for a few batch sizes;
* a ladder's case: one reference against several distorted versions with the reference features
  computed once (``distance_frames_many``), counted as pairs per second.

Results go to ``bench/results/lpips.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codec.metrics.lpips import LPIPS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _rate(fn, pairs: int, repeats: int = 2) -> float:
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = max(best, pairs / (time.perf_counter() - t0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--net", default="alex", choices=("alex", "vgg"))
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    net = LPIPS(args.net).to(args.device)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(args.pairs, 3, args.size, args.size, generator=g) * 2 - 1).to(args.device)
    y = (x + 0.1 * torch.randn(x.shape, generator=g).to(args.device)).clamp(-1, 1)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def run(batch: int):
        def f():
            with torch.no_grad():
                for i in range(0, args.pairs, batch):
                    net(x[i : i + batch], y[i : i + batch])
            sync()

        return f

    run(1)()  # warm-up
    out: dict[str, object] = {
        "net": args.net,
        "size": args.size,
        "pairs": args.pairs,
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_avg_1min": os.getloadavg()[0],
    }
    out["single_pairs_per_s"] = _rate(run(1), args.pairs)
    for b in (4, 8, 16):
        if b <= args.pairs:
            out[f"batched_{b}_pairs_per_s"] = _rate(run(b), args.pairs)
    # the ladder builder's case: 4 distorted versions of each reference, reference features reused
    ref = ((x[:8].permute(0, 2, 3, 1).cpu() + 1) * 127.5).round().to(torch.uint8).numpy()
    dists = [np.clip(ref.astype(int) + k, 0, 255).astype(np.uint8) for k in (2, 4, 8, 16)]
    out["shared_reference_pairs_per_s"] = _rate(lambda: net.distance_frames_many(ref, dists, batch_size=8), 32)
    single = out["single_pairs_per_s"]
    out["speedup_batched_8_vs_single"] = out.get("batched_8_pairs_per_s", single) / single
    out["speedup_shared_reference_vs_single"] = out["shared_reference_pairs_per_s"] / single
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lpips.json").write_text(json.dumps(out, indent=1) + "\n")
    for k, v in out.items():
        print(f"{k:38s} {v:.3f}" if isinstance(v, float) else f"{k:38s} {v}")


if __name__ == "__main__":
    main()

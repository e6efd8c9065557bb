"""Per-frame time of every receiver variant on the real SD-Turbo + TAESD architecture (random weights).

Made for a lent GPU (one prepared run): ``python bench/bench_receivers_gpu.py --out results.json``.
Each variant decodes segments of ``--frames`` frames (Promptus batches 10) at ``--size`` pixels in
``--dtype``; the median over ``--reps`` timed segments after ``--warmup`` untimed ones is reported
per frame, with CUDA synchronisation around every timed call. Latency does not depend on weight
values, so random weights give the real cost.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codec.promptus.prompt import Factors  # noqa: E402
from codec.promptus.receiver import Segment, get_receiver  # noqa: E402
from codec.promptus.testing import random_sd_turbo  # noqa: E402
from codec.receivers import RECEIVER_MODULES  # noqa: E402

VARIANTS = tuple(RECEIVER_MODULES)  # every registered receiver variant


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_variant(name, gen, seg, device, reps, warmup, system=None) -> float:
    recv = get_receiver(name, gen).to(device)
    if system is not None:
        from codec.promptmobile.system import optimize

        optimize(recv, config=system, device=device)
    shape = recv.latent_shape(1)  # the low-resolution variants start from a smaller latent
    z = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(seg.z_start.device, seg.z_start.dtype)
    seg = Segment(prev=seg.prev, next=seg.next, length=seg.length, z_start=z)
    with torch.inference_mode():
        for _ in range(warmup):
            recv(seg)
        times = []
        for _ in range(reps):
            _sync(device)
            t0 = time.perf_counter()
            recv(seg)
            _sync(device)
            times.append(time.perf_counter() - t0)
    return statistics.median(times) / len(seg.steps) * 1000.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=512, help="frame side in pixels (default 512)")
    ap.add_argument("--frames", type=int, default=10, help="frames per segment (default 10)")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), default=None)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--system", choices=("none", "channels-last", "compile"), default="none",
                    help="system-level optimisations of codec.promptmobile.system for every receiver")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = getattr(torch, args.dtype or ("float16" if device.type == "cuda" else "float32"))
    gen = random_sd_turbo(seed=0, sample_size=args.size // 8).to(device=device, dtype=dtype).eval()
    cfg = gen.config
    g = torch.Generator().manual_seed(0)
    L, D = cfg.prompt_len, cfg.prompt_dim

    def factors():
        u = torch.randn(L, args.rank, generator=g) * 0.3
        v = torch.randn(args.rank, D, generator=g) * 0.3
        return Factors(u.to(device, dtype), v.to(device, dtype))

    z = torch.randn(1, 4, args.size // 8, args.size // 8, generator=g).to(device, dtype)
    seg = Segment(prev=factors(), next=factors(), length=args.frames, z_start=z)
    system = None
    if args.system != "none":
        from codec.promptmobile.system import SystemConfig

        system = SystemConfig(dtype=str(dtype).replace("torch.", ""), compile=args.system == "compile")
    out = {
        "system": args.system,
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "dtype": str(dtype).replace("torch.", ""),
        "size": args.size,
        "frames_per_segment": args.frames,
        "ms_per_frame": {},
    }
    for name in args.variants.split(","):
        try:
            ms = time_variant(name, gen, seg, device, args.reps, args.warmup, system)
            out["ms_per_frame"][name] = round(ms, 3)
        except Exception as exc:  # a variant that fails on this device is reported, not fatal
            out["ms_per_frame"][name] = f"failed: {type(exc).__name__}: {exc}"[:300]
        print(name, out["ms_per_frame"][name], flush=True)
    base = out["ms_per_frame"].get("promptus")
    if isinstance(base, float):
        out["speedup_vs_promptus"] = {
            k: round(base / v, 2) for k, v in out["ms_per_frame"].items() if isinstance(v, float) and v > 0
        }
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

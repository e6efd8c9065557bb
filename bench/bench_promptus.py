"""Speed of the Promptus codec on the real SD-Turbo + TAESD architecture (random weights, no download).

Measures, at each requested resolution:

- fitting iterations/s: one quantization-aware iteration on a segment of ``--frames`` frames
  (interpolated prompts -> one batched UNet call at t = 999 -> TAESD -> MSE + L1 loss -> backward
  -> Adam step), i.e. what :func:`codec.promptus.fit.fit_segment` does per iteration;
- receiver frames/s: decoding a segment (``torch.no_grad``), UNet and TAESD timed separately.

Speed depends on shapes and dtype, not on weight values, so random weights give real timings.
Default device: CUDA (float16) when present, else CPU (float32). The perceptual term is off
(its VGG adds a fixed cost per frame that is not Promptus's). Results print as JSON lines and,
with ``--out``, are written to a JSON file.

Examples::

    python bench/bench_promptus.py --sizes 256,512 --frames 2 --iters 2          # CPU: seconds per call
    python bench/bench_promptus.py --sizes 512 --frames 10 --iters 10 --out bench/results/promptus_gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_size(gen, side: int, frames: int, iters: int, warmup: int, rank: int) -> dict:
    import torch

    from codec.promptus.fit import LossConfig, PromptLoss
    from codec.promptus.prompt import Factors
    from codec.promptus.quant import fake_quant
    from codec.promptus.receiver import Segment, get_receiver

    dev = gen.device
    rec = get_receiver("promptus", gen)
    L, D = gen.config.prompt_shape
    g = torch.Generator().manual_seed(0)
    prev = Factors(torch.rand(L, rank, generator=g).to(dev), torch.rand(rank, D, generator=g).to(dev))
    u = torch.rand(L, rank, generator=g).to(dev).requires_grad_(True)
    v = torch.rand(rank, D, generator=g).to(dev).requires_grad_(True)
    opt = torch.optim.Adam([u, v], lr=0.1)
    z = rec.start_latent(torch.zeros(rec.latent_shape(1), device=dev), rec.noise(88))
    target = torch.rand(frames, 3, side, side, generator=g).to(dev) * 2 - 1
    loss_fn = PromptLoss(LossConfig(mse=0.8, perceptual=0.0, l1_prompt=0.1))

    def fit_step() -> None:
        nxt = Factors(fake_quant(u), fake_quant(v))
        seg = Segment(prev, nxt, frames, z)
        out, _ = rec(seg, clamp=False)
        loss = loss_fn(out, target, seg.prompts()).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        fit_step()
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(iters):
        fit_step()
    _sync(dev)
    fit_s = (time.perf_counter() - t0) / iters

    seg = Segment(prev, Factors(u.detach(), v.detach()), frames, z)
    with torch.no_grad():
        for _ in range(warmup):
            rec(seg)
        _sync(dev)
        t0 = time.perf_counter()
        for _ in range(iters):
            rec(seg)
        _sync(dev)
        recv_s = (time.perf_counter() - t0) / iters
        prompts = seg.prompts()
        t0 = time.perf_counter()
        for _ in range(iters):
            lat = gen.generate_latents(prompts, z)
        _sync(dev)
        unet_s = (time.perf_counter() - t0) / iters
        t0 = time.perf_counter()
        for _ in range(iters):
            gen.decode(lat)
        _sync(dev)
        taesd_s = (time.perf_counter() - t0) / iters
    row = {
        "resolution": side, "frames_per_segment": frames, "rank": rank, "iters_timed": iters,
        "fit_s_per_iter": fit_s, "fit_iters_per_s": 1.0 / fit_s,
        "receiver_s_per_segment": recv_s, "receiver_frames_per_s": frames / recv_s,
        "unet_ms_per_frame": 1e3 * unet_s / frames, "taesd_ms_per_frame": 1e3 * taesd_s / frames,
    }  # fmt: skip
    if dev.type == "cuda":
        row["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
        torch.cuda.reset_peak_memory_stats()
    return row


def compare_schedules(ranks: tuple[int, ...] = (2, 4, 8), frames: int = 21, interval: int = 5,
                      iters_first: int = 200, iters: int = 60, derive_iters: int = 30) -> list[dict]:
    """Fitting schedules on the tiny generator: time, iterations and final loss per rank.

    Target: a video from the generator's own manifold (a smooth rank-8 prompt trajectory, not of the
    interpolated form), so lower ranks and the interpolation are genuinely approximate. MSE loss,
    reference schedule scaled down (``iters_first``/``iters`` instead of 10,000/1,500, plateau windows 30/10).
    """
    import math
    from dataclasses import replace

    import numpy as np
    import torch

    from codec.promptus.fit import REFERENCE, LossConfig, derive_rank, fit_video
    from codec.promptus.prompt import Factors
    from codec.promptus.receiver import get_receiver
    from codec.promptus.testing import tiny_generator

    rec = get_receiver("promptus", tiny_generator(sample_size=8, prompt_len=8))
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 8, generator=g), torch.randn(8, 8, generator=g) * 0.5
    c, d = torch.randn(8, 32, generator=g), torch.randn(8, 32, generator=g) * 0.5
    z = rec.start_latent(torch.zeros(rec.latent_shape(1)), rec.noise(88))
    with torch.no_grad():
        prompts = torch.stack([
            Factors(a + b * math.sin(2 * math.pi * t / frames), c + d * math.cos(2 * math.pi * t / frames)).prompt()
            for t in range(frames)])
        x = rec.generator(prompts, z)[0]
    base = replace(REFERENCE, interval=interval, iters_first=iters_first, iters=iters, patience_first=30,
                   patience=10, loss=LossConfig(mse=1.0, perceptual=0.0, l1_prompt=0.0))
    rows: list[dict] = []

    def run(name: str, rank: int, fn) -> object:
        t0 = time.perf_counter()
        vf = fn()
        row = {"schedule": name, "rank": rank, "seconds": round(time.perf_counter() - t0, 2),
               "iterations": vf.iterations, "loss": round(vf.mean_loss, 6),
               "psnr_db": round(float(np.mean(10 * np.log10(4.0 / vf.frame_mse))), 2)}
        print(json.dumps(row), flush=True)
        rows.append(row)
        return vf

    ref = {r: run("reference", r, lambda r=r: fit_video(rec, x, replace(base, rank=r), progress=False))
           for r in ranks}
    for r in ranks:
        run("warm-start", r, lambda r=r: fit_video(rec, x, replace(base, rank=r, warm_start=True), progress=False))
    for r in ranks:
        run("warm+stall-stop", r, lambda r=r: fit_video(rec, x, replace(base, rank=r, warm_start=True,
                                                                        stall_stop=True), progress=False))
    for r in ranks:
        target = ref[r].mean_loss * 1.05
        run("warm+target(1.05 x reference loss)", r,
            lambda r=r, t=target: fit_video(rec, x, replace(base, rank=r, warm_start=True, target_loss=t),
                                            progress=False))
    top = max(ranks)
    high = run(f"derive: rank-{top} warm fit", top,
               lambda: fit_video(rec, x, replace(base, rank=top, warm_start=True), progress=False))
    for r in sorted((r for r in ranks if r != top), reverse=True):
        for it in (0, derive_iters):
            run(f"derive: svd + {it} fine-tune", r, lambda r=r, it=it: derive_rank(rec, x, high, r, iters=it,
                                                                                    progress=False))
    return rows


def entropy_gain(video: str, ranks: tuple[int, ...] = (2, 8), frames: int = 21) -> list[dict]:
    """Bytes of fitted keyframe factors of SD-Turbo's prompt shape (77 x 1024) under every coder.

    The tiny UNet with 1024-wide cross-attention is fitted to ``video`` (64x64 crop, reference loss
    weights without the perceptual term, a scaled-down schedule) from the reference initialisation
    and with warm start; sizes include the 16 bytes of scales/zero points and the coder byte.
    """
    from dataclasses import replace

    from codec.promptus.entropy import CODERS, encode_bytes
    from codec.promptus.fit import FAST, REFERENCE, LossConfig, fit_video
    from codec.promptus.pipeline import load_video
    from codec.promptus.receiver import get_receiver
    from codec.promptus.testing import tiny_generator

    x, _ = load_video(video, 64, max_frames=frames)
    rec = get_receiver("promptus", tiny_generator(sample_size=8, prompt_len=77, prompt_dim=1024))
    loss = LossConfig(mse=0.8, perceptual=0.0, l1_prompt=0.1)
    rows = []
    for name, sched in (("reference", REFERENCE), ("warm-start", FAST)):
        for r in ranks:
            cfg = replace(sched, rank=r, interval=5, iters_first=200, iters=60, patience_first=30, patience=10,
                          loss=loss)
            vf = fit_video(rec, x, cfg, progress=False)
            model = f"factors:77:{r}:1024"
            sizes = {c: 0 for c in CODERS}
            best = raw = 0
            for k in vf.keyframes:
                data = k.factors.u.tobytes() + k.factors.v.tobytes()
                raw += len(data) + 16
                per = {c: len(encode_bytes(data, c, model)[1]) + 17 for c in CODERS}
                for c, n in per.items():
                    sizes[c] += n
                best += min(per.values())
            row = {"init": name, "rank": r, "keyframes": len(vf.keyframes), "raw_bytes": raw,
                   **{f"{c}_bytes": n for c, n in sizes.items()}, "best_bytes": best,
                   "gain_best": round(1 - best / raw, 4)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="256,512", help="frame sides in pixels, comma-separated (default 256,512)")
    p.add_argument("--frames", type=int, default=2, help="frames per segment (batch), default 2; Promptus uses 10")
    p.add_argument("--iters", type=int, default=2, help="timed iterations per measurement (default 2)")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations first (default 1)")
    p.add_argument("--rank", type=int, default=8, help="prompt rank (default 8)")
    p.add_argument("--device", help="cuda or cpu (default: cuda if available)")
    p.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), help="default: float16 on cuda, else float32")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--compare-schedules", action="store_true",
                   help="instead: compare fitting schedules (reference, warm start, stops, SVD-derived ranks) "
                        "on the tiny generator, one CPU thread")
    p.add_argument("--entropy-gain", metavar="VIDEO",
                   help="instead: entropy-coding gain on factors fitted to VIDEO (77 x 1024 prompts, tiny UNet)")
    args = p.parse_args(argv)

    import torch

    if args.compare_schedules or args.entropy_gain:
        torch.set_num_threads(args.threads or 1)
        if args.compare_schedules:
            kind, rows = "promptus-schedules", compare_schedules()
        else:
            kind, rows = "promptus-entropy", entropy_gain(args.entropy_gain)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps({"benchmark": kind, "results": rows}, indent=1) + "\n")
        return 0

    from codec.promptus.testing import random_sd_turbo

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.float16 if device.type == "cuda" else torch.float32)
    rows = []
    for side in (int(s) for s in args.sizes.split(",")):
        if side % 8:
            p.error(f"sizes must be multiples of 8, got {side}")
        gen = random_sd_turbo(sample_size=side // 8).to(device, dtype)
        row = bench_size(gen, side, args.frames, args.iters, args.warmup, args.rank)
        row.update(device=str(device), dtype=str(dtype).replace("torch.", ""))
        print(json.dumps(row), flush=True)
        rows.append(row)
        del gen
    env = {
        "machine": platform.machine(), "processor": platform.processor(), "python": platform.python_version(),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
    }  # fmt: skip
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"benchmark": "promptus", "env": env, "results": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

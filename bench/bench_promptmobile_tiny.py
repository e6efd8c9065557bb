"""PromptMobile's lossy parts measured on the tiny learned generator (the generator that exists here).

    nice -n 10 python bench/bench_promptmobile_tiny.py [--parts reuse fit_through] [--iters 200]

The generator is :mod:`codec.promptus.train_tiny`'s (``codec/data/tiny-generator``: 32x32 frames,
77 x 32 prompts, trained on three shared clips); the frames are the first 21 of the held-out
``carphone_pristine.mp4`` (frame 0 + two 10-frame segments), fitted at rank 8 (MSE loss, ``--iters``
batched Adam steps per keyframe) through the exact ``promptus`` receiver. Every figure is about
that tiny model, never SD-Turbo quality. Writes ``bench/results/promptmobile_tiny.json``:

- ``reuse``: deep-feature reuse by threshold (threshold mode, ``full_every=0``) and by budget (one
  full frame in F, threshold 1.0; the default receiver is F = 5): share of frames reusing features,
  MACs per frame counted on the tiny generator while decoding, PSNR to the source and to the
  exact decode (:func:`codec.promptmobile.tradeoff.reuse_tradeoff`); next to each, the UNet
  compute the same share of reusing frames skips on the SD-Turbo architecture (x2 two-stage and
  full resolution, from MAC counts on the meta device).
- ``residual``: the residual stream (:mod:`codec.promptmobile.residual`) on top of the stream decoded
  by the default lossy receiver: PSNR to the source and bytes per coding setting, next to the
  prompt stream's own bytes (every record, entropy-coded).
- ``joint``: the upsampler trained on the tiny generator's own low-resolution frames
  (:mod:`codec.promptmobile.joint`): prompts of 11 frames of each training clip fitted through
  ``promptmobile-lowres`` with the committed upsampler (trained on area-downsampled real frames),
  the upsampler fine-tuned on the recorded (TAESD low-resolution output, source) pairs, then the
  held-out clip fitted and decoded with the committed upsampler, decoded with the new one
  (same prompts), and refitted through the new one (one round of alternation).
- ``stitch``: the held-out clip fitted through and decoded by two-stage generation without and with
  2x2 stitching (:mod:`codec.promptmobile.stitching`; the tiny UNet was trained at 4x4 latents,
  two-stage runs it at 2x2, a stitched canvas is 4x4 again), committed upsampler: PSNR to the
  source and MACs per frame on the tiny generator.
- ``fit_through``: the same clip fitted through the default lossy receiver instead (the paper fits
  prompts through the accelerated receiver so they compensate), decoded by it: PSNR to the source
  next to the exact-fitted prompts decoded by the same receiver.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from abr.io import read_json, write_json_atomic  # noqa: E402

OUT = ROOT / "bench" / "results" / "promptmobile_tiny.json"
THRESHOLDS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0)
BUDGETS = (2, 3, 5, 10)


def _fit(gen, clip, spec: str, iters: int, cache: Path, rank: int = 8):
    from codec.promptus.bitstream import Stream
    from codec.promptus.fit import FitConfig, LossConfig, fit_video
    from codec.promptus.pipeline import stream_from_fit
    from codec.promptus.receiver import get_receiver

    cfg = FitConfig(rank=rank, interval=10, iters_first=iters, iters=iters, patience=20, patience_first=50,
                    loss=LossConfig(mse=1.0, perceptual=0.0, l1_prompt=0.0))
    t0 = time.time()
    rec = get_receiver(spec, gen)
    fit = fit_video(rec, clip, cfg, checkpoint_dir=cache / spec.split(":")[0] / fit_key(spec), progress=False)
    header, latent, kfs = stream_from_fit(fit, gen, 25.0)
    return Stream(header, latent, tuple(kfs)), round(time.time() - t0, 1)


def fit_key(spec: str) -> str:
    import hashlib

    return hashlib.sha256(spec.encode()).hexdigest()[:12]


def reuse_part(gen, clip, stream) -> dict:
    from bench_promptmobile import per_frame_costs

    from codec.promptmobile.cost import meta_generator
    from codec.promptmobile.tradeoff import reuse_tradeoff

    meta = meta_generator()
    costs = {"lowres": per_frame_costs(meta, "promptmobile", 10),
             "full_res": per_frame_costs(meta, "promptmobile-lossy", 10)}

    def row(p) -> dict:
        d = p.to_dict()
        for k, (full, reuse) in costs.items():
            d[f"sd_turbo_unet_compute_skipped_{k}"] = round(p.reuse_fraction * (full - reuse) / full, 4)
        return d

    pts = reuse_tradeoff(stream, gen, clip, THRESHOLDS)
    out = {"threshold_mode": [row(p) for p in pts], "budget_mode": []}
    for every in BUDGETS:
        out["budget_mode"].append(row(reuse_tradeoff(stream, gen, clip, [1.0], full_every=every)[-1]))
    return out


RESIDUALS = ((8, 16.0), (4, 16.0), (4, 8.0), (2, 8.0), (1, 4.0))


def residual_part(gen, clip, stream) -> dict:
    from codec.promptmobile.residual import ResidualConfig, apply_residual, encode_residual
    from codec.promptmobile.tradeoff import decode_with, psnr_u8
    from codec.promptus.bitstream import encode_stream

    spec = "promptmobile-lossy"
    data, _ = encode_stream(stream.header, stream.latent, stream.keyframes)
    decoded, _, _ = decode_with(stream, gen, spec)
    out = {"decoded_by": spec, "prompt_stream_bytes": len(data),
           "psnr_db_without_residual": round(psnr_u8(decoded, clip), 3), "rows": []}
    for scale, step in RESIDUALS:
        rec = encode_residual(clip, decoded, ResidualConfig(scale=scale, step=step))
        out["rows"].append({"scale": scale, "step": step, "residual_bytes": rec.nbytes,
                            "psnr_db": round(psnr_u8(apply_residual(decoded, rec), clip), 3)})
    return out


def joint_part(gen, clip, iters: int, cache: Path) -> dict:
    import copy

    import torch

    from codec.promptmobile.joint import JointConfig, generated_pairs, train_on_pairs
    from codec.promptmobile.tradeoff import decode_with, psnr_u8
    from codec.promptmobile.upsampler import load_upsampler, save_upsampler
    from codec.promptus.receiver import get_receiver
    from codec.promptus.train_tiny import TRAIN_CLIPS, load_clip

    side = gen.config.resolution
    base = get_receiver("promptmobile-lowres", gen)
    lows, targets, t0 = [], [], time.time()
    for name in TRAIN_CLIPS:
        src = load_clip(name, side, max_frames=21)
        st, _ = _fit(gen, src, "promptmobile-lowres", iters, cache / name, rank=8)
        lo, hi = generated_pairs(st, gen, base, src)
        lows.append(lo)
        targets.append(hi)
    # train on the first two clips' frames, stop early on the third's (different content)
    low, target = torch.cat(lows[:-1]), torch.cat(targets[:-1])
    val = (lows[-1], targets[-1])
    ups = copy.deepcopy(load_upsampler())
    with torch.no_grad():
        before = float(abs(ups(low) - target).mean())
    log = train_on_pairs(ups, low, target, JointConfig(steps=300, lr=5e-4), val=val)
    path = cache / "upsampler-tiny-joint.pt"
    save_upsampler(ups, path, {"trained_by": "bench/bench_promptmobile_tiny.py joint part"})
    spec_new = f"promptmobile-lowres:upsampler={path}"
    train_s = round(time.time() - t0, 1)
    st_old, _ = _fit(gen, clip, "promptmobile-lowres", iters, cache / "heldout")
    st_new, _ = _fit(gen, clip, spec_new, iters, cache / "heldout")
    rows = {
        "committed upsampler (area-downsampled real frames)": decode_with(st_old, gen, "promptmobile-lowres")[0],
        "upsampler trained on generated frames, same prompts": decode_with(st_old, gen, spec_new)[0],
        "upsampler trained on generated frames, prompts refitted through it": decode_with(st_new, gen, spec_new)[0],
    }
    exact, _ = _fit(gen, clip, "promptus", iters, cache)
    return {
        "train_pairs": int(low.shape[0]), "validation_pairs": int(val[0].shape[0]),
        "train_clips": list(TRAIN_CLIPS[:-1]), "validation_clip": TRAIN_CLIPS[-1],
        "pair_sizes": [list(low.shape[2:]), list(target.shape[2:])], "steps": 300, "lr": 5e-4,
        "train_l1_before": round(before, 5), "train_l1_last": round(log["train"][-1], 5),
        "validation_l1_before": round(log["val"][0], 5), "validation_l1_best": round(min(log["val"]), 5),
        "best_step": log["best_step"], "seconds": train_s,
        "heldout_psnr_db": {k: round(psnr_u8(v, clip), 3) for k, v in rows.items()},
        "heldout_psnr_db_full_resolution_promptus": round(psnr_u8(decode_with(exact, gen, "promptus")[0], clip), 3),
    }


def stitch_part(gen, clip, iters: int, cache: Path) -> dict:
    from codec.promptmobile.tradeoff import decode_with, psnr_u8

    rows = {}
    for spec in ("promptmobile-lowres", "promptmobile-lowres:stitch=2"):
        st, _ = _fit(gen, clip, spec, iters, cache / "heldout")  # (seconds are 0 when resumed from the cache)
        frames, _, macs = decode_with(st, gen, spec)
        rows[spec] = {"psnr_db": round(psnr_u8(frames, clip), 3), "macs_per_frame": int(macs)}
    return {"rows": rows}


def fit_through_part(gen, clip, stream_exact, iters: int, cache: Path) -> dict:
    from codec.promptmobile.receivers import DEFAULT_FULL_EVERY, DEFAULT_THRESHOLD
    from codec.promptmobile.tradeoff import decode_with, psnr_u8

    spec = "promptmobile-lossy"
    stream_lossy, secs = _fit(gen, clip, spec, iters, cache)
    rows = {}
    for label, st in (("fitted through promptus", stream_exact), (f"fitted through {spec}", stream_lossy)):
        frames, frac, macs = decode_with(st, gen, spec)
        rows[label] = {"decoded_by": spec, "psnr_db": round(psnr_u8(frames, clip), 3), "reuse_fraction": round(frac, 3),
                       "macs_per_frame": int(macs)}
    exact, _, _ = decode_with(stream_exact, gen, "promptus")
    rows["fitted through promptus, decoded by promptus"] = {"psnr_db": round(psnr_u8(exact, clip), 3)}
    return {"receiver": spec, "threshold": DEFAULT_THRESHOLD, "full_every": DEFAULT_FULL_EVERY,
            "fit_seconds": secs, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    import torch

    from codec.promptus.train_tiny import HELD_OUT, TINY_LEARNED, load_clip, load_tiny_learned

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", nargs="+", default=["reuse", "residual", "joint", "stitch", "fit_through"],
                    choices=["reuse", "residual", "joint", "stitch", "fit_through"],
                    help="parts to run; results merge into the existing JSON")
    ap.add_argument("--iters", type=int, default=200, help="fitting steps per keyframe")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "promptmobile_tiny_fits",
                    help="fit checkpoints (a rerun with the same settings resumes from them)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    gen = load_tiny_learned()
    clip = load_clip(HELD_OUT, gen.config.resolution, max_frames=21)
    res = read_json(args.out, "bench results") if args.out.is_file() else {}
    res["label"] = ("tiny learned generator (codec/data/tiny-generator, 32x32), held-out clip; figures about "
                    "that model, not PromptMobile/SD-Turbo quality")
    res["clip"], res["frames"], res["rank"], res["iters"] = HELD_OUT, len(clip), 8, args.iters
    res["generator_fingerprint"] = gen.fingerprint()
    res["model"] = str(TINY_LEARNED.relative_to(ROOT))
    stream, secs = _fit(gen, clip, "promptus", args.iters, args.cache)
    res["fit_seconds_promptus"] = secs
    if "reuse" in args.parts:
        res["reuse"] = reuse_part(gen, clip, stream)
    if "residual" in args.parts:
        res["residual"] = residual_part(gen, clip, stream)
    if "joint" in args.parts:
        res["joint"] = joint_part(gen, clip, args.iters, args.cache)
    if "stitch" in args.parts:
        res["stitch"] = stitch_part(gen, clip, args.iters, args.cache)
    if "fit_through" in args.parts:
        res["fit_through"] = fit_through_part(gen, clip, stream, args.iters, args.cache)
    res["seconds_last_run"] = round(time.time() - t0, 1)
    write_json_atomic(args.out, res)
    for p in res.get("reuse", {}).get("threshold_mode", []):
        print(f"threshold {p['threshold']:<5} reuse {p['reuse_fraction']:.2f}  MACs/frame {p['macs_per_frame']:>9,}  "
              f"PSNR {p['psnr_db']} dB (vs exact {p['psnr_db_vs_exact']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

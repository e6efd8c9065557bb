"""PromptMobile: what each idea buys in compute, wall time and output change.

    python bench/bench_promptmobile.py                  # everything but fitting (minutes)
    python bench/bench_promptmobile.py --parts fit      # add fitting through each receiver (~10 min CPU)

Parts (all written to ``bench/results/promptmobile.json``, a markdown table printed):

1. Compute: MACs per frame of every receiver variant on the real SD-Turbo + TAESD architecture
   (:mod:`codec.promptmobile.cost`, meta device), segment of 10 frames, rank 8. Target: the
   fastest variant at least 8x below ``promptus``.
1b. MAC split (``split``): two-stage generation vs caching (:class:`codec.promptmobile.cost.MacSplit`)
   next to the paper's 8.1x / 16.6%, for the x2 upsampler and an x4 one, the stitched two-stage
   receiver's MACs, and the share of reusing frames that would give the paper's 16.6%.
1c. Phone scalings (``scalings``): each Snapdragon PromptMobile estimate scaled by MACs (what the
   device profiles hold) and by the H200's measured time ratio
   (:func:`codec.promptmobile.estimates.both_scalings`).
2. Wall time on this CPU: taken from ``bench/results/device_profile_cpu.json`` (written by
   ``bench/device_profile.py``, which times the real architecture with random weights). Each
   measured speed-up is reported next to the compute ratio of the same segment length.
3. Output change vs the ``promptus`` receiver on the same prompts (tiny generator, fp32: no
   trained SD-Turbo weights are available here, so this says how far each receiver's function
   moves, not how good SD-Turbo frames would look).
4. Lossy caching sweep: for thresholds (threshold mode) and budgets (one full frame in F), the
   fraction of frames reusing deep features, the compute skipped on the real architecture and the
   output change against the same receiver without reuse, for two prompt models: independently
   fitted keyframes (the reference Promptus fit, random start per keyframe) and correlated ones
   (closing keyframe = opening + 30% perturbation, as warm-started fits of slow content give).
5. Fitting through the receiver (``--parts fit``): prompts fitted by ``codec.promptus.fit`` through
   each receiver to 6 frames of a real clip (tiny generator, 128x128); PSNR of the decoded frames to
   the source. With random tiny weights every receiver stays near 10 dB, so this is a pipeline
   check, not a quality measure.
6. Caches on the real SD-Turbo architecture (random weights, fp32): max abs difference with and
   without the lossless caches, and the relative change of the UNet output from deep-feature reuse.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from abr.io import read_json  # noqa: E402
from codec.promptmobile.cost import default_plan, even_plan, meta_generator, variant_cost  # noqa: E402
from codec.promptus.prompt import Factors  # noqa: E402
from codec.promptus.receiver import Segment, get_receiver  # noqa: E402
from codec.receivers import RECEIVER_MODULES  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DEVICE_RAW = RESULTS / "device_profile_cpu.json"
VIDEOS = ROOT.parent / "shared" / "data" / "videos"

#: label -> receiver spec: every registered variant with its defaults, plus one combination
VARIANTS = {name: name for name in RECEIVER_MODULES}
VARIANTS = {**{k: v for k, v in VARIANTS.items() if k != "promptmobile"},
            "lowres + lossless": "promptmobile:threshold=0", "promptmobile": "promptmobile"}  # fmt: skip
TARGET_RATIO = 8.0


def _gmac(x: float) -> float:
    return round(x / 1e9, 2)


# --------------------------------------------------------------------------- 1. compute
def compute_table(gen_meta, n: int = 10, rank: int = 8) -> dict:
    rows = {}
    for label, spec in VARIANTS.items():
        plan = default_plan(get_receiver(spec, gen_meta), n)
        c = variant_cost(spec, gen_meta, n_frames=n, rank=rank, plan=plan)
        rows[label] = {"spec": spec, "gmac_per_frame": _gmac(c.total_per_frame), "unet_gmac": _gmac(c.unet_per_frame),
                       "decode_gmac": _gmac(c.decode_per_frame), "upsampler_gmac": _gmac(c.upsampler_per_frame),
                       "full_frames_per_segment": len(plan.full) if plan else n,
                       "macs_by_op": {k: _gmac(v) for k, v in (c.unet + c.decode).by_op.items()}}
    base = rows["promptus"]["gmac_per_frame"]
    for r in rows.values():
        r["compute_ratio_vs_promptus"] = round(base / r["gmac_per_frame"], 2)
    budget = {}
    for every in (1, 2, 3, 5, 10):
        spec = f"promptmobile:full_every={every}"
        plan = default_plan(get_receiver(spec, gen_meta), n)
        c = variant_cost(spec, gen_meta, n_frames=n, rank=rank, plan=plan)
        budget[every] = {"gmac_per_frame": _gmac(c.total_per_frame),
                         "compute_ratio_vs_promptus": round(base / _gmac(c.total_per_frame), 2)}
    return {"segment_frames": n, "rank": rank, "variants": rows, "promptmobile_budget_sweep": budget}


def per_frame_costs(gen_meta, spec: str, n: int = 10) -> tuple[float, float]:
    """UNet MACs of a full frame and of a reusing frame for ``spec`` (from two counts, exact: cost is linear)."""
    full = variant_cost(spec, gen_meta, n_frames=n, plan=even_plan(n, n)).unet.total
    one = variant_cost(spec, gen_meta, n_frames=n, plan=even_plan(n, 1)).unet.total
    per_reuse = (full - one) / (n - 1)  # saving per reusing frame
    return full / n, full / n - per_reuse


# --------------------------------------------------------------------------- 1b. MAC split
def split_table(gen_meta, n: int = 10, rank: int = 8) -> dict:
    """Two-stage vs caching contributions on the real architecture, next to the paper's 8.1x / 16.6%.

    Rows: the default receiver (x2 upsampler, one full frame in 5) and the same with an x4
    upsampler (UNet at 16x16 latents; untrained weights, MACs do not depend on them). Also the
    share of frames that would have to reuse deep features for the caches to remove the paper's 16.6%.
    """
    import tempfile

    from codec.promptmobile.cost import PAPER, mac_split
    from codec.promptmobile.upsampler import Upsampler, UpsamplerConfig, save_upsampler

    out: dict = {"paper": PAPER, "segment_frames": n, "rank": rank, "rows": {}}
    split = mac_split(gen_meta, n_frames=n, rank=rank)
    out["rows"]["promptmobile (x2 upsampler, 1 full frame in 5)"] = {
        "gmac_per_frame": {k: _gmac(getattr(split, k)) for k in ("promptus", "two_stage", "lossless", "full")},
        **split.report()}
    with tempfile.TemporaryDirectory() as tmp:
        ups = Path(tmp) / "x4.pt"
        save_upsampler(Upsampler(UpsamplerConfig(scale=4)), ups)
        s4 = mac_split(gen_meta, n_frames=n, rank=rank, upsampler=str(ups))
    out["rows"]["promptmobile with an x4 upsampler (16x16 latents)"] = {
        "gmac_per_frame": {k: _gmac(getattr(s4, k)) for k in ("promptus", "two_stage", "lossless", "full")},
        **s4.report()}
    st = variant_cost("promptmobile-lowres:stitch=2", gen_meta, n_frames=n, rank=rank)
    out["two_stage_stitched"] = {
        "spec": "promptmobile-lowres:stitch=2", "gmac_per_frame": _gmac(st.total_per_frame),
        "two_stage_ratio": round(split.promptus / st.total_per_frame, 2),
        "vs_two_stage_unstitched": round(st.total_per_frame / split.two_stage, 3),
        "note": "2x2 canvases at 64x64 latents: the same convolutions as four 32x32 calls, self-attention across "
                "the canvas (4x the separate calls'), and a 10-frame segment pads to 3 canvases (12 frames)"}
    full, reuse = per_frame_costs(gen_meta, "promptmobile", n)
    need = (split.lossless - (1 - PAPER["caching_reduction"]) * split.two_stage) / (full - reuse)
    out["reuse_fraction_for_paper_caching_reduction"] = round(need, 3)
    out["note"] = ("MACs per frame on the SD-Turbo UNet + TAESD architecture (meta device), counted by "
                   "codec.promptmobile.cost; caching_reduction is relative to two-stage generation alone, as the "
                   "paper's 16.6% is read here (the paper does not say its base)")
    return out


# --------------------------------------------------------------------------- 2. wall time
def wall_time_table(compute: dict, gen_meta) -> dict:
    if not DEVICE_RAW.is_file():
        return {"note": "no CPU timings: run python bench/device_profile.py"}
    raw = read_json(DEVICE_RAW, "device timings")
    m = raw["measurements"]
    if "promptus" not in m:
        return {"note": "device_profile_cpu.json has no promptus timing"}
    # like for like: each row against the Promptus timing of the same dtype (fp32 or bf16 + channels-last)
    base = {r["dtype"]: r for name, r in m.items() if r.get("spec") == "promptus"}
    out = {"machine": raw["key"]["machine"], "rows": {}}
    for name, r in m.items():
        if "spec" not in r:
            continue
        # compute ratio on the same segment length as the timing
        n = r["segment_frames"]
        base_macs = variant_cost("promptus", gen_meta, n_frames=n).total_per_frame
        out["rows"][name] = {
            "spec": r["spec"], "dtype": r["dtype"], "segment_frames": n, "cpu_ms_per_frame": r["ms_per_frame"],
            "measured_speedup_vs_promptus_same_dtype": (
                round(base[r["dtype"]]["ms_per_frame"] / r["ms_per_frame"], 2) if r["dtype"] in base else None),
            "compute_ratio_same_segment": round(base_macs / r["macs_per_frame"], 2),
            "loadavg_1min": r["loadavg_1min"],
        }
    return out


# --------------------------------------------------------------------------- 3./4. output change
def _factors(g: torch.Generator, rank: int, dim: int, like: Factors | None = None, mix: float = 0.3) -> Factors:
    u = torch.rand(77, rank, generator=g) * 2 - 1
    v = torch.rand(rank, dim, generator=g) * 2 - 1
    if like is not None:
        u, v = like.u + mix * u, like.v + mix * v
    return Factors(u, v)


def _segments(model: str, count: int, rank: int, dim: int, n: int, latent_shape, seed: int = 0) -> list[Segment]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        a = _factors(g, rank, dim)
        b = _factors(g, rank, dim, like=a if model == "correlated" else None)
        out.append(Segment(a, b, n, torch.randn(latent_shape, generator=g)))
    return out


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float((a.float() - b.float()).square().mean())
    return math.inf if mse == 0 else 10 * math.log10(4.0 / mse)


def output_change(tiny, segs_full: list[Segment], segs_low: list[Segment]) -> dict:
    """Frames of every variant vs ``promptus`` on the same prompts (and start latents at each variant's size)."""
    rows = {}
    with torch.no_grad():
        ref = [get_receiver("promptus", tiny)(s).frames for s in segs_full]
        for label, spec in VARIANTS.items():
            rec = get_receiver(spec, tiny)
            segs = segs_low if rec.latent_shape(1) != tiny.config.latent_shape(1) else segs_full
            outs = [rec(s).frames for s in segs]
            pairs = list(zip(outs, ref))
            rows[label] = {
                "max_abs_diff": float(f"{max(float((o - r).abs().max()) for o, r in pairs):.3g}"),
                "mean_abs_diff": round(sum(float((o - r).abs().mean()) for o, r in pairs) / len(pairs), 5),
                "psnr_db_vs_promptus": round(sum(min(_psnr(o, r), 99.0) for o, r in pairs) / len(pairs), 2),
            }
    return rows


def lossy_sweep(tiny, gen_meta, n: int = 10, count: int = 6) -> dict:
    full_lowres, reuse_lowres = per_frame_costs(gen_meta, "promptmobile", n)
    full_hi, reuse_hi = per_frame_costs(gen_meta, "promptmobile-lossy", n)
    settings = [("threshold", t, 0) for t in (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)]
    settings += [("budget", 1.0, f) for f in (1, 2, 3, 5, 10)]
    out = {"unet_gmac_full_frame": {"lowres": _gmac(full_lowres), "full_res": _gmac(full_hi)},
           "unet_gmac_reusing_frame": {"lowres": _gmac(reuse_lowres), "full_res": _gmac(reuse_hi)}, "rows": []}
    for model in ("independent", "correlated"):
        segs = _segments(model, count, 8, tiny.config.prompt_dim, n, tiny.config.latent_shape(1), seed=3)
        with torch.no_grad():
            exact = get_receiver("promptmobile-lossless", tiny)
            ref = [exact(s).frames for s in segs]
            for mode, tau, every in settings:
                rec = get_receiver(f"promptmobile-lossy:threshold={tau},full_every={every}", tiny)
                fr, ch, ps = [], [], []
                for s, r in zip(segs, ref):
                    f = rec(s).frames
                    plan = rec.last_plan
                    fr.append(plan.reuse_fraction if plan else 0.0)
                    ch.append(float((f - r).abs().mean()))
                    ps.append(min(_psnr(f, r), 99.0))
                reuse = sum(fr) / len(fr)
                out["rows"].append({
                    "prompts": model, "mode": mode, "threshold": tau, "full_every": every or None,
                    "reuse_fraction": round(reuse, 3),
                    "unet_compute_skipped_lowres": round(reuse * (full_lowres - reuse_lowres) / full_lowres, 3),
                    "unet_compute_skipped_full_res": round(reuse * (full_hi - reuse_hi) / full_hi, 3),
                    "mean_abs_change": round(sum(ch) / len(ch), 5), "psnr_db_vs_no_reuse": round(sum(ps) / len(ps), 2),
                })
    return out


# --------------------------------------------------------------------------- 5. fitting
def fit_through(tiny, iters: int, clip: str = "carphone_pristine.mp4") -> dict:
    import numpy as np

    from codec.promptus.fit import FitConfig, LossConfig, fit_video
    from codec.video import iter_frames

    path = VIDEOS / clip
    if not path.is_file():
        return {"note": f"{path} not found"}
    side = tiny.config.resolution
    frames = np.stack(list(iter_frames(path, crop_square=True, resize=side, max_frames=6)))
    cfg = FitConfig(rank=8, interval=5, iters_first=iters, iters=iters, loss=LossConfig(perceptual=0.0),
                    patience=max(10, iters // 10), patience_first=max(10, iters // 10))
    rows = {}
    for label in ("promptus", "promptmobile-lowres", "promptmobile-lossy", "promptmobile"):
        t0 = time.time()
        fit = fit_video(get_receiver(VARIANTS[label], tiny), frames, cfg, progress=False)
        mse = fit.frame_mse
        rows[label] = {"psnr_db_to_source": round(float(np.mean(10 * np.log10(4.0 / np.maximum(mse, 1e-12)))), 2),
                       "seconds": round(time.time() - t0, 1)}
    return {"clip": clip, "frames": len(frames), "resolution": side, "iterations_per_keyframe": iters, "rows": rows}


# --------------------------------------------------------------------------- 6. SD-Turbo architecture
def real_arch_checks(n_lossless: int = 2, n_lossy: int = 5) -> dict:
    """Caches on the real architecture (random weights, fp32, two-stage receivers to keep CPU time low).

    Lossless: ``promptmobile:threshold=0`` (caches) vs ``promptmobile-lowres`` (no caches), max abs
    differences. Lossy: ``promptmobile`` (default reuse) vs ``promptmobile:threshold=0`` on one segment
    per prompt model; the change is reported on the UNet output, ``||eps_lossy - eps|| / ||eps||``
    (frames of a random-weight SD-Turbo at t = 999 saturate TAESD, so pixel changes say little), next
    to how much eps moves between the first and last frame of the segment (the prompt's own effect).
    """
    from codec.promptmobile.cost import segment_for
    from codec.promptus.testing import random_sd_turbo

    gen = random_sd_turbo(seed=0)
    plain = get_receiver("promptmobile-lowres", gen)
    cached = get_receiver("promptmobile:threshold=0", gen)
    seg = segment_for(plain, n_frames=n_lossless, rank=8)
    out: dict = {}
    with torch.inference_mode():
        a, za = plain(seg)
        b, zb = cached(seg)
        out["lossless"] = {"segment_frames": n_lossless,
                           "frames_max_abs_diff": float(f"{float((a - b).abs().max()):.3g}"),
                           "latents_max_abs_diff": float(f"{float((za - zb).abs().max()):.3g}"),
                           "latents_max_abs": round(float(za.abs().max()), 2)}
        lossy = get_receiver("promptmobile", gen)
        sigma = gen.config.sigma
        out["lossy"] = {}
        for model in ("independent", "correlated"):
            s = _segments(model, 1, 8, gen.config.prompt_dim, n_lossy, plain.latent_shape(1), seed=7)[0]
            exact = cached.latents(s)
            approx = lossy.latents(s)
            x_in = s.z_start * math.sqrt(1 + sigma**2)
            eps = (x_in - exact) / sigma
            d_eps = (exact - approx) / sigma
            per_frame = d_eps.flatten(1).norm(dim=1) / eps.flatten(1).norm(dim=1)
            # scale of the prompt's own effect: eps of the first vs the last frame (different prompts)
            span = float((eps[0] - eps[-1]).norm() / eps[-1].norm())
            out["lossy"][model] = {"segment_frames": n_lossy, "plan": list(lossy.last_plan.source),
                                   "relative_eps_change_mean": round(float(per_frame.mean()), 4),
                                   "relative_eps_change_max": round(float(per_frame.max()), 4),
                                   "relative_eps_first_vs_last_frame_exact": round(span, 4)}
    return out


# --------------------------------------------------------------------------- report
def markdown(res: dict) -> str:
    comp = res["compute"]["variants"]
    wall = res.get("wall_time", {}).get("rows", {})
    change = res["output_change"]
    lines = ["| variant | GMAC/frame | compute ratio | CPU ms/frame (fp32) | CPU ms/frame (bf16) | "
             "output change vs promptus (PSNR dB, max abs) |", "|---|---|---|---|---|---|"]
    for label, r in comp.items():
        fp32 = wall.get(label if label != "promptmobile" else "promptmobile-fp32", {}).get("cpu_ms_per_frame", "-")
        bf16 = {"promptus": "promptus-bf16", "promptmobile": "promptmobile"}.get(label)
        bf16 = wall.get(bf16, {}).get("cpu_ms_per_frame", "-") if bf16 else "-"
        c = change.get(label, {})
        lines.append(f"| {label} (`{r['spec']}`) | {r['gmac_per_frame']} | {r['compute_ratio_vs_promptus']}x | "
                     f"{fp32} | {bf16} | {c.get('psnr_db_vs_promptus', '-')}, {c.get('max_abs_diff', '-')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", nargs="+", default=["compute", "split", "scalings", "wall", "change", "sweep", "real"],
                    choices=["compute", "split", "scalings", "wall", "change", "sweep", "fit", "real"],
                    help="parts to run (default: all but fit); results merge into the existing JSON")
    ap.add_argument("--fit-iters", type=int, default=120, help="fitting iterations per keyframe")
    ap.add_argument("--segments", type=int, default=6, help="random segments per prompt model")
    args = ap.parse_args(argv)
    from codec.promptus.testing import tiny_generator

    t0 = time.time()
    path = RESULTS / "promptmobile.json"
    res: dict = read_json(path, "bench results") if path.is_file() else {}
    gen_meta = meta_generator()
    tiny = tiny_generator(seed=0, sample_size=16, prompt_len=77)
    parts = set(args.parts)
    if "compute" in parts or "compute" not in res:
        res["compute"] = compute_table(gen_meta)
    fastest = max(res["compute"]["variants"].items(), key=lambda kv: kv[1]["compute_ratio_vs_promptus"])
    res["target"] = {"fastest_variant": fastest[0], "compute_ratio": fastest[1]["compute_ratio_vs_promptus"],
                     "required": TARGET_RATIO, "met": fastest[1]["compute_ratio_vs_promptus"] >= TARGET_RATIO}
    if "split" in parts:
        res["mac_split"] = split_table(gen_meta)
    if "scalings" in parts:
        from codec.promptmobile.estimates import both_scalings, component_macs

        gpu = RESULTS / "receivers_gpu_fp16_channels_last.json"
        gpu_ms = read_json(gpu, "GPU timings")["ms_per_frame"] if gpu.is_file() else {}
        res["phone_scalings"] = {"source_gpu": gpu.name if gpu_ms else None,
                                 "devices": both_scalings(component_macs(gen_meta), gpu_ms)}
    if "wall" in parts:
        res["wall_time"] = wall_time_table(res["compute"], gen_meta)
    if "change" in parts:
        segs_full = _segments("independent", args.segments, 8, 32, 10, tiny.config.latent_shape(1), seed=1)
        segs_low = [Segment(s.prev, s.next, s.length, torch.nn.functional.avg_pool2d(s.z_start, 2) * 2)
                    for s in segs_full]
        res["output_change"] = output_change(tiny, segs_full, segs_low)
        res["output_change_note"] = ("tiny generator (random weights, t=400), same prompts; low-resolution variants "
                                     "start from the 2x2-pooled start latent rescaled to unit variance")
    if "sweep" in parts:
        res["lossy_sweep"] = lossy_sweep(tiny, gen_meta, count=args.segments)
    ups_json = ROOT / "codec" / "data" / "upsampler-x2.json"
    res["upsampler"] = read_json(ups_json, "upsampler record").get("validation") if ups_json.is_file() else None
    if "fit" in parts:
        res["fit_through_receiver"] = fit_through(tiny, args.fit_iters)
    if "real" in parts:
        res.pop("lossless_sd_turbo_architecture", None)
        res["sd_turbo_architecture"] = real_arch_checks()
    res["seconds_last_run"] = round(time.time() - t0, 1)
    res.pop("seconds", None)
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(res, indent=1) + "\n")
    print(markdown(res))
    print(f"\nfastest: {fastest[0]} at {res['target']['compute_ratio']}x less compute than promptus "
          f"(target {TARGET_RATIO}x: {'met' if res['target']['met'] else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

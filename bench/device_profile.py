"""Measure this machine's decode times and write the simulator's device profiles.

    python bench/device_profile.py                # measure (resumes), write both files
    python bench/device_profile.py --reps 3       # more repetitions
    python bench/device_profile.py --only h264 h265 av1

What it measures on this CPU (wall time per frame, median of ``--reps`` calls):

- the Promptus receiver (``promptus``): SD-Turbo UNet, one step, + TAESD at 512x512, on the real
  architecture with random weights (latency depends on shapes and dtype, not on weight values),
  a segment of 2 frames (batch 2), in bf16 + channels-last (profile name ``promptus``, like
  ``promptmobile``) and in fp32 (``promptus-fp32``);
- every PromptMobile variant (:mod:`codec.promptmobile.receivers`); the lossy ones on a 5-frame
  segment so that the default budget (one reference frame in 5) is what is timed, the others on 2;
  ``promptmobile`` with the system-level optimisations (bf16, channels-last), as a device would
  run it, and ``promptmobile-fp32`` without;
- H.264, H.265 and AV1 software decoding (PyAV: FFmpeg's h264/hevc decoders, libdav1d) of a
  2-second 512x512 chunk of bigbuckbunny (center crop) encoded at 400 kbit/s.

Outputs:

- ``sim/data/devices/cpu-local.json``: the profile of this machine, every number with its source;
- the ``promptmobile*`` entries of the H200 and Snapdragon profiles in ``sim/data/devices.json``,
  scaled from their measured/published Promptus components by the compute ratios counted by
  :mod:`codec.promptmobile.cost` (``--no-update-builtin`` leaves that file alone);
- ``bench/results/device_profile_cpu.json``: the raw measurements. Each measurement is stored as
  soon as it is done and reused by a rerun with the same settings (``--fresh`` measures again).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from abr.errors import InputError, cli_main  # noqa: E402
from abr.io import read_json, write_json_atomic, write_text_atomic  # noqa: E402
from codec.promptmobile.estimates import COMPONENTS, component_macs, scaled_entries  # noqa: E402

RESULTS = ROOT / "bench" / "results"
RAW = RESULTS / "device_profile_cpu.json"
PROFILE = ROOT / "sim" / "data" / "devices" / "cpu-local.json"
BUILTIN = ROOT / "sim" / "data" / "devices.json"
VIDEOS = ROOT.parent / "shared" / "data" / "videos"

#: name -> (receiver spec, dtype, segment frames). Order = measurement order (fp32 first).
NEURAL = {
    "promptus": ("promptus", "float32", 2),
    "promptmobile-lowres": ("promptmobile-lowres", "float32", 2),
    "promptmobile-fp32": ("promptmobile", "float32", 5),
    "promptmobile-lossless": ("promptmobile-lossless", "float32", 2),
    "promptmobile-lossy": ("promptmobile-lossy", "float32", 5),
    "promptus-bf16": ("promptus", "bfloat16", 2),
    "promptmobile": ("promptmobile", "bfloat16", 5),
}
#: Profile names of the measurements where they differ: the simulator's ``promptus`` and ``promptmobile``
#: are both bf16 + channels-last (like for like); the float32 ones carry a ``-fp32`` suffix.
PROFILE_NAME = {"promptus": "promptus-fp32", "promptus-bf16": "promptus"}
CLASSIC = ("h264", "h265", "av1")
CHUNK = {"video": "bigbuckbunny.mp4", "frames": 50, "fps": 25.0, "kbps": 400.0, "size": 512}



# --------------------------------------------------------------------------- helpers



def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _machine() -> dict:
    import torch

    return {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _load_raw(key: dict, fresh: bool) -> dict:
    if fresh or not RAW.is_file():
        return {"key": key, "measurements": {}}
    doc = read_json(RAW, "raw measurements")
    if doc.get("key") != key:
        return {"key": key, "measurements": {}}
    return doc


def _seg_macs(spec: str, n_frames: int, gen_meta) -> float:
    """MACs per frame of ``spec`` on a segment of ``n_frames`` frames (default receiver options)."""
    from codec.promptmobile.cost import default_plan, variant_cost
    from codec.promptus.receiver import get_receiver

    plan = default_plan(get_receiver(spec, gen_meta), n_frames)
    return variant_cost(spec, gen_meta, n_frames=n_frames, plan=plan).total_per_frame


# --------------------------------------------------------------------------- measurements
def measure_neural(names: list[str], reps: int, warmup: int, raw: dict, save) -> None:
    from codec.promptmobile.cost import default_plan, meta_generator, segment_for, time_receiver
    from codec.promptmobile.system import SystemConfig, optimize
    from codec.promptus.receiver import get_receiver
    from codec.promptus.testing import random_sd_turbo

    todo = [n for n in NEURAL if n in names and n not in raw["measurements"]]
    if not todo:
        return
    gen_meta = meta_generator()
    print("building SD-Turbo + TAESD with random weights (865 M parameters)...", flush=True)
    gen = random_sd_turbo(seed=0)
    dtype_now = "float32"
    for name in todo:
        spec, dtype, n = NEURAL[name]
        if dtype != dtype_now:
            optimize(gen, config=SystemConfig(dtype=dtype, channels_last=True))
            dtype_now = dtype
        rec = get_receiver(spec, gen)
        if dtype != "float32":
            optimize(rec, config=SystemConfig(dtype=dtype, channels_last=True))
        seg = segment_for(rec, n_frames=n, rank=8)
        plan = default_plan(rec, n) if getattr(rec, "threshold", 0) > 0 else None
        load0 = os.getloadavg()[0]
        print(f"timing {name} ({spec}, {dtype}, {n} frames, {reps} runs)...", flush=True)
        t = time_receiver(rec, seg, reps=reps, warmup=warmup, plan=plan)
        raw["measurements"][name] = {
            "spec": spec, "dtype": dtype, "channels_last": dtype != "float32", "segment_frames": n,
            "runs_s": [round(x, 3) for x in t.runs_s], "ms_per_frame": round(t.median_ms_per_frame, 1),
            "macs_per_frame": _seg_macs(spec, n, gen_meta),
            "loadavg_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        save()
        print(f"  {name}: {t.median_ms_per_frame:.0f} ms/frame (runs {t.runs_s})", flush=True)
        del rec


def measure_classic(names: list[str], reps: int, raw: dict, save) -> None:
    import numpy as np

    from codec.classic import decode_chunk, encode_chunk, encoder_version
    from codec.video import iter_frames

    todo = [c for c in CLASSIC if c in names and c not in raw["measurements"]]
    if not todo:
        return
    video = VIDEOS / CHUNK["video"]
    if not video.is_file():
        raise InputError("needed for the classic decode timing (../shared/data/videos)", path=video)
    frames = np.stack(list(iter_frames(video, crop_square=True, resize=CHUNK["size"], max_frames=CHUNK["frames"])))
    for codec in todo:
        enc = encode_chunk(frames, codec, CHUNK["kbps"], CHUNK["fps"])
        runs = []
        for _ in range(max(reps, 5)):
            _, dt = decode_chunk(enc.packets, codec)
            runs.append(dt)
        ms = 1000.0 * float(np.median(runs)) / len(frames)
        raw["measurements"][codec] = {
            "encoder": encoder_version(codec), "chunk": CHUNK, "bytes": enc.size_bytes,
            "runs_s": [round(x, 4) for x in runs], "ms_per_frame": round(ms, 3),
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        save()
        print(f"  {codec}: {ms:.2f} ms/frame", flush=True)


# --------------------------------------------------------------------------- profiles
def cpu_profile(raw: dict) -> dict:
    """The ``cpu-local`` profile from the raw measurements (only what was measured)."""
    m, machine = raw["measurements"], raw["key"]["machine"]
    where = (f"{machine['cpu']}, {machine['cores']} cores, {machine['torch_threads']} torch thread(s), "
             f"torch {machine['torch']}")
    out = {"name": "cpu-local",
           "description": f"This development machine's CPU ({where}); measured by bench/device_profile.py",
           "decode_ms_per_frame": {}, "sources": {}}
    for name, (spec, dtype, n) in NEURAL.items():
        if name not in m:
            continue
        r = m[name]
        load = r["loadavg_1min"]
        extra = ("; system level: bf16 + channels-last" if dtype != "float32" else "")
        out["decode_ms_per_frame"][PROFILE_NAME.get(name, name)] = r["ms_per_frame"]
        out["sources"][PROFILE_NAME.get(name, name)] = (
            f"measured by bench/device_profile.py on {r['measured_at'][:10]}: receiver '{spec}', SD-Turbo "
            f"architecture with random weights at 512x512, {dtype}{extra}, segment of {n} frames, median of "
            f"{len(r['runs_s'])} runs after {raw['key']['warmup']} warm-up; {machine['torch_threads']} torch "
            f"thread(s); machine shared with other jobs, 1-min load average {load[0]}-{load[1]} on "
            f"{machine['cores']} cores"
        )
    for codec in CLASSIC:
        if codec in m:
            r = m[codec]
            out["decode_ms_per_frame"][codec] = r["ms_per_frame"]
            out["sources"][codec] = (
                f"measured by bench/device_profile.py on {r['measured_at'][:10]}: PyAV software decode of a "
                f"{CHUNK['frames']}-frame 512x512 chunk of {CHUNK['video']} at {CHUNK['kbps']:g} kbit/s "
                f"({r['encoder']}), FFmpeg's default decoder threading, median of {len(r['runs_s'])} runs"
            )
    return out


def dump_devices(doc: dict) -> str:
    """``devices.json`` in its hand-written layout: one line per profile field, decode times on one line."""
    def one(obj: object) -> str:
        return json.dumps(obj, separators=(", ", ": "))

    lines = ["{"]
    head = [k for k in doc if k != "devices"]
    for k in head:
        lines.append(f'  {one(k)}: {one(doc[k])},')
    lines.append('  "devices": {')
    names = list(doc["devices"])
    for i, name in enumerate(names):
        prof = doc["devices"][name]
        lines.append(f"    {one(name)}: {{")
        fields = list(prof)
        for j, field in enumerate(fields):
            comma = "," if j < len(fields) - 1 else ""
            value = prof[field]
            if field == "sources" and len(value) > 1:
                lines.append('      "sources": {')
                items = list(value.items())
                for m, (key, text) in enumerate(items):
                    lines.append(f"        {one(key)}: {one(text)}" + ("," if m < len(items) - 1 else ""))
                lines.append("      }" + comma)
            else:
                lines.append(f"      {one(field)}: {one(value)}{comma}")
        lines.append("    }" + ("," if i < len(names) - 1 else ""))
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def update_builtin(scaled: dict) -> None:
    doc = read_json(BUILTIN, "device profiles")
    for device, rows in scaled.items():
        prof = doc["devices"].get(device)
        if prof is None:
            continue
        c = COMPONENTS[device]
        expected = c["unet64_ms"] + c["taesd64_ms"]
        if abs(prof["decode_ms_per_frame"].get("promptus", expected) - expected) > 0.02:
            raise InputError(f"device {device!r}: promptus {prof['decode_ms_per_frame']['promptus']} ms is not "
                             f"UNet + TAESD = {expected:.2f} ms of estimates.COMPONENTS", path=BUILTIN)
        for v, (ms, src) in rows.items():
            prof["decode_ms_per_frame"][v] = ms
            prof["sources"][v] = src
    write_text_atomic(BUILTIN, dump_devices(doc))


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=2, help="timed calls per measurement (median reported)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed calls before the timed ones")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a shared machine a multi-threaded op waits for its "
                         "slowest thread, which penalises the many small ops of a low-resolution UNet)")
    ap.add_argument("--only", nargs="+", default=None, choices=[*NEURAL, *CLASSIC], help="subset to measure")
    ap.add_argument("--fresh", action="store_true", help="ignore earlier measurements in the raw file")
    ap.add_argument("--no-update-builtin", action="store_true", help="leave sim/data/devices.json alone")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    key = {"machine": _machine(), "reps": args.reps, "warmup": args.warmup,
           "neural": {k: list(v) for k, v in NEURAL.items()}, "classic_chunk": CHUNK}
    raw = _load_raw(key, args.fresh)
    names = args.only or [*NEURAL, *CLASSIC]
    t0 = time.time()
    with torch.inference_mode():
        measure_classic(names, args.reps, raw, lambda: write_json_atomic(RAW, raw, indent=2))
        measure_neural(names, args.reps, args.warmup, raw, lambda: write_json_atomic(RAW, raw, indent=2))
    profile = cpu_profile(raw)
    write_json_atomic(PROFILE, profile, indent=2)
    if not args.no_update_builtin:
        update_builtin(scaled_entries(component_macs()))
    print(json.dumps(profile["decode_ms_per_frame"], indent=1))
    print(f"done in {time.time() - t0:.0f} s; wrote {PROFILE.relative_to(ROOT)}"
          + ("" if args.no_update_builtin else f" and {BUILTIN.relative_to(ROOT)}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

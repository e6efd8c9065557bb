"""Decode-aware vs decode-unaware policies on phones, and the oracle's largest violation.

Run: ``nice python bench/bench_decode_aware.py`` (tens of minutes on 2 shared cores;
``--quick`` for a smoke run).

1. Pairs: a policy decode-unaware (default) and ``decode_aware=true`` on Norway 3G (cooked),
   the hybrid ladder ``promptmobile-paper-model+h265-measured`` (prompt rungs below H.265
   rungs), QoE ``perceptual``, simulator ``pensieve``: RobustMPC, MPC and BOLA on the
   Snapdragon 8 Gen 3 profile (jitter and throttling, :mod:`sim.device`), one session per
   trace, the video as shipped (16 chunks, 32 s); RobustMPC on ``snapdragon-population``; and
   RobustMPC on 8 Gen 3 with the video played 4 times in a row (``*4``, 128 s, where
   throttling builds; 40 sessions). Mean per-session QoE of each, and the paired difference
   aware - unaware with a 95% bootstrap interval (``scipy.stats.bootstrap``, paired, BCa,
   10,000 resamples).
2. Oracle: on the first 40 sessions (8 Gen 3, the shipped video), every seed policy of
   :func:`sim.oracle.seed_policies` is replayed and compared with the oracle session by
   session; the largest (policy - oracle) QoE total is printed (target: <= 0).

Writes ``bench/results/decode_aware.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from abr import get_ladder, get_qoe  # noqa: E402
from abr.io import read_json, write_text_atomic  # noqa: E402
from policies import get_policy  # noqa: E402
from sim.core import SIM_PRESETS  # noqa: E402
from sim.device import get_device  # noqa: E402
from sim.oracle import oracle_sessions, seed_policies  # noqa: E402
from sim.session import run_sessions  # noqa: E402
from traces import load_traces  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT.parent / "shared" / "data" / "traces" / "norway-hsdpa-3g-pensieve-cooked"
LADDER = "promptmobile-paper-model+h265-measured"
PAIRS = ("robustmpc", "mpc", "bola")


def paired_interval(aware: np.ndarray, unaware: np.ndarray) -> tuple[float, float, float]:
    """Mean of aware - unaware and its paired bootstrap 95% interval."""
    from scipy.stats import bootstrap

    res = bootstrap(
        (aware, unaware), lambda a, b, axis: np.mean(a - b, axis=axis), paired=True, vectorized=True,
        n_resamples=10_000, confidence_level=0.95, method="BCa", random_state=0,
    )  # fmt: skip
    ci = res.confidence_interval
    return float(np.mean(aware - unaware)), float(ci.low), float(ci.high)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="8 sessions, one device, no repeat")
    ap.add_argument("--sessions", type=int, default=None, help="sessions (default: one per trace)")
    ap.add_argument("--oracle-sessions", type=int, default=40, help="sessions of the oracle check")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "decode_aware.json")
    args = ap.parse_args()
    if not TRACES.is_dir():
        print(f"skipped: {TRACES} not found (needs ../shared)")
        return 0
    traces = load_traces(str(TRACES))
    n = 8 if args.quick else (args.sessions or len(traces))
    qoe, config = get_qoe("perceptual"), SIM_PRESETS["promptabr"]
    jobs = [("snapdragon-8gen3", 1, PAIRS, n)]  # (device, repeat, policies, sessions)
    if not args.quick:
        jobs += [("snapdragon-population", 1, ("robustmpc",), n), ("snapdragon-8gen3", 4, ("robustmpc",), min(n, 40))]
    devices = ["snapdragon-8gen3"]

    def save(doc: dict) -> None:  # after every row: a long run keeps what it measured
        if not args.quick:
            write_text_atomic(args.out, json.dumps(doc, indent=1) + "\n")

    doc: dict = {"traces": TRACES.name, "qoe": qoe.name, "sim": "promptabr", "pairs": [], "oracle": []}
    if not args.quick and args.out.is_file():
        doc["pairs"] = read_json(args.out, "bench results").get("pairs", [])  # resume
    for dev_name, rep, names, sessions in jobs:
        dev = get_device(dev_name)
        lad = get_ladder(LADDER).repeat(rep) if rep > 1 else get_ladder(LADDER)
        for name in names:
            key = (dev_name, lad.name, sessions, name)
            if any((r["device"], r["ladder"], r["sessions"], r["policy"]) == key for r in doc["pairs"]):
                continue  # measured by an earlier run (resume)
            t = time.time()
            q = {}
            for aware in (False, True):
                spec = f"{name}:decode_aware=true" if aware else name
                res = run_sessions(get_policy(spec), traces, lad, dev, qoe, config=config, sessions=sessions)
                s = res.summary_arrays()
                q[aware] = s["qoe_mean"]
                q[f"startup_{aware}"] = float(s["startup_s"].mean())
                q[f"stall_{aware}"] = float(s["stall_ratio"].mean())
            diff, lo, hi = paired_interval(q[True], q[False])
            row = {
                "device": dev_name, "ladder": lad.name, "chunks": lad.n_chunks, "sessions": sessions, "policy": name,
                "unaware_qoe": float(q[False].mean()), "aware_qoe": float(q[True].mean()),
                "diff": diff, "ci95": [lo, hi],
                "unaware_startup_s": q["startup_False"], "aware_startup_s": q["startup_True"],
                "unaware_stall_ratio": q["stall_False"], "aware_stall_ratio": q["stall_True"],
                "seconds": round(time.time() - t, 1),
            }  # fmt: skip
            doc["pairs"].append(row)
            save(doc)
            print(
                f"{dev_name:22s} {lad.name:48s} {name:10s} unaware {row['unaware_qoe']:.4f} "
                f"aware {row['aware_qoe']:.4f}  diff {diff:+.4f} [{lo:+.4f}, {hi:+.4f}]  "
                f"startup {row['unaware_startup_s']:.2f} -> {row['aware_startup_s']:.2f} s",
                flush=True,
            )
    # the oracle against every seed policy, session by session
    m = min(n, args.oracle_sessions)
    for dev_name in devices:
        dev, lad = get_device(dev_name), get_ladder(LADDER)
        t = time.time()
        kw = dict(config=config, sessions=m)
        oracle = oracle_sessions(traces, lad, dev, qoe, **kw).chunks["reward"].sum(axis=0)
        worst, who = -np.inf, ""
        for spec in seed_policies(lad):
            total = run_sessions(get_policy(spec), traces, lad, dev, qoe, **kw).chunks["reward"].sum(axis=0)
            v = float(np.max(total - oracle))
            if v > worst:
                worst, who = v, spec
        doc["oracle"].append(
            {"device": dev_name, "ladder": lad.name, "sessions": m, "largest_violation": worst, "policy": who,
             "oracle_qoe_total": float(oracle.mean()), "seconds": round(time.time() - t, 1)}
        )  # fmt: skip
        save(doc)
        print(f"oracle {dev_name}: largest violation over {len(seed_policies(lad))} policies, {m} sessions: "
              f"{max(worst, 0.0):.3g} (closest: {who}, {worst:+.3g})", flush=True)  # fmt: skip
    if not args.quick:
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

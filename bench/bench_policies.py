"""Policy speed and a QoE table of every policy plus the oracle bound on the shared real traces.

Run: ``python bench/bench_policies.py`` (a few minutes on 2 cores; ``--quick`` for a smoke run).

1. Speed: decisions per second of every policy, timed inside ``Policy.act`` during real
   sessions (Pensieve ladder, 6 rungs, Norway 3G traces), for one session at a time and for
   a batch of 256; MPC's milliseconds per decision (6 rungs, horizon 5, one session) against
   the plain-Python brute force :func:`policies.mpc.reference_plan`, both in this run.
2. QoE: every registered policy and the oracle bound (:mod:`sim.oracle`) on FCC broadband,
   Norway 3G (cooked) and Belgium 4G/LTE (Sabre JSON), one session per trace, with the
   Pensieve-style ladder (``synthetic:pensieve``, QoE ``pensieve-linear``) and the Promptus
   ladder (``abr.DEFAULT_LADDER``, QoE ``perceptual``), on the H200 device profile, in the
   simulator's ``pensieve`` preset and (for abandonment) its ``latency`` preset.

Writes ``bench/results/policies_speed.csv`` and ``bench/results/policies_qoe.csv``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from abr import DEFAULT_LADDER, get_ladder, get_qoe  # noqa: E402
from abr.errors import InputError  # noqa: E402
from abr.io import write_atomic  # noqa: E402
from policies import POLICIES, get_policy  # noqa: E402
from policies.mpc import reference_plan  # noqa: E402
from sim.core import SIM_PRESETS, BatchSimulator  # noqa: E402
from sim.device import get_device  # noqa: E402
from sim.oracle import ORACLE_LABEL, oracle_sessions  # noqa: E402
from sim.rng import session_keys  # noqa: E402
from sim.session import run_sessions  # noqa: E402
from traces import load_traces  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "traces"
RESULTS = ROOT / "bench" / "results"
TRACE_SETS = {
    "fcc": "fcc-broadband-2016-pensieve-cooked",
    "norway3g": "norway-hsdpa-3g-pensieve-cooked",
    "belgium4g": "belgium-4g-lte-sabre-json",
}
LADDERS = {"pensieve": ("synthetic:pensieve", "pensieve-linear"), "promptus": (DEFAULT_LADDER, "perceptual")}
SPECS = list(POLICIES) + ["bola:variant=o", "bola:variant=u"]
DEVICE = "h200"


def write_csv(df, path: Path) -> None:
    write_atomic(path, lambda p: df.to_csv(p, index=False))


class Timed:
    """Wraps a policy and accumulates the wall time spent in ``act``."""

    def __init__(self, policy):
        self.policy, self.seconds, self.decisions = policy, 0.0, 0

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def act(self, obs):
        t0 = time.perf_counter()
        out = self.policy.act(obs)
        self.seconds += time.perf_counter() - t0
        self.decisions += obs.n_sessions
        return out


def speed(traces, quick: bool):
    import pandas as pd

    ladder, qoe = get_ladder("synthetic:pensieve"), get_qoe("pensieve-linear")
    dev = get_device(DEVICE)
    rows = []
    singles, batch = (3, 32) if quick else (12, 256)
    for spec in SPECS:
        one = Timed(get_policy(spec))
        for i in range(singles):
            run_sessions(one, traces, ladder, dev, qoe, session_ids=np.array([i]))
        many = Timed(get_policy(spec))
        run_sessions(many, traces, ladder, dev, qoe, sessions=batch)
        rows.append(
            {
                "policy": spec,
                "single_decisions_per_s": one.decisions / one.seconds,
                "single_ms_per_decision": one.seconds / one.decisions * 1e3,
                f"batch{batch}_decisions_per_s": many.decisions / many.seconds,
            }
        )
    df = pd.DataFrame(rows)
    # MPC against the plain-Python brute force on the same decisions (one session, 6 rungs, horizon 5)
    sim = BatchSimulator(traces, ladder, dev, qoe, SIM_PRESETS["promptabr"])
    obs = sim.reset(np.array([0]), session_keys(0, np.array([0])))
    mpc = get_policy("mpc")
    mpc.reset(sim.context, 1)
    ctx, fast, slow, same, n_ref = sim.context, [], [], 0, 2 if quick else 6
    for k in range(ladder.n_chunks - 5):
        t0 = time.perf_counter()
        rung = mpc.act(obs)
        fast.append(time.perf_counter() - t0)
        if 1 <= k <= n_ref:
            w = float(mpc.predict_mbps(obs)[0]) * 1e6 / 8.0
            t0 = time.perf_counter()
            h = slice(k, k + 5)
            prev_q = float(ctx.quality[k - 1, obs.last_rung[0]])
            want, _ = reference_plan(
                w, float(obs.play_ahead_s[0]), float(obs.decode_backlog_s[0]), prev_q,
                ladder.size_bytes[h], ctx.quality[h], ctx.decode_s[h], ladder.duration_s[h], ctx.buffer_cap_s, qoe,
            )  # fmt: skip
            slow.append(time.perf_counter() - t0)
            same += int(want == rung[0])
        obs, _, _ = sim.step(rung)
    mpc_row = {
        "mpc_ms_per_decision": float(np.median(fast[1:]) * 1e3),
        "reference_ms_per_decision": float(np.median(slow) * 1e3),
        "speedup": float(np.median(slow) / np.median(fast[1:])),
        "identical_decisions": f"{same}/{len(slow)}",
    }
    return df, mpc_row


def qoe_table(modes, sets, sessions_per_set, with_oracle: bool):
    import pandas as pd
    from tqdm import tqdm

    dev = get_device(DEVICE)
    frames, notes = [], []
    loaded = {}
    for key, folder in sets.items():
        try:
            tr = load_traces(str(DATA / folder))
        except InputError as exc:  # e.g. a trace format this checkout cannot read yet
            notes.append(f"{key}: skipped ({exc})")
            continue
        loaded[key] = tr[:sessions_per_set] if sessions_per_set else tr
    jobs = [(m, lk, tk) for m in modes for lk in LADDERS for tk in loaded]
    bar = tqdm(jobs, desc="qoe table", unit="cell")
    for mode, lkey, tkey in bar:
        bar.set_postfix_str(f"{mode}/{lkey}/{tkey}")
        ladder_spec, qoe_name = LADDERS[lkey]
        ladder, qoe, traces = get_ladder(ladder_spec), get_qoe(qoe_name), loaded[tkey]
        kw = dict(config=SIM_PRESETS[mode], seed=0)
        results = [run_sessions(get_policy(spec), traces, ladder, dev, qoe, **kw) for spec in SPECS]
        if with_oracle:
            t0 = time.perf_counter()
            results.append(oracle_sessions(traces, ladder, dev, qoe, **kw))
            oracle_s = time.perf_counter() - t0
        best_policy = np.max([r.chunks["reward"].sum(axis=0) for r in results[: len(SPECS)]], axis=0)
        for res in results:
            df = res.sessions_frame()
            row = {
                "mode": mode,
                "ladder": lkey,
                "traces": tkey,
                "policy": res.policy,
                "sessions": len(df),
                "qoe_mean": df["qoe_mean"].mean(),
                "qoe_p10": df["qoe_mean"].quantile(0.1),
                "stall_ratio": df["stall_ratio"].mean(),
                "switches": df["switches"].mean(),
                "kbps": df["kbps"].mean(),
                "lpips_mean": df["lpips_mean"].mean(),
                "abandoned_per_session": res.chunks["abandoned"].sum(axis=0).mean(),
            }
            if res.policy == ORACLE_LABEL:
                gap = res.chunks["reward"].sum(axis=0) - best_policy
                row["oracle_s_per_session"] = oracle_s / len(df)
                row["oracle_below_best_policy"] = int((gap < -1e-9).sum())
            frames.append(row)
    return pd.DataFrame(frames), notes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", default="pensieve,latency", help="simulator presets, comma-separated")
    ap.add_argument("--sessions-per-set", type=int, default=0, help="first N traces of each set (0 = all)")
    ap.add_argument("--no-oracle", action="store_true", help="skip the oracle bound")
    ap.add_argument("--quick", action="store_true", help="smoke run: 8 traces per set, fewer timings")
    args = ap.parse_args(argv)
    import pandas as pd

    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    if not DATA.is_dir():
        print(f"error: shared traces not found at {DATA}", file=sys.stderr)
        return 2
    norway = load_traces(str(DATA / TRACE_SETS["norway3g"]))
    t0 = time.perf_counter()
    speed_df, mpc_row = speed(norway, args.quick)
    print("\n== decisions per second (time inside Policy.act; Pensieve ladder, 6 rungs, Norway 3G) ==")
    print(speed_df.to_string(index=False, float_format=lambda x: f"{x:,.1f}"))
    print("\n== MPC, one session, 6 rungs, horizon 5 ==")
    for k, v in mpc_row.items():
        print(f"{k:28s} {v if isinstance(v, str) else f'{v:,.3f}'}")
    speed_df = speed_df.assign(**{k: v for k, v in mpc_row.items()})
    write_csv(speed_df, RESULTS / "policies_speed.csv")

    per_set = 8 if args.quick else args.sessions_per_set
    table, notes = qoe_table(args.modes.split(","), TRACE_SETS, per_set, not args.no_oracle)
    write_csv(table, RESULTS / "policies_qoe.csv")
    for note in notes:
        print(note)
    for mode in table["mode"].unique():
        sub = table[table["mode"] == mode]
        pivot = sub.pivot_table(index="policy", columns=["ladder", "traces"], values="qoe_mean", sort=False)
        print(f"\n== mean per-chunk QoE, {mode} preset (pensieve ladder: pensieve-linear; promptus: perceptual) ==")
        print(pivot.to_string(float_format=lambda x: f"{x:.3f}"))
        stall = sub.pivot_table(index="policy", columns=["ladder", "traces"], values="stall_ratio", sort=False)
        print(f"\n-- stall ratio, {mode} --")
        print(stall.to_string(float_format=lambda x: f"{x:.4f}"))
    if "oracle_below_best_policy" in table:
        o = table[table["policy"] == ORACLE_LABEL]
        print("\noracle: s/session", o["oracle_s_per_session"].round(3).tolist(),
              "sessions below the best policy:", int(o["oracle_below_best_policy"].sum()))  # fmt: skip
    print(f"\ntotal {time.perf_counter() - t0:.0f} s; tables in {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

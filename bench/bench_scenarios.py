"""Every policy and the oracle on every scenario's held-out test split (``sim.scenarios``).

    nice -n 10 python bench/bench_scenarios.py [--sessions 32] [--scenario NAME ...] [--qoe NAME ...]

Per scenario and QoE preset: mean QoE, 10th-percentile QoE, stall ratio, LPIPS, startup delay and
decode share (decoder busy time over video time) of every policy in :data:`POLICIES` and of the
oracle, with paired bootstrap 95% intervals (``scipy.stats.bootstrap``, paired by session: every
policy plays the same sessions, same trace and start) of the difference to RobustMPC in mean and
p10 QoE. It also reports the gap from the best heuristic to the oracle (with its interval) and the
largest per-session excess of any policy over the oracle (0 when the oracle is a true bound).
Writes ``bench/results/scenarios.csv`` and ``scenarios.md``. Each (scenario, QoE, policy) result
is kept in ``--work``, so a rerun only runs what is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from abr.errors import InputError, cli_main  # noqa: E402
from abr.io import write_text_atomic  # noqa: E402

#: Policies compared on every scenario; decode-aware variants are one entry each, e.g.
#: ``"robustmpc:decode_aware=1"``, ``"mpc:decode_aware=1"``, ``"bola:decode_aware=1"``.
POLICIES: tuple[str, ...] = (
    "bba", "bola", "rate", "dynamic", "mpc", "robustmpc", "bola:decode_aware=1", "mpc:decode_aware=1",
    "robustmpc:decode_aware=1", "oracle",
)
#: The reference every interval is taken against.
REFERENCE = "robustmpc"
#: QoE presets shown by default: the calibrated one and the original.
QOES: tuple[str, ...] = ("perceptual-calibrated", "perceptual")


def inputs_stamp(p, qoe: str) -> bytes:
    """What a cached result depends on beyond its spec strings: the contents of the ladder and trace
    files, the QoE's weights and the device profiles (a rebuilt ladder or a recalibrated QoE is a new cell)."""
    from abr import get_qoe
    from abr.io import sha256_file
    from sim.sweep._grid import spec_inputs

    devices = sha256_file(ROOT / "sim" / "data" / "devices.json")
    return repr((spec_inputs(p.ladder), spec_inputs(p.trace), get_qoe(qoe), devices)).encode()


def _cell(scenario: str, qoe: str, policy: str, sessions: int, seed: int, work: Path):
    """Per-session results of one policy (cached in ``work``)."""
    import pandas as pd

    from sim.scenarios import resolve
    from sim.sweep._cell import resolve_point
    from sim.sweep._grid import CellParams

    p = resolve(scenario, "test")
    key = hashlib.sha256(repr((p, qoe, policy, sessions, seed)).encode() + inputs_stamp(p, qoe)).hexdigest()[:12]
    path = work / f"{scenario}__{qoe}__{key}.csv"  # keyed by everything the result depends on
    if path.is_file():
        return pd.read_csv(path)
    point = CellParams(policy=policy, ladder=p.ladder, device=p.device, qoe=qoe, traces=p.trace,
                       transform=p.transform_spec, sim=p.sim)
    run, traces, ladder, device, qoe_, config = resolve_point(point, seed, 16)  # the what-if resolver
    t0 = time.perf_counter()
    res = run(list(traces), ladder, device, qoe_, config=config, sessions=sessions, seed=seed)
    df = res.sessions_frame()
    df["policy"] = policy
    df["decode_share"] = df["decode_ms_per_frame"] * ladder.frames.sum() / 1000.0 / ladder.total_duration_s
    df["wall_s"] = time.perf_counter() - t0
    write_text_atomic(path, df.to_csv(index=False))
    return df


def _ci(fn, *samples) -> tuple[float, float]:
    from scipy.stats import bootstrap

    if np.allclose(samples[0], samples[1]):  # a policy against itself: no spread to resample
        v = float(fn(*samples, axis=-1))
        return v, v
    res = bootstrap(samples, fn, paired=True, vectorized=True, confidence_level=0.95, n_resamples=2000,
                    method="percentile", random_state=0)  # fmt: skip
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _mean_diff(a, b, axis=-1):
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def _p10_diff(a, b, axis=-1):
    return np.percentile(a, 10, axis=axis) - np.percentile(b, 10, axis=axis)


def summarize(frames: dict[str, object], scenario: str, qoe: str) -> tuple[list[dict], list[str]]:
    """Rows of the table and the lines under it, for one scenario and QoE."""
    ref = frames[REFERENCE].sort_values("session")["qoe_mean"].to_numpy()
    rows = []
    for policy, df in frames.items():
        df = df.sort_values("session")
        q = df["qoe_mean"].to_numpy()
        lo, hi = _ci(_mean_diff, q, ref)
        plo, phi = _ci(_p10_diff, q, ref)
        rows.append({
            "scenario": scenario, "qoe": qoe, "policy": policy, "sessions": len(df),
            "qoe_mean": q.mean(), "qoe_p10": np.percentile(q, 10), "stall_ratio": df["stall_ratio"].mean(),
            "stalled_sessions": float((df["stall_s"] > 0.01).mean()), "lpips": df["lpips_mean"].mean(),
            "startup_s": df["startup_s"].mean(), "decode_share": df["decode_share"].mean(),
            "d_mean": q.mean() - ref.mean(), "d_mean_lo": lo, "d_mean_hi": hi,
            "d_p10": np.percentile(q, 10) - np.percentile(ref, 10), "d_p10_lo": plo, "d_p10_hi": phi,
        })  # fmt: skip
    from sim.runners import BOUNDS

    notes = []
    heur = {p: f for p, f in frames.items() if p.partition(":")[0] not in BOUNDS}
    if "oracle" in frames and heur:
        orc = frames["oracle"].sort_values("session")["qoe_mean"].to_numpy()
        best = max(heur, key=lambda p: heur[p]["qoe_mean"].mean())
        b = heur[best].sort_values("session")["qoe_mean"].to_numpy()
        lo, hi = _ci(_mean_diff, orc, b)
        excess = max(float(np.max(f.sort_values("session")["qoe_mean"].to_numpy() - orc)) for f in heur.values())
        for r in rows:
            r.update(best_heuristic=best, oracle_gap=orc.mean() - b.mean(), oracle_gap_lo=lo, oracle_gap_hi=hi,
                     oracle_max_excess=max(excess, 0.0))  # fmt: skip
        notes.append(f"oracle - best heuristic ({best}): {orc.mean() - b.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]; "
                     f"largest per-session excess of a policy over the oracle: {max(excess, 0.0):.4f}")  # fmt: skip
    stalling = [r["policy"] for r in rows if r["policy"] in heur and r["stall_ratio"] > 1e-3]
    notes.append(f"heuristics with stall ratio > 0.1%: {', '.join(stalling) if stalling else 'none'}")
    n = len(frames[REFERENCE])
    notes.append("sessions with a stall (> 10 ms), of " + str(n) + ": "
                 + ", ".join(f"{r['policy']} {round(r['stalled_sessions'] * n)}" for r in rows))  # fmt: skip
    return rows, notes


def _markdown(rows: list[dict], notes: dict, sessions: int) -> str:
    out = [f"# Scenarios: every policy on the held-out test split ({sessions} sessions each)", "",
           "Generated by `bench/bench_scenarios.py`. Intervals: paired bootstrap 95% against "
           f"{REFERENCE} (2000 resamples, paired by session).", ""]  # fmt: skip
    keys = dict.fromkeys((r["scenario"], r["qoe"]) for r in rows)
    for sc, qoe in keys:
        out += [f"## {sc}, QoE {qoe}", "",
                "| policy | mean QoE | p10 QoE | stall ratio | LPIPS | startup s | decode share | "
                f"mean - {REFERENCE} [95%] | p10 - {REFERENCE} [95%] |",
                "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in rows:
            if (r["scenario"], r["qoe"]) != (sc, qoe):
                continue
            out.append(
                f"| {r['policy']} | {r['qoe_mean']:.4f} | {r['qoe_p10']:.4f} | {100 * r['stall_ratio']:.2f}% | "
                f"{r['lpips']:.4f} | {r['startup_s']:.2f} | {r['decode_share']:.3f} | "
                f"{r['d_mean']:+.4f} [{r['d_mean_lo']:+.4f}, {r['d_mean_hi']:+.4f}] | "
                f"{r['d_p10']:+.4f} [{r['d_p10_lo']:+.4f}, {r['d_p10_hi']:+.4f}] |"
            )
        out += [""] + [f"- {line}" for line in notes[(sc, qoe)]] + [""]
    return "\n".join(out)


def readme_tables(paths: list[Path]) -> str:
    """The README's two summary tables (all policies; decode-aware against unaware) from result CSVs."""
    import pandas as pd

    df = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    by = {(r.scenario, r.qoe, r.policy): r for r in df.itertuples()}
    keys = list(dict.fromkeys(zip(df.scenario, df.qoe)))
    keys.sort(key=lambda k: (k[1] != QOES[0], k[1]))  # calibrated first, scenario order kept

    def ci(r, k):
        return f"{getattr(r, k):+.4f} [{getattr(r, k + '_lo'):+.4f}, {getattr(r, k + '_hi'):+.4f}]"

    heur = ("bba", "bola", "rate", "dynamic", "mpc")
    out = ["| scenario | QoE | sessions | RobustMPC mean (p10) | BBA / BOLA / rate / dynamic / MPC minus RobustMPC "
           "| oracle minus best heuristic [95%] | stall ratio of the heuristics (most) | sessions stalled, best "
           "heuristic / oracle | startup, oracle / RobustMPC |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for sc, qoe in keys:
        ref, orc = by[(sc, qoe, REFERENCE)], by[(sc, qoe, "oracle")]
        best = by[(sc, qoe, ref.best_heuristic)]
        stalls = df[(df.scenario == sc) & (df.qoe == qoe) & (df.policy != "oracle")]
        worst = stalls.loc[stalls.stall_ratio.idxmax()]
        out.append(
            f"| `{sc}` | `{qoe}` | {ref.sessions} | {ref.qoe_mean:.4f} ({ref.qoe_p10:.4f}) | "
            + " / ".join(f"{by[(sc, qoe, h)].d_mean:+.4f}" for h in heur)
            + f" | {ci(ref, 'oracle_gap')} ({ref.best_heuristic}) | {100 * stalls.stall_ratio.min():.2f}-"
            f"{100 * worst.stall_ratio:.2f}% ({worst.policy}) | {round(best.stalled_sessions * best.sessions)} / "
            f"{round(orc.stalled_sessions * orc.sessions)} | {orc.startup_s:.2f} / {ref.startup_s:.2f} s |"
        )  # fmt: skip
    out += ["", "| scenario | QoE | RobustMPC mean | decode-aware RobustMPC mean | aware minus unaware, mean [95%] "
            "| p10 [95%] | decode-aware BOLA minus BOLA, mean | startup, unaware / aware | largest policy excess "
            "over the oracle |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for sc, qoe in keys:
        ref, aw = by[(sc, qoe, REFERENCE)], by[(sc, qoe, "robustmpc:decode_aware=1")]
        bola, bola_aw = by[(sc, qoe, "bola")], by[(sc, qoe, "bola:decode_aware=1")]
        out.append(f"| `{sc}` | `{qoe}` | {ref.qoe_mean:.4f} | {aw.qoe_mean:.4f} | {ci(aw, 'd_mean')} | "
                   f"{ci(aw, 'd_p10')} | {bola_aw.qoe_mean - bola.qoe_mean:+.4f} | {ref.startup_s:.2f} / "
                   f"{aw.startup_s:.2f} s | {ref.oracle_max_excess:.4f} |")  # fmt: skip
    return "\n".join(out)


@cli_main
def main(argv: list[str] | None = None) -> int:
    from sim.scenarios import SCENARIOS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", action="append", help="scenario (repeat; default: all)")
    ap.add_argument("--qoe", action="append", help=f"QoE preset (repeat; default: {', '.join(QOES)})")
    ap.add_argument("--policy", action="append", help=f"policy spec (repeat; default: {', '.join(POLICIES)})")
    ap.add_argument("--sessions", type=int, default=32, help="sessions per scenario (default 32)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/promptabr-bench-scenarios"), help="per-cell results")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scenarios", help="OUT.csv and OUT.md")
    ap.add_argument("--readme", nargs="+", type=Path, metavar="CSV",
                    help="only print the README's summary tables from these result CSVs")  # fmt: skip
    args = ap.parse_args(argv)
    if args.readme:
        print(readme_tables(args.readme))
        return 0
    import pandas as pd

    scenarios = args.scenario or list(SCENARIOS)
    policies = args.policy or list(POLICIES)
    if REFERENCE not in policies:
        raise InputError(f"--policy must include the reference {REFERENCE}")
    if args.sessions < 2:
        raise InputError(f"--sessions must be >= 2 for intervals, got {args.sessions}")
    args.work.mkdir(parents=True, exist_ok=True)
    rows, notes = [], {}
    for sc in scenarios:
        for qoe in args.qoe or QOES:
            frames = {}
            for pol in policies:
                t0 = time.perf_counter()
                frames[pol] = _cell(sc, qoe, pol, args.sessions, args.seed, args.work)
                print(f"{sc} {qoe} {pol}: {time.perf_counter() - t0:.1f} s", flush=True)
            r, n = summarize(frames, sc, qoe)
            rows += r
            notes[(sc, qoe)] = n
            for line in n:
                print(f"  {line}", flush=True)
    write_text_atomic(args.out.with_suffix(".csv"), pd.DataFrame(rows).to_csv(index=False))
    write_text_atomic(args.out.with_suffix(".md"), _markdown(rows, notes, args.sessions))
    print(f"wrote {args.out.with_suffix('.csv')} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

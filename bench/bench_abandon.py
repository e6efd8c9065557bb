"""Event-driven abandonment against polling every check, in the same run.

Run: ``nice -n 10 python bench/bench_abandon.py`` (about a minute; ``--quick``: two scales).
BOLA-E on the 16 ``lte`` traces with every rate scaled by ``SCALE`` (1 = as generated; the
smaller, the slower each download), the promptabr ladder, the ``h200`` device, the ``latency``
simulator preset (a check every 50 ms of transfer). Each case runs twice: with the policy's
``abandon_rule`` (the simulator skips the checks at which nothing is abandoned) and without it
(``abandon`` is asked at every check, as the simulator did before). Both runs give identical
chunk records (checked here); the figures are the CPU-time ratio polling / event-driven and the
policy calls of each. Results go to ``bench/results/abandon.json``.
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
from abr.registry import DEFAULT_LADDER  # noqa: E402
from policies import get_policy  # noqa: E402
from sim.core import SIM_PRESETS, BatchSimulator  # noqa: E402
from sim.device import get_device  # noqa: E402
from sim.rng import session_keys  # noqa: E402
from sim.run import build_parser  # noqa: E402
from traces.cli import traces_from_args  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"


def run(traces, ladder, event_driven: bool) -> tuple[dict, int, float]:
    """Chunk records, policy calls and CPU seconds of one run of every trace."""
    policy = get_policy("bola-e")
    calls = 0

    def counted(fn):
        def call(progress):
            nonlocal calls
            calls += 1
            return fn(progress)

        return call

    t0 = time.process_time()
    sim = BatchSimulator(traces, ladder, get_device("h200"), get_qoe("perceptual"), SIM_PRESETS["latency"])
    ids = np.arange(len(traces))
    obs = sim.reset(ids, session_keys(0, ids))
    policy.reset(sim.context, len(ids))
    rule = counted(policy.abandon_rule) if event_driven else None
    infos, done = [], False
    while not done:
        obs, info, done = sim.step(policy.act(obs), abandon=counted(policy.abandon), abandon_rule=rule)
        infos.append(info)
    cpu = time.process_time() - t0
    fields = ("rung", "delay_s", "stall_s", "reward", "abandoned", "wasted_bytes")
    return {f: np.stack([getattr(i, f) for i in infos]) for f in fields}, calls, cpu


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="two scales instead of five")
    args = p.parse_args(argv)
    scales = (1.0, 0.1) if args.quick else (1.0, 0.1, 0.01, 0.001, 0.0001)
    ladder = get_ladder(DEFAULT_LADDER)
    rows = []
    for scale in scales:
        targs = build_parser().parse_args(["--trace", "lte", "--scale", str(scale)])
        traces = traces_from_args(targs, seed=0)
        new, new_calls, new_cpu = run(traces, ladder, event_driven=True)
        old, old_calls, old_cpu = run(traces, ladder, event_driven=False)
        for name in old:
            np.testing.assert_array_equal(new[name], old[name], err_msg=f"{name} at scale {scale}")
        row = {
            "scale": scale, "abandoned": int(new["abandoned"].sum()),
            "polling_calls": old_calls, "event_calls": new_calls, "polling_cpu_s": round(old_cpu, 3),
            "event_cpu_s": round(new_cpu, 3), "speedup": round(old_cpu / new_cpu, 2),
        }  # fmt: skip
        rows.append(row)
        print(json.dumps(row))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "abandon.json"
    doc = {"setup": "bola-e, 16 lte traces scaled, promptabr ladder, h200, latency preset; CPU time", "rows": rows}
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""What-if sweep throughput: sessions per second of a 10,000-session sweep per executor.

Run: ``python bench/bench_whatif.py [--sessions 1000] [--block 250] [--workers N]``.

The sweep is 2 policies x 5 bandwidth scales x ``--sessions`` sessions (10,000 by default)
of the default ladder on the ``lte`` model, written to a fresh output folder as a real sweep
is (one Parquet file per cell, then the merged table). Each executor runs the same grid in
the same process, one after the other:

* ``local``: in-process, the reference;
* ``process``: ``ProcessPoolExecutor`` over ``--workers`` processes, a fresh pool per run
  (start-up included); ``process-warm`` keeps one pool across runs;
* ``ray``: a local Ray instance with ``--workers`` CPUs, timed twice: ``ray-cold`` includes
  ``ray.init`` and the first run (worker start-up; what a one-off command pays), ``ray-warm``
  reuses the running instance and its workers.

Each executor's time is the best of ``--repeat`` runs (the machine may be shared; the 1-minute
load average before and after is recorded). On a busy machine wall time mostly measures the
share of the CPUs a run gets, so the CPU seconds of ``local`` and ``process`` (driver plus its
reaped workers) are recorded too: their ratio is the pool's CPU overhead. Ray's overhead is
its wall time over the process pool's on the same grid: cold against a fresh pool, warm
against a kept pool. The tables of all executors are checked to be identical. Results go to
``bench/results/whatif.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.sweep import Grid, ProcessExecutor, RayExecutor, run_sweep  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _cpu_s() -> float:
    """CPU seconds of this process and its reaped children (a fresh pool's workers count once it closes)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(grid: Grid, executor, workers: int, repeat: int = 1) -> tuple[float, object, float]:
    """Best wall time of ``repeat`` runs into fresh output folders, the table, and that run's CPU seconds."""
    best, cpu = float("inf"), float("nan")
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="bench-whatif-") as out:
            t0, c0 = time.perf_counter(), _cpu_s()
            res = run_sweep(grid, out, executor=executor, workers=workers)
            wall = time.perf_counter() - t0
            if wall < best:
                best, cpu = wall, _cpu_s() - c0
    return best, res.table, cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=1000, help="sessions per grid point (10 points; default 1000)")
    p.add_argument("--block", type=int, default=250, help="sessions per cell (default 250)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="workers of process and ray")
    p.add_argument("--repeat", type=int, default=2, help="runs per executor, best kept (default 2)")
    p.add_argument("--no-ray", action="store_true", help="skip Ray")
    p.add_argument("--results", type=Path, default=RESULTS / "whatif.json", help="results file (JSON)")
    args = p.parse_args(argv)
    import pandas as pd

    grid = Grid(policies=("bola", "bba"), transforms=tuple(f"scale={s}" for s in (0.125, 0.25, 0.5, 1, 2)),
                sessions=args.sessions, block=args.block, seed=0)  # fmt: skip
    n, cells = grid.n_sessions, len(grid.cells())
    print(
        f"grid: {len(grid.points)} points x {grid.sessions} sessions = {n} sessions in {cells} cells; "
        f"{args.workers} workers on {os.cpu_count()} cores"
    )
    run_sweep(replace_sessions(grid, 2))  # warm imports and caches for every executor alike
    rows: dict[str, dict] = {}
    ref = None

    def record(name: str, wall: float, table, cpu: float | None = None) -> None:
        nonlocal ref
        if ref is None:
            ref = table
        pd.testing.assert_frame_equal(ref, table)
        rows[name] = {"wall_s": round(wall, 3), "sessions_per_s": round(n / wall, 1)}
        line = f"{name:>12}: {wall:7.2f} s  {n / wall:9,.0f} sessions/s"
        if cpu is not None:
            rows[name] |= {"cpu_s": round(cpu, 3), "sessions_per_cpu_s": round(n / cpu, 1)}
            line += f"  ({cpu:.2f} CPU-s, {n / cpu:,.0f} sessions per CPU-s)"
        print(line)

    load_before = os.getloadavg()[0]
    record("local", *timed(grid, "local", args.workers, args.repeat))
    record("process", *timed(grid, "process", args.workers, args.repeat))  # workers reaped: CPU complete
    with ProcessExecutor(args.workers) as pool:  # one pool kept across runs, like a warm Ray instance
        run_sweep(grid, executor=pool)
        record("process-warm", *timed(grid, pool, args.workers, args.repeat)[:2])
    if not args.no_ray:
        try:
            import ray
        except ImportError:
            print("ray not installed: skipped")
        else:
            t0 = time.perf_counter()
            ex = RayExecutor(args.workers)
            ex._connect()
            init_s = time.perf_counter() - t0
            try:
                wall, table, _ = timed(grid, ex, args.workers)
                record("ray-cold", wall + init_s, table)
                record("ray-warm", *timed(grid, ex, args.workers, args.repeat)[:2])
            finally:
                ex.close()
            rows["ray-cold"]["init_s"] = round(init_s, 3)
            rows["ray_overhead_vs_process"] = {
                "cold": round(rows["ray-cold"]["wall_s"] / rows["process"]["wall_s"], 2),
                "warm": round(rows["ray-warm"]["wall_s"] / rows["process-warm"]["wall_s"], 2),
            }
            print(
                f"Ray wall time / process pool: {rows['ray_overhead_vs_process']['cold']}x with ray.init, "
                f"{rows['ray_overhead_vs_process']['warm']}x warm (ray {ray.__version__})"
            )
    doc = {
        "benchmark": "bench/bench_whatif.py",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]},
        "grid": {"points": len(grid.points), "sessions": n, "cells": cells, "block": args.block,
                 "ladder": grid.ladders[0], "traces": grid.traces[0], "chunks_per_session": None},
        "workers": args.workers,
        "results": rows,
        "tables_identical": True,
    }  # fmt: skip
    from sim.sweep._cell import resolve_ladder

    doc["grid"]["chunks_per_session"] = resolve_ladder(grid.ladders[0]).n_chunks
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.results}")
    return 0


def replace_sessions(grid: Grid, sessions: int) -> Grid:
    from dataclasses import replace

    return replace(grid, sessions=sessions)


if __name__ == "__main__":
    sys.exit(main())

"""``python -m sim.whatif``: offline what-if sweeps over bandwidth, devices, ladders, QoE and policies.

Examples::

    # half-speed LTE and worse: which ladder and policy keep stalls under 1%?
    python -m sim.whatif --policy bola,bba --scale 0.25,0.5,1 --ladder synthetic:promptus,synthetic:h265 \\
        --device h200,snapdragon-8gen3 --sessions 256 --out results/lte-half
    # the same from a grid file, on all local cores, then on a Ray cluster
    python -m sim.whatif --grid grid.yaml --executor process --out results/grid
    python -m sim.whatif --grid grid.yaml --executor ray --ray-address auto --out results/grid
    # where does Promptus stop paying off against H.265 on a phone?
    python -m sim.whatif --crossover --ladder synthetic:promptus,synthetic:h265 --device snapdragon-8gen3

A grid file (YAML or JSON; flags given on the command line replace its axes)::

    policies: [bola, bba, robustmpc]
    ladders: [synthetic:promptus, synthetic:h265, "synthetic:promptus+synthetic:h265", "synthetic:promptus[r2/r8]"]
    devices: [h200, snapdragon-8gen3]
    traces: lte
    transform_axes: {scale: [0.125, 0.25, 0.5, 1], cap: [5, 50]}
    sessions: 256

Axis flags take comma-separated specs (``bola:gamma=5,qmax=25,bba`` is two policies) and may be
repeated; given flags replace the grid file's axis. The output folder keeps one file per
finished cell: run the same command again after an interruption and only missing cells run.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from abr.errors import InputError, cli_main
from abr.flags import add_progress_flag, progress_bar
from abr.io import check_output
from abr.limits import FORCE_HELP, check_request
from abr.lock import folder_lock
from abr.options import split_options
from abr.qoe import QOE_PRESETS
from abr.registry import DEFAULT_LADDER, available_ladders
from policies.registry import POLICIES
from sim.core import SIM_PRESETS
from sim.device import available_devices
from sim.scenarios import describe_scenarios, resolve
from sim.sweep import (
    EXECUTORS,
    Grid,
    best_under_stall,
    crossover_search,
    expected_evaluations,
    load_grid,
    run_sweep,
    split_specs,
    transform_product,
    write_report,
)

__all__ = ["build_parser", "grid_from_args", "main"]

#: flag -> Grid field, for the axis flags.
_AXIS_FLAGS = {"policy": "policies", "ladder": "ladders", "device": "devices", "qoe": "qoes",
               "trace": "traces", "sim": "sims"}  # fmt: skip


#: Transform keys with their own axis flag (``--scale 0.25,0.5,1``), applied in this order,
#: before any ``--vary`` key and then the ``--transform`` specs (see ``traces.transforms``).
_TRANSFORM_AXES = {
    "scale": "bandwidth scales, e.g. 0.25,0.5,1 (every rate x K)",
    "cap": "rate caps in Mbit/s, e.g. 3,10",
    "outages": "numbers of random outages per trace, e.g. 0,2",
    "outage_s": "outage lengths in seconds (default 5)",
    "rtt_ms": "request latencies in ms set on every segment, e.g. 20,100",
    "add_rtt_ms": "latencies in ms added to the trace's own",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sim.whatif",
        description="Sweep a grid of what-if parameters, write one row per session, a summary, plots and a report.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            f"policies:  {', '.join(POLICIES)} (options as name:key=value,...); oracle = the bound\n"
            f"ladders:   {', '.join(available_ladders())}, a .json file; NAME[0/2/4] or NAME[r2/r8] keeps\n"
            "           rungs by index or prompt rank; A+B merges two ladders' rungs\n"
            f"devices:   {', '.join(available_devices())} (or a device .json file)\n"
            f"qoe:       {', '.join(QOE_PRESETS)}\n"
            f"sim:       {', '.join(SIM_PRESETS)}\n"
            f"executors: {', '.join(EXECUTORS)}\n"
            "scenarios (--scenario NAME; axis flags override its parts):\n  "
            + describe_scenarios().replace("\n", "\n  ")
        ),
    )
    g = p.add_argument_group("grid (flags replace the grid file's axes)")
    g.add_argument("--grid", type=Path, help="grid file (.yaml/.yml or .json)")
    g.add_argument("--scenario", metavar="NAME",
                   help="start from a named scenario's test split, ladder, device, QoE, simulator and transforms")
    g.add_argument("--policy", action="append", metavar="SPECS", help="policies (default: bola)")
    g.add_argument("--ladder", action="append", metavar="SPECS", help=f"ladder expressions (default: {DEFAULT_LADDER})")
    g.add_argument("--device", action="append", metavar="NAMES", help="device profiles (default: h200)")
    g.add_argument("--qoe", action="append", metavar="NAMES", help="QoE presets (default: perceptual)")
    g.add_argument(
        "--trace", action="append", metavar="SPECS", help="trace sets: model/file/folder/glob (default: lte)"
    )
    g.add_argument("--sim", action="append", metavar="NAMES", help="simulator presets (default: promptabr)")
    g.add_argument(
        "--transform",
        action="append",
        metavar="SPEC",
        help="one trace transform spec per flag, e.g. 'cap=3' or 'scale=0.5,rtt_ms=100' (default: none)",
    )
    for key, help_ in _TRANSFORM_AXES.items():
        g.add_argument(f"--{key.replace('_', '-')}", dest=f"axis_{key}", metavar="VALUES", help=help_)
    g.add_argument(
        "--vary",
        action="append",
        metavar="KEY=VALUES",
        help="any other transform key of traces.transforms over values, e.g. shift_s=0/30 (split on '/')",
    )
    g.add_argument("--sessions", type=int, help="sessions per grid point (default: 64)")
    g.add_argument("--block", type=int, help="sessions per cell, the unit of work and restart (default: 1000)")
    g.add_argument("--seed", type=int, help="seed (default: 0)")
    g.add_argument("--trace-count", type=int, help="traces drawn from a network model (default: 16)")
    r = p.add_argument_group("running")
    r.add_argument("--executor", choices=sorted(EXECUTORS), default="local", help="where cells run (default: local)")
    r.add_argument("--workers", type=int, default=None, help="parallel workers (default: all cores)")
    r.add_argument("--ray-address", default=None, help="run on this Ray cluster (auto, ray://host:10001, host:6379)")
    r.add_argument("--out", type=Path, default=Path("whatif-out"), help="output folder (default: whatif-out)")
    r.add_argument("--table-format", dest="format", choices=("parquet", "csv"), default="parquet",
                   help="session table format (default: parquet)")
    r.add_argument("--format", dest="format", choices=("parquet", "csv"), default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)  # the older spelling; --format is a trace format elsewhere
    r.add_argument("--fresh", action="store_true", help="discard finished cells in --out and run everything")
    r.add_argument("--force", action="store_true", help=FORCE_HELP)
    r.add_argument("--no-report", action="store_true", help="skip the plots and the HTML report")
    r.add_argument("--max-stall", type=float, default=0.01, help="stall-ratio target of the report (default: 0.01)")
    add_progress_flag(r)
    c = p.add_argument_group("crossover search (--crossover: bisection instead of a sweep)")
    c.add_argument(
        "--crossover",
        action="store_true",
        help="per ladder pair and other grid point, find the bandwidth scale where QoE crosses",
    )
    c.add_argument("--lo", type=float, default=1 / 16, help="lowest scale searched (default: 1/16)")
    c.add_argument("--hi", type=float, default=16.0, help="highest scale searched (default: 16)")
    c.add_argument("--points", type=int, default=9, help="log-spaced scales of the coarse search (default: 9)")
    c.add_argument("--rtol", type=float, default=0.01, help="relative width of the final bracket (default: 0.01)")
    return p


def grid_from_args(args: argparse.Namespace) -> Grid:
    """The grid file (or defaults) with every given flag replacing its axis."""
    if args.grid is not None and args.scenario:
        raise InputError("give --grid or --scenario, not both")
    grid = load_grid(args.grid) if args.grid is not None else _scenario_grid(args)
    changes: dict = {}
    for flag, name in _AXIS_FLAGS.items():
        values = getattr(args, flag)
        if values:
            specs = [s for v in values for s in (v.split(",") if flag == "trace" else split_specs(v))]
            changes[name] = tuple(specs)
    axes: dict[str, tuple[str, ...]] = {}
    for key in _TRANSFORM_AXES:
        text = getattr(args, f"axis_{key}")
        if text:
            axes[key] = tuple(v.strip() for v in text.split(",") if v.strip())
    for item in args.vary or []:
        pairs = split_options(item, f"--vary {item!r}", bare=True)
        if len(pairs) != 1 or not pairs[0][1]:
            raise InputError(f"--vary needs KEY=V1/V2/..., got {item!r}")
        key, values = pairs[0]
        axes[key] = tuple(v.strip() for v in values.split("/") if v.strip())
    if args.transform or axes:
        base = tuple(args.transform) if args.transform else _without_keys(grid.transforms, axes)
        changes["transforms"] = transform_product(base, axes) if axes else base
    for flag, name in (("sessions", "sessions"), ("block", "block"), ("seed", "seed"), ("trace_count", "trace_count")):
        if getattr(args, flag) is not None:
            changes[name] = getattr(args, flag)
    return replace(grid, **changes) if changes else grid


def _scenario_grid(args: argparse.Namespace) -> Grid:
    """The default grid, or the scenario's (:func:`sim.scenarios.resolve`, its test split)."""
    if not getattr(args, "scenario", None):
        return Grid()
    params = resolve(args.scenario, "test")
    for line in params.notes:
        print(f"scenario {args.scenario}: {line}")
    return Grid(ladders=(params.ladder,), devices=(params.device,), qoes=(params.qoe,), traces=(params.trace,),
                transforms=(params.transform_spec,), sims=(params.sim,))  # fmt: skip


def _without_keys(transforms: tuple[str, ...], axes: dict) -> tuple[str, ...]:
    """Transform specs less the keys an axis flag varies (the flag overrides them)."""
    out = []
    for spec in transforms:
        kept = [k if v is None else f"{k}={v}" for k, v in split_options(spec, f"transform {spec!r}", bare=True)]
        out.append(",".join(item for item in kept if item.partition("=")[0] not in axes))
    return tuple(dict.fromkeys(out))


_MAX_ROWS = 60
_DETAIL = ("qoe_p10", "stall_ratio_p90", "lpips_p90", "severe_frac", "startup_s", "decode_ms_per_frame", "family")


def _brief(frame):
    """Drop constant key columns, a ``transform`` column that only repeats ``scale``, and detail metrics."""
    stop = next((c for c in ("sessions", "meeting") if c in frame.columns), None)
    keys = list(frame.columns[: frame.columns.get_loc(stop)]) if stop else []
    drop = [c for c in keys if c != "policy" and c != "ladder" and frame[c].nunique(dropna=False) <= 1]
    if "transform" in frame.columns and all(
        t == "" or t.startswith("scale=") and "," not in t for t in frame["transform"]
    ):
        drop.append("transform")
    return frame.drop(columns=[c for c in {*drop, *_DETAIL} if c in frame.columns])


def _show(frame, max_rows: int | None = None) -> str:
    import pandas as pd

    note = ""
    if max_rows is not None and len(frame) > max_rows:
        frame, note = frame.head(max_rows), f"\n... {len(frame) - max_rows} more rows: see the CSV files"
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.max_colwidth", 40,
                           "display.float_format", "{:.4g}".format):  # fmt: skip
        return frame.to_string(index=False) + note


def _crossover(args: argparse.Namespace, grid: Grid) -> int:
    import itertools

    import pandas as pd

    from sim.sweep._cell import transform_fields

    if len(grid.ladders) < 2:
        raise InputError("--crossover needs at least two ladders (--ladder A,B)")
    transforms = sorted({",".join(f"{k}={v}" for k, v in transform_fields(t).items() if k != "scale")
                         for t in grid.transforms})  # fmt: skip
    rows = []
    searches = list(itertools.product(grid.policies, grid.devices, grid.qoes, grid.traces, transforms, grid.sims,
                                      itertools.combinations(grid.ladders, 2)))  # fmt: skip
    each = expected_evaluations(args.lo, args.hi, args.points, args.rtol)
    bar = progress_bar(len(searches) * each, desc="crossover", unit="scale", enabled=not args.no_progress)
    for n, (pol, dev, qoe, tr, tf, sim, (a, b)) in enumerate(searches, 1):
        found = crossover_search(a, b, policy=pol, device=dev, qoe=qoe, traces=tr, transform=tf, sim=sim,
                                 sessions=grid.sessions, seed=grid.seed, trace_count=grid.trace_count,
                                 lo=args.lo, hi=args.hi, points=args.points, rtol=args.rtol,
                                 on_evaluate=bar.update)  # fmt: skip
        bar.update(max(0, n * each - bar.n))  # a search without a crossover stops after the coarse points
        row = {"policy": pol, "device": dev, "qoe": qoe, "traces": tr, "transform": tf, "sim": sim,
               "ladder_a": a, "ladder_b": b}  # fmt: skip
        x = found.crossover
        if x is None:  # no crossover: the leader is ahead on both sides of the range
            row |= {"scale": float("nan"), "mbps": float("nan"), "below": found.leader, "above": found.leader}
        else:
            row |= {"scale": x.scale, "mbps": x.mbps, "below": x.below, "above": x.above}
        row["evaluations"] = len(found.evaluated)
        rows.append(row)
    bar.close()
    table = pd.DataFrame(rows)
    print(f"crossovers in scale [{args.lo:g}, {args.hi:g}] (NaN = none in range; below/above: the better ladder):")
    print(_show(table))
    if args.out is not None:
        from sim.sweep._store import write_table

        path = write_table(table, Path(args.out) / "crossover_search.csv")
        print(f"wrote {path}")
    return 0


def _check_args(args: argparse.Namespace, grid: Grid) -> None:
    """Options checked before any work: finite numbers in range, a writable --out, sizes."""
    import math

    if not (math.isfinite(args.max_stall) and 0 <= args.max_stall <= 1):
        raise InputError(f"--max-stall must be a stall ratio in [0, 1], got {args.max_stall}")
    if args.workers is not None and not 1 <= args.workers <= 4096:
        raise InputError(f"--workers must be in 1..4096, got {args.workers}")
    for name in ("lo", "hi", "rtol"):
        if not (math.isfinite(getattr(args, name)) and getattr(args, name) > 0):
            raise InputError(f"--{name} must be a finite number > 0, got {getattr(args, name)}")
    # the merged table holds a row of about 40 numbers per session of every grid point
    check_request("--sessions", grid.sessions, 320 * len(grid.points), force=args.force)
    if args.out is not None:
        check_output(args.out, folder=True)


def run(args: argparse.Namespace) -> int:
    grid = grid_from_args(args)
    _check_args(args, grid)
    if args.crossover:
        return _crossover(args, grid)
    with folder_lock(args.out, "python -m sim.whatif"):
        return _run_locked(args, grid)


def _run_locked(args: argparse.Namespace, grid: Grid) -> int:
    if args.fresh and (args.out / "cells").is_dir():
        shutil.rmtree(args.out / "cells")
    cells = len(grid.cells())
    print(
        f"grid: {len(grid.points)} points x {grid.sessions} sessions = {grid.n_sessions} sessions in {cells} cells; "
        f"executor {args.executor}; out {args.out}"
    )
    res = run_sweep(grid, args.out, executor=args.executor, workers=args.workers, ray_address=args.ray_address,
                    table_format=args.format, progress=not args.no_progress)  # fmt: skip
    print(
        f"ran {res.ran} cells ({res.skipped} already finished) in {res.elapsed_s:.1f} s "
        f"({res.sessions_per_s:,.0f} sessions/s)"
    )
    print(_show(_brief(res.summary), max_rows=_MAX_ROWS))
    best = best_under_stall(res.summary, args.max_stall)
    print(f"\nbest (policy, ladder) with mean stall ratio < {args.max_stall:g}:")
    print(_show(_brief(best), max_rows=_MAX_ROWS))
    paths = dict(res.paths)
    if not args.no_report:
        print(f"\nwriting plots and report.html to {args.out} ...", flush=True)  # a few silent seconds otherwise
        paths.update(write_report(res, args.out, max_stall_ratio=args.max_stall))
    for name, path in paths.items():
        print(f"wrote {name}: {path}")
    return 0


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

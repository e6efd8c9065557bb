"""Run a grid: validate it, run the cells not finished yet, merge one tidy table and a summary."""

from __future__ import annotations

import itertools
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from abr.errors import InputError
from abr.io import check_output, write_atomic, write_json_atomic
from abr.lock import folder_lock
from abr.qoe import get_qoe
from sim.resolve import sim_preset
from sim.sweep._cell import _device, _traces, resolve_ladder, resolve_runner, run_cell, transform_fields
from sim.sweep._executors import Executor, get_executor
from sim.sweep._grid import Cell, Grid, spec_inputs
from sim.sweep._store import CellStore, write_table

__all__ = [
    "SUMMARY_METRICS",
    "SWEEP_META_FORMAT",
    "SweepResult",
    "finish_table",
    "run_sweep",
    "summarize",
    "sweep_metadata",
    "validate_grid",
]

#: Summary columns: name -> (table column, aggregate).
SUMMARY_METRICS = {
    "qoe_mean": ("qoe_mean", "mean"),
    "qoe_p10": ("qoe_mean", 0.1),
    "stall_ratio": ("stall_ratio", "mean"),
    "stall_ratio_p90": ("stall_ratio", 0.9),
    "lpips_mean": ("lpips_mean", "mean"),
    "lpips_p90": ("lpips_mean", 0.9),
    "severe_frac": ("severe_frac", "mean"),
    "kbps": ("kbps", "mean"),
    "trace_mbps": ("trace_mbps", "mean"),
    "startup_s": ("startup_s", "mean"),
    "switches": ("switches", "mean"),
    "decode_ms_per_frame": ("decode_ms_per_frame", "mean"),
}


@dataclass(frozen=True, eq=False)
class SweepResult:
    """What a sweep produced.

    :param grid: the grid.
    :param table: one row per session: parameters, ``family``, ``scale`` and other transform
        fields, ``session``, ``trace``, ``trace_mbps`` and the metrics of ``sim.SUMMARY_COLUMNS``.
    :param summary: one row per grid point (:func:`summarize`).
    :param ran: cells run now; ``skipped``: cells found finished in the store.
    :param sessions_run: sessions in the cells run now.
    :param elapsed_s: wall time of running the cells (start-up of the executor included).
    :param paths: files written (``table``, ``summary``, ``grid``), empty without an output folder.
    """

    grid: Grid
    table: object
    summary: object
    ran: int
    skipped: int
    sessions_run: int
    elapsed_s: float
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def sessions_per_s(self) -> float:
        """Sessions run now per second of wall time."""
        return self.sessions_run / self.elapsed_s if self.elapsed_s > 0 else math.inf


def validate_grid(grid: Grid) -> None:
    """Resolve every spec of ``grid`` once, so bad input fails before any cell runs."""
    for spec in grid.policies:
        resolve_runner(spec)
    for spec in grid.qoes:
        get_qoe(spec)
    for spec in grid.sims:
        sim_preset(spec)
    for dev, lad in itertools.product(grid.devices, grid.ladders):
        _device(dev).decode_s(resolve_ladder(lad))
    for spec, tf in itertools.product(grid.traces, grid.transforms):
        _traces(spec, tf, grid.seed, grid.trace_count)


def run_sweep(
    grid: Grid,
    out: str | Path | None = None,
    *,
    executor: str | Executor = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    table_format: str = "parquet",
    progress: bool = False,
    on_cell: Callable[[Cell, int], None] | None = None,
) -> SweepResult:
    """Run every cell of ``grid`` that ``out`` does not hold yet; merge and summarise.

    :param grid: what to sweep.
    :param out: output folder (cell files, ``sessions.parquet|csv``, ``summary.csv``,
        ``grid.json``, ``meta.json``: :func:`sweep_metadata`); None keeps everything in memory (no resume).
    :param executor: ``local``, ``process``, ``ray`` or an :class:`Executor` (left open).
    :param workers: parallel workers of a named executor (default: all cores).
    :param ray_address: run on this Ray cluster (executor ``ray``).
    :param table_format: ``parquet`` or ``csv`` for the merged table.
    :param progress: show a tqdm bar over cells.
    :param on_cell: called as ``on_cell(cell, n_done)`` after each cell is stored.
    :raises InputError: a bad grid, an unwritable ``out``, or ``out`` locked by another run
        (:func:`abr.lock.folder_lock`; stale temporary files of a killed run are swept).
    """
    if table_format not in ("parquet", "csv"):
        raise InputError(f"table format must be parquet or csv, got {table_format!r}")
    validate_grid(grid)
    if out is None:
        return _run(grid, None, executor, workers, ray_address, table_format, progress, on_cell)
    check_output(out, folder=True)
    with folder_lock(out, "sim.sweep.run_sweep"):  # re-entrant: sim.whatif already holds it
        return _run(grid, Path(out), executor, workers, ray_address, table_format, progress, on_cell)


def _run(grid, out, executor, workers, ray_address, table_format, progress, on_cell) -> SweepResult:
    cells = grid.cells()
    store = CellStore(out) if out is not None else None
    finished = store.finished(cells) if store else set()
    todo = [c for c in cells if c.key not in finished]
    frames: dict[str, object] = {}
    owned = not isinstance(executor, Executor)
    ex = get_executor(executor, workers, ray_address) if owned else executor
    from tqdm.auto import tqdm

    bar = tqdm(total=len(cells), initial=len(finished), unit="cell", disable=not progress, desc="sweep")
    t0 = time.perf_counter()
    try:
        for n, (cell, frame) in enumerate(ex.map(run_cell, todo), start=1):
            if store is not None:
                store.write(cell, frame)
            frames[cell.key] = frame
            bar.update()
            if on_cell is not None:
                on_cell(cell, n)
    finally:
        bar.close()
        if owned:
            ex.close()
    elapsed = time.perf_counter() - t0
    import pandas as pd

    parts = [frames[c.key] if c.key in frames else store.read(c) for c in cells]
    table = finish_table(pd.concat(parts, ignore_index=True))
    summary = summarize(table)
    paths: dict[str, Path] = {}
    if out is not None:
        out = Path(out)
        paths["table"] = write_table(table, out / f"sessions.{table_format}")
        paths["summary"] = write_table(summary, out / "summary.csv")
        text = json.dumps(grid.to_dict(), indent=1) + "\n"
        paths["grid"] = write_atomic(out / "grid.json", lambda tmp: Path(tmp).write_text(text))
        paths["meta"] = write_json_atomic(out / "meta.json", sweep_metadata(grid))
    n_run = sum(c.n_sessions for c in todo)
    return SweepResult(grid, table, summary, len(todo), len(finished), n_run, elapsed, paths)


#: ``format`` of a sweep's ``meta.json``.
SWEEP_META_FORMAT = "promptabr-sweep-meta"


def sweep_metadata(grid: Grid) -> dict:
    """What made a sweep's tables: the command, the grid (every ladder, device, QoE, trace set,
    transform, simulator preset, seed and size), content digests of the files its specs read
    (:func:`spec_inputs`), and the package version with the git commit."""
    from sim.provenance import code_version

    specs = dict.fromkeys([*grid.ladders, *grid.traces])
    return {
        "format": SWEEP_META_FORMAT,
        "version": 1,
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "grid": grid.to_dict(),
        "inputs": {s: d for s in specs if (d := spec_inputs(s))},
        "code": code_version(),
    }


def finish_table(df):
    """Add the transform fields as columns after ``transform``: ``scale`` (1 where absent) and
    one column per other transform key (numeric where every value is)."""
    import pandas as pd

    specs = df["transform"].astype(str)
    parsed = {s: transform_fields(s) for s in specs.unique()}
    keys = list(dict.fromkeys(k for f in parsed.values() for k in f))
    keys = ["scale"] + [k for k in keys if k != "scale"]
    at = df.columns.get_loc("transform") + 1
    for i, key in enumerate(keys):
        if key == "scale":
            from sim.sweep._cell import scale_of

            values = specs.map({s: scale_of(s) for s in parsed}).astype(float)
        else:
            raw = specs.map({s: f.get(key) for s, f in parsed.items()})
            num = pd.to_numeric(raw, errors="coerce")
            values = num if num.notna().sum() == raw.notna().sum() else raw
        name = key if key not in df.columns else f"transform_{key}"
        df.insert(at + i, name, values.to_numpy())
    return df


def summarize(table):
    """One row per grid point: session count and :data:`SUMMARY_METRICS`."""
    keys = [c for c in table.columns[: table.columns.get_loc("session")]]
    import pandas as pd

    from sim.session import aggregate

    groups = table.groupby(keys, sort=False, dropna=False)
    return pd.concat([groups.size().rename("sessions"), aggregate(groups, SUMMARY_METRICS)], axis=1).reset_index()

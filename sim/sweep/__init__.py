"""sim.sweep: offline what-if analysis over grids of traces, devices, ladders, QoE and policies.

A :class:`Grid` of spec strings expands into cells (a grid point and a block of session
ids); an executor (in-process, process pool or Ray) runs them; a :class:`CellStore` keeps one
file per finished cell so an interrupted sweep resumes; the merged table has one row per
session. Results do not depend on the executor or the block size: every session is seeded by
its id (:mod:`sim.rng`), and all grid points play the same sessions (paired comparisons).

:func:`find_crossover` (bisection) and :func:`crossover_table` (from a sweep) locate the
bandwidth scale at which one ladder overtakes another; :func:`write_report` draws the plots
and writes a self-contained HTML page. The command line is ``python -m sim.whatif``.
"""

from sim.sweep._cell import resolve_ladder, run_cell
from sim.sweep._crossover import (
    Crossover,
    CrossoverSearch,
    crossover_search,
    crossover_table,
    expected_evaluations,
    find_crossover,
)
from sim.sweep._executors import EXECUTORS, Executor, LocalExecutor, ProcessExecutor, RayExecutor, get_executor
from sim.sweep._grid import PARAM_COLUMNS, Cell, CellParams, Grid, load_grid, split_specs, transform_product
from sim.sweep._report import best_under_stall, write_report
from sim.sweep._store import CellStore
from sim.sweep._sweep import SUMMARY_METRICS, SweepResult, run_sweep, summarize, validate_grid

__all__ = [
    "EXECUTORS",
    "PARAM_COLUMNS",
    "SUMMARY_METRICS",
    "Cell",
    "CellParams",
    "CellStore",
    "Crossover",
    "CrossoverSearch",
    "Executor",
    "Grid",
    "LocalExecutor",
    "ProcessExecutor",
    "RayExecutor",
    "SweepResult",
    "best_under_stall",
    "crossover_search",
    "expected_evaluations",
    "crossover_table",
    "find_crossover",
    "get_executor",
    "load_grid",
    "resolve_ladder",
    "run_cell",
    "run_sweep",
    "split_specs",
    "summarize",
    "transform_product",
    "validate_grid",
    "write_report",
]

"""Run one cell: resolve its spec strings, run its sessions, return one row per session.

This is the function executors ship to workers, so it takes only picklable arguments
(:class:`Cell`) and returns a pandas DataFrame. Resolved inputs are memoised per process
(ladders, devices and traces are immutable), so a worker that runs many cells of the same
grid point parses each file once.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from abr.ladder import Ladder
from abr.options import split_options
from abr.registry import get_ladder
from sim.device import DeviceProfile, get_device
from sim.resolve import resolve_run
from sim.runners import resolve_runner
from sim.sweep._grid import PARAM_COLUMNS, Cell, CellParams, spec_inputs
from traces.sets import load_traces
from traces.trace import Trace

__all__ = ["resolve_ladder", "resolve_point", "resolve_runner", "run_cell", "transform_fields"]


def resolve_ladder(expr: str, inputs: str | None = None) -> Ladder:
    """:func:`abr.get_ladder`, memoised per process and per content of the files it reads.

    :param inputs: :func:`spec_inputs` of ``expr`` when known (a cell carries it); None computes it.
    """
    return _ladder(expr, spec_inputs(expr) if inputs is None else inputs)


@functools.lru_cache(maxsize=64)
def _ladder(expr: str, inputs: str) -> Ladder:
    return get_ladder(expr)


@functools.lru_cache(maxsize=32)
def _device(spec: str) -> DeviceProfile:
    return get_device(spec)


def _traces(spec: str, transform: str, seed: int, count: int, inputs: str | None = None) -> tuple[Trace, ...]:
    """The traces of a spec, transformed; memoised per process and per content of the trace files."""
    return _traces_cached(spec, transform, seed, count, spec_inputs(spec) if inputs is None else inputs)


@functools.lru_cache(maxsize=128)
def _traces_cached(spec: str, transform: str, seed: int, count: int, inputs: str) -> tuple[Trace, ...]:
    traces = load_traces(spec, seed=seed, count=count)
    if transform:
        from traces.transforms import apply_transforms, parse_transforms

        traces = apply_transforms(traces, parse_transforms(transform), seed)
    return tuple(traces)


def resolve_point(p: CellParams, seed: int, trace_count: int, inputs: tuple[str, ...] = ()) -> tuple:
    """Resolve every spec of a grid point (raises :class:`InputError` on the first bad one).

    Returns ``(run, traces, ladder, device, qoe, config)``; ``run`` (:func:`resolve_runner`) holds
    a fresh policy instance. ``inputs``: the cell's :attr:`Cell.inputs` (content digests taken when
    the grid was expanded), so a worker does not hash the files again for every cell.
    """
    digest = dict(zip(PARAM_COLUMNS, inputs)) if inputs else {}
    run = resolve_runner(p.policy)
    setup = resolve_run(resolve_ladder(p.ladder, digest.get("ladder")), _device(p.device), p.qoe, p.sim)
    traces = _traces(p.traces, p.transform, seed, trace_count, digest.get("traces"))
    return run, traces, setup.ladder, setup.device, setup.qoe, setup.config


def run_cell(cell: Cell):
    """Run the sessions of ``cell``; one row per session: parameters, session, trace, metrics."""
    run, traces, ladder, device, qoe, config = resolve_point(cell.params, cell.seed, cell.trace_count, cell.inputs)
    ids = np.arange(cell.start, cell.stop, dtype=np.int64)
    res = run(list(traces), ladder, device, qoe, config=config, seed=cell.seed, session_ids=ids)
    import pandas as pd

    rows = res.sessions_frame()
    n = len(rows)
    cols: dict[str, object] = {c: np.full(n, getattr(cell.params, c), dtype=object) for c in PARAM_COLUMNS}
    cols["family"] = np.full(n, "+".join(dict.fromkeys(r.family for r in ladder.rungs)), dtype=object)
    for c in rows.columns.drop("policy"):
        cols[c] = rows[c].to_numpy()
        if c == "trace":
            cols["trace_mbps"] = np.array([t.mean_mbps for t in traces])[res.trace_index]
    df = pd.DataFrame(cols)
    return df


def transform_fields(spec: str) -> dict[str, str]:
    """``scale=0.5,cap=3`` -> ``{"scale": "0.5", "cap": "3"}`` (labels only; repeated keys joined by ``*``)."""
    out: dict[str, str] = {}
    for key, value in split_options(spec, f"transform {spec!r}", bare=True):
        value = value or ""
        out[key] = f"{out[key]}*{value}" if key in out else value
    return out


def scale_of(spec: str) -> float:
    """The overall bandwidth scale of a transform spec (product of its ``scale`` values; 1 if none)."""
    value = transform_fields(spec).get("scale")
    if value is None:
        return 1.0
    try:
        return math.prod(float(v) for v in value.split("*"))
    except ValueError:
        return math.nan

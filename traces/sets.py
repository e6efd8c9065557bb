"""Resolve a ``--trace`` spec into a list of traces.

Spec grammar (``[SOURCE][@train|@test]``):

* ``lte``, ``3g``, ``5g``, ``fcc``, ``wifi``: ``count`` seeded traces of a fitted model;
  ``lte:duration_s=300`` sets their length.
* ``genet`` or ``genet:min_mbps=0.2/2,max_mbps=2/20,interval_s=2/20,rtt_ms=20/200,duration_s=600``:
  Genet-style randomized traces (``lo/hi`` ranges).
* a file, a folder (read recursively; documentation, images and hidden files skipped) or
  a glob (``**`` allowed). Formats are detected by content; cooked files take their value unit
  from what the data declares (:func:`traces.catalog.declared_unit`: a ``unit:`` line beside
  them, a known set of ``../shared/data/traces``, Puffer's file names), else Mbit/s.
* a named selection of the real sets (:data:`traces.select.SELECTIONS`, e.g. ``lowband-cellular``):
  the files whose own median or mean throughput passes a documented rule.
* ``SOURCE@train`` / ``SOURCE@test``: files are split by a seeded hash of their name
  (:func:`traces.split.split_files`, ``test_fraction`` and ``split_seed``); models draw from
  two disjoint seed streams. Training on ``X@train`` and evaluating on ``X@test`` never
  shares a trace.
"""

from __future__ import annotations

import glob
from pathlib import Path

from abr.errors import InputError
from traces.formats import read_trace
from traces.models import NETWORK_MODELS, get_model, model_rngs, parse_model_spec
from traces.select import SELECTIONS, TraceSelection, select_traces
from traces.split import SPLITS, split_files
from traces.trace import Trace

__all__ = ["list_trace_files", "load_traces", "split_spec"]

#: File suffixes and names that are never traces (skipped inside folders and globs).
_SKIP_SUFFIXES = {".md", ".rst", ".png", ".jpg", ".jpeg", ".pdf", ".zip", ".gz", ".tar", ".py", ".pyc", ".ipynb"}
_SKIP_STEMS = {"readme", "license", "copying", "provenance"}


def split_spec(spec: str) -> tuple[str, str | None]:
    """``'X@test'`` -> ``('X', 'test')``; no suffix -> ``(spec, None)``."""
    base, at, part = spec.rpartition("@")
    if at and part in SPLITS and base:
        return base, part
    return spec, None


def _looks_like_trace(rel: Path) -> bool:
    """Not hidden (no part of ``rel`` starts with '.'), not documentation, images or code."""
    return (
        not any(part.startswith(".") for part in rel.parts)
        and rel.suffix.lower() not in _SKIP_SUFFIXES
        and rel.stem.lower() not in _SKIP_STEMS
    )


def list_trace_files(spec: str) -> list[Path]:
    """The trace files a file, folder or glob spec names, sorted.

    :raises InputError: nothing matches (the message lists the model names too).
    """
    path = Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if _looks_like_trace(p.relative_to(path)) and p.is_file())
    else:
        files = sorted(
            Path(p)
            for p in glob.glob(spec, recursive=True)
            if _looks_like_trace(Path(Path(p).name)) and Path(p).is_file()
        )
        if not files and not any(c in spec for c in "*?["):
            raise InputError(
                f"unknown trace {spec!r}: not a file, folder or glob, and not a model "
                f"({', '.join(sorted(NETWORK_MODELS))})"
            )
    if not files:
        raise InputError("no trace files found", path=spec)
    return files


def load_traces(
    spec: str,
    *,
    seed: int = 0,
    count: int = 16,
    fmt: str | None = None,
    unit: str | None = None,
    test_fraction: float = 0.2,
    split_seed: int = 0,
) -> list[Trace]:
    """Traces named by ``spec`` (see the module docstring for the grammar).

    :param seed: seeds model traces (trace ``i`` depends only on model, split, seed and ``i``).
    :param count: number of model traces (files give one trace each).
    :param fmt: force a file format (:data:`traces.formats.FORMATS`); None detects it.
    :param unit: force the value unit of files whose format leaves it open (cooked).
    :param test_fraction: share of files in the ``@test`` part.
    :param split_seed: seed of the file split.
    :raises InputError: unknown name, no files, a malformed file, or an empty split part.
    """
    source, part = split_spec(spec)
    if parse_model_spec(source) is not None:
        if count < 1:
            raise InputError(f"trace count must be >= 1, got {count}")
        name = source.partition(":")[0]
        label = f"{name}{'@' + part if part else ''}-s{seed}"
        return get_model(source).generate(model_rngs(name, seed, count, stream=part or ""), label=label)
    if source in SELECTIONS:
        return _load_selection(SELECTIONS[source], part, fmt=fmt, unit=unit, test_fraction=test_fraction,
                               split_seed=split_seed)  # fmt: skip
    files = list_trace_files(source)
    if part is not None:
        if not 0.0 < test_fraction < 1.0:
            raise InputError(f"test fraction must be between 0 and 1 for {spec!r}, got {test_fraction}")
        train, test = split_files(files, test_fraction, split_seed)
        files = train if part == "train" else test
        if not files:
            raise InputError(
                f"the {part} part of {source!r} is empty ({len(train)} train / {len(test)} test files at "
                f"test fraction {test_fraction}, split seed {split_seed}); use more files or another fraction"
            )
    return [read_trace(p, fmt, unit=unit) for p in files]


def _load_selection(sel: TraceSelection, part: str | None, **options) -> list[Trace]:
    """The traces of selection ``sel`` in ``part`` (``train``, ``test`` or None = all): every set's
    files split as usual, then the rule of :mod:`traces.select` applied to each file.

    :raises InputError: the shared trace folder is missing, or nothing passes the rule.
    """
    from traces.catalog import default_trace_root

    root = default_trace_root()
    missing = [s for s in sel.sets if not (root / s).is_dir()]
    if missing:
        raise InputError(f"trace selection {sel.name!r} needs {', '.join(missing)} under {root}")
    suffix = f"@{part}" if part else ""
    loaded = [t for s in sel.sets for t in load_traces(f"{root / s}{suffix}", **options)]
    kept = select_traces(loaded, sel.stat, sel.below_mbps, sel.at_least_mbps)
    if not kept:
        raise InputError(f"trace selection {sel.name}{suffix}: no file passes the rule ({sel.rule})")
    return kept

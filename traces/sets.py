"""Resolve a ``--trace`` spec into a list of traces."""

from __future__ import annotations

import glob
from pathlib import Path

from abr.errors import InputError
from traces.formats import read_trace
from traces.models import NETWORK_MODELS, get_model
from traces.trace import Trace

__all__ = ["load_traces"]


def load_traces(spec: str, *, seed: int = 0, count: int = 16, fmt: str | None = None) -> list[Trace]:
    """A model name (``lte``: ``count`` seeded traces), a file, a folder or a glob."""
    if spec in NETWORK_MODELS:
        model = get_model(spec)
        return [model.sample(seed * 100_003 + i) for i in range(count)]
    path = Path(spec)
    if path.is_file():
        return [read_trace(path, fmt)]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix != ".md")
    else:
        files = sorted(Path(p) for p in glob.glob(spec) if Path(p).is_file())
        if not files and not any(c in spec for c in "*?["):
            raise InputError(
                f"unknown trace {spec!r}: not a file, folder or glob; models: {', '.join(sorted(NETWORK_MODELS))}"
            )
    if not files:
        raise InputError("no trace files found", path=spec)
    return [read_trace(p, fmt) for p in files]

"""What a result file needs to be re-run: the command, seed, inputs with content hashes, versions.

:func:`run_metadata` describes one ``python -m sim.run`` invocation: its command line and
parsed options, the seed, every trace (name, source, SHA-256 of its file and of the rates that
were simulated), the ladder (spec, name, SHA-256 of its contents and of the files it was read
from), device, QoE and simulator preset (with their parameters), and the package version with
the git commit when the code runs from a checkout. ``sim.run --out`` writes it beside a CSV
(``FILE.meta.json``) or inside a JSON result (``"meta"``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from abr.io import sha256_file
from abr.ladder import Ladder
from traces.trace import Trace

__all__ = ["META_FORMAT", "code_version", "run_metadata"]

META_FORMAT = "promptabr-run-meta"
_ROOT = Path(__file__).resolve().parents[1]


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _digest(doc: Any) -> str:
    return hashlib.sha256(json.dumps(_jsonable(doc), sort_keys=True).encode()).hexdigest()


def code_version() -> dict[str, Any]:
    """Package version, and the git commit (with a dirty flag) when running from a checkout."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        pkg = version("promptabr")
    except PackageNotFoundError:
        pkg = None
    out: dict[str, Any] = {"promptabr": pkg, "python": platform.python_version(), "numpy": np.__version__}
    try:
        git = ["git", "-C", str(_ROOT)]
        commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10, check=True)  # fmt: skip
        out |= {"git_commit": commit.stdout.strip(), "git_dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        pass  # not a checkout, or no git: the package version has to do
    return out


def _trace_record(trace: Trace) -> dict[str, Any]:
    rec: dict[str, Any] = {"name": trace.name, "source": trace.source}
    path = Path(trace.source) if trace.source else None
    if path is not None and path.is_file():
        rec["file_sha256"] = sha256_file(path)
    arrays = [trace.duration_s, trace.mbps] + ([] if trace.latency_ms is None else [trace.latency_ms])
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    rec["data_sha256"] = h.hexdigest()  # the rates simulated, after units and what-if transforms
    return rec


def run_metadata(
    args: argparse.Namespace, *, ladder: Ladder, traces: list[Trace], device: Any, qoe: Any, config: Any
) -> dict[str, Any]:
    """Everything needed to re-run a ``sim.run`` invocation and check its inputs are the same."""
    from sim.sweep._grid import referenced_files

    options = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    return {
        "format": META_FORMAT,
        "version": 1,
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "options": _jsonable(options),
        "seed": args.seed,
        "policies": list(args.policy or ["bola"]),
        "traces": {"spec": args.trace, "count": len(traces), "files": [_trace_record(t) for t in traces]},
        "ladder": {
            "spec": args.ladder,
            "name": ladder.name,
            "sha256": _digest(ladder.to_dict()),
            "files": {str(f): sha256_file(f) for f in referenced_files(args.ladder)},
        },
        "device": {"name": device.name, "sha256": _digest(device), "profile": _jsonable(device)},
        "qoe": _jsonable(qoe),
        "sim": {"preset": args.sim, "config": _jsonable(config)},
        "code": code_version(),
    }

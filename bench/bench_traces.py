"""Trace loading speed: every file under ../shared/data/traces into Trace objects.

Run: ``python bench/bench_traces.py``. Target (issue 3): loading all of it takes under 2 s.
Measured in the same run, best of ``REPEATS`` (warm file cache after the first pass):

* ``read_bytes_s``: reading every file's bytes (the I/O floor);
* ``naive_parse_s``: a straightforward reference parse (``np.loadtxt`` for the text formats,
  ``json.load``, ``csv.DictReader``) without building traces;
* ``load_traces_s``: ``traces.load_traces(root)`` (detection, units, validation, Trace objects).

Ratios ``load/naive`` and ``load/read`` are reported beside the absolute time, with the
process CPU time of one load and the machine's load average (the 2 cores are shared, so wall
time rises with other jobs). Results go to ``bench/results/traces.json``.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from abr.io import write_json_atomic  # noqa: E402
from traces.catalog import default_trace_root, real_set_of  # noqa: E402
from traces.sets import list_trace_files, load_traces  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
REPEATS = 3
TARGET_S = 2.0


def _naive(path: Path) -> int:
    fmt = real_set_of(path).fmt
    if fmt == "sabre":
        with path.open() as fh:
            return len(json.load(fh))
    if fmt == "gnettrack":
        with path.open(newline="") as fh:
            return sum(1 for _ in csv.DictReader(fh))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return len(np.loadtxt(path, delimiter="," if fmt == "bytes-csv" else None, ndmin=1))


def _best(fn) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    root = default_trace_root()
    if not root.is_dir():
        print(f"skipped: real trace sets not found at {root} (../shared beside the repository)", file=sys.stderr)
        return 1
    files = list_trace_files(str(root))
    size = sum(f.stat().st_size for f in files)
    read_s = _best(lambda: [f.read_bytes() for f in files])
    naive_s = _best(lambda: [_naive(f) for f in files])
    load_s = _best(lambda: load_traces(str(root)))
    cpu0 = time.process_time()
    load_traces(str(root))
    load_cpu_s = time.process_time() - cpu0
    out = {
        "files": len(files),
        "megabytes": round(size / 1e6, 2),
        "read_bytes_s": round(read_s, 4),
        "naive_parse_s": round(naive_s, 4),
        "load_traces_s": round(load_s, 4),
        "load_traces_cpu_s": round(load_cpu_s, 4),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "load_over_naive": round(load_s / naive_s, 3),
        "load_over_read": round(load_s / read_s, 2),
        "target_s": TARGET_S,
        "meets_target": load_s < TARGET_S,
    }
    print(json.dumps(out, indent=1))
    write_json_atomic(RESULTS / "traces.json", out)
    return 0 if out["meets_target"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Trace file readers and writers (first cut: Pensieve cooked and mahimahi)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from abr.errors import InputError
from traces.trace import Trace

__all__ = ["read_trace", "read_cooked", "read_mahimahi", "write_cooked", "write_mahimahi", "detect_format"]

#: One mahimahi packet opportunity carries 1500 bytes.
MAHIMAHI_PACKET_BYTES = 1500


def _read_text(path: Path) -> str:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError("trace file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read trace file ({exc})", path=path) from None
    if not text.strip():
        raise InputError("trace file is empty", path=path)
    return text


def read_cooked(path: str | Path) -> Trace:
    """Pensieve cooked: ``time_s<ws>Mbit/s`` per line."""
    path = Path(path)
    rows = []
    for n, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            t, b = float(parts[0]), float(parts[1])
        except (IndexError, ValueError):
            raise InputError(f"expected 'time_s Mbit/s', got {line.strip()[:60]!r}", path=path, line=n) from None
        if not (np.isfinite(t) and np.isfinite(b)):
            raise InputError("NaN or infinite value", path=path, line=n)
        if b < 0:
            raise InputError(f"negative bandwidth {b}", path=path, line=n)
        if rows and t <= rows[-1][0]:
            raise InputError(f"time {t} does not increase (previous {rows[-1][0]})", path=path, line=n)
        if t < 0:
            raise InputError(f"negative time {t}", path=path, line=n)
        rows.append((t, b))
    arr = np.array(rows)
    return Trace.from_samples(arr[:, 0], arr[:, 1], name=path.name, source=str(path))


def read_mahimahi(path: str | Path, bin_ms: int = 100) -> Trace:
    """mahimahi: one integer ms timestamp per 1500-byte packet opportunity.

    Packets are counted in ``bin_ms`` bins; 1 packet/ms = 12 Mbit/s.
    """
    path = Path(path)
    text = _read_text(path)
    try:
        ts = np.array([int(x) for x in text.split()], dtype=np.int64)
    except ValueError:
        bad = next(i for i, x in enumerate(text.splitlines(), 1) if x.strip() and not x.strip().isdigit())
        raise InputError("expected one integer millisecond timestamp per line", path=path, line=bad) from None
    if np.any(ts < 0):
        raise InputError("negative timestamp", path=path, line=int(np.argmax(ts < 0)) + 1)
    if np.any(np.diff(ts) < 0):
        raise InputError("timestamps decrease", path=path, line=int(np.argmax(np.diff(ts) < 0)) + 2)
    period_ms = max(int(ts[-1]), 1)
    n_bins = max(int(np.ceil(period_ms / bin_ms)), 1)
    counts = np.bincount(np.minimum(ts // bin_ms, n_bins - 1), minlength=n_bins)
    dur = np.full(n_bins, bin_ms / 1000.0)
    dur[-1] = (period_ms - (n_bins - 1) * bin_ms) / 1000.0 or bin_ms / 1000.0
    mbps = counts * MAHIMAHI_PACKET_BYTES * 8 / dur / 1e6
    return Trace(dur, mbps, name=path.name, source=str(path))


def write_cooked(trace: Trace, path: str | Path) -> None:
    """Write Pensieve cooked (first line is the start time at the first rate)."""
    t = np.concatenate([[0.0], np.cumsum(trace.duration_s)])
    b = np.concatenate([[trace.mbps[0]], trace.mbps])
    Path(path).write_text("".join(f"{ti:.6g}\t{bi:.6g}\n" for ti, bi in zip(t, b)))


def write_mahimahi(trace: Trace, path: str | Path) -> None:
    """Write mahimahi packet timestamps delivering the trace's bytes (rounded to packets)."""
    ends = np.cumsum(trace.duration_s) * 1000.0
    starts = ends - trace.duration_s * 1000.0
    packets = trace.mbps * 1e6 / 8 / MAHIMAHI_PACKET_BYTES * trace.duration_s
    cum = np.floor(np.cumsum(packets) + 1e-9).astype(np.int64)
    stamps = []
    prev = 0
    for s, e, c in zip(starts, ends, cum):
        k = c - prev
        if k > 0:
            stamps.append(np.floor(s + (np.arange(k) + 1) * (e - s) / k).astype(np.int64))
        prev = c
    out = np.concatenate(stamps) if stamps else np.array([], dtype=np.int64)
    Path(path).write_text("".join(f"{max(int(x), 1)}\n" for x in out))


def detect_format(path: Path) -> str:
    """Guess a file's format from its content."""
    text = _read_text(path)
    first = next(line for line in text.splitlines() if line.strip()).split()
    if len(first) == 1 and first[0].isdigit():
        return "mahimahi"
    return "cooked"


_READERS = {"cooked": read_cooked, "mahimahi": read_mahimahi}


def read_trace(path: str | Path, fmt: str | None = None) -> Trace:
    """Read one trace file, detecting its format unless ``fmt`` is given."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt not in _READERS:
        raise InputError(f"unknown trace format {fmt!r}; valid: {', '.join(sorted(_READERS))}", path=path)
    return _READERS[fmt](path)

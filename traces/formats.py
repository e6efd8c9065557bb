"""Trace file formats: readers, writers and detection by content.

Every reader returns the one in-memory :class:`~traces.trace.Trace` (durations in seconds,
rates in Mbit/s, optional latency in ms); units are converted here, at the boundary.

==============  ==========================================================  ===========
name            content                                                     unit read
==============  ==========================================================  ===========
``cooked``      Pensieve: ``time_s<ws>value`` per line                      Mbit/s [1]_
``mahimahi``    one integer ms timestamp per 1500-byte packet opportunity   packets/ms
``sabre``       JSON list of ``{duration_ms, bandwidth_kbps, latency_ms}``  kbit/s
``gnettrack``   G-NetTrack Pro CSV (UCC 5G set): ``Timestamp``, ``DL_bitrate``  kbit/s
``bytes-csv``   ``second,bytes_per_second`` without header (SBU set)        B/s
``csv``         documented CSV with header ``time_s,mbps[,rtt_ms]``         from header
==============  ==========================================================  ===========

.. [1] cooked files carry no unit: ``unit=`` (``--trace-unit``) sets it, else what the data declares
   (:func:`traces.catalog.declared_unit`: a ``unit: MBps`` line beside the files, a known set, Puffer's
   file names), else Mbit/s.

Plausibility. Whatever the format, a trace whose peak rate exceeds :data:`MAX_PLAUSIBLE_MBPS`
(10 Gbit/s) or stays below :data:`MIN_PLAUSIBLE_MBPS` (1 bit/s) is refused: no network has such
rates, so the unit is wrong. A cooked file read as Mbit/s by default whose mean exceeds
:data:`WARN_MEAN_MBPS` (1 Gbit/s) is read but warned about (:class:`TraceUnitWarning`), naming
the ``--trace-unit`` fix (kbit/s values read as Mbit/s look 1000x too fast).

Sample semantics. ``cooked`` and ``csv`` follow Pensieve: row ``i``'s rate holds from row
``i-1``'s time to its own; the first row only fixes the start. ``bytes-csv`` and
``gnettrack`` rows are per-second measurements: a row stamped ``t`` covers the time since the
previous row (the first row covers ``(t-1, t]``). mahimahi packets are counted in
``bin_ms`` bins over a period of the last timestamp (mahimahi loops there).

Bad input raises :class:`abr.errors.InputError` naming the file and line.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from abr.errors import InputError, unknown_name
from abr.io import parse_json, read_text, write_text_atomic
from traces.catalog import declared_unit
from traces.trace import Trace

__all__ = [
    "FORMATS",
    "MAX_PLAUSIBLE_MBPS",
    "MIN_PLAUSIBLE_MBPS",
    "TraceUnitWarning",
    "WARN_MEAN_MBPS",
    "RATE_UNITS",
    "TraceFormat",
    "detect_format",
    "read_trace",
    "read_cooked",
    "read_mahimahi",
    "write_cooked",
    "write_mahimahi",
    "write_trace",
    "format_trace",
]

#: One mahimahi packet opportunity carries 1500 bytes (1 packet/ms = 12 Mbit/s).
MAHIMAHI_PACKET_BYTES = 1500
#: Largest mahimahi trace read (100 ms bins: about 11.6 days) and written (packets per loop).
MAX_MAHIMAHI_BINS = 10_000_000
MAX_MAHIMAHI_PACKETS = 50_000_000

#: Multipliers to Mbit/s for rate units a user may name (``unit=``, CSV headers).
RATE_UNITS: dict[str, float] = {
    "mbps": 1.0,
    "kbps": 1e-3,
    "bps": 1e-6,
    "MBps": 8.0,
    "kBps": 8e-3,
    "Bps": 8e-6,
}


# ----------------------------------------------------------------------------- helpers


def _read_text(path: Path) -> str:
    text = read_text(path, "trace")
    if not text.strip():
        raise InputError("trace file is empty", path=path)
    return text


def _line_count(text: str) -> int:
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def _fast_numbers(text: str, dtype: type) -> np.ndarray | None:
    """All whitespace-separated numbers of ``text``, or None where parsing stops early."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return np.fromstring(text, dtype=dtype, sep=" ")
        except (ValueError, DeprecationWarning):
            return None


@functools.cache
def _row_shape(ncols: int, sep: str | None) -> re.Pattern:
    """Every line holds exactly ``ncols`` fields (no blank lines): the fast path's precondition."""
    field = r"[^\s,]+" if sep else r"\S+"
    between = rf"[ \t]*{re.escape(sep)}[ \t]*" if sep else r"[ \t]+"
    line = rf"[ \t]*{field}(?:{between}{field}){{{ncols - 1}}}[ \t]*"
    return re.compile(rf"(?:{line}\r?\n)*{line}(?:\r?\n)?")


def _numeric_rows(
    text: str, path: Path, ncols: int, sep: str | None, what: str, first_line: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``ncols`` numbers (``sep`` None = whitespace) and their line numbers in the file.

    ``first_line`` is the file's line number of ``text``'s first line (2 for a body after a header),
    so that errors and the returned numbers name the file's lines. Fast path: one
    ``np.fromstring`` when every line holds exactly ``ncols`` numbers; otherwise a line-by-line
    pass that skips blank lines and names the first bad line.
    """
    if _row_shape(ncols, sep).fullmatch(text):
        vals = _fast_numbers(text.replace(sep, " ") if sep else text, np.float64)
        n_lines = _line_count(text)
        if vals is not None and vals.size == ncols * n_lines:
            return vals.reshape(n_lines, ncols), np.arange(first_line, first_line + n_lines)
    rows, lines = [], []
    for n, line in enumerate(text.splitlines(), start=first_line):
        if not line.strip():
            continue
        parts = line.split(sep) if sep else line.split()
        try:
            if len(parts) != ncols:
                raise ValueError
            rows.append([float(p) for p in parts])
        except ValueError:
            raise InputError(f"expected {what}, got {line.strip()[:60]!r}", path=path, line=n) from None
        lines.append(n)
    if not rows:
        raise InputError("trace file holds no samples", path=path)
    return np.array(rows, dtype=np.float64), np.array(lines)


def _check_samples(t: np.ndarray, v: np.ndarray, lines: np.ndarray, path: Path, vname: str = "bandwidth") -> None:
    """NaN, negative values and non-increasing times, each named by its line."""
    for arr, what in ((t, "time"), (v, vname)):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise InputError(f"{what} is NaN or infinite", path=path, line=int(lines[np.argmax(bad)]))
    if np.any(v < 0):
        i = int(np.argmax(v < 0))
        raise InputError(f"negative {vname} {v[i]:g}", path=path, line=int(lines[i]))
    if np.any(t < 0):
        i = int(np.argmax(t < 0))
        raise InputError(f"negative time {t[i]:g}", path=path, line=int(lines[i]))
    d = np.diff(t)
    if np.any(d <= 0):
        i = int(np.argmax(d <= 0)) + 1
        raise InputError(f"time {t[i]:g} does not increase (previous {t[i - 1]:g})", path=path, line=int(lines[i]))


def _rate_unit(unit: str | None, default: str, path: Path) -> float:
    unit = unit or default
    if unit not in RATE_UNITS:
        raise InputError(f"unknown rate unit {unit!r}; valid: {', '.join(RATE_UNITS)}", path=path)
    return RATE_UNITS[unit]


# ----------------------------------------------------------------------------- readers


def _read_cooked(text: str, path: Path, unit: str | None) -> Trace:
    scale = _rate_unit(unit, "mbps", path)
    rows, lines = _numeric_rows(text, path, 2, None, "'time_s value' (two numbers)")
    t, v = rows[:, 0], rows[:, 1]
    _check_samples(t, v, lines, path)
    return Trace.from_samples(t, v * scale, name=path.name, source=str(path))


def _read_mahimahi(text: str, path: Path, unit: str | None, bin_ms: int = 100) -> Trace:
    # fast path only when every line is one token: no blanks inside lines, no blank lines
    one_per_line = not any(c in text for c in (" ", "\t", "\n\n", "\r\n\r\n")) and not text.startswith(("\n", "\r"))
    ts = _fast_numbers(text, np.int64) if one_per_line else None
    if ts is None or ts.size != _line_count(text):
        good = []
        for n, line in enumerate(text.splitlines(), start=1):
            s = line.strip()
            if not s:
                continue
            if not s.isdigit():
                raise InputError(
                    f"expected one integer millisecond timestamp per line, got {s[:40]!r}", path=path, line=n
                )
            good.append(int(s))
        ts = np.array(good, dtype=np.int64)
    if ts.size == 0:
        raise InputError("trace file holds no timestamps", path=path)
    if np.any(ts < 0):
        raise InputError("negative timestamp", path=path, line=int(np.argmax(ts < 0)) + 1)
    if np.any(np.diff(ts) < 0):
        raise InputError("timestamps decrease", path=path, line=int(np.argmax(np.diff(ts) < 0)) + 2)
    period_ms = max(int(ts[-1]), 1)
    n_bins = max(int(np.ceil(period_ms / bin_ms)), 1)
    if n_bins > MAX_MAHIMAHI_BINS:
        msg = f"last timestamp {period_ms} ms spans {n_bins} bins of {bin_ms} ms (limit {MAX_MAHIMAHI_BINS})"
        raise InputError(msg, path=path, line=int(ts.size))
    counts = np.bincount(np.minimum(ts // bin_ms, n_bins - 1), minlength=n_bins)
    dur = np.full(n_bins, bin_ms / 1000.0)
    dur[-1] = (period_ms - (n_bins - 1) * bin_ms) / 1000.0 or bin_ms / 1000.0
    mbps = counts * MAHIMAHI_PACKET_BYTES * 8 / dur / 1e6
    return Trace(dur, mbps, name=path.name, source=str(path))


def _json_entry_line(text: str, index: int) -> int | None:
    """Line of the ``index``-th JSON object in a list (for error messages)."""
    pos = -1
    for _ in range(index + 1):
        pos = text.find("{", pos + 1)
        if pos < 0:
            return None
    return text.count("\n", 0, pos) + 1


def _sabre_entry_ok(entry: object, keys: tuple[str, ...]) -> bool:
    return isinstance(entry, dict) and all(
        isinstance(entry.get(k), int | float) and not isinstance(entry.get(k), bool) for k in keys
    )


def _read_sabre(text: str, path: Path, unit: str | None) -> Trace:
    data = parse_json(text, path, "Sabre trace")
    if not isinstance(data, list) or not data:
        raise InputError("expected a JSON list of {duration_ms, bandwidth_kbps[, latency_ms]} objects", path=path)
    has_lat = isinstance(data[0], dict) and "latency_ms" in data[0]
    keys = ("duration_ms", "bandwidth_kbps") + (("latency_ms",) if has_lat else ())
    try:
        if not all(_sabre_entry_ok(e, keys) for e in data):  # booleans are not numbers here
            raise TypeError
        cols = [np.array([e[k] for e in data], dtype=np.float64) for k in keys]
    except (KeyError, TypeError, ValueError):
        i = next((i for i, e in enumerate(data) if not _sabre_entry_ok(e, keys)), 0)
        raise InputError(
            f"entry {i} must be an object with numeric {', '.join(keys)}", path=path, line=_json_entry_line(text, i)
        ) from None
    dur, kbps = cols[0], cols[1]
    lat = cols[2] if has_lat else None
    for arr, what in ((dur, "duration_ms"), (kbps, "bandwidth_kbps")) + (((lat, "latency_ms"),) if has_lat else ()):
        bad = ~np.isfinite(arr) | (arr < 0) | ((arr <= 0) if what == "duration_ms" else False)
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(f"entry {i}: invalid {what} {arr[i]:g}", path=path, line=_json_entry_line(text, i))
    return Trace(dur / 1000.0, kbps / 1000.0, lat, name=path.name, source=str(path))


def _per_second_trace(t: np.ndarray, mbps: np.ndarray, path: Path) -> Trace:
    """Rows stamped at the end of their measurement interval; the first covers one second."""
    start = t[0] - 1.0
    return Trace.from_samples(
        np.concatenate([[start], t]), np.concatenate([[0.0], mbps]), name=path.name, source=str(path)
    )


def _read_bytes_csv(text: str, path: Path, unit: str | None) -> Trace:
    scale = _rate_unit(unit, "Bps", path)
    rows, lines = _numeric_rows(text, path, 2, ",", "'second,bytes_per_second'")
    t, v = rows[:, 0], rows[:, 1]
    _check_samples(t, v, lines, path, "bytes per second")
    return _per_second_trace(t, v * scale, path)


_GNET_TS = re.compile(r"^\d{4}\.\d\d\.\d\d_\d\d\.\d\d\.\d\d$")


def _read_gnettrack(text: str, path: Path, unit: str | None) -> Trace:
    """G-NetTrack Pro CSV. Rows are ~1 Hz samples stamped to the second.

    Rows sharing a second are averaged; a clock step back of at most 1 s (seen once in the
    UCC set) is merged into the previous second; a larger step back is an error. Rows whose
    ``DL_bitrate`` is ``-`` (missing) are skipped.
    """
    scale = _rate_unit(unit, "kbps", path)
    lines = text.splitlines()
    header = [h.strip() for h in lines[0].split(",")]
    try:
        it, idl = header.index("Timestamp"), header.index("DL_bitrate")
    except ValueError:
        raise InputError("G-NetTrack CSV needs 'Timestamp' and 'DL_bitrate' columns", path=path, line=1) from None
    width = max(it, idl) + 1
    body = lines[1:]
    while body and not body[-1].strip():
        body.pop()
    parts = [ln.split(",", width) for ln in body]
    try:
        dl = [p[idl] for p in parts]
        stamps = [p[it] for p in parts]
    except IndexError:
        short = next(i for i, p in enumerate(parts) if len(p) < width)
        raise InputError(f"expected {len(header)} columns", path=path, line=short + 2) from None
    line_no = np.arange(2, len(body) + 2)
    if "-" in dl or "" in dl:  # missing values: skip those rows
        keep = [i for i, v in enumerate(dl) if v not in ("-", "")]
        dl, stamps, line_no = [dl[i] for i in keep], [stamps[i] for i in keep], line_no[keep]
    if not dl:
        raise InputError("no rows with a DL_bitrate value", path=path)
    secs = _gnet_seconds(stamps)
    if secs is None:
        j = next((j for j, st in enumerate(stamps) if not _GNET_TS.match(st)), 0)
        raise InputError(f"Timestamp {stamps[j][:30]!r} is not YYYY.MM.DD_HH.MM.SS", path=path, line=int(line_no[j]))
    kbps = _fast_numbers(" ".join(dl), np.float64)
    if kbps is None or kbps.size != len(dl):
        j = next(j for j, v in enumerate(dl) if not _is_float(v))
        raise InputError(f"DL_bitrate {dl[j]!r} is not a number", path=path, line=int(line_no[j]))
    t = (secs - secs[0]).astype(np.float64)
    mono = np.maximum.accumulate(t)
    if np.any(mono - t > 1.0):
        i = int(np.argmax(mono - t > 1.0))
        raise InputError(f"Timestamp steps back {mono[i] - t[i]:g} s", path=path, line=int(line_no[i]))
    bad = ~np.isfinite(kbps) | (kbps < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"invalid DL_bitrate {kbps[i]:g}", path=path, line=int(line_no[i]))
    uniq, inv = np.unique(mono, return_inverse=True)
    mean = np.bincount(inv, weights=kbps) / np.bincount(inv)
    return _per_second_trace(uniq, mean * scale, path)


def _gnet_seconds(stamps: list[str]) -> np.ndarray | None:
    """Seconds since the epoch of ``YYYY.MM.DD_HH.MM.SS`` stamps (None if one is malformed)."""
    if set(map(len, stamps)) != {19}:
        return None
    flat = " ".join(stamps).replace(".", " ").replace("_", " ")
    f = _fast_numbers(flat, np.int64)
    if f is None or f.size != 6 * len(stamps) or not _GNET_TS.match(stamps[0]):
        return None
    f = f.reshape(-1, 6)
    ymd = f[:, 0] * 10000 + f[:, 1] * 100 + f[:, 2]
    days, inv = np.unique(ymd, return_inverse=True)
    try:
        day0 = np.array([f"{d // 10000:04d}-{d // 100 % 100:02d}-{d % 100:02d}" for d in days], dtype="datetime64[D]")
    except ValueError:
        return None
    if np.any((f[:, 3] > 23) | (f[:, 4] > 59) | (f[:, 5] > 60)):
        return None
    return day0.astype(np.int64)[inv] * 86400 + f[:, 3] * 3600 + f[:, 4] * 60 + f[:, 5]


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


#: CSV header names (lower-case) and their multipliers to seconds / Mbit/s / ms.
_CSV_TIME = {"time_s": 1.0, "time_ms": 1e-3}
_CSV_RATE = {"mbps": 1.0, "kbps": 1e-3, "bps": 1e-6, "bytes_per_s": 8e-6, "bytes_per_second": 8e-6}
_CSV_LAT = {"rtt_ms": 1.0, "latency_ms": 1.0}


def _read_csv(text: str, path: Path, unit: str | None) -> Trace:
    """Documented CSV: header ``time_s,mbps[,rtt_ms]`` (units may be ``time_ms``, ``kbps``, ...)."""
    head, _, body = text.partition("\n")
    names = [h.strip().lower() for h in head.split(",")]
    known = (_CSV_TIME, _CSV_RATE, _CSV_LAT)
    if len(names) not in (2, 3) or any(n not in k for n, k in zip(names, known)):
        raise InputError(
            f"unknown CSV header {head.strip()[:80]!r}: expected time_s|time_ms, then mbps|kbps|bps|bytes_per_s, "
            "then optionally rtt_ms|latency_ms (units must be named)",
            path=path,
            line=1,
        )
    if not body.strip():
        raise InputError("CSV has a header but no rows", path=path, line=2)
    rows, lines = _numeric_rows(body, path, len(names), ",", ",".join(names), first_line=2)
    t = rows[:, 0] * _CSV_TIME[names[0]]
    v = rows[:, 1] * _CSV_RATE[names[1]]
    _check_samples(t, v, lines, path)
    lat = None
    if len(names) == 3:
        lat = rows[:, 2] * _CSV_LAT[names[2]]
        _check_samples(t, lat, lines, path, names[2])
    return Trace.from_samples(t, v, lat, name=path.name, source=str(path))


# ----------------------------------------------------------------------------- writers


def _format_cooked(trace: Trace) -> str:
    t = np.concatenate([[0.0], trace.end_s])
    b = np.concatenate([[trace.mbps[0]], trace.mbps])
    return "".join(f"{ti:.9g}\t{bi:.9g}\n" for ti, bi in zip(t, b))


def _format_csv(trace: Trace) -> str:
    t = np.concatenate([[0.0], trace.end_s])
    b = np.concatenate([[trace.mbps[0]], trace.mbps])
    if trace.latency_ms is None:
        return "time_s,mbps\n" + "".join(f"{ti:.9g},{bi:.9g}\n" for ti, bi in zip(t, b))
    lat = np.concatenate([[trace.latency_ms[0]], trace.latency_ms])
    return "time_s,mbps,rtt_ms\n" + "".join(f"{ti:.9g},{bi:.9g},{li:.9g}\n" for ti, bi, li in zip(t, b, lat))


def _format_sabre(trace: Trace) -> str:
    lat = trace.latency_ms if trace.latency_ms is not None else np.zeros_like(trace.mbps)
    rows = [
        f'    {{"duration_ms": {d * 1000:.6g}, "bandwidth_kbps": {b * 1000:.6g}, "latency_ms": {la:.6g}}}'
        for d, b, la in zip(trace.duration_s, trace.mbps, lat)
    ]
    return "[\n" + ",\n".join(rows) + "\n]\n"


def _format_mahimahi(trace: Trace) -> str:
    """Packet timestamps delivering the trace's bytes (rounded to whole packets).

    Packets are spread evenly inside each segment, from its start; the last packet is moved
    to the loop period (mahimahi loops at the last timestamp).
    """
    ends = trace.end_s * 1000.0
    starts = ends - trace.duration_s * 1000.0
    packets = trace.mbps * 1e6 / 8 / MAHIMAHI_PACKET_BYTES * trace.duration_s
    if packets.sum() > MAX_MAHIMAHI_PACKETS:
        raise InputError(f"trace carries {packets.sum():.3g} packets of {MAHIMAHI_PACKET_BYTES} bytes per loop; "
                         f"mahimahi output is limited to {MAX_MAHIMAHI_PACKETS} (lower the rates or shorten the trace)",
                         path=trace.source or trace.name)  # fmt: skip
    cum = np.floor(np.cumsum(packets) + 1e-9).astype(np.int64)
    k = np.diff(np.concatenate([[0], cum]))
    seg = np.repeat(np.arange(k.size), k)
    rank = np.arange(seg.size) - np.repeat(np.concatenate([[0], cum[:-1]]), k)
    stamps = np.floor(starts[seg] + rank * (ends[seg] - starts[seg]) / k[seg] + 1e-9).astype(np.int64)
    period = int(round(ends[-1]))
    if stamps.size == 0:
        raise InputError("trace carries less than one 1500-byte packet; cannot write mahimahi", path=trace.name)
    stamps = np.minimum(np.maximum(stamps, 0), period)
    stamps[-1] = period
    return "\n".join(map(str, stamps.tolist())) + "\n"


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True, slots=True)
class TraceFormat:
    """One file format: its reader, its writer (None = read only) and a one-line description."""

    name: str
    description: str
    read: Callable[[str, Path, str | None], Trace]
    write: Callable[[Trace], str] | None = None


FORMATS: dict[str, TraceFormat] = {
    f.name: f
    for f in (
        TraceFormat(
            "cooked", "Pensieve cooked: 'time_s value' per line (Mbit/s unless unit=)", _read_cooked, _format_cooked
        ),
        TraceFormat("mahimahi", "mahimahi: one ms timestamp per 1500-byte packet", _read_mahimahi, _format_mahimahi),
        TraceFormat("sabre", "Sabre JSON: [{duration_ms, bandwidth_kbps, latency_ms}]", _read_sabre, _format_sabre),
        TraceFormat("gnettrack", "G-NetTrack Pro CSV (Timestamp, DL_bitrate in kbit/s)", _read_gnettrack),
        TraceFormat("bytes-csv", "'second,bytes_per_second' CSV without header", _read_bytes_csv),
        TraceFormat("csv", "CSV with header time_s,mbps[,rtt_ms]", _read_csv, _format_csv),
    )
}


def _detect(text: str, path: Path) -> str:
    stripped = text.lstrip()
    if stripped[:1] in "[{":
        return "sabre"
    first = stripped.split("\n", 1)[0].strip()
    if "," in first:
        cells = [c.strip() for c in first.split(",")]
        if all(_is_float(c) for c in cells):
            if len(cells) == 2:
                return "bytes-csv"
            raise InputError(
                f"numeric CSV with {len(cells)} columns and no header: unknown layout and units; "
                "add a header time_s,mbps[,rtt_ms] or pass --format",
                path=path,
                line=1,
            )
        lower = {c.lower() for c in cells}
        if {"timestamp", "dl_bitrate"} <= lower:
            return "gnettrack"
        return "csv"
    tokens = first.split()
    if len(tokens) == 1 and tokens[0].isdigit():
        return "mahimahi"
    if len(tokens) == 2 and all(_is_float(x) for x in tokens):
        return "cooked"
    raise InputError(
        f"cannot tell the trace format from the first line {first[:60]!r}; pass --format ({', '.join(FORMATS)})",
        path=path,
        line=1,
    )


def detect_format(path: str | Path) -> str:
    """The format name of a trace file, guessed from its content."""
    path = Path(path)
    return _detect(_read_text(path), path)


def read_trace(path: str | Path, fmt: str | None = None, *, unit: str | None = None) -> Trace:
    """Read one trace file.

    :param fmt: a :data:`FORMATS` name; None detects it from the content.
    :param unit: rate unit of the values where the format leaves it open (a
        :data:`RATE_UNITS` name; e.g. ``MBps`` for cooked files holding megabytes/s).
    :raises InputError: unreadable file, unknown format, or bad content (names file and line).
    """
    path = Path(path)
    text = _read_text(path)
    if fmt is None:
        fmt = _detect(text, path)
    elif fmt not in FORMATS:
        raise unknown_name("trace format", fmt, FORMATS)
    how = "given" if unit is not None else "the format's unit"
    if unit is None and fmt == "cooked" and (declared := declared_unit(path)) is not None:
        unit, how = declared[0], declared[1]
    elif unit is None and fmt == "cooked":
        how = "Mbit/s by default: cooked files carry no unit"
    trace = FORMATS[fmt].read(text, path, unit)
    _check_plausible(trace, path, unit, how)
    return trace


#: Peak rate above which a trace is refused (10 Gbit/s: more than any access network delivers).
MAX_PLAUSIBLE_MBPS = 10_000.0
#: Peak rate below which a trace is refused (1 bit/s: nothing could be streamed).
MIN_PLAUSIBLE_MBPS = 1e-6
#: Mean rate above which a cooked file read as Mbit/s by default is warned about (1 Gbit/s).
WARN_MEAN_MBPS = 1_000.0


class TraceUnitWarning(UserWarning):
    """A trace's rates are possible but unlikely in the unit it was read in."""


def _check_plausible(trace: Trace, path: Path, unit: str | None, how: str) -> None:
    """Refuse rates no network has; warn when a defaulted unit gives unlikely ones (see the module docstring)."""
    peak, mean = float(np.max(trace.mbps)), trace.mean_mbps
    read_as = f"read as {unit} ({how})" if unit else f"read in {how}"
    fix = "pass --trace-unit (one of " + ", ".join(RATE_UNITS) + ") or declare 'unit: NAME' in a UNIT file beside it"
    if peak > MAX_PLAUSIBLE_MBPS:
        raise InputError(
            f"implausible rates: peak {peak:.4g} Mbit/s is above 10 Gbit/s, {read_as}; the unit is wrong"
            f"{' (kbit/s values read as Mbit/s?)' if unit in (None, 'mbps') else ''}: {fix}",
            path=path,
        )
    if peak < MIN_PLAUSIBLE_MBPS:
        raise InputError(
            f"implausible rates: peak {peak * 1e6:.3g} bit/s is below 1 bit/s, {read_as}; the unit is wrong: {fix}",
            path=path,
        )
    if unit is None and mean > WARN_MEAN_MBPS:
        warnings.warn(
            f"{path}: mean rate {mean:.4g} Mbit/s is above 1 Gbit/s, {read_as}; if the values are kbit/s, "
            "pass --trace-unit kbps",
            TraceUnitWarning,
            stacklevel=3,
        )


def format_trace(trace: Trace, fmt: str) -> str:
    """The text of ``trace`` in format ``fmt`` (one with a writer)."""
    if fmt not in FORMATS:
        raise unknown_name("trace format", fmt, FORMATS)
    if FORMATS[fmt].write is None:
        writable = [n for n, f in FORMATS.items() if f.write is not None]
        raise InputError(f"format {fmt!r} is read-only; write one of: {', '.join(writable)}")
    return FORMATS[fmt].write(trace)


def write_trace(trace: Trace, path: str | Path, fmt: str) -> None:
    """Write ``trace`` to ``path`` atomically (temporary file, then rename)."""
    text = format_trace(trace, fmt)
    write_text_atomic(path, text)


def read_cooked(path: str | Path, *, unit: str | None = None) -> Trace:
    """Pensieve cooked file (``time_s value`` per line)."""
    return read_trace(path, "cooked", unit=unit)


def read_mahimahi(path: str | Path) -> Trace:
    """mahimahi packet-timestamp file."""
    return read_trace(path, "mahimahi")


def write_cooked(trace: Trace, path: str | Path) -> None:
    """Write Pensieve cooked (first line is the start time at the first rate)."""
    write_trace(trace, path, "cooked")


def write_mahimahi(trace: Trace, path: str | Path) -> None:
    """Write mahimahi packet timestamps delivering the trace's bytes."""
    write_trace(trace, path, "mahimahi")

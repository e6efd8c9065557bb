"""The one in-memory network trace shared by every reader, model and the simulator."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from abr.errors import InputError

__all__ = ["MAX_LATENCY_MS", "MAX_MBPS", "MAX_TOTAL_S", "MIN_MBPS", "Trace"]

#: Bounds of a trace: a positive rate below MIN_MBPS (one bit in 17 minutes: far below any
#: measured trace, low enough for --scale 1e-5 of the slowest shared ones) or above MAX_MBPS
#: (1 Tbit/s), a latency above MAX_LATENCY_MS or a loop longer than MAX_TOTAL_S (about 3 years)
#: is an error, not a value: such numbers (1e308, subnormals) only overflow the simulator into
#: NaN/inf summaries.
MIN_MBPS = 1e-9
MAX_MBPS = 1e6
MAX_LATENCY_MS = 1e5
MAX_TOTAL_S = 1e8


@dataclass(frozen=True, eq=False)
class Trace:
    """A piecewise-constant network trace that loops at its end.

    Segment ``i`` lasts ``duration_s[i]`` seconds at ``mbps[i]`` Mbit/s (0 = outage), with
    one-way request latency ``latency_ms[i]`` where the source gives one (else None).

    :param name: short name (file stem or model name).
    :param source: where it came from (a path, or ``model:lte seed=3``).
    :param t0_s: time stamp of the first sample in the source (Pensieve-style files). The
        trace itself starts there; only Pensieve's wrap rule uses it (its simulator wraps to
        time 0, so every loop after the first is ``t0_s`` longer, in its first segment).
    """

    duration_s: np.ndarray
    mbps: np.ndarray
    latency_ms: np.ndarray | None = None
    name: str = "trace"
    source: str = ""
    t0_s: float = 0.0

    def __post_init__(self) -> None:
        dur = np.array(self.duration_s, dtype=np.float64)
        mbps = np.array(self.mbps, dtype=np.float64)
        where = self.source or self.name
        if dur.ndim != 1 or dur.shape != mbps.shape:
            raise InputError(f"durations {dur.shape} and rates {mbps.shape} must be 1-D of equal length", path=where)
        if dur.size == 0:
            raise InputError("trace is empty", path=where)
        if not (np.all(np.isfinite(dur)) and np.all(np.isfinite(mbps))):
            raise InputError("trace holds NaN or infinite values", path=where)
        if np.any(dur <= 0):
            raise InputError("trace segments must have positive duration (times must increase)", path=where)
        if np.any(mbps < 0):
            raise InputError("trace has negative bandwidth", path=where)
        if not np.any(mbps > 0):
            raise InputError("trace has no capacity at all (every rate is 0)", path=where)
        if mbps.max() > MAX_MBPS or np.any((mbps > 0) & (mbps < MIN_MBPS)):
            bad = mbps[(mbps > MAX_MBPS) | ((mbps > 0) & (mbps < MIN_MBPS))][0]
            msg = f"trace rate {bad:g} Mbit/s is outside 0 or [{MIN_MBPS:g}, {MAX_MBPS:g}] Mbit/s"
            raise InputError(msg, path=where)
        if dur.sum() > MAX_TOTAL_S:
            raise InputError(f"trace lasts {dur.sum():g} s (limit {MAX_TOTAL_S:g} s)", path=where)
        if not (math.isfinite(self.t0_s) and self.t0_s >= 0):
            raise InputError(f"first time stamp must be finite and >= 0, got {self.t0_s}", path=where)
        lat = None
        if self.latency_ms is not None:
            lat = np.array(self.latency_ms, dtype=np.float64)
            bad_lat = not np.all(np.isfinite(lat)) or np.any(lat < 0) or np.any(lat > MAX_LATENCY_MS)
            if lat.shape != dur.shape or bad_lat:
                raise InputError(f"latency_ms must be in [0, {MAX_LATENCY_MS:g}] ms, one per segment", path=where)
            lat.setflags(write=False)
        dur.setflags(write=False)
        mbps.setflags(write=False)
        object.__setattr__(self, "duration_s", dur)
        object.__setattr__(self, "mbps", mbps)
        object.__setattr__(self, "latency_ms", lat)

    @property
    def total_s(self) -> float:
        """Length of one loop of the trace, seconds."""
        return float(self.duration_s.sum())

    @property
    def start_s(self) -> np.ndarray:
        """Start time of every segment, seconds."""
        return np.concatenate([[0.0], np.cumsum(self.duration_s)[:-1]])

    @property
    def mean_mbps(self) -> float:
        """Time-weighted mean throughput, Mbit/s."""
        return float(np.dot(self.duration_s, self.mbps) / self.total_s)

    @property
    def outage_share(self) -> float:
        """Fraction of time with zero throughput."""
        return float(self.duration_s[self.mbps <= 0].sum() / self.total_s)

    @property
    def end_s(self) -> np.ndarray:
        """End time of every segment, seconds."""
        return np.cumsum(self.duration_s)

    def resample(self, step_s: float) -> Trace:
        """Time-weighted mean rate (and latency) over consecutive ``step_s`` bins of one loop.

        Exact for a piecewise-constant trace (bytes are conserved); the last bin is shorter
        when ``step_s`` does not divide the length.
        """
        if not step_s > 0:
            raise ValueError(f"step_s must be > 0, got {step_s}")
        total = self.total_s
        edges = np.arange(0.0, total, step_s)
        if total - edges[-1] <= 1e-9 * max(total, 1.0):
            edges = edges[:-1]
        edges = np.append(edges, total)
        ends = np.concatenate([[0.0], self.end_s])
        width = np.diff(edges)

        def binned(values: np.ndarray) -> np.ndarray:
            cum = np.concatenate([[0.0], np.cumsum(self.duration_s * values)])
            out = np.diff(np.interp(edges, ends, cum)) / width
            # a bin of zeros far into the trace differs two large cumulative sums: what is left
            # is rounding (ulps of the sum, or of an edge against a segment end), not a rate: 0
            peak = float(np.abs(values).max()) if len(values) else 0.0
            residue = np.maximum(16 * np.finfo(float).eps * np.abs(cum).max() / width, 1e-9 * peak)
            return np.where(out > residue, out, 0.0)

        lat = None if self.latency_ms is None else binned(self.latency_ms)
        return Trace(width, binned(self.mbps), lat, name=self.name, source=self.source)

    def cut(self, start_s: float, end_s: float) -> Trace:
        """The stretch from ``start_s`` to ``end_s`` of the looping trace (may span several loops)."""
        total = self.total_s
        length = end_s - start_s
        if not length > 0:
            raise ValueError(f"cut needs end_s > start_s, got {start_s}, {end_s}")
        start = float(start_s) % total
        loops = int(np.ceil((start + length) / total - 1e-12))
        dur = np.tile(self.duration_s, loops)
        ends = np.cumsum(dur)
        lo = int(np.searchsorted(ends, start, side="right"))
        hi = int(np.searchsorted(ends, start + length - 1e-12 * total, side="left"))
        hi = min(hi, dur.size - 1)
        seg_start = ends - dur
        d = np.minimum(ends[lo : hi + 1], start + length) - np.maximum(seg_start[lo : hi + 1], start)
        idx = np.arange(lo, hi + 1) % self.duration_s.size
        keep = d > 1e-12 * max(total, 1.0)
        lat = None if self.latency_ms is None else self.latency_ms[idx][keep]
        return Trace(d[keep], self.mbps[idx][keep], lat, name=self.name, source=self.source)

    def rotate(self, offset_s: float) -> Trace:
        """The same loop started ``offset_s`` seconds later (a time shift)."""
        if float(offset_s) % self.total_s == 0.0:
            return self
        return self.cut(offset_s, offset_s + self.total_s)

    @classmethod
    def concat(cls, traces: list[Trace], *, name: str | None = None, source: str | None = None) -> Trace:
        """One trace playing ``traces`` back to back."""
        if not traces:
            raise ValueError("concat needs at least one trace")
        has_lat = [t.latency_ms is not None for t in traces]
        if any(has_lat) and not all(has_lat):
            where = ", ".join(t.name for t, h in zip(traces, has_lat) if not h)
            raise InputError(f"cannot join traces with and without latency ({where} have none); set an RTT first")
        lat = np.concatenate([t.latency_ms for t in traces]) if all(has_lat) else None
        return cls(
            np.concatenate([t.duration_s for t in traces]),
            np.concatenate([t.mbps for t in traces]),
            lat,
            name=name if name is not None else "+".join(t.name for t in traces),
            source=source if source is not None else " + ".join(t.source or t.name for t in traces),
        )

    def with_(self, **changes) -> Trace:
        """A copy with some fields replaced (validated again)."""
        return replace(self, **changes)

    @classmethod
    def from_samples(cls, time_s, mbps, latency_ms=None, *, name="trace", source="") -> Trace:
        """From Pensieve-style samples: rate ``mbps[i]`` holds from ``time_s[i-1]`` to ``time_s[i]``.

        The first sample only fixes the start time, as in Pensieve's simulator.
        """
        t = np.asarray(time_s, dtype=np.float64)
        b = np.asarray(mbps, dtype=np.float64)
        where = source or name
        if t.size < 2:
            raise InputError(f"trace needs at least 2 samples, got {t.size}", path=where)
        if not np.all(np.isfinite(t)):
            j = int(np.argmax(~np.isfinite(t)))
            raise InputError(f"time at sample {j + 1} is not a finite number", path=where, line=j + 1)
        d = np.diff(t)
        if np.any(d <= 0):
            i = int(np.argmax(d <= 0))
            raise InputError(f"time is not strictly increasing at sample {i + 2}", path=where, line=i + 2)
        lat = None if latency_ms is None else np.asarray(latency_ms, dtype=np.float64)[1:]
        return cls(d, b[1:], lat, name=name, source=source, t0_s=max(float(t[0]), 0.0))

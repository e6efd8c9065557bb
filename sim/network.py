"""The network model: how long a download of S bytes takes on a looping trace.

Each trace becomes cumulative deliverable bytes C(x) over one loop (x = position in the
trace, seconds): a download of S bytes starting at x ends where C reaches C(x) + S, found
with one ``np.searchsorted`` for every session at once (traces of all sessions are
concatenated with offsets). Outages are flat stretches of C; wrap-around is a modulo on the
loop's total bytes. Exact for piecewise-constant traces.

Two modes, both deterministic under a seed:

* ``pensieve`` (Pensieve's simulator): bytes flow at ``payload_fraction`` (0.95) of the
  trace rate; the observed delay is (download time + ``rtt_s``) times U(noise_low,
  noise_high); only the download time advances the trace.
* ``latency`` (per-request latency, Sabre style): every request first waits the latency of
  the trace segment (or ``rtt_s`` when the trace has none) with the trace running, then
  downloads; no noise.

Where a session starts and how the trace loops (both modes):

* ``random_start`` with ``start="time"``: uniform over the loop's time; ``start="sample"``:
  at the start of a segment drawn uniformly (Pensieve's ``env.py`` draws a sample index, so
  irregularly sampled traces weigh each sample equally, not each second).
* ``wrap="loop"``: the trace repeats its own span; ``wrap="zero"``: Pensieve's rule, where
  the first pass starts at the first time stamp ``t0`` but every later pass starts at time
  0, so the first segment lasts ``t0`` longer from the second pass on. The bank models this
  as a loop whose first segment is ``t0`` longer, entered at position ``t0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from traces.trace import Trace

__all__ = ["NetworkConfig", "TraceBank"]

_BYTES_PER_MBIT = 1e6 / 8.0


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """How bytes cross the network.

    :param mode: ``pensieve`` or ``latency`` (see module docstring).
    :param payload_fraction: share of the trace rate that carries payload.
    :param rtt_s: Pensieve's fixed RTT added to every delay; in latency mode, the request
        latency used when the trace has none.
    :param noise_low: lower bound of the multiplicative delay noise (pensieve mode).
    :param noise_high: upper bound of the multiplicative delay noise (pensieve mode).
    :param random_start: start each session at a random position of its trace.
    :param start: how a random start is drawn: ``time`` (uniform over the loop) or
        ``sample`` (a segment start drawn uniformly, Pensieve's ``env.py``).
    :param wrap: ``loop`` (repeat the trace's span) or ``zero`` (Pensieve: later passes
        start at time 0; see the module docstring).
    """

    mode: Literal["pensieve", "latency"] = "pensieve"
    payload_fraction: float = 0.95
    rtt_s: float = 0.08
    noise_low: float = 0.9
    noise_high: float = 1.1
    random_start: bool = True
    start: Literal["time", "sample"] = "time"
    wrap: Literal["loop", "zero"] = "loop"

    def __post_init__(self) -> None:
        if self.mode not in ("pensieve", "latency"):
            raise ValueError(f"NetworkConfig.mode must be 'pensieve' or 'latency', got {self.mode!r}")
        if not 0 < self.payload_fraction <= 1:
            raise ValueError(f"NetworkConfig.payload_fraction must be in (0, 1], got {self.payload_fraction}")
        if self.rtt_s < 0:
            raise ValueError(f"NetworkConfig.rtt_s must be >= 0, got {self.rtt_s}")
        if not 0 < self.noise_low <= self.noise_high:
            raise ValueError(f"need 0 < noise_low <= noise_high, got {self.noise_low}, {self.noise_high}")
        if self.start not in ("time", "sample"):
            raise ValueError(f"NetworkConfig.start must be 'time' or 'sample', got {self.start!r}")
        if self.wrap not in ("loop", "zero"):
            raise ValueError(f"NetworkConfig.wrap must be 'loop' or 'zero', got {self.wrap!r}")


class TraceBank:
    """Many traces flattened into arrays for batched download arithmetic.

    ``wrap_to_zero`` applies Pensieve's wrap rule (module docstring): each trace's first
    segment is lengthened by its ``t0_s`` and :attr:`origin_s` (where a session enters the
    loop when it does not start at random) becomes ``t0_s``; otherwise the origin is 0.
    """

    def __init__(
        self, traces: list[Trace], payload_fraction: float = 1.0, default_latency_s: float = 0.0,
        wrap_to_zero: bool = False,
    ):  # fmt: skip
        if not traces:
            raise ValueError("TraceBank needs at least one trace")
        self.traces = list(traces)
        n_seg = np.array([len(t.duration_s) for t in traces])
        self.first = np.concatenate([[0], np.cumsum(n_seg)[:-1]]).astype(np.int64)
        self.last = (self.first + n_seg - 1).astype(np.int64)
        self.origin_s = np.array([t.t0_s if wrap_to_zero else 0.0 for t in traces])
        durs = [t.duration_s for t in traces]
        if wrap_to_zero:
            durs = [np.concatenate([[d[0] + t.t0_s], d[1:]]) for d, t in zip(durs, traces)]
        dur = np.concatenate(durs)
        rate = np.concatenate([t.mbps for t in traces]) * _BYTES_PER_MBIT * payload_fraction
        seg_bytes = dur * rate
        # local (within-trace) cumulative time and bytes at segment ends
        tid = np.repeat(np.arange(len(traces)), n_seg)
        end_t = np.cumsum(dur)
        end_b = np.cumsum(seg_bytes)
        base_t = np.concatenate([[0.0], end_t[self.last][:-1]])
        base_b = np.concatenate([[0.0], end_b[self.last][:-1]])
        self.total_s = end_t[self.last] - base_t
        self.total_bytes = end_b[self.last] - base_b
        self._base_t = base_t
        self._base_b = base_b
        self._key_t = end_t  # global keys: monotone over the concatenation
        self._key_b = end_b
        self.seg_start_s = end_t - dur - base_t[tid]
        self.seg_start_b = end_b - seg_bytes - base_b[tid]
        self.rate_Bps = rate
        self.duration_s = dur
        lat = [
            t.latency_ms / 1000.0 if t.latency_ms is not None else np.full(len(t.duration_s), default_latency_s)
            for t in traces
        ]
        self.latency_s = np.concatenate(lat)

    def __len__(self) -> int:
        return len(self.traces)

    def n_segments(self, tix: np.ndarray) -> np.ndarray:
        """Number of segments of trace ``tix``."""
        return self.last[tix] - self.first[tix] + 1

    def segment_start(self, tix: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Where segment ``j`` of trace ``tix`` starts; segment 0 starts at :attr:`origin_s`
        (Pensieve's first sample time under its wrap rule)."""
        return np.where(j == 0, self.origin_s[tix], self.seg_start_s[self.first[tix] + j])

    def segment(self, tix: np.ndarray, pos_s: np.ndarray) -> np.ndarray:
        """Global index of the segment holding position ``pos_s`` (in [0, total)) of trace ``tix``."""
        seg = np.searchsorted(self._key_t, self._base_t[tix] + pos_s, side="right")
        return np.minimum(np.maximum(seg, self.first[tix]), self.last[tix])

    def bytes_before(self, tix: np.ndarray, pos_s: np.ndarray) -> np.ndarray:
        """C(pos): bytes deliverable from the start of the loop to ``pos_s``."""
        seg = self.segment(tix, pos_s)
        return self.seg_start_b[seg] + (pos_s - self.seg_start_s[seg]) * self.rate_Bps[seg]

    def download(self, tix: np.ndarray, pos_s: np.ndarray, size_bytes: np.ndarray) -> np.ndarray:
        """Seconds to deliver ``size_bytes`` starting at ``pos_s``; exact, wraps the trace."""
        return self.transfer(tix, pos_s, self.bytes_before(tix, pos_s), size_bytes)[0]

    def transfer(
        self, tix: np.ndarray, pos_s: np.ndarray, cum_bytes: np.ndarray, size_bytes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Deliver ``size_bytes`` from ``pos_s`` (where C(pos) = ``cum_bytes``).

        Returns (seconds taken, end position, C at the end position): callers that keep C
        alongside the position save a search per download.
        """
        total_b = self.total_bytes[tix]
        target = cum_bytes + size_bytes
        loops = np.floor(target / total_b)
        rem = target - loops * total_b
        at_end = (rem <= 0) & (loops > 0)  # exactly at the end of a loop: earliest time is that end
        loops = np.where(at_end, loops - 1, loops)
        rem = np.where(at_end, total_b, rem)
        seg = np.searchsorted(self._key_b, self._base_b[tix] + rem, side="left")
        seg = np.minimum(np.maximum(seg, self.first[tix]), self.last[tix])
        rate = self.rate_Bps[seg]
        within = np.where(rate > 0, (rem - self.seg_start_b[seg]) / np.where(rate > 0, rate, 1.0), 0.0)
        end_local = self.seg_start_s[seg] + within
        elapsed = loops * self.total_s[tix] + end_local - pos_s
        wrapped = end_local >= self.total_s[tix]
        return elapsed, np.where(wrapped, 0.0, end_local), np.where(wrapped, 0.0, rem)

    def advance(self, tix: np.ndarray, pos_s: np.ndarray, dt_s: np.ndarray) -> np.ndarray:
        """Position after ``dt_s`` more seconds, wrapped into [0, total)."""
        return np.mod(pos_s + dt_s, self.total_s[tix])

    def latency(self, tix: np.ndarray, pos_s: np.ndarray) -> np.ndarray:
        """Request latency (seconds) of the segment at ``pos_s``."""
        return self.latency_s[self.segment(tix, pos_s)]

    def request_latency(self, tix: np.ndarray, pos_s: np.ndarray) -> np.ndarray:
        """Time to the first byte of a request leaving at ``pos_s`` (Sabre's rule).

        A request needs one unit of latency, which elapses at rate 1 / latency of the segment
        it is in: when the latency crosses into the next segment, the rest of the unit is paid
        at that segment's latency. Within one segment this is that segment's latency.
        """
        total = np.zeros(len(pos_s))
        units = np.ones(len(pos_s))
        seg = self.segment(tix, np.asarray(pos_s, dtype=np.float64))
        left = np.maximum(self.seg_start_s[seg] + self.duration_s[seg] - pos_s, 0.0)  # time to the segment's end
        live = np.ones(len(pos_s), dtype=bool)
        while live.any():
            lat = self.latency_s[seg]
            need = units * lat
            done = live & (need <= left)
            total = np.where(done, total + need, total)
            cross = live & ~done
            total = np.where(cross, total + left, total)
            units = np.where(cross, units - left / np.where(lat > 0, lat, 1.0), units)
            seg = np.where(cross, np.where(seg >= self.last[tix], self.first[tix], seg + 1), seg)
            left = np.where(cross, self.duration_s[seg], left)
            live = cross
        return total

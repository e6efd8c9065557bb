"""A plain-Python loop of Pensieve's chunk-level recurrences, for validation and as a speed baseline.

This follows Pensieve's simulator (``env.get_video_chunk``): walk the trace segment by
segment until the chunk's bytes are delivered, add RTT, apply multiplicative noise,
rebuffer = max(delay - buffer, 0), buffer = max(buffer - delay, 0) + chunk length, and sleep
in ``sleep_quantum_s`` steps while the buffer exceeds the cap. It ignores decode time. The
batched core (:mod:`sim.core`) must agree with it to float precision when decode time is 0.
"""

from __future__ import annotations

import math

__all__ = ["PensieveLoop"]


class PensieveLoop:
    """One session, one chunk per :meth:`step` call, scalars only.

    :param duration_s: trace segment durations.
    :param mbps: trace segment rates.
    :param start_s: start position in the trace.
    """

    def __init__(self, duration_s, mbps, start_s=0.0, *, payload=0.95, rtt_s=0.08, cap_s=60.0, quantum_s=0.5):
        self.dur = [float(d) for d in duration_s]
        self.rate = [float(m) * 1e6 / 8.0 * payload for m in mbps]
        self.rtt_s, self.cap_s, self.quantum_s = rtt_s, cap_s, quantum_s
        self.buffer_s = 0.0
        # position: segment index and seconds already spent in it
        self.seg, self.into = 0, 0.0
        self._skip(float(start_s))

    def _skip(self, t: float) -> None:
        """Advance the trace by ``t`` seconds without delivering anything."""
        while t > 0:
            left = self.dur[self.seg] - self.into
            if t < left:
                self.into += t
                return
            t -= left
            self.seg = (self.seg + 1) % len(self.dur)
            self.into = 0.0

    def step(self, size_bytes: float, chunk_s: float, noise: float = 1.0) -> tuple[float, float, float, float]:
        """Download one chunk; returns (delay_s, rebuffer_s, sleep_s, buffer_s after)."""
        sent, dl = 0.0, 0.0
        while True:
            left = self.dur[self.seg] - self.into
            payload = self.rate[self.seg] * left
            if sent + payload >= size_bytes and self.rate[self.seg] > 0:
                frac = (size_bytes - sent) / self.rate[self.seg]
                dl += frac
                self.into += frac
                if self.into >= self.dur[self.seg]:
                    self.seg = (self.seg + 1) % len(self.dur)
                    self.into = 0.0
                break
            sent += payload
            dl += left
            self.seg = (self.seg + 1) % len(self.dur)
            self.into = 0.0
        delay = (dl + self.rtt_s) * noise
        rebuf = max(delay - self.buffer_s, 0.0)
        self.buffer_s = max(self.buffer_s - delay, 0.0) + chunk_s
        sleep = 0.0
        if self.buffer_s > self.cap_s:
            drain = self.buffer_s - self.cap_s
            sleep = math.ceil(drain / self.quantum_s - 1e-9) * self.quantum_s if self.quantum_s > 0 else drain
            self.buffer_s -= sleep
            self._skip(sleep)
        return delay, rebuf, sleep, self.buffer_s

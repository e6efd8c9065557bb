"""Throughput-driven policies: Pensieve's rate-based rule and Sabre's throughput rule."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.base import DownloadProgress, Observation, Policy, PolicyContext
from policies.estimators import Ewma, harmonic_mean
from policies.rules import PEER_OPTIONS, follows_sabre, nominal_rung, nominal_sizes, throughput_rung

__all__ = ["RateBased", "Throughput", "insufficient_buffer_cap"]


class RateBased(Policy):
    """Rate-based (as in Pensieve): the best rung whose chunk fits the harmonic mean of recent throughput."""

    name = "rate"

    @dataclass(frozen=True, slots=True)
    class Params:
        """:param window: number of past chunks in the harmonic mean.
        :param safety: fraction of the estimate the chunk may use."""

        window: int = 5
        safety: float = 1.0

        def __post_init__(self) -> None:
            if self.window < 1 or not 0 < self.safety <= 2:
                raise ValueError("window must be >= 1 and safety in (0, 2]")

    def act(self, obs: Observation) -> np.ndarray:
        est = harmonic_mean(obs.throughput_mbps, self.params.window)
        return throughput_rung(self.ctx, obs.chunk, est, self.params.safety)


#: Sabre's insufficient-buffer safety factor: starts at 0.9 and is multiplied by 0.9 each time
#: the rule is applied, never below 0.5 (shared by the throughput rule and BOLA-E).
IBR_SAFETY_INIT, IBR_SAFETY_MIN = 0.9, 0.5


def insufficient_buffer_cap(size: np.ndarray, rung: np.ndarray, safe_bytes: np.ndarray) -> np.ndarray:
    """Sabre's insufficient-buffer rule: lower ``rung`` to the last rung before the first one
    (counting up from rung 1) whose chunk is larger than ``safe_bytes``. NaN budgets change nothing."""
    idx = np.arange(len(size))
    exceed = (size[None, :] > safe_bytes[:, None]) & (idx[None, :] >= 1) & (idx[None, :] <= rung[:, None])
    return np.where(exceed.any(axis=1), np.argmax(exceed, axis=1) - 1, rung)


class Throughput(Policy):
    """Sabre's throughput rule (as in dash.js): EWMA estimate times a safety factor, the
    insufficient-buffer rule, and abandonment of downloads that run late.

    Insufficient-buffer rule: a chunk may not be larger than ``s (B x estimate)`` where the
    safety s starts at 0.9 and shrinks by 0.9 per decision down to 0.5. Abandonment: after a
    grace time, a download whose projected total time exceeds ``abandon_multiplier`` chunk
    durations is abandoned for the rung the measured throughput sustains, if that chunk is
    smaller than what is left.
    """

    name = "throughput"

    @dataclass(frozen=True, slots=True)
    class Params:
        """:param safety: fraction of the estimate a chunk may use (Sabre: 0.9).
        :param half_life_fast_s: short EWMA half-life, seconds of download (Sabre: 3).
        :param half_life_slow_s: long EWMA half-life (Sabre: 8).
        :param ibr: apply the insufficient-buffer rule.
        :param abandon: abandon late downloads (latency mode only).
        :param abandon_multiplier: abandon when the projected download time exceeds this many chunk durations.
        :param grace_s: never abandon in the first ``grace_s`` seconds of a request.
        :param peer: ``auto`` (follow the simulator preset), ``sabre`` (Sabre's semantics: nominal
            bitrates, latency apart from throughput, insufficient-buffer rule on B - latency) or ``none``."""

        safety: float = 0.9
        half_life_fast_s: float = 3.0
        half_life_slow_s: float = 8.0
        ibr: bool = True
        abandon: bool = True
        abandon_multiplier: float = 1.8
        grace_s: float = 0.5
        peer: str = "auto"

        def __post_init__(self) -> None:
            if self.peer not in PEER_OPTIONS:
                raise ValueError(f"peer must be one of {', '.join(PEER_OPTIONS)}, got {self.peer!r}")
            if not 0 < self.safety <= 2:
                raise ValueError(f"safety must be in (0, 2], got {self.safety}")
            if min(self.half_life_fast_s, self.half_life_slow_s) <= 0:
                raise ValueError("half-lives must be > 0")
            if self.abandon_multiplier <= 0 or self.grace_s < 0:
                raise ValueError("abandon_multiplier must be > 0 and grace_s >= 0")

    def reset(self, ctx: PolicyContext, n_sessions: int) -> None:
        super().reset(ctx, n_sessions)
        p = self.params
        self.sabre = follows_sabre(p.peer, ctx)
        self.ewma = Ewma((p.half_life_fast_s, p.half_life_slow_s), self.sabre, float(ctx.ladder.duration_s[0]))
        self.ewma.reset(n_sessions)
        self.ibr_safety = np.full(n_sessions, IBR_SAFETY_INIT)

    def act(self, obs: Observation) -> np.ndarray:
        ctx, k, p = self.ctx, obs.chunk, self.params
        est = self.ewma.update(obs)
        if self.sabre:
            lat = self.ewma.latency_s
            rung, size, level = nominal_rung(ctx, k, est, lat, p.safety), nominal_sizes(ctx, k), obs.buffer_s - lat
        else:
            rung, size, level = throughput_rung(ctx, k, est, p.safety), ctx.ladder.size_bytes[k], obs.buffer_s
        if p.ibr and k > 0:  # the first chunk has no estimate: Sabre's safety decays from the second on
            safe = self.ibr_safety * level * est * 1e6 / 8.0
            self.ibr_safety = np.maximum(self.ibr_safety * IBR_SAFETY_INIT, IBR_SAFETY_MIN)
            rung = insufficient_buffer_cap(size, rung, safe)
        return rung

    @property
    def can_abandon(self) -> bool:
        return self.params.abandon

    def abandon(self, progress: DownloadProgress) -> np.ndarray:
        return self.abandon_rule(progress)  # no state to update

    def abandon_rule(self, progress: DownloadProgress) -> np.ndarray:
        ctx, k, p = self.ctx, progress.chunk, self.params
        dl_s = progress.elapsed_s - progress.latency_s
        with np.errstate(divide="ignore", invalid="ignore"):
            rate_Bps = np.where(dl_s > 0, progress.downloaded_bytes / dl_s, 0.0)
            left = progress.size_bytes - progress.downloaded_bytes
            projected = progress.elapsed_s + np.where(rate_Bps > 0, left / rate_Bps, np.inf)
        late = progress.active & (progress.elapsed_s >= p.grace_s) & (dl_s > 0)
        late &= projected > p.abandon_multiplier * ctx.ladder.duration_s[k]
        if self.sabre:  # nominal bitrates, the latency estimate apart; no check of the first segment
            late &= k > 0
            to = nominal_rung(ctx, k, rate_Bps * 8.0 / 1e6, progress.per_entry(self.ewma.latency_s), p.safety)
            kbps = ctx.ladder.kbps
            smaller = progress.size_bytes * kbps[to] / kbps[progress.rung] < left
        else:
            to = throughput_rung(ctx, k, rate_Bps * 8.0 / 1e6, p.safety)
            smaller = ctx.ladder.size_bytes[k][to] < left
        return np.where(late & (to < progress.rung) & smaller, to, -1).astype(np.int64)

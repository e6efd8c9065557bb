"""Classic heuristic policies on perceptual quality: fixed, BBA, rate-based, BOLA.

Each works on q, the chunk quality under the run's QoE (for the ``perceptual`` preset
q = 1 - LPIPS), not on bitrate: where several rungs give the same quality, the cheapest
is taken. Every policy also skips rungs the device cannot decode in real time (decode time
above the chunk's duration) unless no rung is fast enough.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.base import Observation, Policy, PolicyContext
from policies.estimators import harmonic_mean

__all__ = ["BBA", "BOLA", "Fixed", "RateBased", "cheapest_at_least", "best_within"]


def _realtime(ctx: PolicyContext, k: int) -> np.ndarray:
    """Rungs of chunk k the device decodes in real time (all rungs if none does)."""
    ok = ctx.decode_s[k] <= ctx.ladder.duration_s[k]
    return ok if ok.any() else ctx.decode_s[k] <= ctx.decode_s[k].min()


def cheapest_at_least(q: np.ndarray, size: np.ndarray, allowed: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per session, the cheapest allowed rung with q >= target (the best allowed one if none)."""
    ok = allowed[None, :] & (q[None, :] >= target[:, None] - 1e-12)
    cost = np.where(ok, size[None, :], np.inf)
    best = int(np.argmax(np.where(allowed, q, -np.inf)))
    return np.where(ok.any(axis=1), np.argmin(cost, axis=1), best)


def best_within(q: np.ndarray, size: np.ndarray, allowed: np.ndarray, budget: np.ndarray) -> np.ndarray:
    """Per session, the highest-q allowed rung with size <= budget (cheapest on ties; lowest if none)."""
    ok = allowed[None, :] & (size[None, :] <= budget[:, None])
    score = np.where(ok, q[None, :] - size[None, :] * 1e-15, -np.inf)
    lowest = int(np.argmin(np.where(allowed, size, np.inf)))
    return np.where(ok.any(axis=1), np.argmax(score, axis=1), lowest)


class Fixed(Policy):
    """Always the same rung (negative counts from the top: -1 is the highest)."""

    name = "fixed"

    @dataclass(frozen=True, slots=True)
    class Params:
        """:param rung: rung index; negative values count from the highest."""

        rung: int = 0

    def act(self, obs: Observation) -> np.ndarray:
        r = self.params.rung % self.ctx.ladder.n_rungs
        return np.full(obs.n_sessions, r, dtype=np.int64)


class BBA(Policy):
    """Buffer-based (Huang et al. 2014): lowest quality below the reservoir, highest above
    reservoir + cushion, a linear quality target in between."""

    name = "bba"

    @dataclass(frozen=True, slots=True)
    class Params:
        """:param reservoir_s: buffer below which the lowest rung is taken.
        :param cushion_s: buffer span over which the target rises to the top."""

        reservoir_s: float = 5.0
        cushion_s: float = 10.0

        def __post_init__(self) -> None:
            if self.reservoir_s < 0 or self.cushion_s <= 0:
                raise ValueError("reservoir_s must be >= 0 and cushion_s > 0")

    def act(self, obs: Observation) -> np.ndarray:
        ctx, k, p = self.ctx, obs.chunk, self.params
        q, size, allowed = ctx.quality[k], ctx.ladder.size_bytes[k], _realtime(ctx, k)
        frac = np.clip((obs.buffer_s - p.reservoir_s) / p.cushion_s, 0.0, 1.0)
        q_lo, q_hi = q[allowed].min(), q[allowed].max()
        return cheapest_at_least(q, size, allowed, q_lo + frac * (q_hi - q_lo))


class RateBased(Policy):
    """Rate-based: the best rung whose chunk fits the harmonic mean of recent throughput."""

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
        ctx, k = self.ctx, obs.chunk
        est = harmonic_mean(obs.throughput_mbps, self.params.window)
        budget = np.where(np.isnan(est), 0.0, est) * self.params.safety * 1e6 / 8.0 * ctx.ladder.duration_s[k]
        return best_within(ctx.quality[k], ctx.ladder.size_bytes[k], _realtime(ctx, k), budget)


class BOLA(Policy):
    """BOLA-BASIC (Spiteri et al. 2016) with perceptual utilities.

    Utility of rung m: v_m = ln(S_max/S_min) (q_m - q_min) / (q_max - q_min), i.e. quality
    rescaled to the range of BOLA's original log-size utility. Picks
    argmax_m (V (v_m + gamma_p) - B) / S_m with V = (qmax_s - p) / (v_max + gamma_p).
    """

    name = "bola"

    @dataclass(frozen=True, slots=True)
    class Params:
        """:param gamma: gamma * p, the rebuffer-aversion term (BOLA's default 5).
        :param qmax: buffer target Q_max in seconds (BOLA's default 25)."""

        gamma: float = 5.0
        qmax: float = 25.0

        def __post_init__(self) -> None:
            if self.gamma <= 0 or self.qmax <= 0:
                raise ValueError("gamma and qmax must be > 0")

    def act(self, obs: Observation) -> np.ndarray:
        ctx, k, p = self.ctx, obs.chunk, self.params
        q, size, allowed = ctx.quality[k], ctx.ladder.size_bytes[k], _realtime(ctx, k)
        span = q[allowed].max() - q[allowed].min()
        scale = np.log(size[allowed].max() / size[allowed].min())
        v = (q - q[allowed].min()) / span * scale if span > 0 else np.zeros_like(q)
        chunk_s = ctx.ladder.duration_s[k]
        V = max(p.qmax - chunk_s, 1e-6) / (v[allowed].max() + p.gamma)
        score = (V * (v[None, :] + p.gamma) - obs.buffer_s[:, None]) / size[None, :]
        score = np.where(allowed[None, :], score, -np.inf)
        return np.argmax(score, axis=1)

"""What a client learns about its decoder: the predicted decode time of every rung.

Decode-aware policies (``decode_aware=true`` on ``mpc``, ``robustmpc`` and ``bola``) plan with

    predicted[k, r] = nominal[k, r] x ratio[decoder of r],

per session, where ``nominal`` is the device profile's table (:attr:`PolicyContext.decode_s`,
all a decode-unaware policy knows) and ``ratio`` is the median of the last ``memory`` observed
ratios decode time / nominal time of that decoder variant (``Observation.decode_s`` with
``last_rung``), as a client timing its own decoder would measure them. The median ignores a
single jitter spike; throttling, which builds over minutes, is followed within a chunk or two.
A decoder variant not yet seen takes the largest ratio seen on any other (a phone slower than
its profile is slower at everything), and 1 before the first chunk.

They also price the start-up: before any throughput is known they plan the first chunk with a
prior throughput (``startup_mbps``), so a rung that is small but slow to decode on the phone
is not fetched first for its size alone.
"""

from __future__ import annotations

import warnings

import numpy as np

from policies.base import Observation, PolicyContext

__all__ = ["DecodeEstimate", "faster_rung"]


class DecodeEstimate:
    """Per session and decoder variant: observed / nominal decode time (see the module docstring)."""

    def __init__(self, memory: int = 3):
        if memory < 1:
            raise ValueError(f"memory must be >= 1, got {memory}")
        self.memory = memory

    def reset(self, ctx: PolicyContext, n_sessions: int) -> None:
        self.ctx = ctx
        names = sorted(set(ctx.ladder.decoders))
        self.index = np.array([names.index(d) for d in ctx.ladder.decoders])  # rung -> decoder variant
        self.hist = np.full((n_sessions, len(names), self.memory), np.nan)

    def update(self, obs: Observation) -> None:
        """Record the decode time of the chunk before ``obs.chunk`` (call once per chunk)."""
        if obs.chunk == 0 or obs.decode_s is None:
            return
        r = obs.last_rung
        nominal = self.ctx.decode_s[obs.chunk - 1, np.maximum(r, 0)]
        seen = obs.decode_s[:, -1]
        rows = np.flatnonzero((r >= 0) & (nominal > 0) & np.isfinite(seen))
        d = self.index[r[rows]]
        self.hist[rows, d] = np.concatenate([self.hist[rows, d, 1:], (seen[rows] / nominal[rows])[:, None]], axis=1)

    def ratio(self) -> np.ndarray:
        """Observed / nominal per session and decoder variant, ``(sessions, variants)``."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: nothing seen yet
            med = np.nanmedian(self.hist, axis=2)
        seen = np.isfinite(med)
        fallback = np.where(seen.any(axis=1), np.max(np.where(seen, med, -np.inf), axis=1), 1.0)
        return np.where(seen, med, fallback[:, None])

    def predict(self, k0: int, k1: int) -> np.ndarray:
        """Predicted decode time of chunks ``k0 .. k1-1`` at every rung, ``(sessions, k1 - k0, rungs)``."""
        return self.ctx.decode_s[k0:k1][None, :, :] * self.ratio()[:, None, self.index]


def faster_rung(m: np.ndarray, pred_s: np.ndarray, chunk_s: float, quality: np.ndarray, size: np.ndarray) -> np.ndarray:
    """``m`` where its predicted decode time fits in the chunk's play time; else the best-quality
    rung that fits and is no larger than ``m`` (the fastest-decoding rung if none does).

    :param pred_s: predicted decode time per session and rung, ``(sessions, rungs)``.
    """
    rows = np.arange(len(m))
    fits = pred_s <= chunk_s
    ok = fits & (size[None, :] <= size[m][:, None])
    best = np.argmax(np.where(ok, quality[None, :], -np.inf), axis=1)
    alt = np.where(ok.any(axis=1), best, np.argmin(pred_s, axis=1))
    return np.where(fits[rows, m], m, alt).astype(np.int64)

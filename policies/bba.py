"""BBA: buffer-based rate adaptation (Huang et al., SIGCOMM 2014), on perceptual quality."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.base import Observation, Policy
from policies.rules import cheapest_at_least, realtime_rungs

__all__ = ["BBA"]


class BBA(Policy):
    """BBA-0 with a quality map instead of a rate map.

    The map f(B) is the lowest quality of the chunk's (real-time) rungs below the reservoir
    r, the highest at and above r + cushion c, and linear in between. As in BBA-0 the rung
    only moves when f(B) crosses a neighbour of the previous rung: up to the best rung with
    q <= f(B) once that is above the previous rung, down to the cheapest rung with q >= f(B)
    once that is below it; otherwise the previous rung is kept (the first chunk takes the
    former). Pensieve's parameters: r = 5 s, c = 10 s.
    """

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
        q, size, allowed = ctx.quality[k], ctx.ladder.size_bytes[k], realtime_rungs(ctx, k)
        q_lo, q_hi = q[allowed].min(), q[allowed].max()
        frac = np.clip((obs.buffer_s - p.reservoir_s) / p.cushion_s, 0.0, 1.0)
        target = q_lo + frac * (q_hi - q_lo)
        tol = 1e-12 * max(1.0, abs(q_hi))
        # best rung at or under the target (cheapest on equal quality)
        under = allowed[None, :] & (q[None, :] <= target[:, None] + tol)
        up = np.argmax(np.where(under, q[None, :] - size[None, :] * 1e-15, -np.inf), axis=1)
        # cheapest rung at or over the target
        over = allowed[None, :] & (q[None, :] >= target[:, None] - tol)
        down = np.argmin(np.where(over, size[None, :], np.inf), axis=1)
        # the previous rung, or a cheaper allowed one of the same quality in this chunk
        valid_prev = (obs.last_rung >= 0) & allowed[np.maximum(obs.last_rung, 0)]
        q_prev = q[np.maximum(obs.last_rung, 0)]
        prev = cheapest_at_least(q, size, allowed, q_prev)
        out = np.where(valid_prev, prev, up)
        out = np.where(valid_prev & (q[up] > q_prev), up, out)
        out = np.where(valid_prev & (q[down] < q_prev), down, out)
        return out.astype(np.int64)

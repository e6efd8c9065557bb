"""The trivial policy: always the same rung."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from abr.errors import InputError
from policies.base import Observation, Policy

__all__ = ["Fixed"]


class Fixed(Policy):
    """Always the same rung (negative counts from the top: -1 is the highest)."""

    name = "fixed"

    @dataclass(frozen=True, slots=True)
    class Params:
        """:param rung: rung index; negative values count from the highest."""

        rung: int = 0

    def reset(self, ctx, n_sessions: int) -> None:
        n = ctx.ladder.n_rungs
        if not -n <= self.params.rung < n:
            raise InputError(f"policy 'fixed': rung {self.params.rung} is not a rung of ladder {ctx.ladder.name} "
                             f"(0..{n - 1}, or -{n}..-1 from the top)")  # fmt: skip
        super().reset(ctx, n_sessions)

    def act(self, obs: Observation) -> np.ndarray:
        r = self.params.rung % self.ctx.ladder.n_rungs
        return np.full(obs.n_sessions, r, dtype=np.int64)

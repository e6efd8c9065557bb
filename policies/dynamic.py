"""Dynamic: BOLA when the buffer is high, the throughput rule when it is low (Sabre's ``dynamic``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.base import DownloadProgress, Observation, Policy, PolicyContext
from policies.bola import BOLA
from policies.rate import Throughput

__all__ = ["Dynamic"]


class Dynamic(Policy):
    """Switches between BOLA-U and the throughput rule with hysteresis (Sabre; dash.js's DYNAMIC).

    Both rules decide every chunk (so their state stays current; BOLA's up-switch limit
    compares with its own last choice, not the fetched rung, as in Sabre). A session in BOLA mode
    falls back to the throughput rule when the buffer is below ``low_s`` and BOLA asks for a
    lower rung than the throughput rule; it returns to BOLA when the buffer is above
    ``high_s`` and BOLA's rung is at least the throughput rule's. Sessions start in throughput
    mode. Abandonment uses the throughput rule's (as Sabre does; latency mode only).
    """

    name = "dynamic"

    @dataclass(frozen=True, slots=True)
    class Params:
        """:param low_s: leave BOLA below this buffer level (Sabre: 10 s).
        :param high_s: enter BOLA above this buffer level (Sabre: 10 s; dash.js's variant widens the band).
        :param gamma: BOLA's gamma * p.
        :param qmax: BOLA's Q_max.
        :param abandon: abandon late downloads (throughput rule).
        :param peer: ``auto`` (follow the simulator preset), ``sabre`` or ``none``: passed to both rules."""

        low_s: float = 10.0
        high_s: float = 10.0
        gamma: float = 5.0
        qmax: float = 25.0
        abandon: bool = True
        peer: str = "auto"

        def __post_init__(self) -> None:
            if not 0 <= self.low_s <= self.high_s:
                raise ValueError(f"need 0 <= low_s <= high_s, got {self.low_s}, {self.high_s}")

    def __init__(self, params=None):
        super().__init__(params)
        p = self.params
        self.bola = BOLA(BOLA.Params(gamma=p.gamma, qmax=p.qmax, variant="u", abandon=False, peer=p.peer))
        self.tput = Throughput(Throughput.Params(abandon=p.abandon, peer=p.peer))

    def reset(self, ctx: PolicyContext, n_sessions: int) -> None:
        super().reset(ctx, n_sessions)
        self.bola.reset(ctx, n_sessions)
        self.tput.reset(ctx, n_sessions)
        self.is_bola = np.zeros(n_sessions, dtype=bool)

    def act(self, obs: Observation) -> np.ndarray:
        b, t = self.bola.act(obs), self.tput.act(obs)
        level, p = obs.buffer_s, self.params
        leave = self.is_bola & (level < p.low_s) & (b < t)
        enter = ~self.is_bola & (level > p.high_s) & (b >= t)
        self.is_bola = (self.is_bola & ~leave) | enter
        return np.where(self.is_bola, b, t)

    @property
    def can_abandon(self) -> bool:
        return self.tput.can_abandon

    def abandon(self, progress: DownloadProgress) -> np.ndarray:
        return self.tput.abandon(progress)

    def abandon_rule(self, progress: DownloadProgress) -> np.ndarray:
        return self.tput.abandon_rule(progress)

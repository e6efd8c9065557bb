"""The policy interface: what a policy sees and what it returns.

The simulator steps a batch of sessions in lockstep (all sessions are at the same chunk
index). Before each chunk it hands the policy an :class:`Observation` of arrays with a
leading session axis and expects one rung index per session back. Everything fixed for
the run (ladder, chunk qualities under the QoE in use, decode times on the device) comes
once, in the :class:`PolicyContext` given to :meth:`Policy.reset`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from abr.ladder import Ladder
from abr.qoe import QoE

__all__ = ["DownloadProgress", "Observation", "Policy", "PolicyContext"]


@dataclass(frozen=True, eq=False)
class PolicyContext:
    """What is fixed for a run.

    :param ladder: the ladder.
    :param qoe: the QoE in use.
    :param quality: q of every chunk and rung under ``qoe``, shape ``(chunks, rungs)``.
    :param decode_s: decode time of every chunk and rung on the device, seconds.
    :param buffer_cap_s: the player's buffer cap, seconds.
    :param peer: the simulator whose semantics the run reproduces (``sabre`` under the
        ``sabre`` preset, else ""); policies with a ``peer=auto`` option follow it.
    """

    ladder: Ladder
    qoe: QoE
    quality: np.ndarray
    decode_s: np.ndarray
    buffer_cap_s: float
    peer: str = ""

    @property
    def chunk_s(self) -> np.ndarray:
        return self.ladder.duration_s


@dataclass(frozen=True, eq=False)
class Observation:
    """The state of every session just before chunk ``chunk`` is requested.

    Histories have shape ``(sessions, history)``, oldest first, NaN where no chunk has been
    downloaded yet.

    :param chunk: index of the chunk to choose (same for all sessions).
    :param buffer_s: downloaded but unplayed video, seconds.
    :param last_rung: rung of the previous chunk, -1 before the first.
    :param throughput_mbps: observed throughput of past chunks (size / delay), Mbit/s.
    :param delay_s: download delay of past chunks, seconds.
    :param decode_backlog_s: decode work still queued on the device, seconds.
    :param clock_s: session time, seconds.
    :param stall_s: total stall time so far, seconds (startup excluded).
    :param play_end_s: session time at which the scheduled playback of the downloaded chunks
        ends, seconds: ``play_end_s - clock_s`` is the buffer plus any stall a slow decoder has
        already scheduled. None where the source of the observation does not provide it;
        planning policies then fall back to ``buffer_s``.
    :param decode_s: decode time of past chunks on the device, seconds (as a client measures
        it; with ``last_rung`` a policy learns how fast each decoder really runs). None where
        the source of the observation does not provide it.
    :param latency_s: request latency (time to first byte) of past chunks, seconds, shaped
        like the histories (0 in Pensieve's network mode, where the RTT is folded into the
        delay); None where the source does not provide it.
    """

    chunk: int
    buffer_s: np.ndarray
    last_rung: np.ndarray
    throughput_mbps: np.ndarray
    delay_s: np.ndarray
    decode_backlog_s: np.ndarray
    clock_s: np.ndarray
    stall_s: np.ndarray
    play_end_s: np.ndarray | None = None
    decode_s: np.ndarray | None = None
    latency_s: np.ndarray | None = None

    @property
    def play_ahead_s(self) -> np.ndarray:
        """Time until the scheduled playback runs dry (0 if it has), else the buffer."""
        if self.play_end_s is None:
            return self.buffer_s
        return np.maximum(self.play_end_s - self.clock_s, 0.0)

    @property
    def n_sessions(self) -> int:
        return len(self.buffer_s)


@dataclass(frozen=True, eq=False)
class DownloadProgress:
    """A chunk download in flight, seen at one of the simulator's progress checks.

    Arrays of shape ``(sessions,)``; only entries where ``active`` is True are downloads in
    flight (the others have finished and their answer is ignored).

    :param chunk: index of the chunk being downloaded.
    :param active: sessions whose download is still in flight.
    :param rung: rung being downloaded.
    :param size_bytes: size of that download.
    :param downloaded_bytes: bytes received so far.
    :param elapsed_s: time since the request left (latency included).
    :param latency_s: time to the first byte of this request.
    :param buffer_s: downloaded but unplayed video now, seconds.
    :param session: None: entry i is session i. Otherwise the session of each entry: the
        simulator asks :meth:`Policy.abandon_rule` about many checks of a session at once.
    """

    chunk: int
    active: np.ndarray
    rung: np.ndarray
    size_bytes: np.ndarray
    downloaded_bytes: np.ndarray
    elapsed_s: np.ndarray
    latency_s: np.ndarray
    buffer_s: np.ndarray
    session: np.ndarray | None = None

    def per_entry(self, state: np.ndarray) -> np.ndarray:
        """A per-session array of the policy's state, one value per entry."""
        return state if self.session is None else state[self.session]


class Policy(ABC):
    """An ABR policy: ``reset`` once per run, then ``act`` before every chunk.

    Subclasses set ``name`` (the registry key) and, if they take parameters, ``Params``
    (a frozen dataclass whose fields are the ``--policy name:key=value`` options).
    """

    name: ClassVar[str]
    Params: ClassVar[type | None] = None

    def __init__(self, params=None):
        if self.Params is not None:
            self.params = params if params is not None else self.Params()
        else:
            self.params = None
        self.ctx: PolicyContext | None = None

    def reset(self, ctx: PolicyContext, n_sessions: int) -> None:
        """Start a run of ``n_sessions`` sessions."""
        self.ctx = ctx

    @abstractmethod
    def act(self, obs: Observation) -> np.ndarray:
        """Rung index for every session, shape ``(sessions,)``, int."""

    def abandon(self, progress: DownloadProgress) -> np.ndarray:
        """Give up downloads in flight: per session a lower rung to fetch instead, or -1.

        Consulted by the simulator only in its per-request latency mode, and only for
        policies that override it (see :attr:`can_abandon`). The default never abandons.
        """
        return np.full(len(progress.rung), -1, dtype=np.int64)

    def abandon_rule(self, progress: DownloadProgress) -> np.ndarray:
        """What :meth:`abandon` would answer, without its side effects, for every entry of
        ``progress`` (several entries may be checks of one session: :attr:`DownloadProgress.session`).

        A policy that defines it lets the simulator evaluate many progress checks in one call
        and consult :meth:`abandon` only at the checks where it gives a download up (see
        :attr:`has_abandon_rule`), so a slow download costs a few calls, not one per check.
        :meth:`abandon` may then change the policy's state only where it abandons.
        """
        raise NotImplementedError(f"{type(self).__name__} has no vectorised abandonment rule")

    @property
    def has_abandon_rule(self) -> bool:
        """Whether :meth:`abandon_rule` is defined (the simulator then skips checks in bulk)."""
        return type(self).abandon_rule is not Policy.abandon_rule

    @property
    def can_abandon(self) -> bool:
        """Whether this policy may abandon downloads (it overrides :meth:`abandon`)."""
        return type(self).abandon is not Policy.abandon

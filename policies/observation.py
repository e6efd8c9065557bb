"""The observation vector: the contract between the environments (``sim.env``) and learned
policies (``policies.rl``). Both build it with :class:`ObservationBuilder`, so a model sees the
same layout in training and in ``sim.run``; it lives with the policies, below the simulator."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from abr.ladder import Ladder
from policies.base import Observation, PolicyContext

__all__ = ["OBS_HIGH", "OBS_SCALES", "ObservationBuilder", "check_start_rung", "observation_size"]

#: Normalisation constants of the observation (see :class:`sim.env.StreamingEnv`).
OBS_SCALES = {"throughput_mbps": 10.0, "delay_s": 10.0, "rate_mbps": 10.0}
OBS_HIGH = 100.0


def observation_size(history: int, n_rungs: int, lookahead: int = 1) -> int:
    """Length of the observation vector."""
    return 3 * history + 3 * n_rungs + 4 + 2 * (lookahead - 1) * n_rungs


@dataclass(frozen=True, eq=False)
class ObservationBuilder:
    """Turns an :class:`~policies.base.Observation` into the normalised vector of every session.

    One builder serves the single env, the batched vector env and trained RL policies, so a
    model sees the same layout in training and in ``sim.run``. Layout (H = history, R =
    rungs, L = lookahead), all clipped to [0, :data:`OBS_HIGH`]:

    ===========  =========================================================================
    slice        meaning (unit / normalisation)
    ===========  =========================================================================
    [0, H)       throughput of past chunks, Mbit/s / 10, oldest first, 0 = no chunk yet
    [H, 2H)      download delay of past chunks, s / 10
    2H           buffer, s / buffer cap
    2H+1         last rung, (index + 1) / R (0 before the first chunk)
    2H+2 ..      next chunk's bitrate for every rung, Mbit/s / 10 (R values)
    ..           next chunk's quality q for every rung, q / max |q| of the ladder (R values)
    ..           decoder speed for every rung: decode time / chunk duration (R values)
    2H+3R+2      decode backlog, s / chunk duration
    2H+3R+3      chunks left / total chunks
    2H+3R+4 ..   quality q of every rung for the L - 1 chunks after the next, as above,
                 0 past the end of the video ((L - 1) R values; none when L = 1)
    ..           bitrate of every rung for those L - 1 chunks, Mbit/s / 10 ((L - 1) R values)
    last H       decode time of past chunks as the client measured it, s / 10, oldest first
    ===========  =========================================================================

    A lookahead L > 1 shows the agent the upcoming qualities and sizes an MPC controller plans
    over (the switch penalty makes the best rung depend on them; a clip's first chunk carries
    the first-frame latent). The measured decode times are what a real client knows about its
    phone (jitter, throttling, which phone of a population); the decoder speeds are the
    profile's nominal figures.
    """

    history: int
    buffer_cap_s: float
    duration_s: np.ndarray
    table: np.ndarray  # per chunk: bitrates, qualities, decode speeds, two per-step slots, lookahead
    lookahead: int = 1

    @classmethod
    def from_context(cls, ctx: PolicyContext, history: int, lookahead: int = 1) -> ObservationBuilder:
        if lookahead < 1:
            raise ValueError(f"lookahead must be >= 1, got {lookahead}")
        lad, dur = ctx.ladder, ctx.ladder.duration_s[:, None]
        q = ctx.quality / max(float(np.abs(ctx.quality).max()), 1e-9)
        rate = lad.size_bytes * 8e-6 / dur / OBS_SCALES["rate_mbps"]
        pad = np.zeros((lookahead, lad.n_rungs))
        q_pad, rate_pad = np.concatenate([q, pad]), np.concatenate([rate, pad])
        ahead = [q_pad[j : j + lad.n_chunks] for j in range(1, lookahead)]
        ahead += [rate_pad[j : j + lad.n_chunks] for j in range(1, lookahead)]
        table = np.concatenate([rate, q, ctx.decode_s / dur, np.zeros((lad.n_chunks, 2)), *ahead], axis=1)
        return cls(history, ctx.buffer_cap_s, lad.duration_s, table, lookahead)

    @property
    def n_chunks(self) -> int:
        return len(self.duration_s)

    @property
    def n_rungs(self) -> int:
        return (self.table.shape[1] - 2) // (2 * self.lookahead + 1)

    @property
    def size(self) -> int:
        return observation_size(self.history, self.n_rungs, self.lookahead)

    def space(self) -> spaces.Box:
        return spaces.Box(0.0, OBS_HIGH, (self.size,), np.float32)

    def __call__(self, obs: Observation) -> np.ndarray:
        """Shape ``(sessions, size)``, float32."""
        n, h, k = obs.n_sessions, self.history, min(obs.chunk, self.n_chunks - 1)
        if obs.throughput_mbps.shape[1] != h:
            raise ValueError(f"observation has history {obs.throughput_mbps.shape[1]}, builder expects {h}")
        out = np.empty((n, self.size))
        np.multiply(obs.throughput_mbps, 1.0 / OBS_SCALES["throughput_mbps"], out=out[:, :h])
        np.multiply(obs.delay_s, 1.0 / OBS_SCALES["delay_s"], out=out[:, h : 2 * h])
        np.multiply(obs.buffer_s, 1.0 / self.buffer_cap_s, out=out[:, 2 * h])
        np.multiply(obs.last_rung + 1, 1.0 / self.n_rungs, out=out[:, 2 * h + 1])
        out[:, 2 * h + 2 : -h] = self.table[k]
        tail = 2 * h + 3 * self.n_rungs + 2  # the two per-step slots
        np.multiply(obs.decode_backlog_s, 1.0 / self.duration_s[k], out=out[:, tail])
        out[:, tail + 1] = (self.n_chunks - obs.chunk) / self.n_chunks
        if obs.decode_s is None:
            out[:, -h:] = 0.0
        else:
            np.multiply(obs.decode_s, 1.0 / OBS_SCALES["delay_s"], out=out[:, -h:])
        out[np.isnan(out)] = 0.0
        return np.clip(out, 0.0, OBS_HIGH, out=out).astype(np.float32)


def check_start_rung(start_rung: int | None, ladder: Ladder) -> int | None:
    """``start_rung`` if it names a rung of ``ladder`` (or is None), else ValueError."""
    if start_rung is None:
        return None
    if not 0 <= int(start_rung) < ladder.n_rungs:
        raise ValueError(f"start_rung must be a rung of the ladder (0..{ladder.n_rungs - 1}), got {start_rung}")
    return int(start_rung)

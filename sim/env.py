"""Gymnasium environment: one streaming session, one chunk per step.

The environment is a batch of one on :class:`sim.core.BatchSimulator`, so it runs the exact
code of the batched core; :class:`ObservationBuilder` is shared with the batched vector env
(:mod:`sim.vecenv`) and trained policies (:mod:`policies.rl`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from abr.errors import InputError
from abr.ladder import Ladder
from abr.qoe import QoE, get_qoe
from abr.registry import DEFAULT_LADDER, get_ladder
from policies.base import Observation, PolicyContext
from sim.core import SIM_PRESETS, BatchSimulator, SimConfig, StepInfo
from sim.device import DeviceProfile, get_device
from sim.rng import session_keys
from traces.sets import load_traces
from traces.trace import Trace

__all__ = ["OBS_HIGH", "OBS_SCALES", "ObservationBuilder", "StreamingEnv", "check_start_rung", "observation_size"]

#: Normalisation constants of the observation (see :class:`StreamingEnv`).
OBS_SCALES = {"throughput_mbps": 10.0, "delay_s": 10.0, "rate_mbps": 10.0}
OBS_HIGH = 100.0
DEFAULT_DEVICE = "h200"


def observation_size(history: int, n_rungs: int, lookahead: int = 1) -> int:
    """Length of the observation vector."""
    return 2 * history + 3 * n_rungs + 4 + (lookahead - 1) * n_rungs


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
    ===========  =========================================================================

    A lookahead L > 1 shows the agent the upcoming qualities an MPC controller plans over
    (the switch penalty makes the best rung depend on them).
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
        padded = np.concatenate([q, np.zeros((lookahead, lad.n_rungs))])
        ahead = [padded[j : j + lad.n_chunks] for j in range(1, lookahead)]
        table = np.concatenate(
            [
                lad.size_bytes * 8e-6 / dur / OBS_SCALES["rate_mbps"],
                q,
                ctx.decode_s / dur,
                np.zeros((lad.n_chunks, 2)),
                *ahead,
            ],
            axis=1,
        )
        return cls(history, ctx.buffer_cap_s, lad.duration_s, table, lookahead)

    @property
    def n_chunks(self) -> int:
        return len(self.duration_s)

    @property
    def n_rungs(self) -> int:
        return (self.table.shape[1] - 2) // (self.lookahead + 2)

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
        out[:, 2 * h + 2 :] = self.table[k]
        tail = 2 * h + 3 * self.n_rungs + 2  # the two per-step slots
        np.multiply(obs.decode_backlog_s, 1.0 / self.duration_s[k], out=out[:, tail])
        out[:, tail + 1] = (self.n_chunks - obs.chunk) / self.n_chunks
        out[np.isnan(out)] = 0.0
        return np.clip(out, 0.0, OBS_HIGH, out=out).astype(np.float32)


def check_start_rung(start_rung: int | None, ladder: Ladder) -> int | None:
    """``start_rung`` if it names a rung of ``ladder`` (or is None), else ValueError."""
    if start_rung is None:
        return None
    if not 0 <= int(start_rung) < ladder.n_rungs:
        raise ValueError(f"start_rung must be a rung of the ladder (0..{ladder.n_rungs - 1}), got {start_rung}")
    return int(start_rung)


def step_info(info: StepInfo, i: int = 0) -> dict[str, Any]:
    """Per-chunk metrics of session ``i`` as plain Python scalars."""
    out: dict[str, Any] = {"chunk": info.chunk}
    for name in ("rung", "size_bytes", "delay_s", "throughput_mbps", "decode_s", "stall_s", "wait_s",
                 "buffer_s", "quality", "lpips", "severe_frac", "reward", "abandoned", "wasted_bytes"):  # fmt: skip
        v = getattr(info, name)[i]
        out[name] = int(v) if name in ("rung", "abandoned") else float(v)
    return out


class StreamingEnv(gym.Env):
    """Adaptive-bitrate streaming of one video over one network trace.

    ## Description
    Every step the agent picks the rung of the next chunk of a :class:`abr.Ladder` (for
    prompt streaming: the rank of the Promptus prompts). The simulator downloads it over a
    trace-driven network, decodes it on the device (a decoder slower than real time stalls
    playback) and plays it. The model is that of :mod:`sim.core`.

    ## Action Space
    ``Discrete(R)``: the rung index, 0 = lowest bitrate.

    ## Observation Space
    ``Box(0, 100, (2H + 3R + 4 + (L - 1)R,), float32)`` (L = ``lookahead``), see
    :class:`ObservationBuilder` for the table (throughput and delay history, buffer, last
    rung, next chunk's bitrate, quality and decode speed for every rung, decode backlog,
    chunks left, qualities of the L - 1 chunks after the next).

    ## Rewards
    The chunk's QoE under the chosen preset (:mod:`abr.qoe`): quality minus stall and switch
    penalties. The first chunk's startup delay counts as a stall.

    ## Starting State
    A trace drawn uniformly from the given traces, a random start position within it
    (``config.network.random_start``), empty buffer. With ``start_rung`` the first chunk
    has already been fetched at that rung (its QoE is not a reward).

    ## Episode End
    Terminates after the last chunk of the ladder; never truncates.

    ## Arguments
    - ``traces``: list of :class:`traces.Trace` or a ``--trace`` spec (default the ``lte`` model).
    - ``ladder``: :class:`abr.Ladder` or a ladder spec (default :data:`abr.DEFAULT_LADDER`).
    - ``device``: :class:`sim.DeviceProfile` or profile name (default ``h200``).
    - ``qoe``: :class:`abr.QoE` or preset name (default ``perceptual``).
    - ``config``: :class:`sim.SimConfig` or preset name (``promptabr`` default; see ``sim.core.SIM_PRESETS``).
    - ``start_rung``: rung of the first chunk, fetched before the agent acts (default None:
      the agent picks it).
    - ``lookahead``: chunks whose per-rung quality the observation shows (default 1: the next).

    ``info`` holds the chunk's metrics (rung, bytes, delay, stall, buffer, LPIPS, ...).

    ## Version History
    - v0: initial version.

    Example::

        >>> import gymnasium as gym, sim
        >>> env = gym.make("promptabr/Streaming-v0")
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(0)
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        traces: list[Trace] | str = "lte",
        ladder: Ladder | str = DEFAULT_LADDER,
        device: DeviceProfile | str = DEFAULT_DEVICE,
        qoe: QoE | str = "perceptual",
        config: SimConfig | str = "promptabr",
        start_rung: int | None = None,
        lookahead: int = 1,
    ):
        trace_list = load_traces(traces) if isinstance(traces, str) else list(traces)
        ladder = get_ladder(ladder) if isinstance(ladder, str) else ladder
        device = get_device(device) if isinstance(device, str) else device
        qoe = get_qoe(qoe) if isinstance(qoe, str) else qoe
        if isinstance(config, str):
            if config not in SIM_PRESETS:
                raise InputError(f"unknown simulator preset {config!r}; valid: {', '.join(SIM_PRESETS)}")
            config = SIM_PRESETS[config]
        self.sim = BatchSimulator(trace_list, ladder, device, qoe, config)
        self.builder = ObservationBuilder.from_context(self.sim.context, config.player.history, lookahead)
        self.start_rung = check_start_rung(start_rung, ladder)
        self.action_space = spaces.Discrete(ladder.n_rungs)
        self.observation_space = self.builder.space()
        self._obs: Observation | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        tix = int(self.np_random.integers(len(self.sim.bank)))
        session = int(self.np_random.integers(2**62))
        self._obs = self.sim.reset(np.array([tix]), session_keys(0, np.array([session])))
        if self.start_rung is not None:
            self._obs, _, _ = self.sim.step(np.array([self.start_rung]))
        return self.builder(self._obs)[0], {"trace": self.sim.bank.traces[tix].name}

    def step(self, action):
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} not in {self.action_space}")
        self._obs, info, done = self.sim.step(np.array([int(action)]))
        obs = self.builder(self._obs)[0]
        return obs, float(info.reward[0]), done, False, step_info(info)

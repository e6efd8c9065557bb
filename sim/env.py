"""Gymnasium environments: one streaming session per env, one chunk per step.

:class:`StreamingEnv` is ``gymnasium.make("promptabr/Streaming-v0")``; :class:`StreamingVectorEnv`
is ``gymnasium.make_vec("promptabr/Streaming-v0", num_envs=N)``, which steps all N sessions
with one call of the batched core (:class:`sim.core.BatchSimulator`). Both run the model of
:mod:`sim.core`: the vector env is the core; the single env runs its scalar mirror
(:mod:`sim.scalar`, bit-for-bit the same numbers, 10-20x faster than a batch of one) where
that mirror supports the set-up, else the core with a batch of one.

Episodes are counter-based: episode e of an env seeded with s plays trace and session key
drawn from (s, e) alone (:func:`episode_sessions`), so ``make_vec`` with seed s equals
``SyncVectorEnv`` of single envs seeded s, s + 1, ..., observation for observation.
:class:`ObservationBuilder` is shared with the SB3 vector env (:mod:`sim.vecenv`) and trained
policies (:mod:`policies.rl`).
"""

from __future__ import annotations

import operator
from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from abr.ladder import Ladder
from abr.qoe import QoE
from abr.registry import DEFAULT_LADDER
from policies.base import Observation
from policies.observation import (
    OBS_HIGH,
    OBS_SCALES,
    ObservationBuilder,
    check_start_rung,
    observation_size,
)
from sim.core import BatchSimulator, SimConfig, StepInfo
from sim.device import DeviceProfile
from sim.resolve import DEFAULT_DEVICE, resolve_run
from sim.rng import session_keys, uniform
from sim.scalar import ScalarSession, supports
from sim.scalar import session_key as _session_key
from sim.scalar import uniform as _uniform_one
from traces.sets import load_traces
from traces.trace import Trace

__all__ = [
    "OBS_HIGH",
    "OBS_SCALES",
    "ObservationBuilder",
    "StreamingEnv",
    "StreamingVectorEnv",
    "check_start_rung",
    "episode_sessions",
    "make_simulator",
    "observation_size",
]



#: per-chunk metrics in ``info`` (integers: rung, abandoned; floats: the rest), after ``chunk``
INFO_FIELDS = ("rung", "size_bytes", "delay_s", "throughput_mbps", "decode_s", "stall_s", "wait_s",
               "buffer_s", "quality", "lpips", "severe_frac", "reward", "abandoned", "wasted_bytes")  # fmt: skip
_INT_FIELDS = ("rung", "abandoned")


def step_info(info: StepInfo, i: int = 0) -> dict[str, Any]:
    """Per-chunk metrics of session ``i`` as plain Python scalars."""
    out: dict[str, Any] = {"chunk": info.chunk}
    for name in INFO_FIELDS:
        v = getattr(info, name)[i]
        out[name] = int(v) if name in _INT_FIELDS else float(v)
    return out


def make_simulator(
    traces: Sequence[Trace] | str | None = None,
    ladder: Ladder | str = DEFAULT_LADDER,
    device: DeviceProfile | str = DEFAULT_DEVICE,
    qoe: QoE | str = "perceptual",
    config: SimConfig | str = "promptabr",
    *,
    trace: Sequence[Trace] | str | None = None,
) -> BatchSimulator:
    """The core for these arguments, each a name (as on the command line) or an object.

    ``traces`` (default the ``lte`` model) has the alias ``trace`` (the CLI's ``--trace``).
    """
    if trace is not None:
        if traces is not None:
            raise TypeError("give traces= or trace= (the same argument), not both")
        traces = trace
    if traces is None:
        traces = "lte"
    trace_list = load_traces(traces) if isinstance(traces, str) else list(traces)
    run = resolve_run(ladder, device, qoe, config)
    return BatchSimulator(trace_list, run.ladder, run.device, run.qoe, run.config)


_SEED_MASK = (1 << 64) - 1
_STREAM_TRACE = 0x54524143  # "TRAC": the trace draw, apart from the core's streams of the session key


class _TraceDraw:
    """Which trace, and which session key, episode e of an env seeded s plays."""

    def __init__(self, n_traces: int, trace_weights: Sequence[float] | None):
        if trace_weights is None:
            w = np.ones(n_traces)
        else:
            w = np.asarray(trace_weights, dtype=np.float64)
            if w.shape != (n_traces,) or not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
                raise ValueError(f"trace_weights must be {n_traces} non-negative numbers with a positive sum")
        self.cum = np.cumsum(w / w.sum())
        self.n = n_traces
        self._cum = self.cum.tolist()

    def __call__(self, seeds: np.ndarray, episodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keys = session_keys(np.asarray(seeds, dtype=np.uint64), episodes)
        u = uniform(keys, 0, _STREAM_TRACE)
        tix = np.minimum(np.searchsorted(self.cum, u, side="right"), self.n - 1)
        return tix, keys

    def one(self, seed: int, episode: int) -> tuple[int, int]:
        """The same for one env, on Python ints (:mod:`sim.scalar`'s mirror of :mod:`sim.rng`)."""
        key = _session_key(seed, episode)
        return min(bisect_right(self._cum, _uniform_one(key, 0, _STREAM_TRACE)), self.n - 1), key


def episode_sessions(
    seeds: Sequence[int] | np.ndarray, episodes: Sequence[int] | np.ndarray, n_traces: int,
    trace_weights: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(trace index, session key) of episode ``episodes[i]`` of an env seeded ``seeds[i]``.

    The key is :func:`sim.rng.session_keys` ``(seed, episode)``; the trace is drawn from it
    (uniformly, or with ``trace_weights``). A pure function of (seed, episode), whatever env runs it.
    """
    seeds = np.array([int(s) & _SEED_MASK for s in np.asarray(seeds, dtype=object).reshape(-1)], dtype=np.uint64)
    return _TraceDraw(n_traces, trace_weights)(seeds, np.asarray(episodes, dtype=np.int64))


def _valid_action(action: Any, n: int) -> int | None:
    """``action`` as an int if it is a rung index 0..n-1 (int, numpy integer, 0-d array), else None."""
    try:
        a = operator.index(action)
    except TypeError:
        return None
    return a if 0 <= a < n else None


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
    ``Box(0, 100, (3H + 3R + 4 + 2(L - 1)R,), float32)`` (L = ``lookahead``), see
    :class:`ObservationBuilder` for the table (throughput and delay history, buffer, last
    rung, next chunk's bitrate, quality and decode speed for every rung, decode backlog,
    chunks left, qualities of the L - 1 chunks after the next).

    ## Rewards
    The chunk's QoE under the chosen preset (:mod:`abr.qoe`): quality minus stall and switch
    penalties. The first chunk's startup delay counts as a stall.

    ## Starting State
    Episode e after ``reset(seed=s)`` plays the trace and session key
    :func:`episode_sessions` draws from (s, e): a trace drawn from the given traces
    (uniformly, or with ``trace_weights``), a random start position within it
    (``config.network.random_start``) and the delay noise, empty buffer. With ``start_rung``
    the first chunk has already been fetched at that rung (its QoE is not a reward).

    ## Episode End
    Terminates after the last chunk of the ladder; never truncates.

    ## Arguments
    - ``traces`` (alias ``trace``): list of :class:`traces.Trace` or a ``--trace`` spec
      (default the ``lte`` model).
    - ``ladder``: :class:`abr.Ladder` or a ladder spec (default :data:`abr.DEFAULT_LADDER`).
    - ``device``: :class:`sim.DeviceProfile` or profile name (default ``h200``).
    - ``qoe``: :class:`abr.QoE` or preset name (default ``perceptual``).
    - ``config``: :class:`sim.SimConfig` or preset name (``promptabr`` default; see ``sim.core.SIM_PRESETS``).
    - ``start_rung``: rung of the first chunk, fetched before the agent acts (default None:
      the agent picks it).
    - ``lookahead``: chunks whose per-rung quality the observation shows (default 1: the next).
    - ``trace_weights``: relative probability of drawing each trace (default uniform).

    ``info`` holds the chunk's metrics (rung, bytes, delay, stall, buffer, LPIPS, ...); the
    reset ``info`` names the trace. ``fast`` says whether steps run on the scalar mirror of
    the core (:mod:`sim.scalar`) or on the core with a batch of one.

    ## Version History
    - v0: initial version.

    Example::

        >>> import gymnasium as gym
        >>> env = gym.make("sim:promptabr/Streaming-v0")
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(0)
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        traces: Sequence[Trace] | str | None = None,
        ladder: Ladder | str = DEFAULT_LADDER,
        device: DeviceProfile | str = DEFAULT_DEVICE,
        qoe: QoE | str = "perceptual",
        config: SimConfig | str = "promptabr",
        start_rung: int | None = None,
        lookahead: int = 1,
        *,
        trace: Sequence[Trace] | str | None = None,
        trace_weights: Sequence[float] | None = None,
    ):
        self.sim = make_simulator(traces, ladder, device, qoe, config, trace=trace)
        self.builder = ObservationBuilder.from_context(self.sim.context, self.sim.config.player.history, lookahead)
        self.start_rung = check_start_rung(start_rung, self.sim.ladder)
        self._draw = _TraceDraw(len(self.sim.bank), trace_weights)
        self._n_rungs = self.sim.ladder.n_rungs
        self.action_space = spaces.Discrete(self._n_rungs)
        self.observation_space = self.builder.space()
        s = self.sim
        self._fast = ScalarSession(s, self.builder) if supports(s.config, s.device, s.qoe, s) else None
        self._seed: int | None = None
        self._episode = 0
        self._obs: Observation | None = None  # the core's observation (batch of one)
        self._ready = False

    @property
    def fast(self) -> bool:
        """Whether steps run on the scalar mirror of the core (else the core, batch of one)."""
        return self._fast is not None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._seed, self._episode = int(seed) & _SEED_MASK, 0
        elif self._seed is None:
            self._seed, self._episode = int(self.np_random.integers(2**63)), 0
        else:
            self._episode += 1
        self.trace_index, self.key = self._draw.one(self._seed, self._episode)
        if self._fast is not None:
            self._fast.reset(self.trace_index, self.key)
            if self.start_rung is not None:
                self._fast.step(self.start_rung)
            obs = self._fast.features()
        else:
            self._obs = self.sim.reset(np.array([self.trace_index]), np.array([self.key], dtype=np.uint64))
            if self.start_rung is not None:
                self._obs, _, _ = self.sim.step(np.array([self.start_rung]))
            obs = self.builder(self._obs)[0]
        self._ready = True
        return obs, {"trace": self.sim.bank.traces[self.trace_index].name, "trace_index": self.trace_index}

    def step(self, action):
        if not self._ready:
            raise RuntimeError("call reset() before step()")
        fast = self._fast
        if type(action) is int and 0 <= action < self._n_rungs:  # the common case, checked cheaply
            a = action
        else:
            a = _valid_action(action, self._n_rungs)
            if a is None:
                raise ValueError(f"action {action!r} not in {self.action_space}")
        if fast is not None:
            reward, done, info = fast.step(a)
            return fast.features(), reward, done, False, info
        self._obs, info, done = self.sim.step(np.array([a]))
        return self.builder(self._obs)[0], float(info.reward[0]), done, False, step_info(info)


class StreamingVectorEnv(VectorEnv):
    """``num_envs`` :class:`StreamingEnv` sessions stepped together by one :class:`BatchSimulator` call.

    ``gymnasium.make_vec("promptabr/Streaming-v0", num_envs=N)`` (``vectorization_mode=
    "vector_entry_point"``, the default for this id). It takes the arguments of
    :class:`StreamingEnv`, and equals ``SyncVectorEnv`` of those envs: after ``reset(seed=s)``
    sub-env i plays the episodes of a :class:`StreamingEnv` seeded ``s + i``, with the same
    observations, rewards and infos (a dict of arrays with ``_key`` masks, as Gymnasium
    batches them).

    Every session plays the same ladder, so all end their episode at the same step. Autoreset
    (``metadata["autoreset_mode"]``) follows Gymnasium 1.x: ``NEXT_STEP`` (default) returns
    the last observation with ``terminated`` set, and the next :meth:`step` ignores its
    actions, starts the next episode of every sub-env and returns its first observation
    with reward 0; ``SAME_STEP`` starts the next episode at once and puts the last
    observation and info in ``info["final_obs"]`` and ``info["final_info"]``.
    ``DISABLED`` is not offered: the sessions of one batch start together.

    ``observation`` is the core's :class:`~policies.base.Observation` behind the vectors last
    returned (for expert policies); ``trace_index`` and ``keys`` say what each sub-env plays.
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}
    observation: Observation

    def __init__(
        self,
        num_envs: int = 16,
        traces: Sequence[Trace] | str | None = None,
        ladder: Ladder | str = DEFAULT_LADDER,
        device: DeviceProfile | str = DEFAULT_DEVICE,
        qoe: QoE | str = "perceptual",
        config: SimConfig | str = "promptabr",
        start_rung: int | None = None,
        lookahead: int = 1,
        *,
        trace: Sequence[Trace] | str | None = None,
        trace_weights: Sequence[float] | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
    ):
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        mode = autoreset_mode if isinstance(autoreset_mode, AutoresetMode) else AutoresetMode(autoreset_mode)
        if mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
            raise ValueError(f"autoreset_mode must be NEXT_STEP or SAME_STEP, got {mode}")
        self.num_envs = n = int(num_envs)
        self.metadata = {**type(self).metadata, "autoreset_mode": mode}
        self.autoreset_mode = mode
        self.sim = make_simulator(traces, ladder, device, qoe, config, trace=trace)
        self.builder = ObservationBuilder.from_context(self.sim.context, self.sim.config.player.history, lookahead)
        self.start_rung = check_start_rung(start_rung, self.sim.ladder)
        self._draw = _TraceDraw(len(self.sim.bank), trace_weights)
        self.single_observation_space = self.builder.space()
        self.observation_space = batch_space(self.single_observation_space, n)
        self.single_action_space = spaces.Discrete(self.sim.ladder.n_rungs)
        self.action_space = batch_space(self.single_action_space, n)
        self.seeds: np.ndarray | None = None  # per sub-env seed (uint64)
        self.episodes = np.zeros(n, dtype=np.int64)
        self._autoreset = False
        self._ready = False

    # ------------------------------------------------------------ episodes
    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict | None = None):
        """Start a new episode in every sub-env; ``seed``: int s (sub-env i gets s + i), a list, or None."""
        if isinstance(seed, np.integer):
            seed = int(seed)
        super().reset(seed=seed if isinstance(seed, int) else None)
        if options and "reset_mask" in options and not np.all(options["reset_mask"]):
            raise ValueError("the sessions of a StreamingVectorEnv start together: reset_mask must be all True")
        n = self.num_envs
        if seed is None:
            per_env: list[int | None] = [None] * n
        elif isinstance(seed, int):
            per_env = [seed + i for i in range(n)]
        else:
            per_env = list(seed)
            if len(per_env) != n:
                raise ValueError(f"got {len(per_env)} seeds for {n} envs")
        if self.seeds is None:
            fresh = [int(s) for s in self.np_random.integers(2**63, size=n)]
            self.seeds = np.array(fresh, dtype=np.uint64)
            self.episodes[:] = -1
        seeds = [int(s) for s in self.seeds]
        for i, s in enumerate(per_env):
            if s is None:
                self.episodes[i] += 1
            else:
                seeds[i], self.episodes[i] = int(s) & _SEED_MASK, 0
        self.seeds = np.array(seeds, dtype=np.uint64)
        return self._start(), self._reset_info()

    def set_trace_weights(self, trace_weights: Sequence[float] | None) -> None:
        """Draw the traces of later episodes with these relative probabilities (None: uniformly);
        a curriculum (``sim.train``'s Genet-style selection) moves them during training."""
        self._draw = _TraceDraw(len(self.sim.bank), trace_weights)

    def resume(self, seeds: Sequence[int], episodes: Sequence[int]) -> None:
        """Make the next seedless :meth:`reset` start episode ``episodes[i] + 1`` of seed ``seeds[i]``."""
        self.seeds = np.array([int(s) & _SEED_MASK for s in seeds], dtype=np.uint64)
        self.episodes = np.asarray(episodes, dtype=np.int64).copy()
        if self.seeds.shape != (self.num_envs,) or self.episodes.shape != (self.num_envs,):
            raise ValueError(f"resume needs {self.num_envs} seeds and episodes")
        self._ready = False

    def _start(self) -> np.ndarray:
        self.trace_index, self.keys = self._draw(self.seeds, self.episodes)
        obs = self.sim.reset(self.trace_index, self.keys)
        if self.start_rung is not None:
            obs, _, _ = self.sim.step(np.full(self.num_envs, self.start_rung, dtype=np.int64))
        self.observation = obs
        self._autoreset = False
        self._ready = True
        return self.builder(obs)

    def _reset_info(self) -> dict[str, Any]:
        names = self.sim.bank.traces
        every = np.ones(self.num_envs, dtype=bool)
        trace = np.empty(self.num_envs, dtype=object)
        trace[:] = [names[t].name for t in self.trace_index]
        return {"trace": trace, "_trace": every, "trace_index": self.trace_index.astype(np.int64),
                "_trace_index": every.copy()}  # fmt: skip

    # ------------------------------------------------------------ steps
    def step(self, actions):
        n = self.num_envs
        obs, rewards, terminated, info, final_obs = self.advance(actions)
        if info is None:  # NEXT_STEP's autoreset step
            infos = self._reset_info()
        else:
            infos = self._step_info(info)
            if final_obs is not None:  # SAME_STEP: the episode ended and the next one started
                every = np.ones(n, dtype=bool)
                infos = {"final_obs": final_obs, "_final_obs": every, "final_info": infos, "_final_info": every.copy(),
                         **self._reset_info()}  # fmt: skip
        return obs, rewards, terminated, np.zeros(n, dtype=bool), infos

    def advance(
        self, actions
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, StepInfo | None, np.ndarray | None]:  # fmt: skip
        """:meth:`step` without Gymnasium's info dict (for adapters such as :class:`sim.vecenv.BatchVecEnv`).

        Returns (observations, rewards, terminated, the core's :class:`StepInfo` or None on
        NEXT_STEP's autoreset step, and under SAME_STEP at an episode's end the last
        observations as an object array, else None).
        """
        if not self._ready:
            raise RuntimeError("call reset() before step()")
        n = self.num_envs
        if self._autoreset:  # NEXT_STEP: this step starts the next episode and ignores the actions
            self.episodes += 1
            return self._start(), np.zeros(n), np.zeros(n, dtype=bool), None, None
        a = np.asarray(actions)
        if a.shape != (n,) or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"actions must be {n} rung indices, got {a.dtype} array of shape {a.shape}")
        raw, info, done = self.sim.step(a)
        self.observation = raw
        obs = self.builder(raw)
        final_obs = None
        if done and self.autoreset_mode is AutoresetMode.SAME_STEP:
            final_obs = np.empty(n, dtype=object)
            final_obs[:] = list(obs)
            self.episodes += 1
            obs = self._start()
        elif done:
            self._autoreset = True
        return obs, np.array(info.reward, dtype=np.float64), np.full(n, done, dtype=bool), info, final_obs

    def _step_info(self, info: StepInfo) -> dict[str, Any]:
        """Gymnasium's batched info: a copy of every metric, one all-True ``_key`` mask shared by all keys."""
        n = self.num_envs
        every = np.ones(n, dtype=bool)
        out: dict[str, Any] = {"chunk": np.full(n, info.chunk, dtype=np.int64), "_chunk": every}
        for name in INFO_FIELDS:  # copies: some metrics are the core's state (last rung, quality)
            out[name] = getattr(info, name).astype(np.int64 if name in _INT_FIELDS else np.float64)
            out["_" + name] = every
        return out

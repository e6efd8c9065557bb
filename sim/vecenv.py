"""A stable-baselines3 ``VecEnv`` backed by the batched simulator core.

:class:`BatchVecEnv` steps all its environments with one :meth:`sim.core.BatchSimulator.step`
call (one numpy step for every session) instead of looping over single Gymnasium envs as
SB3's ``DummyVecEnv`` does. Observations come from :class:`sim.env.ObservationBuilder`, the
same builder the single :class:`sim.env.StreamingEnv` uses, so the layout, rewards and
dynamics are identical session for session (``tests/test_rl.py`` checks it).

Every session plays the same ladder, so all environments end their episode at the same step;
the env then auto-resets every one of them, as SB3 expects: the last observation of the
episode goes to ``infos[i]["terminal_observation"]``, the returned observation is the first of
the next episode and ``reset_infos[i]`` says which trace and session it plays.

With ``start_rung`` set, every episode's first chunk is fetched at that rung before the
agent acts (Pensieve's convention of a fixed first-chunk quality; MPC does the same for lack
of a throughput sample): the first observation is the one after it, and its QoE, which no
action chose, is not a reward.

Each episode every environment draws a trace (uniformly, or with ``trace_weights``) from a
generator seeded by :meth:`BatchVecEnv.seed`, and gets a fresh session id
``episode * num_envs + i`` whose counter-based key (:func:`sim.rng.session_keys`) fixes its
random start position and delay noise. A given seed therefore replays the same sequence of
episodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from abr.ladder import Ladder
from abr.qoe import QoE
from policies.base import Observation
from sim.core import BatchSimulator, SimConfig
from sim.device import DeviceProfile
from sim.env import ObservationBuilder, check_start_rung
from sim.rng import session_keys
from traces.trace import Trace

__all__ = ["BatchVecEnv"]


class BatchVecEnv(VecEnv):
    """``num_envs`` streaming sessions stepped together by one :class:`BatchSimulator`.

    :param traces: the traces episodes are drawn from.
    :param ladder: the ladder (every session plays it).
    :param device: the receiving device.
    :param qoe: the QoE whose per-chunk value is the reward.
    :param config: network and player configuration.
    :param num_envs: number of parallel sessions.
    :param seed: seed of trace draws and session keys (see :meth:`seed`).
    :param trace_weights: relative probability of drawing each trace (default uniform).
    :param reward_scale: multiplies every reward (QoE is reported unscaled in ``infos``).
    :param start_rung: rung of every episode's first chunk, fetched before the agent acts
        (None: the agent picks it).
    :param lookahead: chunks whose per-rung quality the observation shows
        (:class:`sim.env.ObservationBuilder`).
    """

    render_mode = None
    #: the raw :class:`policies.base.Observation` behind the vectors last returned (for experts)
    observation: Observation

    def __init__(
        self,
        traces: Sequence[Trace],
        ladder: Ladder,
        device: DeviceProfile,
        qoe: QoE,
        config: SimConfig | None = None,
        *,
        num_envs: int = 16,
        seed: int = 0,
        trace_weights: Sequence[float] | None = None,
        reward_scale: float = 1.0,
        start_rung: int | None = None,
        lookahead: int = 1,
    ):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if not reward_scale > 0:
            raise ValueError(f"reward_scale must be > 0, got {reward_scale}")
        self.sim = BatchSimulator(list(traces), ladder, device, qoe, config)
        n_traces = len(self.sim.bank)
        if trace_weights is None:
            self._p = None
        else:
            w = np.asarray(trace_weights, dtype=np.float64)
            if w.shape != (n_traces,) or np.any(w < 0) or not w.sum() > 0:
                raise ValueError(f"trace_weights must be {n_traces} non-negative numbers with a positive sum")
            self._p = w / w.sum()
        self.reward_scale = float(reward_scale)
        self.start_rung = check_start_rung(start_rung, ladder)
        self.builder = ObservationBuilder.from_context(self.sim.context, self.sim.config.player.history, lookahead)
        super().__init__(num_envs, self.builder.space(), spaces.Discrete(ladder.n_rungs))
        self._actions: np.ndarray | None = None
        self._needs_reset = True
        self.seed(seed)

    # ------------------------------------------------------------ seeding
    def seed(self, seed: int | None = None) -> list[int | None]:
        """Restart the episode sequence from ``seed`` at the next :meth:`reset`.

        Returns ``[seed + i]`` per environment, as SB3's ``VecEnv.seed`` does; the episodes
        themselves are a function of ``seed`` alone.
        """
        if seed is None:
            seed = int(np.random.randint(0, np.iinfo(np.uint32).max, dtype=np.uint32))
        self._seed = int(seed)
        self._rng = np.random.default_rng(self._seed)
        self._episode = 0
        self._needs_reset = True
        return [self._seed + i for i in range(self.num_envs)]

    def episode_state(self) -> dict[str, Any]:
        """Where the episode sequence stands (JSON-able), for checkpoints."""
        return {"seed": self._seed, "episode": self._episode, "rng": self._rng.bit_generator.state}

    def restore_episode_state(self, state: dict[str, Any]) -> None:
        """Continue the episode sequence saved by :meth:`episode_state` at the next :meth:`reset`."""
        self.seed(int(state["seed"]))
        self._episode = int(state["episode"])
        self._rng.bit_generator.state = state["rng"]

    # ------------------------------------------------------------ episodes
    def _start_episode(self) -> np.ndarray:
        n = self.num_envs
        tix = self._rng.choice(len(self.sim.bank), size=n, p=self._p)
        ids = self._episode * n + np.arange(n, dtype=np.int64)
        self._episode += 1
        self.trace_index, self.session_ids = tix, ids
        self.keys = session_keys(self._seed, ids)
        obs = self.sim.reset(tix, self.keys)
        if self.start_rung is not None:
            obs, _, _ = self.sim.step(np.full(n, self.start_rung, dtype=np.int64))
        self.observation = obs
        names = self.sim.bank.traces
        self.reset_infos = [
            {"trace": names[t].name, "trace_index": int(t), "session": int(s)} for t, s in zip(tix, ids)
        ]
        self._needs_reset = False
        return self.builder(obs)

    def reset(self) -> VecEnvObs:
        """Start a new episode in every environment."""
        self._reset_seeds()
        self._reset_options()
        return self._start_episode()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs).astype(np.int64)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() without step_async()")
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        obs, info, done = self.sim.step(self._actions)
        self.observation = obs
        self._actions = None
        vec = self.builder(obs)
        rewards = (info.reward * self.reward_scale).astype(np.float32)
        infos: list[dict[str, Any]] = [
            {"qoe": float(q), "stall_s": float(s), "rung": int(r), "TimeLimit.truncated": False}
            for q, s, r in zip(info.reward, info.stall_s, info.rung)
        ]
        dones = np.full(self.num_envs, done, dtype=bool)
        if done:
            for i in range(self.num_envs):
                infos[i]["terminal_observation"] = vec[i]
            vec = self._start_episode()
        return vec, rewards, dones, infos

    # ------------------------------------------------------------ VecEnv plumbing
    def close(self) -> None:
        """Nothing to release."""

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """An attribute of the (shared) env object, once per requested environment."""
        value = getattr(self, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Environments share one simulator: only setting an attribute for all of them is meaningful."""
        if indices is not None and sorted(self._get_indices(indices)) != list(range(self.num_envs)):
            raise ValueError("BatchVecEnv environments share their attributes; set them for all indices")
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        """Call a method of the shared env object once and return its result per requested environment."""
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        """No Gymnasium wrappers: the sessions are rows of a batch, not env objects."""
        return [False for _ in self._get_indices(indices)]

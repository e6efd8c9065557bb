"""stable-baselines3's ``VecEnv`` API over :class:`sim.env.StreamingVectorEnv`.

A thin adapter: :class:`BatchVecEnv` holds the Gymnasium vector env (all sessions stepped
by one :meth:`sim.core.BatchSimulator.step` call) in ``SAME_STEP`` autoreset mode, which is
SB3's convention: when the episode ends (every session plays the same ladder, so all end at
the same step) the returned observation is the first of the next episode and the last one
is in ``infos[i]["terminal_observation"]``; ``reset_infos[i]`` says which trace sub-env i
now plays.

Seeding follows SB3: :meth:`BatchVecEnv.seed` (s) makes the next :meth:`~BatchVecEnv.reset`
restart sub-env i from seed s + i, so sub-env i plays exactly the episodes of a
:class:`sim.env.StreamingEnv` reset with seed s + i (``tests/test_vector.py`` checks it), and
a given seed replays the same sequence of episodes.

With ``start_rung`` set, every episode's first chunk is fetched at that rung before the
agent acts (Pensieve's convention of a fixed first-chunk quality; MPC does the same for lack
of a throughput sample): the first observation is the one after it, and its QoE, which no
action chose, is not a reward.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
    VecEnvWrapper,
)

from abr.ladder import Ladder
from abr.qoe import QoE
from abr.registry import DEFAULT_LADDER
from policies.base import Observation
from sim.core import BatchSimulator, SimConfig
from sim.device import DeviceProfile
from sim.env import DEFAULT_DEVICE, StreamingVectorEnv
from traces.trace import Trace

__all__ = ["BatchVecEnv", "CenteredReward"]


class BatchVecEnv(VecEnv):
    """``num_envs`` streaming sessions for SB3, stepped together by one :class:`StreamingVectorEnv`.

    The first arguments are :class:`sim.env.StreamingEnv`'s (names or objects), then:

    :param num_envs: number of parallel sessions.
    :param seed: seed of the episodes (see :meth:`seed`).
    :param trace_weights: relative probability of drawing each trace (default uniform).
    :param reward_scale: multiplies every reward (QoE is reported unscaled in ``infos``).
    :param start_rung: rung of every episode's first chunk, fetched before the agent acts
        (None: the agent picks it).
    :param lookahead: chunks whose per-rung quality the observation shows
        (:class:`policies.observation.ObservationBuilder`).
    """

    render_mode = None

    def __init__(
        self,
        traces: Sequence[Trace] | str | None = None,
        ladder: Ladder | str = DEFAULT_LADDER,
        device: DeviceProfile | str = DEFAULT_DEVICE,
        qoe: QoE | str = "perceptual",
        config: SimConfig | str | None = "promptabr",
        *,
        num_envs: int = 16,
        seed: int = 0,
        trace_weights: Sequence[float] | None = None,
        reward_scale: float = 1.0,
        start_rung: int | None = None,
        lookahead: int = 1,
        trace: Sequence[Trace] | str | None = None,
    ):
        if not reward_scale > 0:
            raise ValueError(f"reward_scale must be > 0, got {reward_scale}")
        self.venv = StreamingVectorEnv(
            num_envs, traces, ladder, device, qoe, config, start_rung, lookahead,
            trace=trace, trace_weights=trace_weights, autoreset_mode=AutoresetMode.SAME_STEP,
        )  # fmt: skip
        self.reward_scale = float(reward_scale)
        self.start_rung = self.venv.start_rung
        self.builder = self.venv.builder
        super().__init__(num_envs, self.venv.single_observation_space, self.venv.single_action_space)
        self._actions: np.ndarray | None = None
        self.seed(seed)

    @property
    def sim(self) -> BatchSimulator:
        return self.venv.sim

    @property
    def observation(self) -> Observation:
        """The raw :class:`policies.base.Observation` behind the vectors last returned (for experts)."""
        return self.venv.observation

    @property
    def trace_index(self) -> np.ndarray:
        return self.venv.trace_index

    @property
    def keys(self) -> np.ndarray:
        """Session keys (:mod:`sim.rng`) of the current episodes."""
        return self.venv.keys

    def set_trace_weights(self, trace_weights: Sequence[float] | None) -> None:
        """Relative probability of each trace in later episodes (None: uniform); see
        :meth:`sim.env.StreamingVectorEnv.set_trace_weights`."""
        self.venv.set_trace_weights(trace_weights)

    # ------------------------------------------------------------ seeding
    def seed(self, seed: int | None = None) -> list[int | None]:
        """Restart sub-env i from seed ``seed + i`` at the next :meth:`reset`; returns those seeds."""
        if seed is None:
            seed = int(np.random.randint(0, np.iinfo(np.uint32).max, dtype=np.uint32))
        self._seed = int(seed)
        self._pending_seed = True
        return [self._seed + i for i in range(self.num_envs)]

    def episode_state(self) -> dict[str, Any]:
        """Where the episode sequence stands (JSON-able), for checkpoints."""
        started = self.venv.seeds is not None and not self._pending_seed
        return {"seed": self._seed, "episode": int(self.venv.episodes[0]) if started else -1}

    def restore_episode_state(self, state: dict[str, Any]) -> None:
        """Continue after the episode saved by :meth:`episode_state` at the next :meth:`reset`."""
        self.seed(int(state["seed"]))
        self._pending_seed = False
        n = self.num_envs
        self.venv.resume([self._seed + i for i in range(n)], [int(state["episode"])] * n)

    # ------------------------------------------------------------ episodes
    def reset(self) -> VecEnvObs:
        """Start a new episode in every environment."""
        self._reset_seeds()
        self._reset_options()
        if self._pending_seed:
            obs, info = self.venv.reset(seed=self._seed)
            self._pending_seed = False
        else:
            obs, info = self.venv.reset()
        self._set_reset_infos(info)
        return obs

    def _set_reset_infos(self, info: dict[str, Any] | None = None) -> None:
        names = self.sim.bank.traces
        self.reset_infos = [{"trace": names[i].name, "trace_index": i} for i in self.venv.trace_index.tolist()]

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs).astype(np.int64)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() without step_async()")
        obs, rewards, terminated, chunk, final_obs = self.venv.advance(self._actions)
        self._actions = None
        infos: list[dict[str, Any]] = [
            {"qoe": q, "stall_s": s, "rung": r, "TimeLimit.truncated": False}
            for q, s, r in zip(chunk.reward.tolist(), chunk.stall_s.tolist(), chunk.rung.tolist())
        ]
        if final_obs is not None:
            for i, last in enumerate(final_obs):
                infos[i]["terminal_observation"] = last
            self._set_reset_infos()
        return obs, (rewards * self.reward_scale).astype(np.float32), terminated, infos

    # ------------------------------------------------------------ VecEnv plumbing
    def close(self) -> None:
        self.venv.close()

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


class CenteredReward(VecEnvWrapper):
    """Rewards minus a running mean of the per-chunk reward (reward centering, Naik et al. 2024).

    Every session plays the same number of chunks, so a constant offset changes no policy's
    ranking; removing it leaves the value function the differences between rungs (about 0.001
    QoE per chunk) instead of a return that grows with the chunks left. The mean is the
    exponential average of each step's batch mean (``rate`` per step), started at the first
    batch; :meth:`state` / :meth:`restore` carry it through checkpoints.
    """

    def __init__(self, venv: VecEnv, rate: float = 1e-3):
        if not 0 < rate <= 1:
            raise ValueError(f"rate must be in (0, 1], got {rate}")
        super().__init__(venv)
        self.rate = float(rate)
        self.mean: float | None = None

    def reset(self) -> VecEnvObs:
        return self.venv.reset()

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        m = float(np.mean(rewards))
        self.mean = m if self.mean is None else self.mean + self.rate * (m - self.mean)
        return obs, (rewards - self.mean).astype(np.float32), dones, infos

    def state(self) -> dict[str, Any]:
        return {"mean": self.mean, "rate": self.rate}

    def restore(self, state: dict[str, Any]) -> None:
        mean = state.get("mean")
        self.mean = None if mean is None else float(mean)

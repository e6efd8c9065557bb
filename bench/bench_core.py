"""Simulator speed: single env vs a plain Pensieve loop, and batched chunk-steps per second.

Run: ``python bench/bench_core.py``. All figures are measured in the same run on the same
traces; ratios are what the targets are about:

* single env (Gymnasium ``StreamingEnv.step``) vs the plain-Python Pensieve recurrences
  (``sim.reference.PensieveLoop``), raw and wrapped as a Gymnasium env the way Pensieve's
  own environment is (state vector + reward per step);
* batched core (``BatchSimulator.step``) chunk-steps/s for growing batches vs the plain loop
  (target: 10x, well over a million chunk-steps/s).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from abr import get_ladder, get_qoe  # noqa: E402
from sim.core import BatchSimulator, SimConfig  # noqa: E402
from sim.device import get_device  # noqa: E402
from sim.env import StreamingEnv  # noqa: E402
from sim.reference import PensieveLoop  # noqa: E402
from sim.rng import session_keys  # noqa: E402
from traces import load_traces  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


class PensieveGymEnv(gym.Env):
    """The plain loop behind a Gymnasium API, as Pensieve's env would be wrapped."""

    def __init__(self, trace, ladder):
        self.trace, self.ladder = trace, ladder
        self.action_space = gym.spaces.Discrete(ladder.n_rungs)
        self.observation_space = gym.spaces.Box(0, 100, (6 + 2 * 8,), np.float32)
        self.kbps = ladder.kbps / 1000.0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.loop = PensieveLoop(self.trace.duration_s, self.trace.mbps, float(self.np_random.random()) * 100)
        self.k, self.last = 0, 0
        self.thr = [0.0] * 8
        self.dl = [0.0] * 8
        return np.zeros(22, np.float32), {}

    def step(self, action):
        size = self.ladder.size_bytes[self.k, action]
        delay, rebuf, sleep, buf = self.loop.step(size, 4.0, 0.9 + 0.2 * self.np_random.random())
        reward = self.kbps[action] - 4.3 * rebuf - abs(self.kbps[action] - self.kbps[self.last])
        self.thr = self.thr[1:] + [size / delay / 1e6]
        self.dl = self.dl[1:] + [delay / 10]
        self.last, self.k = action, self.k + 1
        obs = np.array([buf / 10, action / 5, *self.ladder.size_bytes[self.k % self.ladder.n_chunks] / 1e6,
                        *self.thr, *self.dl], dtype=np.float32)
        return obs, reward, self.k == self.ladder.n_chunks, False, {}


def rate(fn, steps: int) -> float:
    t0 = time.perf_counter()
    fn()
    return steps / (time.perf_counter() - t0)


def best_of(fn, steps, repeat=3) -> float:
    return max(rate(fn, steps) for _ in range(repeat))


def main() -> None:
    traces = load_traces("lte", count=16)
    ladder = get_ladder("synthetic:pensieve")
    rng = np.random.default_rng(0)
    actions = rng.integers(0, ladder.n_rungs, 100_000)
    episodes = 200
    steps = episodes * ladder.n_chunks

    def plain_loop():
        for e in range(episodes):
            t = traces[e % len(traces)]
            loop = PensieveLoop(t.duration_s, t.mbps, 10.0)
            for k in range(ladder.n_chunks):
                loop.step(ladder.size_bytes[k, actions[k]], 4.0, 1.0)

    def gym_loop(env):
        def run():
            for e in range(episodes):
                env.reset(seed=e)
                for k in range(ladder.n_chunks):
                    env.step(int(actions[k]))
        return run

    single = StreamingEnv(traces, ladder, "none", "pensieve-linear")
    pgym = PensieveGymEnv(traces[0], ladder)
    out = {
        "plain_loop_steps_per_s": best_of(plain_loop, steps),
        "pensieve_gym_env_steps_per_s": best_of(gym_loop(pgym), steps),
        "streaming_env_steps_per_s": best_of(gym_loop(single), steps),
    }
    sim = BatchSimulator(traces, ladder, get_device("none"), get_qoe("pensieve-linear"), SimConfig())
    for n in (1_000, 10_000, 100_000):
        tix = np.arange(n) % len(traces)
        acts = rng.integers(0, ladder.n_rungs, (ladder.n_chunks, n))

        def batched(tix=tix, n=n, acts=acts):
            sim.reset(tix, session_keys(0, np.arange(n)))
            for k in range(ladder.n_chunks):
                sim.step(acts[k])

        out[f"batched_chunk_steps_per_s_n{n}"] = best_of(batched, n * ladder.n_chunks, repeat=2)
    base = out["plain_loop_steps_per_s"]
    print(f"{'measure':45s} {'per s':>14s} {'vs plain loop':>14s}")
    for key, val in out.items():
        print(f"{key:45s} {val:14,.0f} {val / base:13.2f}x")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "core.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

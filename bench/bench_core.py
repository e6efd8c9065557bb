"""Simulator speed, every figure a ratio to a plain-Python loop of Pensieve's recurrences.

Run: ``nice -n 10 python bench/bench_core.py`` (a few minutes; ``--quick`` for less). All
figures are measured in the same run on the same traces (16 ``lte`` traces, Pensieve's
synthetic ladder of 48 chunks, no decode time, ``pensieve-linear`` QoE, the ``pensieve``
simulator preset), as CPU time of this one-threaded process, each interleaved with runs of the
plain loop (``sim.reference.PensieveLoop``), the base of every ratio:

* single env: the plain loop behind a Gymnasium API the way Pensieve's env would be wrapped
  (state vector + reward per step), ``StreamingEnv`` (scalar mirror of the core), the same
  through ``gymnasium.make`` (its checker wrappers), and the core with a batch of one (the
  fallback);
* vector envs, env-steps/s: ``make_vec`` (one core call per step) against ``SyncVectorEnv``
  of the same single envs, N = 64 and 1024;
* batched core (``BatchSimulator.step``) chunk-steps/s at 1k and 10k sessions (target: 10x);
* PPO training, env-steps/s including the updates: stable-baselines3 PPO on ``BatchVecEnv``
  and ``examples/cleanrl_ppo.py`` on ``make_vec``, same sizes (64 envs x 64 steps, 4 epochs,
  4 minibatches, 64x64 networks, one torch thread).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium.vector import SyncVectorEnv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from abr import get_ladder, get_qoe  # noqa: E402
from sim.core import BatchSimulator, SimConfig  # noqa: E402
from sim.device import get_device  # noqa: E402
from sim.env import StreamingEnv, StreamingVectorEnv  # noqa: E402
from sim.reference import PensieveLoop  # noqa: E402
from sim.rng import session_keys  # noqa: E402
from traces import load_traces  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


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
        obs = np.array(
            [buf / 10, action / 5, *self.ladder.size_bytes[self.k % self.ladder.n_chunks] / 1e6, *self.thr, *self.dl],
            dtype=np.float32,
        )
        return obs, reward, self.k == self.ladder.n_chunks, False, {}


def rate(fn, steps: int) -> float:
    """Steps per second of this process's CPU time (everything here runs on one thread; on a shared
    machine CPU time, unlike wall time, does not count the time other jobs hold the core)."""
    t0 = time.process_time()
    fn()
    return steps / (time.process_time() - t0)


class Versus:
    """Measures every figure interleaved with the plain loop, so a ratio holds under a changing load."""

    def __init__(self, plain, plain_steps: int):
        self.plain, self.plain_steps = plain, plain_steps
        self.per_s: dict[str, float] = {}
        self.ratio: dict[str, float] = {}

    def __call__(self, key: str, fn, steps: int, repeat: int = 3) -> None:
        best, base = 0.0, 0.0
        for _ in range(repeat):
            base = max(base, rate(self.plain, self.plain_steps))
            best = max(best, rate(fn, steps))
        base = max(base, rate(self.plain, self.plain_steps))
        self.per_s[key], self.ratio[key] = best, best / base
        self.per_s.setdefault("plain_loop_steps_per_s", base)
        print(f"{key:45s} {best:14,.0f} {best / base:13.2f}x   (plain loop alongside: {base:,.0f}/s)", flush=True)


def ppo_runs(traces, ladder, total: int) -> dict:
    """PPO runs of ``total`` env-steps (rollouts and updates): SB3 on BatchVecEnv, CleanRL-style on make_vec."""
    import importlib.util

    import torch
    from stable_baselines3 import PPO

    from sim.vecenv import BatchVecEnv

    torch.set_num_threads(1)
    n_envs, n_steps = 64, 64
    spec = importlib.util.spec_from_file_location("cleanrl_ppo", ROOT / "examples" / "cleanrl_ppo.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["cleanrl_ppo"] = mod
    spec.loader.exec_module(mod)

    venv = BatchVecEnv(traces, ladder, "none", "pensieve-linear", num_envs=n_envs, seed=0)
    model = PPO("MlpPolicy", venv, n_steps=n_steps, batch_size=n_envs * n_steps // 4, n_epochs=4,
                policy_kwargs={"net_arch": [64, 64]}, seed=0, device="cpu", verbose=0)  # fmt: skip

    def sb3():  # the model is built once, outside the timing (SB3's first build costs seconds)
        model.learn(total_timesteps=total, reset_num_timesteps=False)

    def cleanrl():
        mod.train(mod.Args(num_envs=n_envs, num_steps=n_steps, total_steps=total, update_epochs=4),
                  trace=traces, ladder=ladder, device="none", qoe="pensieve-linear")  # fmt: skip

    return {"ppo_sb3_batchvecenv_steps_per_s": sb3, "ppo_cleanrl_make_vec_steps_per_s": cleanrl}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer episodes and PPO steps (noisier)")
    p.add_argument("--out", type=Path, default=RESULTS / "core.json", help="where to write the figures (JSON)")
    args = p.parse_args(argv)
    traces = load_traces("lte", count=16)
    ladder = get_ladder("synthetic:pensieve")
    rng = np.random.default_rng(0)
    actions = rng.integers(0, ladder.n_rungs, 100_000)
    episodes = 60 if args.quick else 200
    steps = episodes * ladder.n_chunks

    def plain_loop():
        for e in range(episodes):
            t = traces[e % len(traces)]
            loop = PensieveLoop(t.duration_s, t.mbps, 10.0)
            for k in range(ladder.n_chunks):
                loop.step(ladder.size_bytes[k, actions[k]], 4.0, 1.0)

    def gym_loop(env, episodes=episodes):
        acts = actions[: ladder.n_chunks].tolist()

        def run():
            for e in range(episodes):
                env.reset(seed=e)
                for k in range(ladder.n_chunks):
                    env.step(acts[k])

        return run

    kw = dict(traces=traces, ladder=ladder, device="none", qoe="pensieve-linear")
    single = StreamingEnv(**kw)
    assert single.fast
    fallback = StreamingEnv(**kw)
    fallback._fast = None  # the core with a batch of one
    made = gym.make("promptabr/Streaming-v0", **kw)
    pgym = PensieveGymEnv(traces[0], ladder)
    vs = Versus(plain_loop, steps)
    print(f"{'measure':45s} {'per s':>14s} {'vs plain loop':>14s}")
    vs("pensieve_gym_env_steps_per_s", gym_loop(pgym), steps)
    vs("streaming_env_steps_per_s", gym_loop(single), steps)
    vs("streaming_env_gym_make_steps_per_s", gym_loop(made), steps)
    vs("streaming_env_core_batch_of_one_steps_per_s", gym_loop(fallback, 10), 10 * ladder.n_chunks, repeat=1)

    # vector envs: make_vec (one core call per step) vs SyncVectorEnv of the same single envs
    singles = [StreamingEnv(**kw) for _ in range(1024)]
    for n, eps in ((64, 2 if args.quick else 6), (1024, 1)):
        vec = StreamingVectorEnv(n, **kw)
        sync = SyncVectorEnv([lambda e=e: e for e in singles[:n]])
        acts = rng.integers(0, ladder.n_rungs, (ladder.n_chunks + 1, n))

        def drive(envs, eps=eps, acts=acts):
            def run():
                envs.reset(seed=0)
                for _ in range(eps):
                    for t in range(ladder.n_chunks + 1):  # the last step is NEXT_STEP's autoreset
                        envs.step(acts[t])

            return run

        chunk_steps = eps * ladder.n_chunks * n
        vs(f"make_vec_n{n}_steps_per_s", drive(vec), chunk_steps)
        vs(f"sync_vector_env_n{n}_steps_per_s", drive(sync), chunk_steps, repeat=1 if n > 64 else 2)
        ours, theirs = vs.per_s[f"make_vec_n{n}_steps_per_s"], vs.per_s[f"sync_vector_env_n{n}_steps_per_s"]
        vs.ratio[f"make_vec_n{n}_vs_sync"] = ours / theirs

    sim = BatchSimulator(traces, ladder, get_device("none"), get_qoe("pensieve-linear"), SimConfig())
    for n in (1_000, 10_000):
        tix = np.arange(n) % len(traces)
        acts = rng.integers(0, ladder.n_rungs, (ladder.n_chunks, n))

        def batched(tix=tix, n=n, acts=acts):
            sim.reset(tix, session_keys(0, np.arange(n)))
            for k in range(ladder.n_chunks):
                sim.step(acts[k])

        vs(f"batched_chunk_steps_per_s_n{n}", batched, n * ladder.n_chunks)
    total = 64 * 64 * (2 if args.quick else 4)
    for key, fn in ppo_runs(traces, ladder, total).items():
        vs(key, fn, total, repeat=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"per_s": vs.per_s, "vs_plain_loop": vs.ratio}, indent=1))


if __name__ == "__main__":
    main()

"""The Gymnasium environment: checker, reproducibility, and agreement with the batched core."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim  # noqa: F401  (registers the env)
from abr import get_ladder
from sim.env import StreamingEnv, observation_size
from traces.trace import Trace


def small_env(**kw) -> StreamingEnv:
    rng = np.random.default_rng(0)
    traces = [Trace(np.full(80, 1.0), rng.uniform(0.05, 1.0, 80), name=f"t{i}") for i in range(3)]
    return StreamingEnv(traces=traces, ladder=get_ladder("synthetic:promptus:chunks=12"), **kw)


def test_env_checker_passes():
    check_env(small_env())
    check_env(gym.make("promptabr/Streaming-v0").unwrapped, skip_render_check=True)


def test_observation_layout_and_bounds():
    env = small_env()
    obs, info = env.reset(seed=3)
    assert obs.shape == (observation_size(8, 6),)
    assert env.observation_space.contains(obs)
    assert np.all(obs[:17] == 0)  # no history, empty buffer, no last rung
    obs, r, term, trunc, info = env.step(5)
    assert obs[7] > 0 and obs[17] == pytest.approx(1.0)  # newest throughput; last rung = top
    assert info["rung"] == 5 and not trunc


def test_lookahead_appends_the_qualities_and_sizes_of_the_chunks_after_the_next():
    near, far = small_env(), small_env(lookahead=3)
    o1, _ = near.reset(seed=3)
    o3, _ = far.reset(seed=3)
    h, rungs = 8, 6
    pre = 2 * h + 3 * rungs + 4  # histories, buffer, last rung, next chunk's table, backlog, chunks left
    assert o3.shape == (observation_size(h, rungs, 3),) == (observation_size(h, rungs) + 4 * rungs,)
    q = far.sim.context.quality / np.abs(far.sim.context.quality).max()
    lad = far.sim.context.ladder
    rate = lad.size_bytes * 8e-6 / lad.duration_s[:, None] / 10.0
    n = len(q)
    for k in range(n):
        assert far.observation_space.contains(o3)
        np.testing.assert_array_equal(o3[:pre], o1[:pre])  # the lookahead-1 layout is a prefix ...
        np.testing.assert_array_equal(o3[-h:], o1[-h:])  # ... and the decode history the suffix
        ahead = o3[pre:-h].reshape(2, 2, rungs)
        for j in (1, 2):
            inside = k + j < n  # 0 past the end of the video
            np.testing.assert_allclose(ahead[0, j - 1], q[k + j] if inside else 0.0, rtol=1e-6)
            np.testing.assert_allclose(ahead[1, j - 1], rate[k + j] if inside else 0.0, rtol=1e-6)
        o1, *_ = near.step(k % rungs)
        o3, *_ = far.step(k % rungs)
    with pytest.raises(ValueError, match="lookahead"):
        small_env(lookahead=0)


def test_observation_ends_with_the_measured_decode_times_of_past_chunks():
    env = small_env()
    obs, _ = env.reset(seed=3)
    assert np.all(obs[-8:] == 0)  # nothing decoded yet
    seen = []
    for k in range(10):
        obs, _, _, _, info = env.step(k % 6)
        seen.append(info["decode_s"] / 10.0)  # seconds / 10, oldest first
        want = ([0.0] * 8 + seen)[-8:]
        np.testing.assert_allclose(obs[-8:], want, rtol=1e-6)
    assert seen[-1] > 0


def test_reset_seed_reproduces_episode():
    def episode(seed):
        env = small_env()
        env.reset(seed=seed)
        out, done = [], False
        while not done:
            obs, r, done, _, _ = env.step(2)
            out.append(r)
        return np.array(out)

    np.testing.assert_array_equal(episode(4), episode(4))
    assert not np.array_equal(episode(4), episode(5))


def test_episode_is_one_pass_over_the_ladder():
    env = small_env()
    env.reset(seed=0)
    steps, done = 0, False
    while not done:
        _, _, done, _, _ = env.step(env.action_space.sample())
        steps += 1
    assert steps == 12
    with pytest.raises(RuntimeError):
        env.step(0)


def test_slow_decoder_stalls_in_env():
    env = small_env(device="snapdragon-8gen3")  # Promptus at ~91 ms/frame: 2.7x slower than real time
    env.reset(seed=0)
    stalls = [env.step(0)[4]["stall_s"] for _ in range(12)]
    assert min(stalls[1:]) > 2.0

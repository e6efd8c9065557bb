"""Gymnasium's vector API on the batched core, registration, and the README's lines as written.

The vector env must equal ``SyncVectorEnv`` of the single envs exactly (observations, rewards,
flags and infos, through autoresets), pass the checks Gymnasium applies to single envs
adapted to a vector env (Gymnasium 1.x ships no vector env checker), and work under
Gymnasium's own vector wrappers, which read ``metadata["autoreset_mode"]``.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv
from gymnasium.vector.utils import batch_space

import sim  # noqa: F401  (registers the env)
from abr.qoe import get_qoe
from sim.core import BatchSimulator
from sim.env import ObservationBuilder, StreamingEnv, StreamingVectorEnv, episode_sessions, step_info
from traces.trace import Trace

ROOT = Path(__file__).resolve().parents[1]
ENV_ID = "promptabr/Streaming-v0"


def _traces(n: int = 3) -> list[Trace]:
    g = np.random.default_rng(0)
    return [Trace(np.full(60, 1.0), g.uniform(0.05, 2.0, 60), name=f"t{i}") for i in range(n)]


def _kw(**extra) -> dict:
    return dict(traces=_traces(), ladder="synthetic:promptus:chunks=7", lookahead=2, **extra)


def _assert_same(a, b, what):
    assert data_equivalence(a, b, exact=True), f"{what}: {a!r} != {b!r}"


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
@pytest.mark.parametrize("config", ["promptabr", "latency"])
def test_make_vec_equals_sync_vector_env_of_single_envs(mode, config):
    """Session for session, through three autoresets, reseeding and seedless resets."""
    kw = _kw(config=config, trace_weights=[1.0, 0.0, 3.0])
    ours = gym.make_vec(ENV_ID, num_envs=5, vectorization_mode="vector_entry_point", autoreset_mode=mode, **kw)
    sync = gym.make_vec(ENV_ID, num_envs=5, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode}, **kw)
    assert isinstance(ours, StreamingVectorEnv) and isinstance(sync, SyncVectorEnv)
    assert ours.metadata["autoreset_mode"] is mode
    assert all(e.unwrapped.fast for e in sync.envs)  # the single envs ran the scalar path
    g = np.random.default_rng(3)
    for seed in (11, None, [4, None, 9, 9, 0]):
        _assert_same(ours.reset(seed=seed if seed is None or isinstance(seed, int) else list(seed)),
                     sync.reset(seed=seed), f"reset(seed={seed})")  # fmt: skip
        ends = 0
        for t in range(3 * 8):
            actions = g.integers(0, ours.single_action_space.n, 5)
            a, b = ours.step(actions), sync.step(actions)
            for name, x, y in zip(("obs", "reward", "terminated", "truncated", "info"), a, b):
                _assert_same(x, y, f"step {t} {name}")
            ends += bool(a[2].any())
        assert ends == 3
    assert set(ours.trace_index.tolist()) <= {0, 2}  # a trace of weight 0 is never drawn


def test_vector_env_is_the_batched_core_session_for_session():
    """What sub-env i plays is :func:`episode_sessions` (seed + i, episode): replay it on the core."""
    kw = _kw()
    envs = StreamingVectorEnv(4, **kw)
    obs, info = envs.reset(seed=20)
    tix, keys = episode_sessions([20, 21, 22, 23], [0, 0, 0, 0], 3)
    np.testing.assert_array_equal(info["trace_index"], tix)
    core = BatchSimulator(kw["traces"], envs.sim.ladder, envs.sim.device, get_qoe("perceptual"), envs.sim.config)
    builder = ObservationBuilder.from_context(core.context, 8, lookahead=2)
    np.testing.assert_array_equal(builder(core.reset(tix, keys)), obs)
    g = np.random.default_rng(0)
    for _ in range(core.n_chunks):
        a = g.integers(0, 6, 4)
        o, info_core, _ = core.step(a)
        obs, rewards, term, _, info = envs.step(a)
        np.testing.assert_array_equal(builder(o), obs)
        np.testing.assert_array_equal(info_core.reward, rewards)
        for i in range(4):
            assert step_info(info_core, i) == {k: v[i].item() for k, v in info.items() if not k.startswith("_")}
    assert term.all()


def _check_vector_env(envs: VectorEnv, seed: int = 123) -> None:
    """Gymnasium's single-env checks (spaces, seeding, determinism, fresh data), for a vector env."""
    n = envs.num_envs
    assert envs.observation_space == batch_space(envs.single_observation_space, n)
    assert envs.action_space == batch_space(envs.single_action_space, n)
    assert isinstance(envs.metadata["autoreset_mode"], AutoresetMode)
    o1, i1 = envs.reset(seed=seed)
    k1 = envs.unwrapped.keys.copy()
    assert o1 in envs.observation_space
    envs.reset()
    assert not np.any(envs.unwrapped.keys == k1)  # a seedless reset plays the next episodes
    o3, i3 = envs.reset(seed=seed)
    _assert_same(o1, o3, "reset(seed) twice")
    _assert_same(i1, i3, "reset info")
    np.testing.assert_array_equal(envs.unwrapped.keys, k1)
    envs.action_space.seed(seed)
    actions = envs.action_space.sample()
    first = envs.step(actions)
    envs.reset(seed=seed)
    second = envs.step(actions)
    for x, y in zip(first, second):
        _assert_same(x, y, "step after reset(seed)")
    obs, rewards, term, trunc, info = first
    assert obs in envs.observation_space and rewards.shape == term.shape == trunc.shape == (n,)
    assert rewards.dtype == np.float64 and term.dtype == trunc.dtype == np.bool_
    assert not (np.shares_memory(first[0], second[0]) or np.shares_memory(first[1], second[1]))
    assert not any(np.shares_memory(first[4][k], second[4][k]) for k in first[4])
    with pytest.raises(ValueError):
        envs.step(np.zeros(n + 1, dtype=np.int64))


def test_vector_env_passes_the_vector_checks_and_gymnasium_wrappers():
    envs = gym.make_vec(ENV_ID, num_envs=6, **_kw())
    _check_vector_env(envs)
    _check_vector_env(StreamingVectorEnv(3, autoreset_mode="SameStep", **_kw()))
    # NEXT_STEP: the step after the last chunk starts the next episode, reward 0, actions ignored
    envs.reset(seed=1)
    for _ in range(7):
        obs, rewards, term, trunc, info = envs.step(np.zeros(6, dtype=np.int64))
    assert term.all() and not trunc.any()
    obs, rewards, term, trunc, info = envs.step(np.full(6, 99))  # out of range, yet ignored
    assert not term.any() and (rewards == 0).all() and set(info) == {"trace", "_trace", "trace_index", "_trace_index"}
    first, info_first = envs.reset(seed=1)
    _assert_same((first, info_first), envs.reset(seed=np.int64(1)), "a numpy integer seed")
    # Gymnasium's episode statistics wrapper, which relies on the autoreset mode
    stats = gym.wrappers.vector.RecordEpisodeStatistics(gym.make_vec(ENV_ID, num_envs=6, **_kw()))
    stats.reset(seed=1)
    total = np.zeros(6)
    for _ in range(7):
        _, r, term, _, info = stats.step(np.ones(6, dtype=np.int64))
        total += r
    np.testing.assert_allclose(info["episode"]["r"], total)
    assert (info["episode"]["l"] == 7).all()
    with pytest.raises(ValueError, match="NEXT_STEP or SAME_STEP"):
        StreamingVectorEnv(2, autoreset_mode=AutoresetMode.DISABLED, **_kw())
    with pytest.raises(ValueError, match="reset_mask"):
        envs.reset(options={"reset_mask": np.array([True, False, True, True, True, True])})


def test_single_env_passes_check_env_through_make():
    env = gym.make(ENV_ID, **_kw())
    check_env(env.unwrapped)
    assert env.unwrapped.fast


def test_names_and_objects_are_accepted_alike():
    from sim.vecenv import BatchVecEnv

    venv = BatchVecEnv("lte", "h265-measured", "h200", "perceptual", num_envs=4)
    assert venv.reset().shape == (4, venv.observation_space.shape[0])
    env = StreamingEnv(trace=_traces(), ladder="synthetic:promptus:chunks=7")
    assert env.sim.bank.traces[0].name == "t0"
    with pytest.raises(TypeError, match="not both"):
        StreamingEnv(traces=_traces(), trace=_traces())


def test_sb3_adapter_is_the_vector_env_seeded_like_sb3():
    """BatchVecEnv sub-env i plays the episodes of StreamingEnv reset with seed + i."""
    pytest.importorskip("stable_baselines3")
    from sim.vecenv import BatchVecEnv

    kw = _kw()
    venv = BatchVecEnv(kw["traces"], kw["ladder"], lookahead=2, num_envs=3, seed=7, reward_scale=2.0)
    singles = [StreamingEnv(**kw) for _ in range(3)]
    obs = venv.reset()
    firsts = [env.reset(seed=7 + i) for i, env in enumerate(singles)]
    np.testing.assert_array_equal(obs, np.stack([o for o, _ in firsts]))
    assert [r["trace_index"] for r in venv.reset_infos] == [i["trace_index"] for _, i in firsts]
    g = np.random.default_rng(0)
    for _ in range(2 * 7):
        a = g.integers(0, 6, 3)
        obs, rewards, dones, infos = venv.step(a)
        for i, env in enumerate(singles):
            o, r, term, _, info = env.step(int(a[i]))
            assert rewards[i] == np.float32(2.0 * r) and infos[i]["qoe"] == r and dones[i] == term
            if term:
                np.testing.assert_array_equal(infos[i]["terminal_observation"], o)
                o, _ = env.reset()
            np.testing.assert_array_equal(obs[i], o)
    state = venv.episode_state()
    again = BatchVecEnv(kw["traces"], kw["ladder"], lookahead=2, num_envs=3, seed=0)
    again.restore_episode_state(copy.deepcopy(state))
    np.testing.assert_array_equal(again.reset(), venv.reset())  # a checkpoint resumes the episode sequence


# ---------------------------------------------------------------------------- README
def _readme_python() -> str:
    """The indented Python block of the README's Gymnasium section, as written."""
    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## Gymnasium.*?(?=^## )", text, re.S | re.M)
    assert section, "README has no '## Gymnasium' section"
    blocks = re.findall(r"((?:^    .*\n|^\n)+)", section.group(0), re.M)
    code = [textwrap.dedent(b) for b in blocks if "import gymnasium" in b]
    assert len(code) == 1, "expected one Python block with 'import gymnasium' in the README's Gymnasium section"
    return code[0]


def test_readme_snippet_runs_as_written_without_a_prior_import():
    code = _readme_python()
    assert "import sim" not in code.replace("import sim.", "")  # the module prefix does the import
    exec(compile(code, "README.md", "exec"), {})  # every line, as written
    first = code.split("\n\n")[:2]  # import gymnasium + gym.make(...): in a fresh interpreter
    assert "gym.make(" in first[1]
    out = subprocess.run([sys.executable, "-c", "\n\n".join(first)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]

"""Learned policies: the batched VecEnv, training, checkpoints, and loading ``rl:DIR``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from stable_baselines3.common.env_checker import check_env  # noqa: E402
from stable_baselines3.common.vec_env import VecCheckNan, VecFrameStack, VecNormalize  # noqa: E402

from abr.errors import InputError  # noqa: E402
from abr.qoe import get_qoe  # noqa: E402
from abr.registry import get_ladder  # noqa: E402
from policies.registry import get_policy  # noqa: E402
from policies.rl import RLPolicy  # noqa: E402
from sim.core import SIM_PRESETS, BatchSimulator, PlayerConfig  # noqa: E402
from sim.device import get_device  # noqa: E402
from sim.env import StreamingEnv, episode_sessions  # noqa: E402
from sim.imitation import collect_expert, discounted_returns  # noqa: E402
from sim.rng import session_keys  # noqa: E402
from sim.session import run_sessions  # noqa: E402
from sim.train import TrainConfig, load_config, main, train  # noqa: E402
from sim.vecenv import BatchVecEnv  # noqa: E402
from traces.formats import write_cooked  # noqa: E402
from traces.trace import Trace  # noqa: E402

LADDER = "synthetic:promptus"


def _traces(n: int = 6, seed: int = 0) -> list[Trace]:
    """Piecewise-constant traces with slow and fast stretches and an outage, 1 s steps."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        mbps = np.exp(rng.normal(np.log(0.4 + 0.5 * i), 0.8, size=120))
        mbps[rng.integers(0, 120, size=3)] = 0.0
        out.append(Trace(np.ones(120), mbps, name=f"t{i}", source="test"))
    return out


def _world(history: int = 8):
    cfg = SIM_PRESETS["promptabr"]
    if history != cfg.player.history:
        cfg = replace(cfg, player=PlayerConfig(history=history))
    return get_ladder(LADDER), get_device("h200"), get_qoe("perceptual"), cfg


@pytest.fixture(scope="module")
def trace_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("traces")
    for t in _traces(8):
        write_cooked(t, folder / f"{t.name}.txt")
    return folder


def _config(trace_dir: Path, **kw) -> TrainConfig:
    base = dict(traces=(str(trace_dir),), ladder=LADDER, steps=2048, n_envs=16, n_steps=32, batch_size=128,
                n_epochs=2, eval_every=1024, net_arch=(32, 32), seed=3)  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def trained(trace_dir, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("run") / "ppo"
    return out, train(_config(trace_dir), out, progress=False)


# ---------------------------------------------------------------------------- VecEnv
def test_vecenv_matches_single_envs_session_for_session():
    """Sub-env i of a BatchVecEnv seeded s plays the episodes of a StreamingEnv reset with s + i."""
    ladder, device, qoe, cfg = _world()
    traces = _traces()
    venv = BatchVecEnv(traces, ladder, device, qoe, cfg, num_envs=4, seed=11)
    singles = [StreamingEnv(traces, ladder, device, qoe, cfg) for _ in range(4)]
    rng = np.random.default_rng(0)
    obs = venv.reset()
    for i, env in enumerate(singles):
        o, info = env.reset(seed=11 + i)
        np.testing.assert_array_equal(o, obs[i])
        assert info["trace_index"] == venv.reset_infos[i]["trace_index"]
    for _episode in range(2):
        for k in range(ladder.n_chunks):
            actions = rng.integers(0, ladder.n_rungs, size=4)
            obs, rewards, dones, infos = venv.step(actions)
            for i, env in enumerate(singles):
                o, r, term, trunc, _ = env.step(int(actions[i]))
                assert float(rewards[i]) == np.float32(r) and infos[i]["qoe"] == r
                assert dones[i] == term and not trunc
                if term:
                    np.testing.assert_array_equal(o, infos[i]["terminal_observation"])
                    o, _ = env.reset()
                np.testing.assert_array_equal(o, obs[i])
            assert dones.all() == (k == ladder.n_chunks - 1)


def test_vecenv_seed_replays_episodes_and_sessions_are_fresh():
    ladder, device, qoe, cfg = _world()

    def run(seed: int) -> tuple[list, list, np.ndarray]:
        venv = BatchVecEnv(_traces(), ladder, device, qoe, cfg, num_envs=3, seed=0)
        assert venv.seed(seed) == [seed, seed + 1, seed + 2]
        venv.reset()
        infos, keys, total = [], [], np.zeros(3)
        for _ in range(2 * ladder.n_chunks):
            infos.append([dict(i) for i in venv.reset_infos])
            keys.append(venv.keys.copy())
            total += venv.step(np.full(3, 5))[1]
        return infos, keys, total

    a, b, c = run(7), run(7), run(8)
    assert a[0] == b[0] and np.array_equal(a[2], b[2])
    assert not np.array_equal(a[2], c[2])
    first, second = a[1][0], a[1][ladder.n_chunks]
    assert not np.intersect1d(first, second).size  # a new episode gets new session keys
    # sub-env i's episode e has key session_keys(seed + i, e) (sim.env.episode_sessions)
    expect = [int(session_keys(7 + i, np.array([e]))[0]) for e in (0, 1) for i in range(3)]
    assert [int(k) for k in np.concatenate([first, second])] == expect


def test_vecenv_trace_weights_and_sb3_wrappers():
    ladder, device, qoe, cfg = _world()
    venv = BatchVecEnv(_traces(3), ladder, device, qoe, cfg, num_envs=8, trace_weights=[0, 1, 0])
    venv.reset()
    assert {i["trace_index"] for i in venv.reset_infos} == {1}
    with pytest.raises(ValueError, match="trace_weights"):
        BatchVecEnv(_traces(3), ladder, device, qoe, cfg, trace_weights=[1, 1])
    wrapped = VecNormalize(VecFrameStack(VecCheckNan(venv, raise_exception=True), 2))
    obs = wrapped.reset()
    assert obs.shape == (8, 2 * venv.observation_space.shape[0])
    for _ in range(ladder.n_chunks + 3):
        obs, rew, done, info = wrapped.step(np.array([wrapped.action_space.sample() for _ in range(8)]))
    assert np.isfinite(obs).all() and venv.get_attr("render_mode") == [None] * 8
    assert venv.env_is_wrapped(object) == [False] * 8


def test_set_trace_weights_moves_later_episodes_to_those_traces():
    ladder, device, qoe, cfg = _world()
    venv = BatchVecEnv(_traces(3), ladder, device, qoe, cfg, num_envs=8)
    venv.reset()
    venv.set_trace_weights([0, 0, 1])
    for _ in range(ladder.n_chunks):  # the episode ends; the next starts on trace 2 everywhere
        venv.step(np.zeros(8, dtype=np.int64))
    assert {i["trace_index"] for i in venv.reset_infos} == {2}
    venv.set_trace_weights(None)
    venv.reset()
    assert len({i["trace_index"] for i in venv.reset_infos}) > 1


def test_centered_reward_subtracts_the_running_mean_of_the_batch_reward():
    from stable_baselines3.common.vec_env import VecEnvWrapper

    from sim.vecenv import CenteredReward

    class Fixed(VecEnvWrapper):  # a VecEnv whose rewards are given
        def __init__(self, venv, rewards):
            super().__init__(venv)
            self.rewards = iter(rewards)

        def reset(self):
            return self.venv.reset()

        def step_wait(self):
            obs, _, dones, infos = self.venv.step_wait()
            return obs, np.asarray(next(self.rewards), dtype=np.float32), dones, infos

    ladder, device, qoe, cfg = _world()
    base = BatchVecEnv(_traces(2), ladder, device, qoe, cfg, num_envs=2)
    env = CenteredReward(Fixed(base, [[1.0, 1.0], [2.0, 4.0], [0.0, 0.0]]), rate=0.5)
    env.reset()
    got = [env.step(np.zeros(2, dtype=np.int64))[1] for _ in range(3)]
    # means: 1 (first batch), 1 + 0.5 (3 - 1) = 2, 2 + 0.5 (0 - 2) = 1
    np.testing.assert_allclose(got, [[0.0, 0.0], [0.0, 2.0], [-1.0, -1.0]])
    assert env.state()["mean"] == 1.0
    with pytest.raises(ValueError, match="rate"):
        CenteredReward(base, rate=0.0)


def test_curriculum_weights_follow_the_gap_to_the_baseline(trace_dir, tmp_path, monkeypatch):
    """Genet-style selection, hand-computed: mix 0.5 of uniform and 0.5 of the positive gaps."""
    import sim.trainer as st

    cfg = _config(trace_dir, curriculum="fixed:rung=0", curriculum_mix=0.5)
    setup = st._setup(cfg)
    n = len(setup.train_traces)
    trainer = st._Trainer(cfg, tmp_path, setup, {}, progress=False)
    trainer.env, _ = st._make_env(cfg, setup)
    base = np.linspace(0.5, 0.9, n)
    gap = np.zeros(n)
    gap[0], gap[1], gap[2] = 0.3, 0.1, -0.2  # the policy trails on traces 0 and 1, leads on 2
    calls = iter([base, base - gap])
    monkeypatch.setattr(trainer, "_train_session_qoe", lambda policy: next(calls))
    monkeypatch.setattr(trainer, "policy", lambda model: None)
    assert trainer.update_curriculum(None) == pytest.approx(gap.mean())
    want = np.full(n, 0.5 / n)
    want[0] += 0.5 * 0.75
    want[1] += 0.5 * 0.25
    np.testing.assert_allclose(trainer.trace_weights, want)
    np.testing.assert_allclose(trainer.env.venv._draw.cum, np.cumsum(want))


def test_curriculum_centering_and_tensorboard_in_a_short_run(trace_dir, tmp_path):
    pytest.importorskip("tensorboard")
    out, tb = tmp_path / "cur", tmp_path / "tb"
    res = train(_config(trace_dir, curriculum="fixed:rung=2", reward_center=True), out, progress=False,
                tensorboard=tb)  # fmt: skip
    assert all(np.isfinite(r["curriculum_gap"]) for r in res.eval_rows)
    assert "curriculum_gap" in (out / "eval.csv").read_text().splitlines()[0]
    assert any(p.name.startswith("events.out.tfevents") for p in tb.rglob("*"))
    from policies.rl import read_zip_member

    state = json.loads(read_zip_member(out / "last" / "checkpoint.zip", "state.json"))
    assert sum(state["trace_weights"]) == pytest.approx(1.0) and np.isfinite(state["reward_center"]["mean"])
    # resuming restores both, then continues
    train(_config(trace_dir, curriculum="fixed:rung=2", reward_center=True, steps=3072), out, resume=True,
          progress=False)  # fmt: skip
    with pytest.raises(InputError, match="unknown policy"):
        train(_config(trace_dir, curriculum="nope"), tmp_path / "bad", progress=False)


def test_start_rung_fetches_the_first_chunk_before_the_agent_acts():
    ladder, device, qoe, cfg = _world()
    fixed = BatchVecEnv(_traces(), ladder, device, qoe, cfg, num_envs=4, seed=5, start_rung=2)
    free = BatchVecEnv(_traces(), ladder, device, qoe, cfg, num_envs=4, seed=5)
    first = fixed.reset()
    free.reset()
    after_start, *_ = free.step(np.full(4, 2))
    np.testing.assert_array_equal(first, after_start)
    rng = np.random.default_rng(1)
    for k in range(ladder.n_chunks - 1):  # the agent decides every chunk after the first
        actions = rng.integers(0, ladder.n_rungs, size=4)
        a, b = fixed.step(actions), free.step(actions)
        np.testing.assert_array_equal(a[1], b[1])
        assert a[2].all() == b[2].all() == (k == ladder.n_chunks - 2)
    env = StreamingEnv(_traces(), ladder, device, qoe, cfg, start_rung=2)
    env.reset(seed=0)
    steps, done = 0, False
    while not done:
        _, _, done, _, info = env.step(0)
        steps += 1
    assert steps == ladder.n_chunks - 1 and info["rung"] == 0
    for bad in (-1, ladder.n_rungs):
        with pytest.raises(ValueError, match="start_rung"):
            BatchVecEnv(_traces(), ladder, device, qoe, cfg, start_rung=bad)


def test_single_env_passes_sb3_check_env():
    ladder, device, qoe, cfg = _world()
    check_env(StreamingEnv(_traces(2), ladder, device, qoe, cfg), warn=True)


# ---------------------------------------------------------------------------- training
def test_short_training_run_writes_a_loadable_policy(trained, trace_dir):
    out, result = trained
    for name in ("config.json", "model.zip", "eval.csv", "progress.csv", "summary.json", "last/checkpoint.zip"):
        assert (out / name).is_file(), name
    assert result.timesteps >= 2048
    assert [r["timesteps"] for r in result.eval_rows][:2] == [1024, 2048]
    meta = json.loads((out / "config.json").read_text())
    assert load_config(out / "config.json") == _config(trace_dir)
    assert meta["ladder"]["n_rungs"] == 6 and meta["layout"]["size"] == 3 * 8 + 3 * 6 + 4
    # validation traces are held out of training, and the split is recorded
    assert set(meta["traces"]["eval"]).isdisjoint(meta["traces"]["train"])
    assert len(meta["traces"]["eval"]) + len(meta["traces"]["train"]) == 8
    # the loaded best model scores on the validation traces exactly what training logged for it
    policy = get_policy(f"rl:{out}")
    assert isinstance(policy, RLPolicy) and policy.label == f"rl:{out}"
    ladder, device, qoe, cfg = _world()
    by_name = {p.stem: p for p in trace_dir.iterdir()}
    from traces.formats import read_trace

    val = [read_trace(by_name[Path(n).stem]) for n in meta["traces"]["eval"]]
    res = run_sessions(policy, val, ladder, device, qoe, config=cfg, seed=3 + 1_000_003)
    assert float(res.summary_arrays()["qoe_mean"].mean()) == pytest.approx(result.best["qoe_mean"], abs=1e-9)


def test_same_seed_trains_the_same_policy(trained, trace_dir, tmp_path):
    _, first = trained
    again = train(_config(trace_dir), tmp_path / "again", progress=False)
    assert [r["qoe_mean"] for r in again.eval_rows] == [r["qoe_mean"] for r in first.eval_rows]


def test_resume_continues_and_refuses_other_configs(trace_dir, tmp_path):
    out = tmp_path / "run"
    train(_config(trace_dir, steps=1024), out, progress=False)
    with pytest.raises(InputError, match="--resume"):
        train(_config(trace_dir, steps=1024), out, progress=False)
    with pytest.raises(InputError, match="gamma"):
        train(_config(trace_dir, steps=2048, gamma=0.9), out, resume=True, progress=False)
    res = train(_config(trace_dir, steps=2048), out, resume=True, progress=False)
    assert res.timesteps >= 2048
    assert [r["timesteps"] for r in res.eval_rows] == [1024, 2048]


def test_interrupted_runs_leave_a_folder_that_reruns_or_resumes(trace_dir, tmp_path):
    """Killed before the first checkpoint: the folder (config.json, a partial progress.csv, a
    stale temporary file) is simply run again, even with --resume. Killed after a checkpoint
    but before model.zip and eval.csv caught up: resume rederives them from the checkpoint and
    stops at the step budget."""
    import zipfile

    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "progress.csv").write_text("partial\n")
    (out / ".eval.csv.k1l2.tmp").write_text("partial")
    train(_config(trace_dir, steps=1024), out, resume=True, progress=False)
    assert not (out / ".eval.csv.k1l2.tmp").exists() and not (out / ".promptabr.lock").exists()
    with zipfile.ZipFile(out / "last" / "checkpoint.zip") as zf:
        state = json.loads(zf.read("state.json"))
    assert state["timesteps"] == 1024 and [r["timesteps"] for r in state["rows"]] == [1024]
    (out / "model.zip").unlink()
    (out / "eval.csv").write_text("timesteps\n")
    res = train(_config(trace_dir, steps=2048), out, resume=True, progress=False)
    assert res.timesteps == 2048 and [r["timesteps"] for r in res.eval_rows] == [1024, 2048]
    assert (out / "model.zip").is_file()
    assert [int(r.split(",")[0]) for r in (out / "eval.csv").read_text().splitlines()[1:]] == [1024, 2048]


def test_kill_9_mid_training_then_resume_reaches_the_budget(trace_dir, tmp_path):
    """A real kill -9 of python -m sim.train after its first checkpoint: the folder's checkpoint,
    model and eval.csv agree, --resume finishes at the step budget, and the lock is taken over."""
    import signal
    import time
    import zipfile

    out = tmp_path / "killed"
    args = ["--trace", str(trace_dir), "--ladder", LADDER, "--steps", "4096", "--n-envs", "16", "--n-steps", "32",
            "--batch-size", "128", "--epochs", "2", "--eval-every", "512", "--net", "32,32", "--seed", "3",
            "--out", str(out), "--no-progress"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "sim.train", *args], cwd=Path(__file__).resolve().parents[1],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    ckpt = out / "last" / "checkpoint.zip"
    deadline = time.monotonic() + 240
    while not ckpt.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.is_file()
    with zipfile.ZipFile(ckpt) as zf:
        done = json.loads(zf.read("state.json"))["timesteps"]
    res = train(_config(trace_dir, steps=4096, eval_every=512), out, resume=True, progress=False)
    assert res.timesteps == 4096
    steps = [r["timesteps"] for r in res.eval_rows]
    assert steps == list(range(512, 4097, 512)) and done in steps


def test_other_algorithms_and_frame_stack_train_and_load(trace_dir, tmp_path):
    for algo, extra in (("dqn", {"batch_size": 64}), ("a2c", {"frame_stack": 3, "n_steps": 8})):
        out = tmp_path / algo
        kw = dict(algo=algo, steps=512, eval_every=512, net_arch=(16,), **extra)
        if algo == "dqn":
            kw.update(n_steps=None, n_epochs=None)
        else:
            kw.update(batch_size=None, n_epochs=None)
        train(_config(trace_dir, **kw), out, progress=False)
        ladder, device, qoe, cfg = _world()
        res = run_sessions(RLPolicy.load(out), _traces(2), ladder, device, qoe, config=cfg)
        assert res.chunks["rung"].shape == (ladder.n_chunks, 2)


def test_loaded_policy_sees_what_training_saw_with_start_rung_and_frame_stack(trace_dir, tmp_path):
    out = tmp_path / "fs"
    train(_config(trace_dir, steps=512, eval_every=512, frame_stack=2, start_rung=1, lookahead=3,
                  normalize_obs=False), out, progress=False)  # fmt: skip
    meta = json.loads((out / "config.json").read_text())
    assert meta["start_rung"] == 1 and meta["layout"]["lookahead"] == 3
    policy = RLPolicy.load(out)
    ladder, device, qoe, cfg = _world()
    traces = _traces(3)
    venv = VecFrameStack(
        BatchVecEnv(traces, ladder, device, qoe, cfg, num_envs=3, seed=9, start_rung=1, lookahead=3), 2
    )
    seen = venv.reset()
    sim = BatchSimulator(traces, ladder, device, qoe, cfg)
    obs = sim.reset(venv.venv.trace_index, venv.venv.keys)
    policy.reset(sim.context, 3)
    start = policy.act(obs)
    assert (start == 1).all()
    obs, _, _ = sim.step(start)
    rng = np.random.default_rng(2)
    for _ in range(1, ladder.n_chunks):
        np.testing.assert_array_equal(policy.features(obs), seen)
        actions = rng.integers(0, ladder.n_rungs, size=3)
        obs, _, _ = sim.step(actions)
        seen, *_ = venv.step(actions)
    res = run_sessions(policy, traces, ladder, device, qoe, config=cfg)
    assert (res.chunks["rung"][0] == 1).all()
    with pytest.raises(InputError, match="start-rung 6"):
        train(_config(trace_dir, start_rung=6), tmp_path / "bad", progress=False)


def test_collect_expert_records_what_the_expert_does_in_its_sessions():
    ladder, device, qoe, cfg = _world()
    traces = _traces(3)
    env = BatchVecEnv(traces, ladder, device, qoe, cfg, num_envs=3, seed=4)
    obs, actions, rewards = collect_expert(get_policy("bba"), env, env, episodes=2)
    n = ladder.n_chunks
    assert obs.shape == (2, n, 3, env.observation_space.shape[0]) and actions.shape == rewards.shape == (2, n, 3)
    # the env's episodes are (seed 4 + i, episode e): replay them on the core with the expert
    tix, keys = episode_sessions([4, 5, 6] * 2, [0, 0, 0, 1, 1, 1], len(traces))
    sim = BatchSimulator(traces, ladder, device, qoe, cfg)
    expert = get_policy("bba")
    o = sim.reset(tix, keys)
    expert.reset(sim.context, 6)
    ref_rungs, ref_rewards = [], []
    for _ in range(n):
        a = expert.act(o)
        o, info, _ = sim.step(a)
        ref_rungs.append(info.rung)
        ref_rewards.append(info.reward)
    as_sessions = lambda a: a.transpose(1, 0, 2).reshape(n, 6)  # noqa: E731  (chunk, episode * 3 + env)
    np.testing.assert_array_equal(as_sessions(actions), np.array(ref_rungs))
    np.testing.assert_allclose(as_sessions(rewards), np.array(ref_rewards), rtol=1e-6, atol=1e-7)
    # returns: hand-computed on a two-step episode, and undiscounted = the episode's total
    np.testing.assert_allclose(discounted_returns(np.array([[1.0, 2.0]]), 0.5), [[2.0, 2.0]])
    total = discounted_returns(rewards, 1.0)[:, 0, :].reshape(6)
    np.testing.assert_allclose(total, np.array(ref_rewards).sum(axis=0), rtol=1e-5)


def test_imitation_clones_the_expert_before_rl(trace_dir, tmp_path):
    out = tmp_path / "bc"
    res = train(_config(trace_dir, steps=512, eval_every=512, imitate="fixed:rung=3", imitate_episodes=2,
                        imitate_epochs=300), out, progress=False)  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["imitation"]["expert"] == "fixed:rung=3" and summary["imitation"]["agreement"] == 1.0
    assert res.eval_rows[0]["timesteps"] == 0  # the cloned policy is scored before RL
    ladder, device, qoe, cfg = _world()
    meta = json.loads((out / "config.json").read_text())
    from traces.formats import read_trace

    by_name = {p.stem: p for p in trace_dir.iterdir()}
    val = [read_trace(by_name[Path(n).stem]) for n in meta["traces"]["eval"]]
    expert = run_sessions(get_policy("fixed:rung=3"), val, ladder, device, qoe, config=cfg, seed=3 + 1_000_003)
    assert res.eval_rows[0]["qoe_mean"] == pytest.approx(float(expert.summary_arrays()["qoe_mean"].mean()), abs=1e-12)
    # the clone is kept as a policy folder of its own and scores what the first evaluation scored
    clone = run_sessions(RLPolicy.load(out / "clone"), val, ladder, device, qoe, config=cfg, seed=3 + 1_000_003)
    assert res.eval_rows[0]["qoe_mean"] == pytest.approx(float(clone.summary_arrays()["qoe_mean"].mean()), abs=1e-12)
    with pytest.raises(InputError, match="unknown policy"):
        train(_config(trace_dir, imitate="nope"), tmp_path / "bad", progress=False)


def test_config_rejects_bad_options():
    with pytest.raises(ValueError, match="n_epochs does not apply to dqn"):
        TrainConfig(algo="dqn", n_epochs=3)
    with pytest.raises(ValueError, match="algo"):
        TrainConfig(algo="sac")
    with pytest.raises(ValueError, match="start_rung"):
        TrainConfig(start_rung=-1)
    with pytest.raises(ValueError, match="imitate needs an actor-critic"):
        TrainConfig(algo="dqn", imitate="mpc")
    with pytest.raises(InputError, match="unknown training option"):
        TrainConfig.from_dict({"stepz": 3})
    cfg = TrainConfig(traces=("a", "b"), net_arch=(8, 8))
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    assert main(["--trace", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


# ---------------------------------------------------------------------------- loading errors
def test_loading_for_another_ladder_size_fails_clearly(trained):
    out, _ = trained
    policy = RLPolicy.load(out)
    _, device, qoe, cfg = _world()
    small = get_ladder("synthetic:promptus:ranks=2/4/8")
    with pytest.raises(InputError, match="trained for a ladder with 6 rungs.*has 3"):
        run_sessions(policy, _traces(1), small, device, qoe, config=cfg)


def test_loading_with_another_observation_layout_fails_clearly(trained):
    out, _ = trained
    ladder, device, qoe, cfg = _world(history=4)
    with pytest.raises(InputError, match="observation layout.*history: trained 8, now 4"):
        run_sessions(RLPolicy.load(out), _traces(1), ladder, device, qoe, config=cfg)


def test_configs_saved_before_lookahead_and_start_rung_still_load(trained, tmp_path):
    out, _ = trained
    old = tmp_path / "old"
    shutil.copytree(out, old)
    meta = json.loads((old / "config.json").read_text())
    del meta["layout"]["lookahead"], meta["start_rung"]
    (old / "config.json").write_text(json.dumps(meta))
    ladder, device, qoe, cfg = _world()
    a = run_sessions(RLPolicy.load(old), _traces(2), ladder, device, qoe, config=cfg)
    b = run_sessions(RLPolicy.load(out), _traces(2), ladder, device, qoe, config=cfg)
    np.testing.assert_array_equal(a.chunks["rung"], b.chunks["rung"])


def test_loading_broken_folders_fails_clearly(trained, tmp_path):
    out, _ = trained
    with pytest.raises(InputError, match="needs a folder"):
        get_policy("rl:")
    with pytest.raises(InputError, match="not a folder"):
        RLPolicy.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no config.json"):
        RLPolicy.load(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    meta = json.loads((out / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps(dict(meta, version=99)))
    with pytest.raises(InputError, match="version 99"):
        RLPolicy.load(bad)
    (bad / "config.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="no model.zip"):
        RLPolicy.load(bad)
    (bad / "model.zip").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="cannot load model"):
        RLPolicy.load(bad)


def test_importing_policies_does_not_import_torch():
    code = "import sys, policies, sim.train; policies.get_policy('bola'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    assert out.stdout.strip() == "False"


def test_validation_traces_depend_on_the_split_seed_not_the_model_seed(trace_dir):
    """Seeds are compared by validation, so every seed must validate on the same traces."""
    from sim.trainer import _setup

    def held_out(**kw):
        return sorted(t.name for t in _setup(_config(trace_dir, **kw)).eval_traces)

    assert held_out(seed=1) == held_out(seed=2)
    assert any(held_out(split_seed=s) != held_out(split_seed=0) for s in (1, 2, 3))


def test_train_cli_takes_the_whatif_flags_of_sim_run(trace_dir, tmp_path, monkeypatch):
    """--scale/--cap/... as in sim.run: in order, replacing the same key of --transform or a scenario."""
    import sim.trainer

    seen = []

    def fake_train(cfg, out, **kw):
        seen.append(cfg.transform)
        raise SystemExit(0)

    monkeypatch.setattr(sim.trainer, "train", fake_train)
    base = ["--trace", str(trace_dir), "--out", str(tmp_path / "o")]
    for argv, want in (
        (["--scale", "0.5", "--cap", "3"], "scale=0.5,cap=3"),
        (["--transform", "cap=2,scale=4", "--scale", "0.5"], "cap=2,scale=0.5"),
        (["--random-start"], "random_start"),
        ([], ""),
    ):
        with pytest.raises(SystemExit):
            main(base + argv)
        assert seen[-1] == want, argv
    with pytest.raises(SystemExit):
        main(["--scenario", "congested-cell", "--cap", "1", "--out", str(tmp_path / "c")])
    assert seen[-1] == "scale=0.03125,cap=1"  # the scenario's own transform is kept

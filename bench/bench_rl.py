"""Learned policies: VecEnv throughput, a 15-minute PPO run, and PPO against every heuristic.

Run from the repository root (needs ``../shared/data/traces``)::

    python bench/bench_rl.py throughput      # -> bench/results/rl_throughput.json
    python bench/bench_rl.py train           # -> bench/results/rl-ppo/ (the trained policy)
    python bench/bench_rl.py compare         # -> bench/results/rl_compare.{csv,md,json}

``throughput`` compares :class:`sim.vecenv.BatchVecEnv` (one numpy step for all sessions)
with SB3's ``DummyVecEnv`` over single :class:`sim.env.StreamingEnv` of the same simulator,
same number of environments, measured in the same run, alternating, best of several tries
(the machine is shared): raw ``step`` with random actions, and the time spent inside the
environment while PPO trains (same hyperparameters, same wrappers), plus PPO's overall
steps per second.

``train`` trains PPO for at most 15 minutes of wall clock on the train splits of the FCC,
Norway 3G and Belgium LTE sets plus Genet-randomized traces, with the default ladder,
device ``h200`` and the ``perceptual`` QoE; 20% of those training traces are held out for
model selection. The agent sees the qualities of the next 5 chunks (MPC's horizon), the first
chunk is fetched at the lowest rung (what MPC does without a throughput sample; Pensieve's
fixed first chunk), and the actor and critic start from a clone of MPC's decisions (about 25 s
of the 15 minutes) that PPO then fine-tunes; the clone itself is the first checkpoint, so the
selected model can be it. Why: with a free first chunk PPO learns the rung that pays on
average and loses the 10th percentile (slow-start sessions); from scratch with the first chunk
fixed it does not find MPC's rung path, which is the exact optimum when bandwidth is ample
(the README gives the figures). ``compare`` scores the selected checkpoint on the held-out
test splits of the three sets against every registered heuristic and the oracle bound.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from abr import DEFAULT_LADDER, get_ladder, get_qoe  # noqa: E402
from abr.io import write_json_atomic  # noqa: E402
from sim.core import SIM_PRESETS  # noqa: E402
from sim.device import get_device  # noqa: E402
from traces.sets import load_traces  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SHARED = ROOT.parent / "shared"
TRACE_DIR = "../shared/data/traces"  # relative to the repository root, as saved in the configs
TEST_SETS = {
    "fcc": f"{TRACE_DIR}/fcc-broadband-2016-pensieve-cooked",
    "norway3g": f"{TRACE_DIR}/norway-hsdpa-3g-pensieve-cooked",
    "belgium4g": f"{TRACE_DIR}/belgium-4g-lte-sabre-json",
}
MODEL_DIR = RESULTS / "rl-ppo"


def _need_shared() -> None:
    if not (SHARED / "data" / "traces").is_dir():
        sys.exit(f"bench_rl needs the trace sets in {SHARED / 'data' / 'traces'}")
    os.chdir(ROOT)



# ---------------------------------------------------------------------------- throughput
def throughput(n_envs: int = 32, repeat: int = 3, ppo_steps: int = 32 * 128 * 6) -> dict:
    """VecEnv vs DummyVecEnv, raw and inside PPO training (see the module docstring)."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecEnvWrapper, VecMonitor, VecNormalize

    from sim.env import StreamingEnv
    from sim.vecenv import BatchVecEnv

    torch.set_num_threads(1)
    traces = load_traces(TEST_SETS["fcc"])
    ladder, device, qoe, cfg = (
        get_ladder(DEFAULT_LADDER),
        get_device("h200"),
        get_qoe("perceptual"),
        SIM_PRESETS["promptabr"],
    )

    def batch_env():
        return BatchVecEnv(traces, ladder, device, qoe, cfg, num_envs=n_envs, seed=0)

    def dummy_env():
        return DummyVecEnv([lambda: StreamingEnv(traces, ladder, device, qoe, cfg) for _ in range(n_envs)])

    class Timed(VecEnvWrapper):
        """Accumulates the seconds spent stepping and resetting the wrapped env."""

        def __init__(self, venv):
            super().__init__(venv)
            self.env_s, self.steps = 0.0, 0

        def reset(self):
            t = time.perf_counter()
            obs = self.venv.reset()
            self.env_s += time.perf_counter() - t
            return obs

        def step_wait(self):
            t = time.perf_counter()
            out = self.venv.step_wait()
            self.env_s += time.perf_counter() - t
            self.steps += self.num_envs
            return out

    rng = np.random.default_rng(0)
    n_raw = 20 * ladder.n_chunks
    actions = rng.integers(0, ladder.n_rungs, (n_raw, n_envs))

    def raw(make) -> float:
        env = make()
        env.reset()
        t = time.perf_counter()
        for a in actions:
            env.step(a)
        return n_raw * n_envs / (time.perf_counter() - t)

    def in_training(make) -> tuple[float, float]:
        timed = Timed(make())
        venv = VecNormalize(VecMonitor(timed))
        model = PPO(
            "MlpPolicy",
            venv,
            n_steps=128,
            batch_size=512,
            n_epochs=4,
            seed=0,
            device="cpu",
            policy_kwargs={"net_arch": [64, 64]},
        )
        t = time.perf_counter()
        model.learn(ppo_steps)
        wall = time.perf_counter() - t
        return timed.steps / timed.env_s, model.num_timesteps / wall

    out: dict = {"n_envs": n_envs, "traces": TEST_SETS["fcc"], "ladder": ladder.name, "ppo_steps": ppo_steps}
    best: dict[str, float] = {}
    for _ in range(repeat):  # alternate, keep the best of each: other jobs share the two cores
        for name, make in (("batch", batch_env), ("dummy", dummy_env)):
            r = raw(make)
            env_sps, fps = in_training(make)
            for key, val in (
                (f"{name}_raw_steps_per_s", r),
                (f"{name}_env_steps_per_s_in_ppo", env_sps),
                (f"{name}_ppo_fps", fps),
            ):
                best[key] = max(best.get(key, 0.0), val)
    out.update(best)
    out["ratio_raw"] = best["batch_raw_steps_per_s"] / best["dummy_raw_steps_per_s"]
    out["ratio_env_in_ppo"] = best["batch_env_steps_per_s_in_ppo"] / best["dummy_env_steps_per_s_in_ppo"]
    out["ratio_ppo_fps"] = best["batch_ppo_fps"] / best["dummy_ppo_fps"]
    for key, val in out.items():
        print(f"{key:36s} {val:,.1f}" if isinstance(val, float) else f"{key:36s} {val}")
    RESULTS.mkdir(exist_ok=True)
    write_json_atomic(RESULTS / "rl_throughput.json", out)
    return out


# ---------------------------------------------------------------------------- training
def train_config(steps: int = 50_000_000, seed: int = 1):
    """The benchmark's PPO configuration (steps is a cap: the time limit ends the run)."""
    from sim.train import TrainConfig

    return TrainConfig(
        algo="ppo",
        traces=tuple(f"{p}@train" for p in TEST_SETS.values()) + ("genet",),
        trace_count=100,
        val_fraction=0.2,
        ladder=DEFAULT_LADDER,
        device="h200",
        qoe="perceptual",
        steps=steps,
        n_envs=64,
        n_steps=64,
        batch_size=1024,
        n_epochs=4,
        eval_every=100_000,
        select_by="mean_p10",
        start_rung=0,
        lookahead=5,
        imitate="mpc",
        learning_rate=3e-5,
        ent_coef=0.001,
        seed=seed,
    )


def train_benchmark(minutes: float = 15.0, out: Path = MODEL_DIR, resume: bool = False) -> dict:
    from sim.train import train

    res = train(train_config(), out, resume=resume, progress=True, time_limit_s=60.0 * minutes)
    doc = {"timesteps": res.timesteps, "wall_s": res.wall_s, "steps_per_s": res.steps_per_s, "best": res.best}
    print(json.dumps(doc, indent=1))
    return doc


# ---------------------------------------------------------------------------- comparison
def compare(model: Path = MODEL_DIR, repeats: int = 4, seed: int = 0) -> object:
    """PPO vs every registered heuristic and the oracle on the test splits; one row per policy."""
    import pandas as pd

    from policies.registry import POLICIES, get_policy
    from sim.session import run_sessions

    ladder, device, qoe, cfg = (
        get_ladder(DEFAULT_LADDER),
        get_device("h200"),
        get_qoe("perceptual"),
        SIM_PRESETS["promptabr"],
    )
    specs = list(POLICIES) + [f"rl:{model}"]
    frames = []
    for set_name, path in TEST_SETS.items():
        traces = load_traces(f"{path}@test")
        n = repeats * len(traces)
        for spec in specs:
            res = run_sessions(get_policy(spec), traces, ladder, device, qoe, config=cfg, sessions=n, seed=seed)
            frames.append(res.sessions_frame().assign(set=set_name, policy="ppo" if spec.startswith("rl:") else spec))
        frames.append(_oracle_frame(traces, ladder, device, qoe, cfg, n, seed).assign(set=set_name, policy="oracle"))
    df = pd.concat(frames, ignore_index=True)

    def table(d):
        g = d.groupby("policy", sort=False)
        return pd.DataFrame(
            {
                "qoe_mean": g["qoe_mean"].mean(),
                "qoe_p10": g["qoe_mean"].quantile(0.1),
                "stall_ratio": g["stall_ratio"].mean(),
                "lpips_mean": g["lpips_mean"].mean(),
                "sessions": g.size().astype(int),
            }
        )

    pooled = table(df)
    per_set = {s: table(d) for s, d in df.groupby("set", sort=False)}
    RESULTS.mkdir(exist_ok=True)
    df.to_csv(RESULTS / "rl_compare_sessions.csv", index=False)
    paired = _paired_bootstrap(df, "ppo", "robustmpc")
    doc = {
        "model": str(model.relative_to(ROOT) if model.is_relative_to(ROOT) else model),
        "ladder": ladder.name,
        "device": "h200",
        "qoe": "perceptual",
        "repeats": repeats,
        "seed": seed,
        "pooled": pooled.to_dict(orient="index"),
        "per_set": {k: t.to_dict(orient="index") for k, t in per_set.items()},
        "ppo_vs_robustmpc": paired,
        "training": _training_summary(model),
    }
    write_json_atomic(RESULTS / "rl_compare.json", doc)
    lines = [
        f"PPO ({doc['model']}) vs every registered heuristic and the oracle bound on the test splits "
        f"(@test, test fraction 0.2, split seed 0) of {', '.join(TEST_SETS)}; ladder {ladder.name}, device h200, "
        f"QoE perceptual, pensieve simulator, {repeats} sessions per trace, seed {seed}. qoe_p10 is the 10th "
        "percentile over sessions of the per-session mean QoE.",
        "",
        _training_line(doc["training"]),
        "",
        "All test sets pooled:",
        "",
        _markdown(pooled),
        "",
        "PPO minus RobustMPC, same sessions (paired bootstrap over sessions, 2000 resamples, 95% interval): "
        f"mean QoE {paired['mean_diff']:+.6f} [{paired['mean_ci95'][0]:+.6f}, {paired['mean_ci95'][1]:+.6f}], "
        f"p10 QoE {paired['p10_diff']:+.6f} [{paired['p10_ci95'][0]:+.6f}, {paired['p10_ci95'][1]:+.6f}]; "
        f"PPO better in {paired['share_better']:.1%} of sessions, worse in {paired['share_worse']:.1%}.",
        "",
    ]
    for name, t in per_set.items():
        lines += [f"{name}:", "", _markdown(t), ""]
    text = "\n".join(lines)
    (RESULTS / "rl_compare.md").write_text(text)
    print(text)
    return pooled


def _training_summary(model: Path) -> dict:
    """What the model's own ``summary.json`` and ``config.json`` say about how it was trained."""
    try:
        summary = json.loads((model / "summary.json").read_text())
        cfg = json.loads((model / "config.json").read_text())["train"]
    except (OSError, ValueError, KeyError):
        return {}
    keep = ("algo", "imitate", "start_rung", "lookahead", "learning_rate", "ent_coef", "select_by")
    return {
        "timesteps": summary.get("timesteps"),
        "wall_s": summary.get("wall_s"),
        "best_at_timesteps": summary.get("best", {}).get("timesteps"),
        "imitation": summary.get("imitation"),
        **{k: cfg.get(k) for k in keep},
    }


def _training_line(t: dict) -> str:
    if not t:
        return "(no training summary beside the model)"
    line = (
        f"Training: {t['algo']} for {t['timesteps']} steps in {t['wall_s']:.0f} s (lookahead {t['lookahead']}, "
        f"start rung {t['start_rung']}, lr {t['learning_rate']}, entropy {t['ent_coef']}); the selected checkpoint "
        f"(best validation {t['select_by']}) is the one at {t['best_at_timesteps']} steps."
    )
    if t.get("imitation"):
        im = t["imitation"]
        line += (
            f" The actor and critic were first cloned from {im['expert']} ({im['samples']} decisions, "
            f"{im['agreement']:.2%} agreement, {im['wall_s']:.0f} s); a checkpoint at 0 steps is that clone "
            "before any RL update."
        )
    return line


def _paired_bootstrap(df, a: str, b: str, n: int = 2000) -> dict:
    """Mean and p10 QoE differences of policy ``a`` minus ``b`` over the same sessions, with bootstrap intervals."""
    key = ["set", "session"]
    x = df[df.policy == a].sort_values(key)["qoe_mean"].to_numpy()
    y = df[df.policy == b].sort_values(key)["qoe_mean"].to_numpy()
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(x), (n, len(x)))
    d_mean = x[idx].mean(axis=1) - y[idx].mean(axis=1)
    d_p10 = np.quantile(x[idx], 0.1, axis=1) - np.quantile(y[idx], 0.1, axis=1)
    return {
        "mean_diff": float(x.mean() - y.mean()),
        "mean_ci95": [float(v) for v in np.percentile(d_mean, [2.5, 97.5])],
        "p10_diff": float(np.quantile(x, 0.1) - np.quantile(y, 0.1)),
        "p10_ci95": [float(v) for v in np.percentile(d_p10, [2.5, 97.5])],
        "share_better": float(np.mean(x > y + 1e-12)),
        "share_worse": float(np.mean(x < y - 1e-12)),
    }


def _markdown(table) -> str:
    """A DataFrame as a GitHub markdown table (index first, floats to 6 decimals)."""
    cols = [table.index.name or ""] + list(table.columns)
    rows = [" | ".join(cols), " | ".join("---" for _ in cols)]
    for idx in table.index:
        cells = [str(idx)]
        for c in table.columns:
            v = table.at[idx, c]
            cells.append(f"{v:.6f}" if table[c].dtype.kind == "f" else str(v))
        rows.append(" | ".join(cells))
    return "\n".join(f"| {r} |" for r in rows)


def _oracle_frame(traces, ladder, device, qoe, cfg, n, seed):
    from sim.oracle import oracle_sessions

    res = oracle_sessions(traces, ladder, device, qoe, config=cfg, sessions=n, seed=seed)
    return res.sessions_frame()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("throughput", help="BatchVecEnv vs DummyVecEnv")
    t.add_argument("--n-envs", type=int, default=32)
    t.add_argument("--repeat", type=int, default=3)
    tr = sub.add_parser("train", help="the 15-minute PPO run")
    tr.add_argument("--minutes", type=float, default=15.0)
    tr.add_argument("--out", type=Path, default=MODEL_DIR)
    tr.add_argument("--resume", action="store_true")
    c = sub.add_parser("compare", help="PPO vs heuristics and oracle on the test splits")
    c.add_argument("--model", type=Path, default=MODEL_DIR)
    c.add_argument("--repeats", type=int, default=4)
    args = p.parse_args()
    _need_shared()
    if args.cmd == "throughput":
        throughput(args.n_envs, args.repeat)
    elif args.cmd == "train":
        train_benchmark(args.minutes, args.out, args.resume)
    else:
        compare(args.model, args.repeats)


if __name__ == "__main__":
    main()

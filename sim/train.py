"""``python -m sim.train``: train a learned ABR policy with stable-baselines3.

Example::

    python -m sim.train --algo ppo --trace lte --steps 200000 --out runs/ppo-lte
    python -m sim.run --policy rl:runs/ppo-lte --policy bola --trace lte --seed 7

Training steps a :class:`sim.vecenv.BatchVecEnv` (all sessions in one numpy step), wrapped
in SB3's ``VecMonitor``, optionally ``VecFrameStack`` and ``VecNormalize``. Every
``eval_every`` steps the current policy is scored on held-out validation traces with
:func:`sim.session.run_sessions` (one batched run, deterministic actions, fixed seed); the
best one so far is what ``--policy rl:DIR`` loads.

Output folder (every file written atomically: temp file + ``os.replace``)::

    config.json           training config, observation layout, ladder, trace names, versions
    model.zip             best model on the validation traces, its observation statistics inside
    eval.csv              one row per evaluation: validation QoE mean / p10, stall ratio, LPIPS
    progress.csv          SB3's training metrics, one row per iteration (losses, fps, returns)
    last/checkpoint.zip   latest checkpoint: weights, optimizer, normaliser and run state, one file
    summary.json          the result once training has finished
    clone/                with --imitate: the behaviour clone before any RL update (config.json,
                          model.zip), so ``--policy rl:DIR/clone`` scores what RL started from

The folder is locked while a run writes it (:func:`abr.lock.folder_lock`): a second run on it
is refused. Bad options, traces, ladders and devices are reported before the folder is
created. ``config.json`` is written once everything is validated; a folder whose run died
before its first checkpoint is simply started again.

``--resume`` continues an interrupted run from ``last/checkpoint.zip`` (same config;
``--steps`` may grow). The checkpoint is one file written atomically, so weights, statistics,
step count and evaluation rows always agree; ``model.zip`` and ``eval.csv`` are rewritten from
it on resume. Nothing is unpickled: weights are read with ``torch.load(weights_only=True)``
into a model built from the config, statistics and state are JSON. The episodes after a
resume differ from an uninterrupted run's (the partial rollout is lost and, for DQN, the
replay buffer starts empty), so a resumed run is not bit-identical.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from abr.errors import InputError, cli_main
from abr.io import check_output, write_atomic, write_text_atomic
from abr.lock import folder_lock
from abr.qoe import QOE_PRESETS
from abr.registry import DEFAULT_LADDER
from policies.algorithms import ALGORITHMS, algorithm_class
from sim.env import DEFAULT_DEVICE
from sim.scenarios import describe_scenarios, scenario_config

__all__ = [
    "ALGORITHMS",
    "TrainConfig",
    "TrainResult",
    "algorithm_class",
    "build_parser",
    "evaluate",
    "load_config",
    "main",
    "train",
]

#: Algorithm name -> stable-baselines3 class name (imported on first use: ``--help`` needs no torch).

# Per-algorithm hyperparameters used when the config leaves a field at None.
_ALGO_DEFAULTS: dict[str, dict[str, Any]] = {
    "ppo": {
        "learning_rate": 3e-4,
        "n_steps": 128,
        "batch_size": 512,
        "n_epochs": 4,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "ent_coef": 0.01,
        "clip_range": 0.2,
    },
    "a2c": {"learning_rate": 7e-4, "n_steps": 8, "gamma": 0.99, "gae_lambda": 1.0, "ent_coef": 0.01},
    "dqn": {
        "learning_rate": 1e-4,
        "batch_size": 256,
        "gamma": 0.99,
        "buffer_size": 200_000,
        "learning_starts": 2000,
        "train_freq": 4,
        "target_update_interval": 2000,
        "exploration_fraction": 0.2,
        "exploration_final_eps": 0.02,
    },
}
#: Validation scores that can pick the best model.
_SELECT = {
    "qoe_mean": lambda m: m["qoe_mean"],
    "qoe_p10": lambda m: m["qoe_p10"],
    "mean_p10": lambda m: 0.5 * (m["qoe_mean"] + m["qoe_p10"]),
}
_TUNABLE = ("learning_rate", "n_steps", "batch_size", "n_epochs", "gamma", "ent_coef")
_EVAL_SEED_OFFSET = 1_000_003
_CURRICULUM_SEED_OFFSET = 2_000_003
_EVAL_COLUMNS = ("timesteps", "wall_s", "train_ep_return", "qoe_mean", "qoe_p10", "stall_ratio", "lpips_mean", "best",
                 "curriculum_gap")  # fmt: skip
CHECKPOINT_FILE = "checkpoint.zip"
#: Sub-folder holding the behaviour clone before any RL update (``--imitate``), loadable as ``rl:OUT/clone``.
CLONE_DIR = "clone"
_STATE_MEMBER = "state.json"
_VECNORM_MEMBER = "vecnormalize.json"
#: Largest request accepted without --force (sessions stepped together, traces drawn, steps).
_LIMITS = {"n_envs": 65_536, "trace_count": 100_000, "steps": 10**10, "eval_sessions": 1_000_000,
           "frame_stack": 64, "lookahead": 64, "torch_threads": 1024, "imitate_episodes": 100_000,
           "imitate_epochs": 100_000, "eval_every": 10**10}  # fmt: skip


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Everything that determines a training run (saved as ``config.json`` next to the model).

    :param algo: ``ppo``, ``a2c`` or ``dqn``.
    :param traces: trace specs to train on (see ``traces.load_traces``); several are pooled.
    :param eval_traces: validation trace specs; empty = hold out ``val_fraction`` of ``traces``.
    :param val_fraction: share of the training traces held out for validation when
        ``eval_traces`` is empty (drawn with ``split_seed``, so every model seed validates on the
        same traces).
    :param test_fraction: share of files in a ``PATH@test`` spec (the rest is ``PATH@train``).
    :param split_seed: seed of the ``@train``/``@test`` file split (``traces.split_files``).
    :param trace_count: traces drawn from a network-model spec (e.g. ``lte``).
    :param trace_format: force the trace file format (None = detect).
    :param transform: what-if transforms applied to the training and validation traces
        (``traces.transforms`` syntax, e.g. ``scale=0.03125``; empty = none).
    :param ladder: ladder spec.
    :param device: device profile name.
    :param qoe: QoE preset; its per-chunk value is the reward.
    :param sim: simulator preset (a name of ``sim.core.SIM_PRESETS``; default ``promptabr``).
    :param steps: environment steps (chunks) to train for.
    :param n_envs: sessions stepped together.
    :param seed: seed of the model, the episodes and the validation runs.
    :param eval_every: environment steps between validation runs.
    :param eval_sessions: validation sessions (0 = one per validation trace).
    :param select_by: validation score of the best model: ``qoe_mean``, ``qoe_p10`` or
        ``mean_p10`` (their average, which rewards the tail too).
    :param frame_stack: past observations stacked into the model's input (1 = none).
    :param lookahead: chunks whose per-rung quality the observation shows (1 = the next only;
        MPC plans over 5).
    :param start_rung: rung of every session's first chunk, fetched before the agent acts, in
        training and wherever the model plays (Pensieve's fixed first-chunk quality); None =
        the agent picks the first chunk too, blind (nothing has been measured yet).
    :param imitate: policy spec of an expert (e.g. ``mpc``) whose decisions initialise the
        actor and critic before RL (behaviour cloning, :mod:`sim.imitation`; PPO and A2C).
    :param imitate_episodes: expert episodes of every environment cloned.
    :param imitate_epochs: passes over the expert's samples.
    :param normalize_obs: running mean/std observation normalisation (SB3 ``VecNormalize``).
    :param normalize_reward: scale rewards by the running std of the discounted return.
    :param reward_center: subtract a running mean of the per-chunk reward, across sessions,
        before that scaling (:class:`sim.vecenv.CenteredReward`; no policy's ranking changes).
    :param curriculum: a baseline policy spec (e.g. ``robustmpc:decode_aware=1``) for a
        Genet-style selection of training traces: at every validation the current policy and
        the baseline play one session of every training trace, and the traces where the policy
        trails the baseline most are drawn more often (None: uniform draw).
    :param curriculum_mix: share of the draw that follows the gap (the rest stays uniform).
    :param reward_scale: multiplies the QoE before it reaches the learner.
    :param net_arch: hidden layer sizes of the policy and value networks.
    :param learning_rate: None = the algorithm's default in this module.
    :param n_steps: rollout length per env (PPO, A2C).
    :param batch_size: minibatch size (PPO, DQN).
    :param n_epochs: passes over each rollout (PPO).
    :param gamma: discount factor.
    :param ent_coef: entropy bonus (PPO, A2C).
    :param torch_threads: torch CPU threads.
    """

    algo: str = "ppo"
    traces: tuple[str, ...] = ("lte",)
    eval_traces: tuple[str, ...] = ()
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    split_seed: int = 0
    trace_count: int = 64
    trace_format: str | None = None
    transform: str = ""
    ladder: str = DEFAULT_LADDER
    device: str = DEFAULT_DEVICE
    qoe: str = "perceptual"
    sim: str = "promptabr"
    steps: int = 200_000
    n_envs: int = 32
    seed: int = 0
    eval_every: int = 20_000
    eval_sessions: int = 0
    select_by: str = "qoe_mean"
    frame_stack: int = 1
    lookahead: int = 1
    start_rung: int | None = None
    imitate: str | None = None
    imitate_episodes: int = 20
    imitate_epochs: int = 10
    normalize_obs: bool = True
    normalize_reward: bool = True
    reward_center: bool = False
    curriculum: str | None = None
    curriculum_mix: float = 0.5
    reward_scale: float = 1.0
    net_arch: tuple[int, ...] = (64, 64)
    learning_rate: float | None = None
    n_steps: int | None = None
    batch_size: int | None = None
    n_epochs: int | None = None
    gamma: float | None = None
    ent_coef: float | None = None
    torch_threads: int = 1

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"TrainConfig.{f.name} must be a finite number, got {v}")
        for name in ("seed", "split_seed"):
            if not 0 <= getattr(self, name) < 2**63:
                raise ValueError(f"TrainConfig.{name} must be in [0, 2^63), got {getattr(self, name)}")
        for name, limit in _LIMITS.items():
            if getattr(self, name) > limit:
                raise ValueError(f"TrainConfig.{name} must be <= {limit}, got {getattr(self, name)}")
        if not 0 <= self.test_fraction < 1:
            raise ValueError(f"TrainConfig.test_fraction must be in [0, 1), got {self.test_fraction}")
        if self.algo not in ALGORITHMS:
            raise ValueError(f"TrainConfig.algo must be one of {', '.join(ALGORITHMS)}, got {self.algo!r}")
        if not self.traces:
            raise ValueError("TrainConfig.traces must name at least one trace spec")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"TrainConfig.val_fraction must be in (0, 1), got {self.val_fraction}")
        for name in ("steps", "n_envs", "eval_every", "frame_stack", "lookahead", "torch_threads", "trace_count",
                     "imitate_episodes", "imitate_epochs"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.select_by not in _SELECT:
            raise ValueError(f"TrainConfig.select_by must be one of {', '.join(_SELECT)}, got {self.select_by!r}")
        if self.start_rung is not None and self.start_rung < 0:
            raise ValueError(f"TrainConfig.start_rung must be >= 0, got {self.start_rung}")
        if self.imitate is not None and self.algo == "dqn":
            raise ValueError("TrainConfig.imitate needs an actor-critic algorithm (ppo or a2c), not dqn")
        if self.eval_sessions < 0:
            raise ValueError(f"TrainConfig.eval_sessions must be >= 0, got {self.eval_sessions}")
        if not 0 <= self.curriculum_mix <= 1:
            raise ValueError(f"TrainConfig.curriculum_mix must be in [0, 1], got {self.curriculum_mix}")
        if not self.reward_scale > 0:
            raise ValueError(f"TrainConfig.reward_scale must be > 0, got {self.reward_scale}")
        if not self.net_arch or any(int(u) < 1 for u in self.net_arch):
            raise ValueError(f"TrainConfig.net_arch must be positive layer sizes, got {self.net_arch}")
        if self.qoe not in QOE_PRESETS:
            raise ValueError(f"TrainConfig.qoe must be one of {', '.join(QOE_PRESETS)}, got {self.qoe!r}")
        defaults = _ALGO_DEFAULTS[self.algo]
        for name in _TUNABLE:
            if getattr(self, name) is not None and name not in defaults:
                raise ValueError(f"TrainConfig.{name} does not apply to {self.algo} (it takes {', '.join(defaults)})")
        if self.gamma is not None and not 0 < self.gamma <= 1:
            raise ValueError(f"TrainConfig.gamma must be in (0, 1], got {self.gamma}")
        if self.learning_rate is not None and not 0 < self.learning_rate <= 1:
            raise ValueError(f"TrainConfig.learning_rate must be in (0, 1], got {self.learning_rate}")
        if self.ent_coef is not None and not 0 <= self.ent_coef <= 10:
            raise ValueError(f"TrainConfig.ent_coef must be in [0, 10], got {self.ent_coef}")
        for name in ("n_steps", "batch_size", "n_epochs"):
            v = getattr(self, name)
            if v is not None and not 1 <= v <= 10**7:
                raise ValueError(f"TrainConfig.{name} must be in [1, 10^7], got {v}")
        if any(int(u) > 65_536 for u in self.net_arch):
            raise ValueError(f"TrainConfig.net_arch layer sizes must be <= 65536, got {self.net_arch}")

    def algo_kwargs(self) -> dict[str, Any]:
        """The algorithm's hyperparameters: the module defaults overridden by the config."""
        kwargs = dict(_ALGO_DEFAULTS[self.algo])
        kwargs.update({n: getattr(self, n) for n in _TUNABLE if getattr(self, n) is not None})
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config") -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys and bad values raise :class:`InputError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(
                f"unknown training option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}", path=where
            )
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        types = {f.name: f.type for f in fields(cls)}
        for k, v in kw.items():
            if not _type_ok(v, types[k]):
                raise InputError(f"training option {k} has the wrong type ({type(v).__name__}: {v!r:.60})",
                                 path=where)  # fmt: skip
        try:
            return cls(**kw)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InputError(str(exc), path=where) from None


def _type_ok(v: Any, annotation: str) -> bool:
    """Whether JSON value ``v`` fits a TrainConfig field annotation (a string: postponed annotations)."""
    if v is None:
        return "None" in annotation
    if annotation.startswith("tuple"):
        inner = "int" if "int" in annotation else "str"
        return isinstance(v, tuple) and all(_type_ok(x, inner) for x in v)
    if isinstance(v, bool):
        return annotation.startswith("bool")
    if isinstance(v, int):
        return "int" in annotation or "float" in annotation
    if isinstance(v, float):
        return "float" in annotation
    return isinstance(v, str) and "str" in annotation


@dataclass(frozen=True, slots=True)
class TrainResult:
    """What a finished training run produced."""

    out_dir: Path
    timesteps: int
    wall_s: float
    best: dict[str, float]
    last: dict[str, float]
    steps_per_s: float
    eval_rows: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------------------- I/O helpers
def _write_text(path: Path, text: str) -> None:
    write_text_atomic(path, text)


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    _write_text(path, buf.getvalue())


def _read_csv(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [row for row in csv.DictReader(fh) if None not in row.values()]


def load_config(path: str | Path) -> TrainConfig:
    """The :class:`TrainConfig` of a ``config.json`` written by :func:`train` (or a plain dict of options)."""
    from abr.io import read_json

    path = Path(path)
    doc = read_json(path, "config")
    if not isinstance(doc, dict):
        raise InputError("config must be a JSON object", path=path)
    doc = doc.get("train", doc)
    if not isinstance(doc, dict):
        raise InputError("config 'train' must be a JSON object", path=path)
    return TrainConfig.from_dict(doc, where=str(path))


# ---------------------------------------------------------------------------- setup
@dataclass(frozen=True, eq=False)
class _Setup:
    train_traces: list
    eval_traces: list
    ladder: Any
    device: Any
    qoe: Any
    sim: Any


def _load_specs(specs: tuple[str, ...], cfg: TrainConfig, seed: int) -> list:
    from traces.sets import load_traces
    from traces.transforms import apply_transforms, parse_transforms

    out = []
    for i, spec in enumerate(specs):
        out.extend(
            load_traces(spec, seed=seed + i, count=cfg.trace_count, fmt=cfg.trace_format,
                        test_fraction=cfg.test_fraction, split_seed=cfg.split_seed)
        )  # fmt: skip
    return apply_transforms(out, parse_transforms(cfg.transform), seed) if cfg.transform else out


def _setup(cfg: TrainConfig) -> _Setup:
    from sim.resolve import resolve_run

    run = resolve_run(cfg.ladder, cfg.device, cfg.qoe, cfg.sim)  # the one resolver; checks decode times too
    ladder, device = run.ladder, run.device
    if cfg.start_rung is not None and cfg.start_rung >= ladder.n_rungs:
        raise InputError(f"--start-rung {cfg.start_rung}: ladder {ladder.name} has rungs 0..{ladder.n_rungs - 1}")
    train_traces = _load_specs(cfg.traces, cfg, cfg.seed)
    if cfg.eval_traces:
        # model specs get other seeds than training, so generated validation traces are new ones
        eval_traces = _load_specs(cfg.eval_traces, cfg, cfg.seed + _EVAL_SEED_OFFSET)
    else:
        if len(train_traces) < 2:
            raise InputError("need at least 2 training traces to hold some out for validation (or give --eval-trace)")
        # drawn with the split seed, not the model seed: runs that differ only in seed validate
        # on the same traces, so the best seed can be chosen by validation
        order = np.random.default_rng(cfg.split_seed).permutation(len(train_traces))
        n_val = max(1, int(round(cfg.val_fraction * len(train_traces))))
        val = set(order[:n_val].tolist())
        eval_traces = [t for i, t in enumerate(train_traces) if i in val]
        train_traces = [t for i, t in enumerate(train_traces) if i not in val]
    return _Setup(train_traces, eval_traces, ladder, device, run.qoe, run.config)


def _make_env(cfg: TrainConfig, s: _Setup):
    from stable_baselines3.common.vec_env import VecFrameStack, VecMonitor, VecNormalize

    from sim.vecenv import BatchVecEnv, CenteredReward

    env = BatchVecEnv(
        s.train_traces,
        s.ladder,
        s.device,
        s.qoe,
        s.sim,
        num_envs=cfg.n_envs,
        seed=cfg.seed,
        reward_scale=cfg.reward_scale,
        start_rung=cfg.start_rung,
        lookahead=cfg.lookahead,
    )
    venv = VecMonitor(env)
    if cfg.reward_center:
        venv = CenteredReward(venv)
    if cfg.frame_stack > 1:
        venv = VecFrameStack(venv, cfg.frame_stack)
    venv = VecNormalize(
        venv, norm_obs=cfg.normalize_obs, norm_reward=cfg.normalize_reward, gamma=cfg.algo_kwargs()["gamma"]
    )
    return env, venv


def _find_wrapper(venv, name: str):
    """The wrapper of class ``name`` in the ``venv`` chain, or None."""
    while venv is not None:
        if type(venv).__name__ == name:
            return venv
        venv = getattr(venv, "venv", None)
    return None


def _meta(cfg: TrainConfig, s: _Setup) -> dict[str, Any]:
    import stable_baselines3
    import torch

    from policies.rl import FORMAT, VERSION, observation_layout

    return {
        "format": FORMAT,
        "version": VERSION,
        "algo": cfg.algo,
        "normalize_obs": cfg.normalize_obs,
        "layout": observation_layout(s.sim.player.history, s.ladder.n_rungs, cfg.frame_stack, cfg.lookahead),
        "start_rung": cfg.start_rung,
        "ladder": {
            "name": s.ladder.name,
            "spec": cfg.ladder,
            "n_rungs": s.ladder.n_rungs,
            "n_chunks": s.ladder.n_chunks,
        },
        "qoe": s.qoe.name,
        "device": s.device.name,
        "train": cfg.to_dict(),
        "algo_kwargs": cfg.algo_kwargs(),
        "traces": {"train": [t.name for t in s.train_traces], "eval": [t.name for t in s.eval_traces]},
        "versions": {
            "stable_baselines3": stable_baselines3.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
    }


def evaluate(policy, traces, ladder, device, qoe, config=None, *, sessions: int = 0, seed: int = 0) -> dict[str, float]:
    """Score ``policy`` in one batched :func:`~sim.session.run_sessions` run (``sessions`` 0 = one per trace).

    Returns the mean and 10th percentile over sessions of the per-session mean QoE, the mean
    stall ratio and the mean LPIPS.
    """
    from sim.session import run_sessions

    res = run_sessions(policy, traces, ladder, device, qoe, config=config, sessions=sessions or None, seed=seed)
    m = res.summary_arrays()
    return {
        "qoe_mean": float(m["qoe_mean"].mean()),
        "qoe_p10": float(np.quantile(m["qoe_mean"], 0.1)),
        "stall_ratio": float(m["stall_ratio"].mean()),
        "lpips_mean": float(m["lpips_mean"].mean()),
    }


# ---------------------------------------------------------------------------- callback
def _make_callback_class():
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import KVWriter

    class CsvLog(KVWriter):
        """SB3 metrics to ``progress.csv``: appended row by row, rewritten (atomically) when new keys appear."""

        def __init__(self, path: Path, rows: list[dict[str, Any]]):
            self.path = path
            self.rows = rows
            self.columns: list[str] = list(rows[0].keys()) if rows else []
            if rows:
                _write_csv(path, self.columns, rows)

        def write(self, key_values, key_excluded, step=0):
            row = {k: v for k, v in key_values.items() if isinstance(v, (int, float, np.floating, np.integer))}
            self.rows.append(row)
            if set(row) - set(self.columns):
                self.columns += [k for k in row if k not in self.columns]
                _write_csv(self.path, self.columns, self.rows)
            else:
                with open(self.path, "a", newline="") as fh:
                    csv.DictWriter(fh, fieldnames=self.columns, lineterminator="\n").writerow(row)

        def close(self):
            pass

    class TrainingCallback(BaseCallback):
        """Progress bar, periodic validation, best-model and last checkpoints."""

        def __init__(self, trainer: _Trainer):
            super().__init__()
            self.t = trainer

        def _on_training_start(self) -> None:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.t.cfg.steps,
                initial=self.num_timesteps,
                unit="step",
                disable=not self.t.progress,
                dynamic_ncols=True,
                smoothing=0.05,
            )

        def _on_step(self) -> bool:
            self.bar.update(self.num_timesteps - self.bar.n)
            if self.num_timesteps >= self.t.next_eval:
                self.t.evaluate_and_checkpoint(self.model, self.num_timesteps)
                self.bar.set_postfix(qoe=f"{self.t.rows[-1]['qoe_mean']:.4f}", best=f"{self.t.best_score:.4f}")
            if self.t.time_limit_s is not None and self.t.wall_s() >= self.t.time_limit_s:
                self.t.stopped_by_time_limit = True
                return False
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    return CsvLog, TrainingCallback


class _Trainer:
    """State of one run: config, data, evaluation rows, best score, checkpoints."""

    def __init__(self, cfg: TrainConfig, out: Path, s: _Setup, meta: dict[str, Any], progress: bool,
                 time_limit_s: float | None = None):  # fmt: skip
        self.cfg, self.out, self.s, self.meta, self.progress = cfg, out, s, meta, progress
        self.time_limit_s = time_limit_s
        self.stopped_by_time_limit = False
        self.rows: list[dict[str, Any]] = []
        self.best_score = -np.inf
        self.best: dict[str, float] = {}
        self.next_eval = cfg.eval_every
        self.wall_before_s = 0.0
        self.t0 = time.perf_counter()
        self.env = None
        self.venv = None
        self.center = None  # the CenteredReward wrapper, if any
        self.imitation: dict[str, Any] | None = None
        self.curriculum_base: np.ndarray | None = None  # baseline QoE per training trace
        self.trace_weights: list[float] | None = None

    def wall_s(self) -> float:
        return self.wall_before_s + time.perf_counter() - self.t0

    def policy(self, model):
        from policies.rl import ObsNormalizer, RLPolicy

        norm = ObsNormalizer.from_vecnormalize(self.venv) if self.cfg.normalize_obs else None
        return RLPolicy(model.policy, self.meta, norm, source=str(self.out))

    def _train_session_qoe(self, policy) -> np.ndarray:
        """Mean QoE of one session on every training trace (fixed seed: the same sessions each time)."""
        from sim.session import run_sessions

        s = self.s
        res = run_sessions(policy, s.train_traces, s.ladder, s.device, s.qoe, config=s.sim,
                           seed=self.cfg.seed + _CURRICULUM_SEED_OFFSET)  # fmt: skip
        return res.summary_arrays()["qoe_mean"]

    def update_curriculum(self, model) -> float:
        """Genet-style selection: draw the training traces where the policy trails the baseline
        most more often. Returns the mean gap (baseline minus policy) over the training traces."""
        from policies.registry import get_policy

        cfg = self.cfg
        if self.curriculum_base is None:
            self.curriculum_base = self._train_session_qoe(get_policy(cfg.curriculum))
        gap = self.curriculum_base - self._train_session_qoe(self.policy(model))
        n, pos = len(gap), np.maximum(gap, 0.0)
        w = np.full(n, 1.0 / n)
        if pos.sum() > 0:
            w = (1.0 - cfg.curriculum_mix) * w + cfg.curriculum_mix * pos / pos.sum()
        self.trace_weights = w.tolist()
        self.env.set_trace_weights(self.trace_weights)
        return float(gap.mean())

    def evaluate_and_checkpoint(self, model, timesteps: int) -> None:
        from policies.rl import MODEL_FILE

        cfg, s = self.cfg, self.s
        metrics = evaluate(
            self.policy(model), s.eval_traces, s.ladder, s.device, s.qoe, s.sim,
            sessions=cfg.eval_sessions, seed=cfg.seed + _EVAL_SEED_OFFSET,
        )  # fmt: skip
        ep = [e["r"] for e in model.ep_info_buffer] if model.ep_info_buffer else []
        score = float(_SELECT[cfg.select_by](metrics))
        is_best = score > self.best_score
        row = {
            "timesteps": timesteps,
            "wall_s": round(self.wall_s(), 3),
            "train_ep_return": float(np.mean(ep)) if ep else float("nan"),
            **metrics,
            "best": int(is_best),
        }
        if cfg.curriculum:
            row["curriculum_gap"] = self.update_curriculum(model)
        self.rows.append(row)
        for k, v in metrics.items():
            model.logger.record(f"eval/{k}", v)
        if is_best:
            self.best_score, self.best = score, dict(metrics, timesteps=timesteps)
        self.next_eval = (timesteps // cfg.eval_every + 1) * cfg.eval_every
        state = {
            "timesteps": timesteps,
            "wall_s": self.wall_s(),
            "best_score": self.best_score,
            "best": self.best,
            "next_eval": self.next_eval,
            "env": self.env.episode_state(),
            "imitation": self.imitation,
            "trace_weights": self.trace_weights,
            "curriculum_base": None if self.curriculum_base is None else self.curriculum_base.tolist(),
            "reward_center": self.center.state() if self.center is not None else None,
            "n_calls": int(getattr(model, "_n_calls", 0)),
            "rows": self.rows,
        }
        # one file, one rename: weights, statistics and state can never disagree; the best
        # model and eval.csv are then derived from it (and rederived on resume if a kill
        # falls between these writes)
        ckpt = self.out / "last" / CHECKPOINT_FILE
        write_atomic(ckpt, lambda p: self._save(model, p, state), suffix=".tmp.zip")
        if is_best:
            write_atomic(self.out / MODEL_FILE, lambda p: shutil.copyfile(ckpt, p), suffix=".tmp.zip")
        _write_csv(self.out / "eval.csv", list(_EVAL_COLUMNS), self.rows)

    def _save(self, model, path: Path, state: dict[str, Any]) -> None:
        from policies.rl import NORMALIZER_MEMBER, ObsNormalizer, add_zip_members

        model.save(str(path))
        members = {
            _VECNORM_MEMBER: json.dumps(_vecnorm_state(self.venv)).encode(),
            _STATE_MEMBER: json.dumps(_jsonable(state), indent=1).encode(),
        }
        if self.cfg.normalize_obs:
            members[NORMALIZER_MEMBER] = json.dumps(ObsNormalizer.from_vecnormalize(self.venv).to_dict()).encode()
        add_zip_members(path, members)


def _jsonable(x: Any) -> Any:
    """NaN/inf as None (strict JSON), numpy scalars as Python numbers."""
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _vecnorm_state(venv) -> dict[str, Any]:
    """Everything of a ``VecNormalize`` that training updates, as JSON numbers."""
    return {
        name: {"mean": np.asarray(rms.mean).tolist(), "var": np.asarray(rms.var).tolist(), "count": float(rms.count)}
        for name in ("obs", "ret")
        if (rms := getattr(venv, f"{name}_rms", None)) is not None
    }


def _restore_vecnorm(venv, doc: Any, where: object) -> None:
    try:
        for name in ("obs", "ret"):
            rms = getattr(venv, f"{name}_rms", None)
            if rms is None:
                continue
            mean = np.array(doc[name]["mean"], np.float64).reshape(np.shape(rms.mean))
            var = np.array(doc[name]["var"], np.float64).reshape(np.shape(rms.var))
            count = float(doc[name]["count"])
            if not (np.isfinite(mean).all() and np.isfinite(var).all() and (var >= 0).all() and math.isfinite(count)):
                raise ValueError("non-finite statistics")
            rms.mean, rms.var, rms.count = mean, var, count
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"checkpoint statistics are damaged ({type(exc).__name__}: {exc})", path=where) from None


def _read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``(state, VecNormalize statistics, {"policy": ..., "policy.optimizer": ...})`` of a checkpoint."""
    from policies.rl import read_zip_member, read_zip_state_dicts

    docs = []
    for member in (_STATE_MEMBER, _VECNORM_MEMBER):
        blob = read_zip_member(path, member)
        if blob is None:
            raise InputError(f"checkpoint has no {member} (not written by this version of sim.train)", path=path)
        try:
            docs.append(json.loads(blob))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise InputError(f"checkpoint {member} is damaged ({exc})", path=path) from None
    if not isinstance(docs[0], dict) or not isinstance(docs[0].get("timesteps"), int):
        raise InputError("checkpoint state is damaged", path=path)
    return docs[0], docs[1], read_zip_state_dicts(path, ("policy", "policy.optimizer"))


# ---------------------------------------------------------------------------- train
def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    time_limit_s: float | None = None,
    tensorboard: str | Path | None = None,
) -> TrainResult:
    """Train ``config`` into ``out_dir`` (see the module docstring for the files written).

    :param resume: continue from ``out_dir/last`` (the saved config must match, ``steps`` aside).
    :param progress: show a tqdm progress bar.
    :param time_limit_s: stop once training has run this long (wall clock, resumed time
        included) even if ``config.steps`` is not reached; the run is then evaluated and
        saved as usual and ``summary.json`` says so.
    :param tensorboard: also log SB3's metrics and the validation scores to this TensorBoard
        folder (needs the ``tensorboard`` package).
    :raises InputError: bad traces/ladder/device, an occupied ``out_dir`` without ``resume``, or
        a resume with a different config.
    """
    import torch
    from stable_baselines3.common.logger import Logger

    from policies.rl import CONFIG_FILE

    cfg = config
    out = Path(out_dir)
    cfg_path = out / CONFIG_FILE
    ckpt_path = out / "last" / CHECKPOINT_FILE
    if out.exists() and not out.is_dir():
        raise InputError("--out must be a folder; this is a file", path=out)
    check_output(out, folder=True)
    if resume and not ckpt_path.is_file():
        if (out / "last" / "state.json").is_file():
            raise InputError("the checkpoint in last/ was written by an older promptabr (pickled statistics) and "
                             "cannot be resumed safely; start a new run", path=out)  # fmt: skip
        print(f"{out}: nothing to resume (no checkpoint yet); starting from the beginning", file=sys.stderr)
        resume = False
    if not resume and any(p.is_file() for p in (ckpt_path, out / "summary.json", out / "last" / "state.json")):
        raise InputError("already holds a training run; pass --resume to continue it or choose another --out", path=out)
    if resume:
        saved = load_config(cfg_path).to_dict()
        now = cfg.to_dict()
        diff = [f"{k}: saved {saved[k]!r}, now {now[k]!r}" for k in now if k != "steps" and saved[k] != now[k]]
        if diff:
            raise InputError("cannot resume with a different config (" + "; ".join(diff) + ")", path=cfg_path)

    if tensorboard is not None:
        try:
            import tensorboard as _tb  # noqa: F401  (SB3's TensorBoard writer needs it)
        except ImportError:
            raise InputError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
        check_output(Path(tensorboard), folder=True)
    torch.set_num_threads(cfg.torch_threads)
    expert = None
    if cfg.curriculum is not None:
        from policies.registry import get_policy

        get_policy(cfg.curriculum)  # an unknown baseline fails here, before any work
    if cfg.imitate is not None and not resume:
        from policies.registry import get_policy

        expert = get_policy(cfg.imitate)
    s = _setup(cfg)  # every input is validated here, before the folder is created or locked
    meta = _meta(cfg, s)
    with folder_lock(out, "python -m sim.train"):
        return _train_locked(cfg, out, s, meta, expert, resume, progress, time_limit_s, Logger, tensorboard)


def _train_locked(cfg, out, s, meta, expert, resume, progress, time_limit_s, Logger, tensorboard=None) -> TrainResult:
    from policies.rl import CONFIG_FILE, MODEL_FILE

    trainer = _Trainer(cfg, out, s, meta, progress, time_limit_s)
    env, venv = _make_env(cfg, s)
    trainer.env, trainer.venv = env, venv
    trainer.center = _find_wrapper(venv, "CenteredReward")
    algo = algorithm_class(cfg.algo)
    CsvLog, TrainingCallback = _make_callback_class()
    progress_rows: list[dict[str, Any]] = []
    done_steps = 0
    model = algo("MlpPolicy", venv, seed=cfg.seed, device="cpu", policy_kwargs={"net_arch": list(cfg.net_arch)},
                 verbose=0, **cfg.algo_kwargs())  # fmt: skip
    if resume:
        ckpt_path = out / "last" / CHECKPOINT_FILE
        state, vecnorm, params = _read_checkpoint(ckpt_path)
        try:
            model.set_parameters(params, exact_match=True, device="cpu")
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"checkpoint weights do not fit the model of config.json ({str(exc)[:200]})",
                             path=ckpt_path) from None  # fmt: skip
        _restore_vecnorm(venv, vecnorm, ckpt_path)
        try:
            done_steps = int(state["timesteps"])
            env.restore_episode_state(state["env"])  # after the model's constructor reseeded the env
            nan = float("nan")
            trainer.rows = [{k: nan if v is None else v for k, v in r.items()} for r in state["rows"]]
            trainer.best_score = -np.inf if state["best_score"] is None else float(state["best_score"])
            trainer.best = state["best"]
            trainer.next_eval, trainer.wall_before_s = int(state["next_eval"]), float(state["wall_s"])
            trainer.imitation = state.get("imitation")
            if state.get("trace_weights") is not None:
                trainer.trace_weights = [float(w) for w in state["trace_weights"]]
                env.set_trace_weights(trainer.trace_weights)
            if state.get("curriculum_base") is not None:
                trainer.curriculum_base = np.asarray(state["curriculum_base"], dtype=np.float64)
            if trainer.center is not None and state.get("reward_center") is not None:
                trainer.center.restore(state["reward_center"])
            if hasattr(model, "_n_calls"):
                model._n_calls = int(state.get("n_calls", 0))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"checkpoint state is damaged ({type(exc).__name__}: {exc})", path=ckpt_path) from None
        model.num_timesteps = done_steps
        # the best model and eval.csv are derived from checkpoints: rederive them in case a kill
        # fell between the checkpoint and those writes
        if trainer.best.get("timesteps") == done_steps:
            write_atomic(out / MODEL_FILE, lambda p: shutil.copyfile(ckpt_path, p), suffix=".tmp.zip")
        _write_csv(out / "eval.csv", list(_EVAL_COLUMNS), trainer.rows)
        progress_rows = [
            r for r in _read_csv(out / "progress.csv") if float(r.get("time/total_timesteps") or 0) <= done_steps
        ]
    else:
        for stale in (MODEL_FILE, "eval.csv", "progress.csv"):  # of a run that died before its first checkpoint
            (out / stale).unlink(missing_ok=True)
        _write_text(out / CONFIG_FILE, json.dumps(meta, indent=1))
    formats = [CsvLog(out / "progress.csv", progress_rows)]
    if tensorboard is not None:
        from stable_baselines3.common.logger import TensorBoardOutputFormat

        formats.append(TensorBoardOutputFormat(str(tensorboard)))
    model.set_logger(Logger(str(out), formats))
    if expert is not None:
        from sim.imitation import clone_expert

        cloned = clone_expert(model, expert, env, venv, episodes=cfg.imitate_episodes, epochs=cfg.imitate_epochs,
                              seed=cfg.seed)  # fmt: skip
        trainer.imitation = {"expert": cfg.imitate, **asdict(cloned), "wall_s": round(trainer.wall_s(), 3)}
        trainer.evaluate_and_checkpoint(model, 0)  # the cloned policy is the first candidate
        clone = out / CLONE_DIR  # kept as a policy folder of its own: --policy rl:OUT/clone
        clone.mkdir(exist_ok=True)
        write_atomic(clone / MODEL_FILE, lambda p: shutil.copyfile(out / "last" / CHECKPOINT_FILE, p),
                     suffix=".tmp.zip")  # fmt: skip
        _write_text(clone / CONFIG_FILE, json.dumps(meta, indent=1))
    remaining = cfg.steps - done_steps
    if remaining > 0:
        model.learn(remaining, callback=TrainingCallback(trainer), reset_num_timesteps=not resume, log_interval=1)
    if not trainer.rows or trainer.rows[-1]["timesteps"] != model.num_timesteps:
        trainer.evaluate_and_checkpoint(model, model.num_timesteps)
    wall = trainer.wall_s()
    result = TrainResult(
        out,
        int(model.num_timesteps),
        wall,
        trainer.best,
        {k: float(trainer.rows[-1][k]) for k in ("qoe_mean", "qoe_p10", "stall_ratio", "lpips_mean")},
        model.num_timesteps / wall if wall > 0 else float("nan"),
        trainer.rows,
    )
    summary = {
        "timesteps": result.timesteps,
        "wall_s": round(wall, 3),
        "steps_per_s": round(result.steps_per_s, 1),
        "best": result.best,
        "last": result.last,
        "model": MODEL_FILE,
        "stopped_by_time_limit": trainer.stopped_by_time_limit,
        "time_limit_s": time_limit_s,
        "imitation": trainer.imitation,
    }
    _write_text(out / "summary.json", json.dumps(summary, indent=1))
    venv.close()
    return result


# ---------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    S = argparse.SUPPRESS
    p = argparse.ArgumentParser(
        prog="python -m sim.train",
        description="Train a learned ABR policy (stable-baselines3) on the batched simulator.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Then: python -m sim.run --policy rl:DIR --trace ...   (DIR = the --out folder)\n"
        "scenarios (--scenario NAME: its train split, ladder, device, QoE, simulator; flags override):\n  "
        + describe_scenarios().replace("\n", "\n  "),
        argument_default=S,
    )
    p.add_argument("--scenario", metavar="NAME", help="train on a named scenario (see below)")
    p.add_argument("--algo", choices=list(ALGORITHMS), help=f"RL algorithm (default: {d.algo})")
    p.add_argument(
        "--trace",
        dest="traces",
        action="append",
        metavar="SPEC",
        help="training traces: model name, file, folder or glob; repeat to pool (default: lte)",
    )
    p.add_argument(
        "--eval-trace",
        dest="eval_traces",
        action="append",
        metavar="SPEC",
        help="validation traces (default: hold out --val-fraction of the training traces)",
    )
    p.add_argument("--val-fraction", type=float, help=f"held-out share of training traces (default: {d.val_fraction})")
    p.add_argument("--test-fraction", type=float, help=f"share of files in SPEC@test (default: {d.test_fraction})")
    p.add_argument("--split-seed", type=int, help=f"seed of the @train/@test split (default: {d.split_seed})")
    p.add_argument("--trace-count", type=int, help=f"traces drawn from a network model (default: {d.trace_count})")
    p.add_argument("--format", dest="trace_format", help="force the trace file format")
    p.add_argument("--transform", metavar="K=V,...",
                   help="what-if transforms of the training and validation traces, e.g. scale=0.03125,cap=3")
    p.add_argument("--ladder", help=f"ladder name or file (default: {d.ladder})")
    p.add_argument("--device", help=f"device profile (default: {d.device})")
    p.add_argument("--qoe", help=f"QoE preset, the reward (default: {d.qoe})")
    p.add_argument("--sim", help=f"simulator preset (default: {d.sim})")
    p.add_argument("--steps", type=int, help=f"environment steps (default: {d.steps})")
    p.add_argument("--n-envs", type=int, help=f"sessions stepped together (default: {d.n_envs})")
    p.add_argument("--seed", type=int, help=f"seed (default: {d.seed})")
    p.add_argument("--eval-every", type=int, help=f"steps between validation runs (default: {d.eval_every})")
    p.add_argument("--eval-sessions", type=int, help="validation sessions (default: one per validation trace)")
    p.add_argument(
        "--select-by", choices=list(_SELECT), help=f"validation score of the best model (default: {d.select_by})"
    )
    p.add_argument("--frame-stack", type=int, help="stack this many past observations (default: 1)")
    p.add_argument("--imitate", metavar="POLICY", help="clone this policy (e.g. mpc) before RL (PPO/A2C)")
    p.add_argument("--imitate-episodes", type=int, help=f"expert episodes per env (default: {d.imitate_episodes})")
    p.add_argument("--imitate-epochs", type=int, help=f"passes over the expert samples (default: {d.imitate_epochs})")
    p.add_argument("--lookahead", type=int, help="upcoming chunks whose qualities the agent sees (default: 1)")
    p.add_argument(
        "--start-rung",
        type=int,
        metavar="R",
        help="fetch the first chunk at rung R before the agent acts (default: the agent picks it)",
    )
    p.add_argument(
        "--no-normalize-obs", dest="normalize_obs", action="store_false", help="no observation normalisation"
    )
    p.add_argument(
        "--no-normalize-reward", dest="normalize_reward", action="store_false", help="no running reward normalisation"
    )
    p.add_argument("--reward-scale", type=float, help="multiply rewards (default: 1)")
    p.add_argument("--reward-center", action="store_true",
                   help="subtract a running mean of the per-chunk reward across sessions (reward centering)")
    p.add_argument("--curriculum", metavar="POLICY",
                   help="Genet-style trace selection: draw more often the training traces where the policy "
                        "trails this baseline (e.g. robustmpc:decode_aware=1)")
    p.add_argument("--curriculum-mix", type=float, help=f"share of the draw that follows the gap "
                   f"(default: {d.curriculum_mix})")  # fmt: skip
    p.add_argument(
        "--net",
        dest="net_arch",
        metavar="N,N",
        type=lambda v: tuple(int(x) for x in v.split(",")),
        help="hidden layer sizes (default: 64,64)",
    )
    p.add_argument("--lr", dest="learning_rate", type=float, help="learning rate (default: per algorithm)")
    p.add_argument("--n-steps", type=int, help="rollout length per env, PPO/A2C (default: per algorithm)")
    p.add_argument("--batch-size", type=int, help="minibatch size, PPO/DQN (default: per algorithm)")
    p.add_argument("--epochs", dest="n_epochs", type=int, help="epochs per rollout, PPO (default: 4)")
    p.add_argument("--gamma", type=float, help="discount (default: 0.99)")
    p.add_argument("--ent-coef", type=float, help="entropy bonus, PPO/A2C (default: 0.01)")
    p.add_argument("--threads", dest="torch_threads", type=int, help="torch CPU threads (default: 1)")
    p.add_argument("--config", type=Path, help="start from a saved config.json (flags override it)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--time-limit-min", type=float, help="stop after this many minutes of training")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--quiet", dest="progress", action="store_false", help=S)  # the --no-progress alias (abr.flags)
    p.add_argument("--tensorboard", metavar="DIR", type=Path,
                   help="also log to TensorBoard in DIR (needs: pip install tensorboard)")
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    out, resume, progress = args.pop("out"), args.pop("resume", False), args.pop("progress", True)
    limit_min = args.pop("time_limit_min", None)
    tensorboard = args.pop("tensorboard", None)
    base = load_config(args.pop("config")).to_dict() if "config" in args else {}
    if resume and not base and (out / "config.json").is_file():
        base = load_config(out / "config.json").to_dict()
    base.update(scenario_config(args.pop("scenario", None)))
    base.update(args)
    try:
        cfg = TrainConfig.from_dict(base, where="command line")
    except InputError as exc:  # name the flag, not the field: "TrainConfig.learning_rate" -> "--lr"
        msg = str(exc)
        for action in parser._actions:
            if action.option_strings and f"TrainConfig.{action.dest} " in msg:
                msg = msg.replace(f"command line: TrainConfig.{action.dest}", action.option_strings[0])
        raise InputError(msg) from None
    if limit_min is not None and not limit_min > 0:
        raise InputError(f"--time-limit-min must be > 0, got {limit_min}")
    limit_s = None if limit_min is None else 60.0 * limit_min
    res = train(cfg, out, resume=resume, progress=progress, time_limit_s=limit_s, tensorboard=tensorboard)
    best = res.best
    print(
        f"trained {res.timesteps} steps in {res.wall_s:.1f} s ({res.steps_per_s:.0f} steps/s); best validation "
        f"QoE {best.get('qoe_mean', float('nan')):.4f} (p10 {best.get('qoe_p10', float('nan')):.4f}) "
        f"at {best.get('timesteps')} steps -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

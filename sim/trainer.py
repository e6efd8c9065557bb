"""Training a learned ABR policy with stable-baselines3 (the library behind ``python -m sim.train``).

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

import csv
import io
import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, Logger

from abr.errors import InputError
from abr.io import check_output, write_atomic, write_text_atomic
from abr.lock import folder_lock
from policies.algorithms import algorithm_class
from sim.train_config import SELECT, TrainConfig, load_config

__all__ = ["CHECKPOINT_FILE", "CLONE_DIR", "TrainResult", "evaluate", "train"]

_EVAL_SEED_OFFSET = 1_000_003
_CURRICULUM_SEED_OFFSET = 2_000_003
_EVAL_COLUMNS = ("timesteps", "wall_s", "train_ep_return", "qoe_mean", "qoe_p10", "stall_ratio", "lpips_mean", "best",
                 "curriculum_gap")  # fmt: skip
CHECKPOINT_FILE = "checkpoint.zip"
#: Sub-folder holding the behaviour clone before any RL update (``--imitate``), loadable as ``rl:OUT/clone``.
CLONE_DIR = "clone"
_STATE_MEMBER = "state.json"
_VECNORM_MEMBER = "vecnormalize.json"


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
            load_traces(spec, seed=seed + i, count=cfg.trace_count, fmt=cfg.trace_format, unit=cfg.trace_unit,
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


def _find_wrapper(venv, cls: type):
    """The wrapper of class ``cls`` in the ``venv`` chain, or None."""
    while venv is not None:
        if isinstance(venv, cls):
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
    from sim.session import aggregate, run_sessions

    res = run_sessions(policy, traces, ladder, device, qoe, config=config, sessions=sessions or None, seed=seed)
    df = res.sessions_frame().assign(run=0)
    row = aggregate(df.groupby("run"), {"qoe_mean": ("qoe_mean", "mean"), "qoe_p10": ("qoe_mean", 0.1),
                                        "stall_ratio": ("stall_ratio", "mean"), "lpips_mean": ("lpips_mean", "mean")})
    return {k: float(v) for k, v in row.iloc[0].items()}


# ---------------------------------------------------------------------------- callback
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
            if self.progress:
                print(f"curriculum: scoring {cfg.curriculum} on {len(self.s.train_traces)} training traces",
                      file=sys.stderr, flush=True)  # fmt: skip
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
        score = float(SELECT[cfg.select_by](metrics))
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
        return _train_locked(cfg, out, s, meta, expert, resume, progress, time_limit_s, tensorboard)


def _train_locked(cfg, out, s, meta, expert, resume, progress, time_limit_s, tensorboard=None) -> TrainResult:
    from policies.rl import CONFIG_FILE, MODEL_FILE

    trainer = _Trainer(cfg, out, s, meta, progress, time_limit_s)
    env, venv = _make_env(cfg, s)
    trainer.env, trainer.venv = env, venv
    from sim.vecenv import CenteredReward

    trainer.center = _find_wrapper(venv, CenteredReward)
    algo = algorithm_class(cfg.algo)
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
                              seed=cfg.seed, progress=progress)  # fmt: skip
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

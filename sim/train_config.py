"""The configuration of a training run (``config.json`` beside a trained model): :class:`TrainConfig`,
validated on construction, and :func:`load_config`. Imports no torch, so ``python -m sim.train
--help`` and config checks stay light; the trainer itself is :mod:`sim.trainer`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from abr.errors import InputError
from abr.qoe import QOE_PRESETS
from abr.registry import DEFAULT_LADDER
from policies.algorithms import ALGORITHMS
from sim.resolve import DEFAULT_DEVICE, DEFAULT_QOE, DEFAULT_SIM

__all__ = ["SELECT", "TrainConfig", "load_config"]

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
SELECT = {
    "qoe_mean": lambda m: m["qoe_mean"],
    "qoe_p10": lambda m: m["qoe_p10"],
    "mean_p10": lambda m: 0.5 * (m["qoe_mean"] + m["qoe_p10"]),
}
_TUNABLE = ("learning_rate", "n_steps", "batch_size", "n_epochs", "gamma", "ent_coef")
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
    :param trace_count: traces drawn from a network-model spec (e.g. ``lte``; 16 as in ``sim.run``).
    :param trace_format: force the trace file format (None = detect).
    :param trace_unit: value unit of cooked files (None = from the data, as ``traces.load_traces``).
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
    trace_count: int = 16
    trace_format: str | None = None
    trace_unit: str | None = None
    transform: str = ""
    ladder: str = DEFAULT_LADDER
    device: str = DEFAULT_DEVICE
    qoe: str = DEFAULT_QOE
    sim: str = DEFAULT_SIM
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
        if self.select_by not in SELECT:
            raise ValueError(f"TrainConfig.select_by must be one of {', '.join(SELECT)}, got {self.select_by!r}")
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

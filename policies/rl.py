"""Learned ABR policies: a stable-baselines3 model trained by ``python -m sim.train``.

``--policy rl:DIR`` loads the folder ``sim.train`` wrote: ``config.json`` (the training
config, the observation layout and the ladder the model was trained for), ``model.zip``
(the best model on the validation traces) and, when observations were normalised,
``vecnormalize.pkl`` (SB3 ``VecNormalize`` statistics). The policy acts for every session of
a batch with one ``model.predict(..., deterministic=True)`` call on the observations built
by :class:`sim.env.ObservationBuilder`, the builder the training environment used. A model
trained with a fixed first-chunk rung (``start_rung`` in ``config.json``) plays that rung for
the first chunk and decides from the second on, as it did in training.

This module imports torch (through stable-baselines3); ``policies.registry`` imports it only
when an ``rl:`` policy is requested, so ``import policies`` stays light.
"""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecNormalize
from stable_baselines3.common.vec_env.stacked_observations import StackedObservations

from abr.errors import InputError
from policies.base import Observation, Policy, PolicyContext
from sim.env import OBS_HIGH, OBS_SCALES, ObservationBuilder, observation_size
from sim.train import algorithm_class

__all__ = [
    "CONFIG_FILE",
    "FORMAT",
    "MODEL_FILE",
    "NORMALIZER_FILE",
    "RLPolicy",
    "VERSION",
    "load_rl_policy",
    "observation_layout",
]

FORMAT = "promptabr-rl-policy"
VERSION = 1
CONFIG_FILE = "config.json"
MODEL_FILE = "model.zip"
NORMALIZER_FILE = "vecnormalize.pkl"


def observation_layout(history: int, n_rungs: int, frame_stack: int = 1, lookahead: int = 1) -> dict[str, Any]:
    """What a model's input means: saved at training, compared when the model is loaded.

    Two layouts are compatible only if every entry is equal: the builder, the history, rung
    and lookahead counts (hence the vector size), the frame stack and the normalisation
    constants. Layouts saved before ``lookahead`` existed mean lookahead 1.
    """
    return {
        "builder": "sim.env.ObservationBuilder",
        "history": int(history),
        "n_rungs": int(n_rungs),
        "lookahead": int(lookahead),
        "size": observation_size(history, n_rungs, lookahead),
        "frame_stack": int(frame_stack),
        "scales": dict(OBS_SCALES),
        "high": float(OBS_HIGH),
    }


class RLPolicy(Policy):
    """A trained SB3 model acting greedily on the observation of :class:`sim.env.ObservationBuilder`.

    :param model: the trained model (any of :data:`sim.train.ALGORITHMS`).
    :param meta: the ``config.json`` document: needs ``layout`` (see :func:`observation_layout`)
        and ``ladder`` (``name``, ``n_rungs``); ``qoe`` is compared when present; ``start_rung``
        (optional) is the rung of the first chunk.
    :param normalizer: a ``VecNormalize`` whose observation statistics are applied, or None.
    :param source: where the model came from (for messages).
    """

    name = "rl"

    def __init__(
        self,
        model: BaseAlgorithm,
        meta: dict[str, Any],
        normalizer: VecNormalize | None = None,
        *,
        source: str = "model",
    ):
        super().__init__()
        self.model = model
        self.meta = meta
        self.layout = {"lookahead": 1, **meta["layout"]}
        self.normalizer = normalizer
        self.source = source
        self.start_rung = meta.get("start_rung")
        self._first = 0 if self.start_rung is None else 1  # first chunk the model decides
        self._stack: StackedObservations | None = None
        self._builder: ObservationBuilder | None = None
        if self.start_rung is not None and not 0 <= self.start_rung < meta["ladder"]["n_rungs"]:
            raise InputError(f"start_rung {self.start_rung} is not a rung of the trained ladder", path=source)
        expected = (self.layout["size"] * self.layout["frame_stack"],)
        if model.observation_space.shape != expected:
            raise InputError(
                f"model input has shape {model.observation_space.shape} but its config says {expected}", path=source
            )

    # ------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path) -> RLPolicy:
        """Load the folder written by ``sim.train`` (see the module docstring)."""
        folder = Path(path)
        cfg_path = folder / CONFIG_FILE
        if not folder.is_dir():
            raise InputError("not a folder of a trained policy (train one with python -m sim.train)", path=folder)
        try:
            meta = json.loads(cfg_path.read_text())
        except FileNotFoundError:
            raise InputError(
                f"no {CONFIG_FILE}: not a trained policy folder (python -m sim.train writes one)", path=folder
            ) from None
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read policy config ({exc})", path=cfg_path) from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise InputError(f"not a {FORMAT} config", path=cfg_path)
        if meta.get("version") != VERSION:
            raise InputError(f"policy format version {meta.get('version')!r}; this code reads {VERSION}", path=cfg_path)
        for key in ("algo", "layout", "ladder"):
            if key not in meta:
                raise InputError(f"missing key {key!r}", path=cfg_path)
        model_path = folder / MODEL_FILE
        if not model_path.is_file():
            raise InputError(f"no {MODEL_FILE} (was training interrupted before the first evaluation?)", path=folder)
        try:
            model = algorithm_class(meta["algo"]).load(model_path, device="cpu")
        except InputError:
            raise
        except Exception as exc:  # a corrupt zip or a model SB3 cannot read
            raise InputError(f"cannot load model ({type(exc).__name__}: {exc})", path=model_path) from None
        normalizer = None
        if meta.get("normalize_obs"):
            normalizer = _load_normalizer(folder / NORMALIZER_FILE)
        return cls(model, meta, normalizer, source=str(folder))

    # ------------------------------------------------------------ acting
    def reset(self, ctx: PolicyContext, n_sessions: int) -> None:
        super().reset(ctx, n_sessions)
        trained = self.meta["ladder"]
        if ctx.ladder.n_rungs != trained["n_rungs"]:
            raise InputError(
                f"the model was trained for a ladder with {trained['n_rungs']} rungs ({trained.get('name')}); "
                f"this run's ladder {ctx.ladder.name} has {ctx.ladder.n_rungs}: train a model for this ladder",
                path=self.source,
            )
        if trained.get("name") not in (None, ctx.ladder.name):
            warnings.warn(
                f"{self.source}: model trained on ladder {trained['name']!r}, running on {ctx.ladder.name!r}",
                stacklevel=2,
            )
        trained_qoe = self.meta.get("qoe")
        if trained_qoe is not None and trained_qoe != ctx.qoe.name:
            warnings.warn(
                f"{self.source}: model trained with QoE {trained_qoe!r}, running with {ctx.qoe.name!r}; its quality "
                "features are scaled differently",
                stacklevel=2,
            )
        self._builder = None
        self._stack = None
        self._n = n_sessions

    def _check_history(self, obs: Observation) -> None:
        history = obs.throughput_mbps.shape[1]
        current = observation_layout(
            history, self.ctx.ladder.n_rungs, self.layout["frame_stack"], self.layout["lookahead"]
        )
        diffs = [
            f"{k}: trained {self.layout.get(k)!r}, now {v!r}" for k, v in current.items() if self.layout.get(k) != v
        ]
        if diffs:
            raise InputError(
                "observation layout differs from the one the model was trained with (" + "; ".join(diffs) + ")",
                path=self.source,
            )
        self._builder = ObservationBuilder.from_context(self.ctx, history, self.layout["lookahead"])

    def features(self, obs: Observation) -> np.ndarray:
        """The model's input for every session: observation vector, frame stack, normalisation."""
        if self.ctx is None:
            raise RuntimeError("call reset() before act()")
        if self._builder is None:
            self._check_history(obs)
        vec = self._builder(obs)
        stack = self.layout["frame_stack"]
        if stack > 1:
            if self._stack is None or obs.chunk == self._first:
                space = spaces.Box(0.0, self.layout["high"], (self.layout["size"],), np.float32)
                self._stack = StackedObservations(obs.n_sessions, stack, space)
                vec = self._stack.reset(vec)
            else:
                vec, _ = self._stack.update(vec, np.zeros(obs.n_sessions, dtype=bool), [{}] * obs.n_sessions)
        if self.normalizer is not None:
            vec = self.normalizer.normalize_obs(vec)
        return vec

    def act(self, obs: Observation) -> np.ndarray:
        if obs.chunk < self._first:
            return np.full(obs.n_sessions, self.start_rung, dtype=np.int64)
        actions, _ = self.model.predict(self.features(obs), deterministic=True)
        return np.asarray(actions, dtype=np.int64).reshape(obs.n_sessions)


def _load_normalizer(path: Path) -> VecNormalize:
    """Observation statistics saved with ``VecNormalize.save`` (used without an env: normalize_obs only)."""
    try:
        with open(path, "rb") as fh:
            normalizer = pickle.load(fh)
    except FileNotFoundError:
        raise InputError(
            f"missing {NORMALIZER_FILE}: the model was trained with observation normalisation", path=path.parent
        ) from None
    except Exception as exc:
        raise InputError(f"cannot read normaliser ({type(exc).__name__}: {exc})", path=path) from None
    if not isinstance(normalizer, VecNormalize):
        raise InputError("not a VecNormalize file", path=path)
    return normalizer


def load_rl_policy(options: str) -> RLPolicy:
    """``rl:DIR`` in a policy spec: the trained policy in folder ``DIR``."""
    if not options:
        raise InputError("policy 'rl' needs a folder: --policy rl:DIR (written by python -m sim.train --out DIR)")
    return RLPolicy.load(options)

"""Learned ABR policies: a stable-baselines3 model trained by ``python -m sim.train``.

``--policy rl:DIR`` loads the folder ``sim.train`` wrote: ``config.json`` (the training
config, the observation layout and the ladder the model was trained for) and ``model.zip``
(the best model on the validation traces). The policy acts for every session of a batch with
one deterministic forward pass on the observations built by :class:`policies.observation.ObservationBuilder`,
the builder the training environment used. A model trained with a fixed first-chunk rung
(``start_rung`` in ``config.json``) plays that rung for the first chunk and decides from the
second on, as it did in training.

Nothing is unpickled. ``model.zip`` is SB3's archive; of it only ``policy.pth`` (a state dict of
tensors, read with ``torch.load(weights_only=True)``) and our ``normalizer.json`` member (the
observation mean and variance as plain numbers) are read. The network is rebuilt from
``config.json`` (algorithm, hidden layers, observation and action sizes), never from SB3's
cloudpickled ``data`` member, so a planted file cannot run code. Folders written before this
format (statistics in ``vecnormalize.pkl``) are refused with the command that converts them:
``python -m policies.rl convert DIR --trust-pickle``.

This module imports torch (through stable-baselines3); ``policies.registry`` imports it only
when an ``rl:`` policy is requested, so ``import policies`` stays light.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env.stacked_observations import StackedObservations

from abr.errors import InputError, cli_main
from policies.algorithms import ALGORITHMS, algorithm_class
from policies.base import Observation, Policy, PolicyContext
from policies.observation import OBS_HIGH, OBS_SCALES, ObservationBuilder, observation_size

__all__ = [
    "ALGORITHMS",
    "CONFIG_FILE",
    "FORMAT",
    "LEGACY_NORMALIZER_FILE",
    "MODEL_FILE",
    "NORMALIZER_MEMBER",
    "ObsNormalizer",
    "RLPolicy",
    "VERSION",
    "algorithm_class",
    "build_policy_net",
    "load_rl_policy",
    "observation_layout",
    "read_zip_member",
    "read_zip_state_dicts",
]

FORMAT = "promptabr-rl-policy"
VERSION = 1
CONFIG_FILE = "config.json"
MODEL_FILE = "model.zip"
#: Our member of ``model.zip``: the observation normaliser as JSON numbers.
NORMALIZER_MEMBER = "normalizer.json"
#: Where folders written before the safe format kept the normaliser (an SB3 pickle; never read).
LEGACY_NORMALIZER_FILE = "vecnormalize.pkl"
#: Upper bound on any one member read from ``model.zip`` (a policy of a few MB at most).
_MAX_MEMBER_BYTES = 256 << 20


def observation_layout(history: int, n_rungs: int, frame_stack: int = 1, lookahead: int = 1) -> dict[str, Any]:
    """What a model's input means: saved at training, compared when the model is loaded.

    Two layouts are compatible only if every entry is equal: the builder, the history, rung
    and lookahead counts (hence the vector size), the frame stack and the normalisation
    constants. Layouts saved before ``lookahead`` existed mean lookahead 1.
    """
    return {
        "builder": "policies.observation.ObservationBuilder/2",  # 2: decode history, sizes ahead
        "history": int(history),
        "n_rungs": int(n_rungs),
        "lookahead": int(lookahead),
        "size": observation_size(history, n_rungs, lookahead),
        "frame_stack": int(frame_stack),
        "scales": dict(OBS_SCALES),
        "high": float(OBS_HIGH),
    }


@dataclass(frozen=True, eq=False)
class ObsNormalizer:
    """Running observation statistics of SB3's ``VecNormalize``, applied as it applies them:
    ``clip((obs - mean) / sqrt(var + epsilon), -clip, clip)`` in float32. Stored as plain JSON
    numbers (``to_dict``), never pickled.

    :param mean: per-feature mean; ``var``: per-feature variance (same shape, finite, >= 0).
    :param count: samples behind the statistics.
    :param clip: bound of a normalised feature; ``epsilon``: added to ``var``.
    """

    mean: np.ndarray
    var: np.ndarray
    count: float
    clip: float = 10.0
    epsilon: float = 1e-8

    def __post_init__(self) -> None:
        mean, var = np.asarray(self.mean, np.float64), np.asarray(self.var, np.float64)
        if mean.ndim != 1 or mean.shape != var.shape:
            raise ValueError(f"normaliser mean and var must be vectors of one length, got {mean.shape}, {var.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(var).all() and (var >= 0).all()):
            raise ValueError("normaliser mean/var must be finite, var >= 0")
        for name in ("count", "clip", "epsilon"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"normaliser {name} must be a finite number >= 0, got {v!r}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "var", var)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.clip((obs - self.mean) / np.sqrt(self.var + self.epsilon), -self.clip, self.clip).astype(np.float32)

    @classmethod
    def from_vecnormalize(cls, venv) -> ObsNormalizer:
        """A snapshot of a ``VecNormalize``'s observation statistics."""
        rms = venv.obs_rms
        return cls(np.array(rms.mean, np.float64), np.array(rms.var, np.float64), float(rms.count),
                   float(venv.clip_obs), float(venv.epsilon))  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {"format": "promptabr-obs-normalizer", "mean": self.mean.tolist(), "var": self.var.tolist(),
                "count": self.count, "clip": self.clip, "epsilon": self.epsilon}  # fmt: skip

    @classmethod
    def from_dict(cls, doc: Any, where: object) -> ObsNormalizer:
        if not isinstance(doc, dict) or doc.get("format") != "promptabr-obs-normalizer":
            raise InputError("not a promptabr-obs-normalizer document", path=where)
        try:
            return cls(np.array(doc["mean"], np.float64), np.array(doc["var"], np.float64), doc["count"],
                       doc["clip"], doc["epsilon"])  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"bad normaliser ({type(exc).__name__}: {exc})", path=where) from None


def read_zip_member(path: Path, name: str) -> bytes | None:
    """The bytes of member ``name`` of zip ``path`` (None if absent); InputError if not a readable zip."""
    try:
        with zipfile.ZipFile(path) as zf:
            try:
                info = zf.getinfo(name)
            except KeyError:
                return None
            if info.file_size > _MAX_MEMBER_BYTES:
                raise InputError(
                    f"member {name} declares {info.file_size} bytes (limit {_MAX_MEMBER_BYTES})", path=path
                )
            return zf.read(info)
    except InputError:
        raise
    except (OSError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError) as exc:  # RuntimeError: encrypted
        raise InputError(f"cannot load model ({type(exc).__name__}: {exc})", path=path) from None


def read_zip_state_dicts(path: Path, names: tuple[str, ...] = ("policy",)) -> dict[str, dict]:
    """State dicts ``NAME.pth`` of an SB3 ``model.zip``, read with ``torch.load(weights_only=True)``
    (tensors and plain containers only: a planted pickle cannot run code)."""
    import pickle

    import torch

    out = {}
    for name in names:
        blob = read_zip_member(path, f"{name}.pth")
        if blob is None:
            raise InputError(f"cannot load model: no {name}.pth in the archive", path=path)
        try:
            out[name] = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError) as exc:
            raise InputError(f"cannot load model: {name}.pth is not a plain state dict ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200]})", path=path) from None  # fmt: skip
        if not isinstance(out[name], dict):
            raise InputError(f"cannot load model: {name}.pth is not a state dict", path=path)
    return out


def build_policy_net(meta: dict[str, Any], lr_schedule: Callable[[float], float] = lambda _: 0.0):
    """The SB3 policy network described by ``config.json``: algorithm, hidden layers, input and
    output sizes (the architecture sim.train builds), with fresh weights."""
    algo = algorithm_class(meta["algo"])
    layout = {"lookahead": 1, **meta["layout"]}
    obs_space = spaces.Box(0.0, float(layout["high"]), (int(layout["size"]) * int(layout["frame_stack"]),), np.float32)
    act_space = spaces.Discrete(int(meta["ladder"]["n_rungs"]))
    net_arch = [int(u) for u in meta.get("train", {}).get("net_arch", [64, 64])]
    return algo.policy_aliases["MlpPolicy"](obs_space, act_space, lr_schedule, net_arch=net_arch)


class RLPolicy(Policy):
    """A trained SB3 policy network acting greedily on :class:`policies.observation.ObservationBuilder` vectors.

    :param model: the network (an SB3 ``BasePolicy``; an algorithm's ``.policy``).
    :param meta: the ``config.json`` document: needs ``layout`` (see :func:`observation_layout`)
        and ``ladder`` (``name``, ``n_rungs``); ``qoe`` is compared when present; ``start_rung``
        (optional) is the rung of the first chunk.
    :param normalizer: observation statistics applied to the model's input, or None.
    :param source: where the model came from (for messages).
    """

    name = "rl"

    def __init__(self, model, meta: dict[str, Any], normalizer: ObsNormalizer | None = None, *, source: str = "model"):
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
        if normalizer is not None and normalizer.mean.shape != expected:
            raise InputError(
                f"normaliser has {normalizer.mean.shape[0]} features, the model {expected[0]}", path=source
            )

    # ------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path) -> RLPolicy:
        """Load the folder written by ``sim.train`` (see the module docstring)."""
        folder = Path(path)
        meta = _read_meta(folder)
        model_path = folder / MODEL_FILE
        if not model_path.is_file():
            raise InputError(f"no {MODEL_FILE} (was training interrupted before the first evaluation?)", path=folder)
        net = build_policy_net(meta)
        state = read_zip_state_dicts(model_path)["policy"]
        try:
            net.load_state_dict(state, strict=True)
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:
            raise InputError(f"cannot load model: its weights do not fit the network config.json describes "
                             f"({str(exc).splitlines()[0][:200]})", path=model_path) from None  # fmt: skip
        net.set_training_mode(False)
        normalizer = None
        if meta.get("normalize_obs"):
            normalizer = _read_normalizer(model_path)
        return cls(net, meta, normalizer, source=str(folder))

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
            vec = self.normalizer(vec)
        return vec

    def act(self, obs: Observation) -> np.ndarray:
        if obs.chunk < self._first:
            return np.full(obs.n_sessions, self.start_rung, dtype=np.int64)
        actions, _ = self.model.predict(self.features(obs), deterministic=True)
        return np.asarray(actions, dtype=np.int64).reshape(obs.n_sessions)


def _read_meta(folder: Path) -> dict[str, Any]:
    cfg_path = folder / CONFIG_FILE
    if not folder.is_dir():
        raise InputError("not a folder of a trained policy (train one with python -m sim.train)", path=folder)
    if not cfg_path.exists():
        raise InputError(f"no {CONFIG_FILE}: not a trained policy folder (python -m sim.train writes one)",
                         path=folder)  # fmt: skip
    from abr.io import read_json

    meta = read_json(cfg_path, "policy config")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(f"not a {FORMAT} config", path=cfg_path)
    if meta.get("version") != VERSION:
        raise InputError(f"policy format version {meta.get('version')!r}; this code reads {VERSION}", path=cfg_path)
    for key in ("algo", "layout", "ladder"):
        if key not in meta:
            raise InputError(f"missing key {key!r}", path=cfg_path)
    try:
        layout, ladder = meta["layout"], meta["ladder"]
        net_arch = meta.get("train", {}).get("net_arch", [1])
        ok = (
            meta["algo"] in ("ppo", "a2c", "dqn")
            and all(_small_int(layout[k]) for k in ("size", "frame_stack"))
            and _small_int(ladder["n_rungs"])
            and isinstance(net_arch, list)
            and all(_small_int(u) for u in net_arch)
            and (meta.get("start_rung") is None or isinstance(meta.get("start_rung"), int))
        )
    except (KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise InputError("layout, ladder, algo or net_arch missing or out of range", path=cfg_path)
    return meta


def _small_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 100_000


def _read_normalizer(model_path: Path) -> ObsNormalizer:
    blob = read_zip_member(model_path, NORMALIZER_MEMBER)
    if blob is None:
        legacy = model_path.parent / LEGACY_NORMALIZER_FILE
        hint = (f"; its statistics are in the pickle {LEGACY_NORMALIZER_FILE}, which promptabr does not load (a pickle "
                f"can run code): if you trust it, convert the folder with python -m policies.rl convert "
                f"{model_path.parent} --trust-pickle") if legacy.is_file() else ""  # fmt: skip
        raise InputError(f"no {NORMALIZER_MEMBER} in the archive: the model was trained with observation "
                         f"normalisation{hint}", path=model_path)  # fmt: skip
    try:
        doc = json.loads(blob)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InputError(f"cannot read {NORMALIZER_MEMBER} ({type(exc).__name__}: {exc})", path=model_path) from None
    return ObsNormalizer.from_dict(doc, f"{model_path}:{NORMALIZER_MEMBER}")


def add_zip_members(path: Path, members: dict[str, bytes]) -> None:
    """Add (or replace) members of the zip at ``path`` (a temporary file being written)."""
    with zipfile.ZipFile(path) as zf:
        kept = [(i, zf.read(i)) for i in zf.infolist() if i.filename not in members]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, blob in kept:
            zf.writestr(info, blob)
        for name, blob in members.items():
            zf.writestr(name, blob)


def load_rl_policy(options: str) -> RLPolicy:
    """``rl:DIR`` in a policy spec: the trained policy in folder ``DIR``."""
    if not options:
        raise InputError("policy 'rl' needs a folder: --policy rl:DIR (written by python -m sim.train --out DIR)")
    return RLPolicy.load(options)


# ---------------------------------------------------------------------------- converting old folders
def convert_legacy(folder: Path) -> Path:
    """Move the statistics of a trusted old folder's ``vecnormalize.pkl`` into ``model.zip`` as
    JSON and delete the pickle. Unpickles: only for files you made yourself."""
    import pickle

    from abr.io import write_atomic

    model_path, legacy = folder / MODEL_FILE, folder / LEGACY_NORMALIZER_FILE
    _read_meta(folder)
    if not legacy.is_file():
        raise InputError(f"no {LEGACY_NORMALIZER_FILE}: nothing to convert", path=folder)
    with open(legacy, "rb") as fh:
        venv = pickle.load(fh)  # noqa: S301 - the user vouched for this file (--trust-pickle)
    doc = json.dumps(ObsNormalizer.from_vecnormalize(venv).to_dict()).encode()

    def write(tmp: Path) -> None:
        tmp.write_bytes(model_path.read_bytes())
        add_zip_members(tmp, {NORMALIZER_MEMBER: doc})

    write_atomic(model_path, write, suffix=".zip")
    legacy.unlink()
    return model_path


@cli_main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m policies.rl", description="Tools for trained policy folders.")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help=f"move an old folder's {LEGACY_NORMALIZER_FILE} into model.zip as JSON")
    c.add_argument("folder", type=Path)
    c.add_argument(
        "--trust-pickle",
        action="store_true",
        help="required: converting unpickles the file, which can run code; only for your own files",
    )
    args = p.parse_args(argv)
    if not args.trust_pickle:
        raise InputError(f"convert unpickles {LEGACY_NORMALIZER_FILE}, which can run any code: pass --trust-pickle "
                         "only if you made the file yourself")  # fmt: skip
    print(f"converted -> {convert_legacy(args.folder)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

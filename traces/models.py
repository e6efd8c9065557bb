"""Generative network models: seeded traces from a name (``--trace lte``, ``--trace genet``).

Two kinds, one interface (``generate(rngs, duration_s) -> list[Trace]`` and
``with_options(dict)``):

* :class:`FittedModel` (``lte``, ``3g``, ``5g``, ``fcc``, ``wifi``): a hierarchical
  latent-Markov model of log-throughput fitted by ``python -m traces.fit`` to a real set;
  the parameters live in ``traces/data/models.json`` with the files they came from. Each
  trace draws the parameters of one real file (weighted by its length): quantiles of its
  live ln(rate), its outage share and a latent autocorrelation, so the set's mix of
  networks and its distribution over time are kept. A latent unit Gaussian AR(1) ``z`` (a
  Markov process, one step per ``step_s``) drives the rate: with ``u = Phi(z)``, the step is
  an outage (rate 0) when ``u`` is below the outage share, else ln(rate) is the file's
  quantile function at the rescaled ``u`` (a censored Gaussian copula). Outages thus come in
  runs, next to low rates, as in the data; the AR(1) coefficient is calibrated per file so
  the rate's lag-1 autocorrelation is the file's.
* :class:`GenetModel` (``genet``): randomized traces in the style of Genet (Xia et al.,
  SIGCOMM 2022) for training robust policies: per trace a change interval, a min and max
  bandwidth and an RTT are drawn from ranges; the rate is redrawn uniformly in [min, max]
  after every interval. Spec: ``genet:min_mbps=0.2/2,max_mbps=2/20,interval_s=2/20,rtt_ms=20/200``
  (``lo/hi`` ranges; one number = fixed).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from abr.errors import InputError, unknown_name
from abr.io import read_json
from abr.options import parse_options, split_spec
from traces.trace import Trace

__all__ = [
    "FittedModel",
    "GenetModel",
    "NETWORK_MODELS",
    "MODELS_PATH",
    "get_model",
    "load_fitted_models",
    "model_rngs",
    "normal_cdf",
    "parse_model_spec",
]

MODELS_PATH = Path(__file__).resolve().parent / "data" / "models.json"
#: Length of generated traces unless a spec says otherwise (``lte:duration_s=300``).
DEFAULT_DURATION_S = 600.0


def model_rngs(name: str, seed: int, count: int, stream: str = "") -> list[np.random.Generator]:
    """One independent generator per trace: trace ``i`` depends only on (name, stream, seed, i)."""
    salt = zlib.crc32(f"{name}/{stream}".encode())
    return [np.random.default_rng([salt, int(seed) & 0xFFFFFFFF, i]) for i in range(count)]


#: Longest generated trace, seconds (a week).
MAX_DURATION_S = 7 * 86400.0


def _positive_duration(duration_s: float, name: str) -> float:
    if not 0 < duration_s <= MAX_DURATION_S:
        raise InputError(f"model {name!r}: duration_s must be in (0, {MAX_DURATION_S:g}] s, got {duration_s}")
    return float(duration_s)


_PHI_LO, _PHI_STEP, _PHI_N = -8.0, 0.005, 3201
_PHI = np.array([0.5 * math.erfc(-(_PHI_LO + i * _PHI_STEP) / math.sqrt(2.0)) for i in range(_PHI_N)])


def normal_cdf(z: np.ndarray) -> np.ndarray:
    """Standard normal CDF, numpy only (linear interpolation of a 0.005-step table; error < 2e-6)."""
    t = np.clip((np.asarray(z, dtype=float) - _PHI_LO) / _PHI_STEP, 0.0, _PHI_N - 1.000001)
    i = t.astype(np.int64)
    f = t - i
    return _PHI[i] * (1.0 - f) + _PHI[i + 1] * f


@dataclass(frozen=True, slots=True)
class FittedModel:
    """Hierarchical latent-AR(1) model of log-throughput with outages (see module doc).

    :param name: registry name.
    :param description: what it was fitted to.
    :param step_s: time step, seconds.
    :param live_probs: probabilities (0 .. 1) at which each file's live ln(Mbit/s) quantiles are given.
    :param file_params: one row per real file: ``(rho, outage_share, q_1, ..., q_K)`` = the
        latent AR(1) coefficient (calibrated so the file's lag-1 autocorrelation of the rate
        is reproduced), the share of steps in outage, and the quantiles of ln(Mbit/s) over its
        live steps at ``live_probs``.
    :param file_weights: probability of drawing each row (its file's share of the set's time,
        so the model's distribution over time is the set's).
    :param duration_s: default length of a generated trace, seconds.
    :param source: one line naming the data it was fitted to.
    """

    name: str
    description: str
    step_s: float
    live_probs: tuple[float, ...]
    file_params: tuple[tuple[float, ...], ...]
    file_weights: tuple[float, ...]
    duration_s: float = DEFAULT_DURATION_S
    source: str = ""

    def __post_init__(self) -> None:
        pr = np.asarray(self.live_probs, dtype=float)
        if pr.size < 2 or pr[0] != 0.0 or pr[-1] != 1.0 or np.any(np.diff(pr) <= 0):
            raise ValueError(f"{self.name}: live_probs must rise strictly from 0 to 1")
        fp = np.asarray(self.file_params, dtype=float)
        if fp.ndim != 2 or fp.shape[1] != 2 + pr.size or fp.shape[0] == 0:
            raise ValueError(f"{self.name}: file_params rows must be (rho, outage_share, {pr.size} quantiles)")
        if np.any(np.abs(fp[:, 0]) >= 1) or np.any((fp[:, 1] < 0) | (fp[:, 1] >= 1)):
            raise ValueError(f"{self.name}: need |rho| < 1 and 0 <= outage_share < 1")
        if not np.all(np.isfinite(fp)) or np.any(np.diff(fp[:, 2:], axis=1) < 0):
            raise ValueError(f"{self.name}: quantiles must be finite and non-decreasing")
        w = np.asarray(self.file_weights, dtype=float)
        if w.shape != (fp.shape[0],) or np.any(w < 0) or abs(w.sum() - 1.0) > 1e-6:
            raise ValueError(f"{self.name}: file_weights must be one probability per file_params row")
        if not self.step_s > 0:
            raise ValueError(f"{self.name}: step_s must be > 0")
        _positive_duration(self.duration_s, self.name)

    @classmethod
    def from_dict(cls, d: dict) -> FittedModel:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["live_probs"] = tuple(float(v) for v in kw["live_probs"])
        kw["file_params"] = tuple(tuple(float(v) for v in row) for row in kw["file_params"])
        w = np.asarray(kw["file_weights"], dtype=float)
        kw["file_weights"] = tuple((w / w.sum()).tolist())
        return cls(**kw)

    def with_options(self, options: str, where: str) -> FittedModel:
        """Only ``duration_s`` may be changed from a spec; the rest is fitted."""
        return _with_options(self, options, where, ("duration_s",))

    def rate_of_latent(self, z: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Mbit/s for latent scores ``z`` ``(n, T)`` under ``file_params`` rows ``(n, 2 + K)``."""
        probs = np.asarray(self.live_probs)
        k = probs.size
        share = rows[:, 1:2]
        live = (normal_cdf(z) - share) / (1.0 - share)
        idx = np.clip(np.searchsorted(probs, live, side="right") - 1, 0, k - 2)
        frac = np.clip((live - probs[idx]) / (probs[idx + 1] - probs[idx]), 0.0, 1.0)
        flat = np.ascontiguousarray(rows[:, 2:]).ravel()
        base = (np.arange(rows.shape[0]) * k)[:, None] + idx
        ln_rate = flat[base] * (1.0 - frac) + flat[base + 1] * frac
        return np.where(live > 0, np.exp(ln_rate), 0.0)

    def generate_mbps(self, rngs: list[np.random.Generator], n_steps: int) -> np.ndarray:
        """Rates ``(len(rngs), n_steps)`` in Mbit/s at ``step_s``; row ``i`` uses only ``rngs[i]``."""
        fp = np.asarray(self.file_params)
        draws = [(g.random(), g.standard_normal(n_steps)) for g in rngs]
        pick = np.searchsorted(np.cumsum(self.file_weights), [d[0] for d in draws], side="right")
        rows = fp[np.minimum(pick, len(fp) - 1)]
        eps = np.stack([d[1] for d in draws])
        rho = rows[:, 0]
        gain = np.sqrt(1.0 - rho**2)
        z = np.empty_like(eps)
        z[:, 0] = eps[:, 0]
        for t in range(1, n_steps):  # the latent AR(1) of every trace at once
            z[:, t] = rho * z[:, t - 1] + gain * eps[:, t]
        mbps = self.rate_of_latent(z, rows)
        dead = ~np.any(mbps > 0, axis=1)  # a whole trace in outage: give it its median for one step
        mbps[dead, 0] = np.exp(rows[dead, 2 + len(self.live_probs) // 2])
        return mbps

    def generate(
        self, rngs: list[np.random.Generator], duration_s: float | None = None, label: str | None = None
    ) -> list[Trace]:
        """One trace per generator; names are ``{label}-{i}`` (label defaults to the model name)."""
        label = label or self.name
        duration_s = self.duration_s if duration_s is None else _positive_duration(duration_s, self.name)
        n = max(int(np.ceil(duration_s / self.step_s - 1e-9)), 1)
        dur = np.full(n, self.step_s)
        dur[-1] = duration_s - (n - 1) * self.step_s
        rates = self.generate_mbps(rngs, n)
        return [Trace(dur, r, name=f"{label}-{i}", source=f"model:{label} #{i}") for i, r in enumerate(rates)]


def _with_options(model, options: str, where: str, settable: tuple[str, ...]):
    """``model`` with the fields in ``settable`` replaced from ``k=v,...`` (:mod:`abr.options`)."""
    skip = tuple(f.name for f in fields(model) if f.name not in settable)
    changes = parse_options(type(model), options, where, skip=skip)
    return replace(model, **changes) if changes else model


@dataclass(frozen=True, slots=True)
class GenetModel:
    """Genet-style randomized traces (ranges drawn once per trace).

    :param min_mbps: range of the trace's minimum bandwidth (uniform).
    :param max_mbps: range of the trace's maximum bandwidth (log-uniform; raised to the minimum).
    :param interval_s: range of the trace's mean change interval (uniform); each hold lasts
        U(0.5, 1.5) x interval.
    :param rtt_ms: range of the trace's constant latency (uniform), stored as ``latency_ms``.
    :param duration_s: length of each trace.
    """

    name: str = "genet"
    min_mbps: tuple[float, float] = (0.2, 2.0)
    max_mbps: tuple[float, float] = (2.0, 20.0)
    interval_s: tuple[float, float] = (2.0, 20.0)
    rtt_ms: tuple[float, float] = (20.0, 200.0)
    duration_s: float = DEFAULT_DURATION_S
    description: str = "Genet-style randomized: rate ~ U(min, max) redrawn every ~interval; per-trace RTT"
    source: str = "randomized (Genet, SIGCOMM 2022 style); not fitted"

    def __post_init__(self) -> None:
        for key in ("min_mbps", "max_mbps", "interval_s", "rtt_ms"):
            lo, hi = getattr(self, key)
            if not 0 <= lo <= hi:
                raise InputError(f"genet: {key} must be LO/HI with 0 <= LO <= HI, got {lo}/{hi}")
        if self.max_mbps[1] <= 0:
            raise InputError("genet: max_mbps must allow a positive rate")
        if self.interval_s[0] <= 0:
            raise InputError("genet: interval_s must be > 0")
        _positive_duration(self.duration_s, self.name)

    def with_options(self, options: str, where: str) -> GenetModel:
        """Ranges are ``LO/HI`` (one value: a point); ``duration_s`` a number."""
        return _with_options(self, options, where, ("min_mbps", "max_mbps", "interval_s", "rtt_ms", "duration_s"))

    def generate(
        self, rngs: list[np.random.Generator], duration_s: float | None = None, label: str | None = None
    ) -> list[Trace]:
        """One trace per generator; names are ``{label}-{i}`` (label defaults to ``genet``)."""
        label = label or self.name
        duration_s = self.duration_s if duration_s is None else _positive_duration(duration_s, self.name)
        out = []
        for i, g in enumerate(rngs):
            lo = g.uniform(*self.min_mbps)
            hi_lo, hi_hi = (max(x, 1e-3) for x in self.max_mbps)
            hi = max(float(np.exp(g.uniform(np.log(hi_lo), np.log(hi_hi)))), lo)
            interval = g.uniform(*self.interval_s)
            rtt = g.uniform(*self.rtt_ms)
            n = int(np.ceil(duration_s / (0.5 * interval))) + 1
            dur = g.uniform(0.5, 1.5, n) * interval
            ends = np.cumsum(dur)
            m = int(np.searchsorted(ends, duration_s)) + 1
            dur = dur[:m]
            dur[-1] -= ends[m - 1] - duration_s
            rate = g.uniform(lo, hi, m)
            if not np.any(rate > 0):
                rate[:] = hi if hi > 0 else 1e-3
            out.append(Trace(dur, rate, np.full(m, rtt), name=f"{label}-{i}", source=f"model:{label} #{i}"))
        return out


def load_fitted_models(path: Path = MODELS_PATH) -> dict[str, FittedModel]:
    """The fitted models stored in ``path`` (empty before the first ``python -m traces.fit``)."""
    if not path.is_file():
        return {}
    data = read_json(path, "network models")
    return {name: FittedModel.from_dict({"name": name, **d}) for name, d in data["models"].items()}


class _Registry(Mapping):
    """Name -> model; ``models.json`` is read on first use, so ``import traces`` stays cheap."""

    @cached_property
    def _models(self) -> dict[str, FittedModel | GenetModel]:
        return {**load_fitted_models(), "genet": GenetModel()}

    def __getitem__(self, name: str) -> FittedModel | GenetModel:
        return self._models[name]

    def __iter__(self):
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)


#: Name -> model: the fitted models of ``models.json`` and ``genet``.
NETWORK_MODELS: Mapping[str, FittedModel | GenetModel] = _Registry()


def parse_model_spec(spec: str) -> tuple[str, str] | None:
    """``name`` or ``name:k=v,...`` -> ``(name, "k=v,...")`` when ``name`` is a model, else None."""
    name, options = split_spec(spec)
    return (name, options) if name in NETWORK_MODELS else None


def get_model(spec: str) -> FittedModel | GenetModel:
    """A model by name, with ``name:k=v,...`` options applied."""
    parsed = parse_model_spec(spec)
    if parsed is None:
        raise unknown_name("network model", spec.partition(":")[0], NETWORK_MODELS)
    name, options = parsed
    return NETWORK_MODELS[name].with_options(options, f"network model {spec!r}")

"""Device profiles: how long the receiving device needs to decode one frame.

A profile maps decoder variants (a rung's ``decoder``: ``promptus``, ``promptmobile``,
``h265``...) to a nominal per-frame decode time in milliseconds, each number with its source.
Built-in profiles live in ``sim/data/devices.json``; measured profiles
(``bench/device_profile.py``) are written as ``sim/data/devices/<name>.json``. A key ``*`` is
the default for any decoder.

A phone profile may add a ``variability`` (:class:`Variability`): the decoders that run on
its NPU take, for chunk k of a session,

    D_k = nominal_k x J_k / s_k,

* ``J_k``, the jitter, is a per-chunk draw from the session's key (:mod:`sim.rng`, counter
  k, so it does not depend on the rung chosen or on the batch): lognormal with median 1 and
  the profile's p90/p50, times ``spike_factor`` with probability ``spike_prob``;
* ``s_k`` in (floor, 1], the sustained-speed fraction, falls with the NPU's heat
  ``h`` in [0, 1]: ``s = 1 - (1 - floor) h``. Heat follows a first-order law with time
  constant ``tau``: ``1 - h`` decays by ``exp(-D/tau)`` while the NPU decodes and ``h``
  decays by ``exp(-idle/tau)`` while it idles. Under continuous load from cold,
  ``s(t) = floor + (1 - floor) exp(-t/tau)``: the shape of a stress-test curve, whose
  lowest/best ratio is ``floor``. ``s_k`` is fixed at the start of the chunk's decode.

Other decoders (the phone's fixed-function video decoder) take their nominal time and
neither heat nor jitter (an estimate: no distribution for them was found).

A :class:`DevicePopulation` draws one member profile per session from the session's key,
deterministic by seed and session id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from abr.errors import InputError, unknown_name
from abr.io import read_json
from abr.ladder import Ladder
from sim.rng import uniform

__all__ = [
    "DecoderModel", "Device", "DevicePopulation", "DeviceProfile", "Variability",
    "available_devices", "get_device", "load_device",
]  # fmt: skip

#: rng streams of the decoder (sim.rng); the core uses small numbers, these stay clear of them
_STREAM_JITTER_A, _STREAM_JITTER_B, _STREAM_SPIKE, _STREAM_MEMBER = 101, 102, 103, 104
_Z90 = 1.2815515655446004  # standard normal 90th percentile


@dataclass(frozen=True)
class Variability:
    """Jitter and sustained-load throttling of a device's NPU decoders (see the module docstring).

    :param npu_decoders: decoder variants that run on the NPU (jittered, throttled, heating it).
    :param p90_p50: p90 / p50 of the per-chunk decode time (1 = no jitter).
    :param spike_prob: probability that a chunk's decode is a spike.
    :param spike_factor: multiplier of a spike's decode time.
    :param floor: sustained speed under continuous load, as a fraction of the cold speed (1 = no throttling).
    :param tau_s: heating and cooling time constant, seconds.
    :param sources: field -> where the number comes from.
    """

    npu_decoders: tuple[str, ...] = ()
    p90_p50: float = 1.0
    spike_prob: float = 0.0
    spike_factor: float = 1.0
    floor: float = 1.0
    tau_s: float = 300.0
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = {
            "p90_p50": self.p90_p50 >= 1.0, "spike_prob": 0.0 <= self.spike_prob <= 1.0,
            "spike_factor": self.spike_factor >= 1.0, "floor": 0.0 < self.floor <= 1.0, "tau_s": self.tau_s > 0,
        }  # fmt: skip
        for name, ok in checks.items():
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and ok):
                raise InputError(f"device variability: bad {name} {value!r}")

    @property
    def sigma(self) -> float:
        """Log-standard deviation of the lognormal jitter."""
        return math.log(self.p90_p50) / _Z90

    @property
    def is_constant(self) -> bool:
        return not self.npu_decoders or (
            self.p90_p50 == 1.0 and (self.spike_prob == 0.0 or self.spike_factor == 1.0) and self.floor == 1.0
        )


@dataclass(frozen=True)
class DeviceProfile:
    """Per-frame decode time of every decoder variant on one device.

    :param name: profile name.
    :param decode_ms_per_frame: decoder variant -> ms per frame (``*`` = any other).
    :param sources: decoder variant -> where the number comes from.
    :param description: what device and set-up.
    """

    name: str
    decode_ms_per_frame: dict[str, float]
    sources: dict[str, str] = field(default_factory=dict)
    description: str = ""
    variability: Variability = field(default_factory=Variability)

    def __post_init__(self) -> None:
        for dec, ms in self.decode_ms_per_frame.items():
            ok = isinstance(ms, (int, float)) and not isinstance(ms, bool) and np.isfinite(ms)
            if not (ok and 0 <= ms <= 1e6):
                raise InputError(f"device {self.name!r}: decode time of {dec!r} must be in [0, 1e6] ms, got {ms!r}")

    def ms_per_frame(self, decoder: str) -> float:
        """Decode ms per frame of ``decoder``; InputError if this device has no figure for it."""
        if decoder in self.decode_ms_per_frame:
            return float(self.decode_ms_per_frame[decoder])
        if "*" in self.decode_ms_per_frame:
            return float(self.decode_ms_per_frame["*"])
        raise InputError(
            f"device {self.name!r} has no decode time for decoder {decoder!r}; "
            f"it knows: {', '.join(sorted(self.decode_ms_per_frame))}"
        )

    def decode_s(self, ladder: Ladder) -> np.ndarray:
        """Decode time of every chunk and rung of ``ladder``, seconds, shape ``(chunks, rungs)``."""
        per_frame = np.array([self.ms_per_frame(d) for d in ladder.decoders]) / 1000.0
        return ladder.frames[:, None] * per_frame[None, :]

    def realtime_factor(self, ladder: Ladder) -> np.ndarray:
        """Nominal decode time over play time per rung (above 1: slower than real time)."""
        return self.decode_s(ladder).sum(axis=0) / ladder.total_duration_s

    def decoder(self, ladder: Ladder) -> DecoderModel:
        """The per-session decode-time model of this device on ``ladder``."""
        return DecoderModel.build((self,), np.ones(1), ladder)


@dataclass(frozen=True)
class DevicePopulation:
    """A device drawn per session from ``members`` with probabilities proportional to ``weights``.

    Its nominal table (:meth:`decode_s`, what policies are told before a session starts) is
    the weighted mean of the members'.
    """

    name: str
    members: tuple[DeviceProfile, ...]
    weights: tuple[float, ...]
    sources: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        w = np.asarray(self.weights, dtype=float)
        if not self.members or len(w) != len(self.members) or not np.all(np.isfinite(w)) or w.min() < 0 or w.sum() <= 0:
            raise InputError(f"device population {self.name!r}: needs members with finite weights >= 0, not all 0")

    def decode_s(self, ladder: Ladder) -> np.ndarray:
        w = np.asarray(self.weights, dtype=float)
        return np.tensordot(w / w.sum(), np.stack([m.decode_s(ladder) for m in self.members]), axes=1)

    def realtime_factor(self, ladder: Ladder) -> np.ndarray:
        return self.decode_s(ladder).sum(axis=0) / ladder.total_duration_s

    def decoder(self, ladder: Ladder) -> DecoderModel:
        return DecoderModel.build(self.members, np.asarray(self.weights, dtype=float), ladder)


Device = DeviceProfile | DevicePopulation


@dataclass(frozen=True, eq=False)
class DecoderModel:
    """Decode time of chunk k at rung r for every session: what :class:`sim.core.BatchSimulator` asks.

    :param nominal: the device's (or population's mean) nominal table, seconds, ``(chunks, rungs)``.
    :param base: nominal table of every member, ``(members, chunks, rungs)``.
    :param npu: whether each member's rung decodes on its NPU, ``(members, rungs)``.
    :param cum_weight: cumulative member probabilities, ``(members,)``, last = 1.
    :param sigma, spike_prob, spike_factor, floor, tau_s: each member's :class:`Variability`, ``(members,)``.
    """

    nominal: np.ndarray
    base: np.ndarray
    npu: np.ndarray
    cum_weight: np.ndarray
    sigma: np.ndarray
    spike_prob: np.ndarray
    spike_factor: np.ndarray
    floor: np.ndarray
    tau_s: np.ndarray
    constant: bool

    @classmethod
    def build(cls, members: tuple[DeviceProfile, ...], weights: np.ndarray, ladder: Ladder) -> DecoderModel:
        base = np.stack([m.decode_s(ladder) for m in members])
        var = [m.variability for m in members]
        w = weights / weights.sum()
        return cls(
            nominal=np.tensordot(w, base, axes=1) if len(members) > 1 else base[0],
            base=base,
            npu=np.array([[d in v.npu_decoders for d in ladder.decoders] for v in var]),
            cum_weight=np.cumsum(w),
            sigma=np.array([v.sigma for v in var]),
            spike_prob=np.array([v.spike_prob for v in var]),
            spike_factor=np.array([v.spike_factor for v in var]),
            floor=np.array([v.floor for v in var]),
            tau_s=np.array([v.tau_s for v in var]),
            constant=len(members) == 1 and var[0].is_constant,
        )

    def member(self, keys: np.ndarray) -> np.ndarray:
        """Index of every session's member device (drawn from its key)."""
        if len(self.cum_weight) == 1:
            return np.zeros(len(keys), dtype=np.int64)
        u = uniform(keys, 0, _STREAM_MEMBER)
        return np.minimum(np.searchsorted(self.cum_weight, u, side="right"), len(self.cum_weight) - 1)

    def jitter(self, keys: np.ndarray, k: int, member: np.ndarray) -> np.ndarray:
        """J_k of every session: lognormal (median 1) times a rare spike."""
        u1 = uniform(keys, k, _STREAM_JITTER_A)
        u2 = uniform(keys, k, _STREAM_JITTER_B)
        z = np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)  # Box-Muller; 1 - u1 in (0, 1]
        spike = uniform(keys, k, _STREAM_SPIKE) < self.spike_prob[member]
        return np.exp(self.sigma[member] * z) * np.where(spike, self.spike_factor[member], 1.0)

    def chunk_s(
        self, keys: np.ndarray, k: int, rung: np.ndarray, idle_s: np.ndarray, heat: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decode time of chunk ``k`` at ``rung`` per session, and the NPU heat after it.

        :param idle_s: time the decoder idled since its last decode ended.
        :param heat: the NPU heat when its last decode ended, in [0, 1].
        """
        if self.constant:
            return self.nominal[k, rung], heat
        m = self.member(keys)
        npu = self.npu[m, rung]
        tau = self.tau_s[m]
        h = heat * np.exp(-idle_s / tau)  # cooled while idle
        speed = 1.0 - (1.0 - self.floor[m]) * h
        dec = self.base[m, k, rung]
        dec = np.where(npu, dec * self.jitter(keys, k, m) / speed, dec)
        cooled = h * np.exp(-dec / tau)
        heated = 1.0 - (1.0 - h) * np.exp(-dec / tau)
        return dec, np.where(npu, heated, cooled)


_VARIABILITY_FIELDS = {"npu_decoders", "p90_p50", "spike_prob", "spike_factor", "floor", "tau_s", "sources"}


def _variability(name: str, doc: object, source: object) -> Variability:
    if not isinstance(doc, dict):
        raise InputError(f"device {name!r}: 'variability' must be an object", path=source)
    extra = set(doc) - _VARIABILITY_FIELDS
    if extra:
        raise InputError(f"device {name!r}: unknown variability field(s) {sorted(extra)}", path=source)
    kw = dict(doc)
    if not isinstance(kw.get("npu_decoders", []), list) or not isinstance(kw.get("sources", {}), dict):
        raise InputError(f"device {name!r}: 'npu_decoders' must be a list, 'sources' an object", path=source)
    kw["npu_decoders"] = tuple(str(d) for d in kw.get("npu_decoders", ()))
    kw["sources"] = dict(kw.get("sources", {}))
    try:
        return Variability(**kw)
    except InputError as exc:
        raise InputError(f"device {name!r}: {exc}", path=source) from None
    except TypeError as exc:
        raise InputError(f"device {name!r}: bad variability ({exc})", path=source) from None


def _from_doc(name: str, doc: dict, source: object) -> DeviceProfile:
    if not isinstance(doc, dict) or not isinstance(doc.get("decode_ms_per_frame"), dict):
        raise InputError(f"device {name!r} needs a 'decode_ms_per_frame' object", path=source)
    if not isinstance(doc.get("sources", {}), dict):
        raise InputError(f"device {name!r}: 'sources' must be an object", path=source)
    extra = set(doc) - {"description", "decode_ms_per_frame", "sources", "name", "variability"}
    if extra:
        raise InputError(f"device {name!r} has unknown field(s) {sorted(extra)}", path=source)
    return DeviceProfile(
        name=name,
        decode_ms_per_frame=dict(doc["decode_ms_per_frame"]),
        sources=dict(doc.get("sources", {})),
        description=str(doc.get("description", "")),
        variability=_variability(name, doc.get("variability", {}), source),
    )


def _population(name: str, doc: dict, known: dict[str, DeviceProfile]) -> DevicePopulation:
    members = doc.get("members")
    if not isinstance(members, dict) or not members:
        raise InputError(f"device population {name!r} needs a 'members' object", path="sim/data/devices.json")
    missing = [m for m in members if m not in known]
    if missing:
        raise InputError(f"device population {name!r}: unknown member(s) {missing}", path="sim/data/devices.json")
    return DevicePopulation(
        name=name,
        members=tuple(known[m] for m in members),
        weights=tuple(float(w) for w in members.values()),
        sources=dict(doc.get("sources", {})),
        description=str(doc.get("description", "")),
    )


def _builtin() -> dict[str, Device]:
    root = resources.files("sim") / "data"
    doc = read_json(Path(str(root / "devices.json")), "device profiles")
    out: dict[str, Device] = {name: _from_doc(name, d, "sim/data/devices.json") for name, d in doc["devices"].items()}
    measured = root / "devices"
    if measured.is_dir():
        for entry in sorted(measured.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".json"):
                out.update({p.name: p for p in [load_device(Path(str(entry)))]})
    out.update({name: _population(name, d, out) for name, d in doc.get("populations", {}).items()})
    return out


def available_devices() -> list[str]:
    return sorted(_builtin())


def load_device(path: str | Path) -> DeviceProfile:
    """A profile from a JSON file ``{"name":..., "decode_ms_per_frame": {...}, "sources": {...}}``."""
    path = Path(path)
    doc = read_json(path, "device profile")
    return _from_doc(str(doc.get("name", path.stem)) if isinstance(doc, dict) else path.stem, doc, path)


def get_device(spec: str) -> Device:
    """A built-in profile or population by name, or a profile JSON file."""
    profiles = _builtin()
    if spec in profiles:
        return profiles[spec]
    if spec.endswith(".json") or Path(spec).is_file():
        return load_device(spec)
    raise unknown_name("device", spec, profiles)

"""Device profiles: how long the receiving device needs to decode one frame.

A profile maps decoder variants (a rung's ``decoder``: ``promptus``, ``promptmobile``,
``h265``...) to per-frame decode time in milliseconds, each number with its source. Built-in
profiles live in ``sim/data/devices.json``; measured profiles (``bench/device_profile.py``)
are written as ``sim/data/devices/<name>.json``. A key ``*`` is the default for any decoder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from abr.errors import InputError, unknown_name
from abr.ladder import Ladder

__all__ = ["DeviceProfile", "available_devices", "get_device", "load_device"]


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
        """Decode time over play time per rung (above 1: slower than real time)."""
        return self.decode_s(ladder).sum(axis=0) / ladder.total_duration_s


def _from_doc(name: str, doc: dict, source: object) -> DeviceProfile:
    if not isinstance(doc, dict) or not isinstance(doc.get("decode_ms_per_frame"), dict):
        raise InputError(f"device {name!r} needs a 'decode_ms_per_frame' object", path=source)
    if not isinstance(doc.get("sources", {}), dict):
        raise InputError(f"device {name!r}: 'sources' must be an object", path=source)
    extra = set(doc) - {"description", "decode_ms_per_frame", "sources", "name"}
    if extra:
        raise InputError(f"device {name!r} has unknown field(s) {sorted(extra)}", path=source)
    return DeviceProfile(
        name=name,
        decode_ms_per_frame=dict(doc["decode_ms_per_frame"]),
        sources=dict(doc.get("sources", {})),
        description=str(doc.get("description", "")),
    )


def _builtin() -> dict[str, DeviceProfile]:
    root = resources.files("sim") / "data"
    doc = json.loads((root / "devices.json").read_text())
    out = {name: _from_doc(name, d, "sim/data/devices.json") for name, d in doc["devices"].items()}
    measured = root / "devices"
    if measured.is_dir():
        for entry in sorted(measured.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".json"):
                out.update({p.name: p for p in [load_device(Path(str(entry)))]})
    return out


def available_devices() -> list[str]:
    return sorted(_builtin())


def load_device(path: str | Path) -> DeviceProfile:
    """A profile from a JSON file ``{"name":..., "decode_ms_per_frame": {...}, "sources": {...}}``."""
    from abr.io import read_text

    path = Path(path)
    try:
        doc = json.loads(read_text(path, "device profile"))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InputError(f"cannot read device profile ({type(exc).__name__}: {exc})", path=path) from None
    return _from_doc(str(doc.get("name", path.stem)) if isinstance(doc, dict) else path.stem, doc, path)


def get_device(spec: str) -> DeviceProfile:
    """A built-in profile by name, or a profile JSON file."""
    profiles = _builtin()
    if spec in profiles:
        return profiles[spec]
    if spec.endswith(".json") or Path(spec).is_file():
        return load_device(spec)
    raise unknown_name("device", spec, profiles)

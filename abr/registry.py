"""Ladders by name: embedded package data, synthetic models, or a file path."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from abr.errors import InputError
from abr.ladder import Ladder, load_ladder
from abr.synthetic import SYNTHETIC_FAMILIES, parse_synthetic, synthetic_ladder

__all__ = ["DEFAULT_LADDER", "available_ladders", "get_ladder"]

#: What ``sim.run`` uses when no ``--ladder`` is given.
DEFAULT_LADDER = "promptus-paper-model"


def _embedded() -> dict[str, Path]:
    """Ladders shipped as package data (``abr/data/<name>.json``)."""
    root = resources.files("abr") / "data"
    out = {}
    for entry in root.iterdir():
        if entry.name.endswith(".json"):
            out[entry.name[: -len(".json")]] = Path(str(entry))
    return out


def available_ladders() -> list[str]:
    """Names accepted by :func:`get_ladder` (besides file paths and synthetic options)."""
    return sorted(_embedded()) + [f"synthetic:{f}" for f in SYNTHETIC_FAMILIES]


def get_ladder(spec: str) -> Ladder:
    """Resolve ``spec``: an embedded name, ``synthetic:FAMILY[:k=v,...]`` or a ladder file."""
    if spec.startswith("synthetic:"):
        return synthetic_ladder(parse_synthetic(spec))
    embedded = _embedded()
    if spec in embedded:
        return load_ladder(embedded[spec])
    path = Path(spec)
    if path.suffix == ".json" or path.exists() or "/" in spec:
        if path.is_dir():
            path = path / "ladder.json"
        return load_ladder(path)
    raise InputError(
        f"unknown ladder {spec!r}; valid names: {', '.join(available_ladders())} "
        "(or a ladder .json file, or synthetic:FAMILY:key=value,...)"
    )

"""Deterministic train/test split of trace files, so training and evaluation never share one."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

__all__ = ["SPLITS", "in_test", "split_files"]

#: Names accepted after ``@`` in a trace spec (``PATH@train``, ``lte@test``).
SPLITS = ("train", "test")


def _unit_hash(key: str) -> float:
    """A number in [0, 1) fixed by ``key`` (SHA-256; the same on every machine and Python)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2.0**64


def in_test(path: str | Path, test_fraction: float = 0.2, seed: int = 0) -> bool:
    """Whether ``path`` belongs to the test part: decided by its file name and ``seed`` alone."""
    return _unit_hash(f"{int(seed)}\0{Path(path).name}") < test_fraction


def split_files(
    paths: Iterable[str | Path], test_fraction: float = 0.2, seed: int = 0
) -> tuple[list[Path], list[Path]]:
    """Split files into ``(train, test)`` by a seeded hash of each file name.

    Each file's side depends only on its name and ``seed``, so adding or removing files
    never moves another one, and the same file reached by another path stays on its side.
    About ``test_fraction`` of the files land in test (exactly that share only on average).

    :raises ValueError: ``test_fraction`` outside [0, 1].
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    train, test = [], []
    for p in paths:
        (test if in_test(p, test_fraction, seed) else train).append(Path(p))
    return train, test

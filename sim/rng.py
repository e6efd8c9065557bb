"""Counter-based random numbers: the same draw for a session whatever batch it runs in.

Every session has a 64-bit key; draw ``(key, counter, stream)`` is a pure function of the
three, so running sessions one at a time or thousands at once gives identical results.
"""

from __future__ import annotations

import numpy as np

__all__ = ["session_keys", "uniform"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (wrapping uint64 arithmetic)."""
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def session_keys(seed: int | np.ndarray, session_ids: np.ndarray) -> np.ndarray:
    """Keys of sessions ``session_ids`` of a run seeded with ``seed`` (an int, or uint64 seeds that broadcast)."""
    with np.errstate(over="ignore"):
        if isinstance(seed, np.ndarray):
            base = _mix(seed.astype(np.uint64))
        else:
            base = _mix(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
        return _mix(base ^ (np.asarray(session_ids, dtype=np.uint64) * _M1))


def uniform(keys: np.ndarray, counter: int | np.ndarray, stream: int) -> np.ndarray:
    """U[0, 1) draws for draw number(s) ``counter`` of ``stream`` (keys and counters broadcast)."""
    with np.errstate(over="ignore"):
        c = np.asarray(counter, dtype=np.uint64)
        salt = c * np.uint64(0x100000001B3) + np.uint64(stream) * np.uint64(0xC2B2AE3D27D4EB4F)
        z = _mix(np.asarray(keys, dtype=np.uint64) ^ _mix(salt))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)

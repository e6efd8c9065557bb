"""Throughput estimators shared by every policy (batched: one estimate per session)."""

from __future__ import annotations

import numpy as np

__all__ = ["harmonic_mean"]


def harmonic_mean(throughput_mbps: np.ndarray, n: int = 5) -> np.ndarray:
    """Harmonic mean of the last ``n`` observed throughputs of every session.

    NaN entries (no chunk yet) are skipped; sessions with no sample at all get NaN.
    """
    recent = throughput_mbps[:, -n:]
    valid = np.isfinite(recent) & (recent > 0)
    count = valid.sum(axis=1)
    inv = np.where(valid, 1.0 / np.where(valid, recent, 1.0), 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, count / inv, np.nan)

"""Shared fixtures: where ../shared is, and small hand-made ladders, traces and devices."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from abr.ladder import Ladder, RungInfo
from sim.device import DeviceProfile

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PROMPTABR_SHARED", ROOT.parent / "shared"))  # override for worktrees


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests using it skip with a reason where it is absent (a fresh clone)."""
    data = SHARED / "data"
    if not data.is_dir():
        pytest.skip(f"../shared/data not found at {data}: real-data tests need the shared folder beside the repo")
    return data


@pytest.fixture
def one_torch_thread():
    """Run the test on one torch thread (tiny models: threads only add overhead and noise)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make_ladder(sizes, chunk_s=2.0, frames=60, lpips=None, decoder="h265", kbps=None) -> Ladder:
    """A ladder with ``sizes[k][r]`` bytes; LPIPS falls with rung unless given."""
    sizes = np.asarray(sizes, dtype=float)
    k, r = sizes.shape
    lp = np.asarray(lpips, dtype=float) if lpips is not None else np.tile(np.linspace(0.3, 0.05, r), (k, 1))
    return Ladder(
        name="test",
        rungs=tuple(
            RungInfo(family="test", decoder=decoder, kbps=float(kbps[i]) if kbps else 100.0 * (i + 1)) for i in range(r)
        ),
        duration_s=np.full(k, chunk_s),
        frames=np.full(k, frames),
        size_bytes=sizes,
        lpips_mean=lp,
        lpips_p95=lp * 1.5,
        severe_frac=(lp > 0.25).astype(float),
    )


def device(ms_per_frame: float = 0.0, decoder: str = "h265") -> DeviceProfile:
    return DeviceProfile(name=f"test-{ms_per_frame}", decode_ms_per_frame={decoder: ms_per_frame})

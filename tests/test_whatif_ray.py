"""The Ray executor gives the same table as the in-process one (one local Ray instance per module)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim.sweep import Grid, RayExecutor, run_sweep
from traces import Trace, write_cooked

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_local():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


def test_ray_matches_in_process_and_resumes(ray_local, tmp_path):
    for i, mbps in enumerate((0.4, 1.2, 2.5)):  # not in tmp_path itself: the output folder goes there
        rates = np.full(30, mbps) * (1 + 0.3 * np.sin(np.arange(30)))
        write_cooked(Trace(np.full(30, 1.0), rates), tmp_path / "traces" / f"{i}.txt")
    grid = Grid(policies=("bba", "bola"), ladders=("synthetic:promptus:chunks=10", "synthetic:h265:chunks=10"),
                traces=(str(tmp_path / "traces"),), sessions=9, block=4, seed=5)  # fmt: skip
    ref = run_sweep(grid).table
    with RayExecutor() as ex:  # uses the module's Ray connection, leaves it open
        res = run_sweep(grid, tmp_path / "out", executor=ex)
        assert ray.is_initialized()
    pd.testing.assert_frame_equal(ref, res.table)
    assert res.ran == len(grid.cells())
    again = run_sweep(grid, tmp_path / "out", executor="ray")
    assert (again.ran, again.skipped) == (0, len(grid.cells()))
    pd.testing.assert_frame_equal(ref, again.table, check_dtype=False)

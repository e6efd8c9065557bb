"""What-if cells are keyed by the contents of the files their specs read, and summaries do not
depend on the block size (bit for bit)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from abr.ladder import save_ladder
from abr.registry import embedded_ladder_file, get_ladder
from sim.sweep import Grid, run_sweep
from sim.sweep._grid import spec_inputs
from traces import Trace, write_cooked


def _setup(tmp_path):
    traces = tmp_path / "traces"
    rng = np.random.default_rng(1)
    for i, mean in enumerate((0.4, 1.2, 2.5)):
        write_cooked(Trace(np.full(40, 1.0), mean * rng.uniform(0.5, 1.5, 40), name=f"t{i}"), traces / f"t{i}.txt")
    ladder = tmp_path / "lad.json"
    save_ladder(get_ladder("synthetic:h265:chunks=10"), ladder)
    grid = Grid(policies=("bola",), ladders=(str(ladder),), devices=("h200",), traces=(str(traces),), sessions=6,
                block=3, seed=2)  # fmt: skip
    return grid, ladder, traces


def test_editing_a_ladder_or_trace_file_reruns_its_cells(tmp_path):
    grid, ladder, traces = _setup(tmp_path)
    out = tmp_path / "out"
    first = run_sweep(grid, out)
    assert first.ran == 2 and run_sweep(grid, out).ran == 0  # same files: finished cells are reused
    lad = get_ladder(str(ladder))
    save_ladder(replace(lad, size_bytes=lad.size_bytes * 4), ladder)  # same name, heavier chunks
    edited = run_sweep(grid, out)
    assert edited.ran == 2 and edited.skipped == 0
    assert (edited.table["kbps"] > 3 * first.table["kbps"]).all()  # the new file was read, not a cached ladder
    write_cooked(Trace(np.full(40, 1.0), np.full(40, 0.05), name="t0"), traces / "t0.txt")
    slow = run_sweep(grid, out)
    assert slow.ran == 2
    assert slow.table["stall_s"].sum() > edited.table["stall_s"].sum()
    assert run_sweep(grid, out).ran == 0


def test_spec_inputs_follow_files_folders_globs_and_embedded_names(tmp_path):
    grid, ladder, traces = _setup(tmp_path)
    assert spec_inputs("lte") == "" and spec_inputs("synthetic:h265:chunks=10") == ""
    folder = spec_inputs(str(traces))
    assert folder and spec_inputs(str(traces / "*.txt")) and spec_inputs(f"{traces}@test") == folder
    assert spec_inputs(f"{ladder}[0/2]") == spec_inputs(str(ladder)) == spec_inputs(f"{ladder}*3")
    assert spec_inputs("h265-measured") and embedded_ladder_file("h265-measured").name == "h265-measured.json"
    (traces / "t1.txt").write_text((traces / "t1.txt").read_text() + "41 1.0\n")
    assert spec_inputs(str(traces)) != folder


def test_summary_does_not_depend_on_the_block_size(tmp_path):
    grid, _, _ = _setup(tmp_path)
    grid = replace(grid, policies=("bola", "bba"), sessions=7)
    one = run_sweep(replace(grid, block=1))
    whole = run_sweep(replace(grid, block=0))
    pd.testing.assert_frame_equal(one.table, whole.table, check_exact=True)
    pd.testing.assert_frame_equal(one.summary, whole.summary, check_exact=True)

"""A sweep's output folder records what made it (meta.json)."""

from __future__ import annotations

import json

from sim.sweep import Grid, run_sweep
from sim.sweep._grid import spec_inputs
from sim.sweep._sweep import SWEEP_META_FORMAT


def test_sweep_writes_what_made_it(tmp_path):
    traces = tmp_path / "traces"
    traces.mkdir()
    (traces / "a.txt").write_text("".join(f"{t} {1.0 + t % 3}\n" for t in range(60)))
    grid = Grid(policies=("bba",), ladders=("synthetic:promptus:chunks=4",), devices=("snapdragon-8gen3",),
                qoes=("perceptual:mu=2",), traces=(str(traces),), transforms=("scale=0.5",), sims=("pensieve",),
                sessions=2, seed=5)  # fmt: skip
    res = run_sweep(grid, tmp_path / "out", table_format="csv")
    meta = json.loads(res.paths["meta"].read_text())
    assert meta["format"] == SWEEP_META_FORMAT and Grid.from_dict(meta["grid"]) == grid
    assert meta["grid"]["seed"] == 5 and meta["grid"]["devices"] == ["snapdragon-8gen3"]
    assert meta["inputs"] == {str(traces): spec_inputs(str(traces))} and len(meta["inputs"][str(traces)]) == 20
    assert meta["code"]["promptabr"] and meta["code"]["numpy"]
    # a changed trace file changes the recorded digest
    (traces / "a.txt").write_text("0 2.0\n1 2.0\n")
    assert spec_inputs(str(traces)) != meta["inputs"][str(traces)]

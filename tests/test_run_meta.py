"""``sim.run --out`` records what it takes to re-run: seed, inputs with content hashes, presets, versions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from abr.io import sha256_file
from abr.ladder import save_ladder
from abr.registry import get_ladder
from sim.run import main
from traces import Trace, write_cooked


def _inputs(tmp_path):
    folder = tmp_path / "traces"
    for i, mean in enumerate((0.8, 2.0)):
        write_cooked(Trace(np.full(30, 1.0), np.full(30, mean), name=f"t{i}"), folder / f"t{i}.txt")
    ladder = tmp_path / "lad.json"
    save_ladder(get_ladder("synthetic:h265:chunks=6"), ladder)
    return folder, ladder


def test_csv_gets_a_meta_sidecar_that_pins_every_input(tmp_path):
    folder, ladder = _inputs(tmp_path)
    out = tmp_path / "r.csv"
    argv = ["--policy", "bba", "--trace", str(folder), "--ladder", str(ladder), "--seed", "5", "--sim", "latency",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    meta = json.loads((tmp_path / "r.meta.json").read_text())
    assert meta["seed"] == 5 and meta["policies"] == ["bba"] and meta["options"]["sim"] == "latency"
    files = {rec["name"]: rec for rec in meta["traces"]["files"]}
    assert files["t1.txt"]["file_sha256"] == sha256_file(folder / "t1.txt")
    assert meta["ladder"]["files"] == {str(ladder): sha256_file(ladder)}
    assert meta["device"]["name"] and meta["qoe"]["name"] == "perceptual" and meta["sim"]["preset"] == "latency"
    assert meta["code"]["promptabr"] and meta["code"]["python"]
    assert len(pd.read_csv(out)) == 2
    # the hashes follow the contents: an edited trace file shows up in a re-run's record
    write_cooked(Trace(np.full(30, 1.0), np.full(30, 0.3), name="t1"), folder / "t1.txt")
    assert main([*argv[:-1], str(tmp_path / "s.csv")]) == 0
    again = json.loads((tmp_path / "s.meta.json").read_text())
    new = {rec["name"]: rec for rec in again["traces"]["files"]}
    assert new["t0.txt"] == files["t0.txt"] and new["t1.txt"]["data_sha256"] != files["t1.txt"]["data_sha256"]
    assert again["ladder"]["sha256"] == meta["ladder"]["sha256"]


def test_json_output_holds_the_meta(tmp_path):
    folder, ladder = _inputs(tmp_path)
    out = tmp_path / "r.json"
    assert main(["--trace", str(folder), "--ladder", str(ladder), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["meta"]["ladder"]["name"] == get_ladder(str(ladder)).name and doc["meta"]["seed"] == 0
    assert len(doc["meta"]["traces"]["files"]) == 2 and len(doc["sessions"]) == 2

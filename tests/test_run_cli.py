"""``python -m sim.run``: outputs, and one clear line with exit code 2 for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from abr import DEFAULT_LADDER, get_ladder
from sim.run import main


def test_run_writes_sessions_and_chunks(tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert main(["--policy", "bba", "--policy", "bola:gamma=5,qmax=25", "--trace-count", "3", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "bola:gamma=5,qmax=25" in text and "qoe_mean" in text
    sessions = pd.read_csv(out)
    chunks = pd.read_csv(tmp_path / "r.chunks.csv")
    assert len(sessions) == 6 and set(sessions.policy) == {"bba", "bola:gamma=5,qmax=25"}
    assert len(chunks) == 6 * get_ladder(DEFAULT_LADDER).n_chunks
    # the per-session total equals the sum of its chunks' rewards
    tot = chunks.groupby(["policy", "session"])["reward"].sum().sort_index()
    assert tot.values == pytest.approx(sessions.set_index(["policy", "session"])["qoe_total"].sort_index().values)


def test_run_json(tmp_path):
    out = tmp_path / "r.json"
    assert main(["--trace-count", "2", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert len(doc["sessions"]) == 2 and len(doc["chunks"]) == 2 * get_ladder(DEFAULT_LADDER).n_chunks


@pytest.mark.parametrize(
    "args, message",
    [
        (["--policy", "nope"], "unknown policy 'nope'; valid names:"),
        (["--policy", "bola:gamma=x"], "bad value 'x'"),
        (["--ladder", "nope"], "unknown ladder 'nope'"),
        (["--device", "toaster"], "unknown device 'toaster'"),
        (["--qoe", "happiness"], "unknown QoE preset"),
        (["--trace", "/no/such/trace"], "unknown trace"),
        (["--sim", "ns3"], "unknown simulator preset"),
    ],
)
def test_bad_names_exit_2_with_one_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_trace_file_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "trace.txt"
    bad.write_text("0 1.0\n1 2.0\n1 3.0\n")
    assert main(["--trace", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3" in err


def test_bad_ladder_file(tmp_path, capsys):
    bad = tmp_path / "ladder.json"
    bad.write_text('{"format": "promptabr-ladder", "version": 1}')
    assert main(["--ladder", str(bad)]) == 2
    assert "missing field" in capsys.readouterr().err


def test_light_imports_and_help():
    code = "import sys, sim, abr, traces, policies, sim.run; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    help_text = subprocess.run([sys.executable, "-m", "sim.run", "--help"], capture_output=True, text=True).stdout
    assert "--policy" in help_text and "promptus-paper-model" in help_text


def test_oracle_row_bounds_every_policy(tmp_path, capsys):
    out = tmp_path / "r.csv"
    args = ["--policy", "bba", "--policy", "robustmpc", "--policy", "oracle", "--trace", "fcc", "--trace-count", "3"]
    assert main([*args, "--out", str(out)]) == 0
    df = pd.read_csv(out).pivot(index="session", columns="policy", values="qoe_total")
    assert (df["oracle (bound)"] >= df[["bba", "robustmpc"]].max(axis=1) - 1e-9).all()

"""Trace specs (files, folders, globs, splits) and the ``python -m traces`` command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from abr.errors import InputError
from traces.__main__ import main
from traces.sets import list_trace_files, load_traces, split_spec
from traces.split import in_test, split_files


def make_folder(root: Path, n: int = 30) -> Path:
    d = root / "set"
    (d / "sub").mkdir(parents=True)
    for i in range(n):
        (d / ("sub" if i % 2 else ".") / f"t{i:02d}.cooked").write_text(f"0 {i + 1}\n1 {i + 1}\n2 {i + 1}\n")
    (d / "README.md").write_text("# not a trace\n")
    (d / ".hidden").write_text("garbage")
    return d


# ----------------------------------------------------------------------------- split


def test_split_is_deterministic_seeded_and_stable_when_files_are_added():
    names = [f"f{i}.json" for i in range(2000)]
    train, test = split_files(names[:1000], 0.2, seed=0)
    assert len(test) == pytest.approx(200, abs=40)
    assert set(map(str, train)).isdisjoint(map(str, test))
    train2, test2 = split_files(names, 0.2, seed=0)
    assert set(map(str, test)) <= set(map(str, test2)) and set(map(str, train)) <= set(map(str, train2))
    _, other = split_files(names[:1000], 0.2, seed=1)
    assert set(map(str, other)) != set(map(str, test))
    # the side depends on the file name, not the folder it is reached by
    assert split_files(["a/x1", "a/x2"], 0.5, 3) == tuple(
        [Path("a") / p.name for p in part] for part in split_files(["x1", "x2"], 0.5, 3)
    )
    with pytest.raises(ValueError, match="test_fraction"):
        split_files(names, 1.5)


def test_split_spec():
    assert split_spec("a/b@test") == ("a/b", "test")
    assert split_spec("lte@train") == ("lte", "train")
    assert split_spec("odd@name") == ("odd@name", None)


# ----------------------------------------------------------------------------- specs


def test_folder_is_recursive_and_skips_docs_and_hidden(tmp_path):
    d = make_folder(tmp_path)
    files = list_trace_files(str(d))
    assert len(files) == 30 and all(f.suffix == ".cooked" for f in files)
    traces = load_traces(str(d))
    assert sorted(t.mean_mbps for t in traces) == list(range(1, 31))


def test_glob_and_single_file(tmp_path):
    d = make_folder(tmp_path)
    assert len(load_traces(str(d / "**" / "t1*.cooked"))) == 10
    assert load_traces(str(d / "t00.cooked"))[0].mean_mbps == 1.0


def test_train_and_test_never_share_a_file(tmp_path):
    d = make_folder(tmp_path)
    tr = load_traces(f"{d}@train", test_fraction=0.3)
    te = load_traces(f"{d}@test", test_fraction=0.3)
    assert len(tr) + len(te) == 30 and te
    assert {t.name for t in tr}.isdisjoint({t.name for t in te})
    te2 = load_traces(f"{d}@test", test_fraction=0.3, split_seed=1)
    assert {t.name for t in te2} != {t.name for t in te}


def test_empty_split_part_is_an_error(tmp_path):
    f = tmp_path / "only.cooked"
    f.write_text("0 1\n1 1\n")
    part = "train" if in_test(f, 0.5) else "test"
    with pytest.raises(InputError, match=f"the {part} part of .* is empty"):
        load_traces(f"{f}@{part}", test_fraction=0.5)


@pytest.mark.parametrize(
    ("spec", "message"),
    [("no_such_thing", "not a file, folder or glob, and not a model"), ("/nonexistent/*.csv", "no trace files found")],
)
def test_unknown_specs(spec, message):
    with pytest.raises(InputError, match=message):
        load_traces(spec)


def test_forced_format_and_unit(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("0 1\n1 2\n")
    assert load_traces(str(f), unit="kbps")[0].mbps.tolist() == [0.002]
    with pytest.raises(InputError, match="expected one integer"):
        load_traces(str(f), fmt="mahimahi")


def test_a_bad_file_in_a_folder_is_named(tmp_path):
    d = make_folder(tmp_path)
    (d / "sub" / "broken.cooked").write_text("0 1\n1 nan\n")
    with pytest.raises(InputError, match=r"broken\.cooked:2: bandwidth is NaN"):
        load_traces(str(d))


# ----------------------------------------------------------------------------- python -m traces


def test_info_prints_summary(tmp_path, capsys):
    f = tmp_path / "x.csv"
    f.write_text("time_s,mbps\n0,0\n1,2\n2,0\n4,4\n")
    assert main(["info", str(f), "--per-file"]) == 0
    out = capsys.readouterr().out
    assert "4 s in all" in out
    assert "mean        2.5 Mbit/s" in out  # (2*1 + 0*1 + 4*2) / 4
    assert "outage      25.00%" in out


def test_convert_round_trip(tmp_path, capsys):
    src = tmp_path / "a.json"
    rows = [{"duration_ms": 1000, "bandwidth_kbps": kbps, "latency_ms": 5} for kbps in (12000, 6000)]
    src.write_text(json.dumps(rows))
    assert main(["convert", str(src), str(tmp_path / "a.down"), "--to", "mahimahi"]) == 0
    back = load_traces(str(tmp_path / "a.down"))[0]
    assert back.resample(1.0).mbps.tolist() == pytest.approx([12.0, 6.0])
    assert main(["convert", "fcc", str(tmp_path / "out"), "--to", "cooked", "--trace-count", "3", "--scale", "2"]) == 0
    files = sorted((tmp_path / "out").iterdir())
    assert [f.name for f in files] == ["fcc-s0-0.cooked", "fcc-s0-1.cooked", "fcc-s0-2.cooked"]
    want = load_traces("fcc", count=3)[1].mbps * 2
    np.testing.assert_allclose(load_traces(str(files[1]))[0].mbps, want, rtol=1e-8)


def test_plot_writes_png(tmp_path, capsys):
    out = tmp_path / "p.png"
    assert main(["plot", "genet", "--trace-count", "3", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    f = tmp_path / "bad.cooked"
    f.write_text("0 1\n2 1\n1 1\n")
    assert main(["info", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.cooked:3" in err and "Traceback" not in err


def test_import_is_light():
    code = "import sys, traces; print(any(m in sys.modules for m in ('matplotlib', 'scipy', 'torch', 'pandas')))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )

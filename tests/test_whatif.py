"""What-if sweeps: grid expansion, executor independence, resume, crossovers, report and CLI."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from abr.errors import InputError
from sim.sweep import Grid, get_executor, load_grid, resolve_ladder, run_sweep, split_specs, transform_product
from sim.sweep._crossover import crossover_table, find_crossover, sign_changes
from sim.sweep._report import best_under_stall
from sim.whatif import build_parser, grid_from_args, main
from traces import Trace, write_cooked

PROMPTUS, H265 = "synthetic:promptus:chunks=12", "synthetic:h265:chunks=12"


@pytest.fixture(scope="module")
def trace_dir(tmp_path_factory):
    """Four hand-made looping traces, 0.3 to 3 Mbit/s on average."""
    root = tmp_path_factory.mktemp("traces")
    rng = np.random.default_rng(7)
    for i, mean in enumerate((0.3, 0.8, 1.5, 3.0)):
        mbps = mean * rng.uniform(0.5, 1.5, 40)
        write_cooked(Trace(np.full(40, 1.0), mbps, name=f"t{i}"), root / f"t{i}.txt")
    return str(root)


def small_grid(trace_dir, **changes) -> Grid:
    base = Grid(policies=("bola", "bba"), ladders=(PROMPTUS, H265), devices=("h200",), traces=(trace_dir,),
                sessions=10, block=4, seed=3)  # fmt: skip
    return replace(base, **changes)


# ------------------------------------------------------------------ grid
def test_grid_expands_points_and_blocks():
    g = Grid(policies=("bola", "bba"), ladders=("a", "b", "c"), sessions=10, block=4)
    assert len(g.points) == 6 and g.n_sessions == 60
    cells = g.cells()
    assert len(cells) == 6 * 3
    assert [(c.start, c.stop) for c in cells[:3]] == [(0, 4), (4, 8), (8, 10)]
    assert cells[0].params.policy == "bola" and cells[-1].params.policy == "bba"  # policy varies slowest
    assert len({c.key for c in cells}) == len(cells)
    assert Grid(sessions=10, block=0).cells()[0].n_sessions == 10
    # the key depends on what the cell computes, not on the object
    assert cells[0].key == Grid(policies=("bola", "bba"), ladders=("a", "b", "c"), sessions=10, block=4).cells()[0].key
    assert cells[0].key != replace(g, seed=1).cells()[0].key


def test_grid_round_trips_and_rejects_bad_input(tmp_path):
    g = Grid(policies=("bola", "bba:reservoir_s=3"), transforms=("", "scale=0.5"), sessions=7, block=3, seed=2)
    assert Grid.from_dict(json.loads(json.dumps(g.to_dict()))) == g
    path = tmp_path / "grid.yaml"
    path.write_text("policy: bola\nladders: [a, b]\ntransform_axes: {scale: [0.5, 1]}\nsessions: 5\n")
    loaded = load_grid(path)
    assert loaded.policies == ("bola",) and loaded.ladders == ("a", "b")
    assert loaded.transforms == ("scale=0.5", "scale=1")
    path.write_text("policies: [bola]\nbogus: 1\n")
    with pytest.raises(InputError, match=r"grid\.yaml.*unknown grid key 'bogus'"):
        load_grid(path)
    with pytest.raises(InputError, match="sessions must be an integer >= 1"):
        Grid(sessions=0)
    with pytest.raises(InputError, match="repeats a value"):
        Grid(policies=("bola", "bola"))


def test_flags_replace_grid_file_axes(tmp_path):
    path = tmp_path / "grid.json"
    path.write_text(json.dumps({"policies": ["bola"], "devices": ["h200", "none"], "sessions": 9, "seed": 4}))
    args = build_parser().parse_args(["--grid", str(path), "--policy", "bba:reservoir_s=3,cushion_s=5,bola",
                                      "--scale", "0.5,1", "--cap", "3", "--transform", "rtt_ms=50"])  # fmt: skip
    g = grid_from_args(args)
    assert g.policies == ("bba:reservoir_s=3,cushion_s=5", "bola") and g.devices == ("h200", "none")
    assert g.transforms == ("scale=0.5,cap=3,rtt_ms=50", "scale=1,cap=3,rtt_ms=50")
    assert (g.sessions, g.seed) == (9, 4)
    with pytest.raises(InputError, match="unknown executor 'dask'"):
        get_executor("dask")


def test_split_specs_keeps_options_together():
    assert split_specs("bola:gamma=5,qmax=25,bba") == ["bola:gamma=5,qmax=25", "bba"]
    assert split_specs("synthetic:promptus:efficiency=2,ranks=2/4,h265-measured[0,2],x") == [
        "synthetic:promptus:efficiency=2,ranks=2/4",
        "h265-measured[0,2]",
        "x",
    ]
    assert transform_product(("", "cap=3"), {"scale": ("0.5", "1")}) == (
        "scale=0.5",
        "scale=1",
        "scale=0.5,cap=3",
        "scale=1,cap=3",
    )


def test_ladder_expressions():
    full = resolve_ladder(PROMPTUS)
    by_rank = resolve_ladder(PROMPTUS + "[r2/r8]")
    assert [r.rank for r in by_rank.rungs] == [2, 8]
    by_index = resolve_ladder(PROMPTUS + "[0/5]")
    np.testing.assert_array_equal(by_index.size_bytes, full.size_bytes[:, [0, 5]])
    both = resolve_ladder(f"{PROMPTUS}+{H265}")
    assert both.n_rungs == full.n_rungs + resolve_ladder(H265).n_rungs
    assert {r.family for r in both.rungs} == {"promptus", "h265"} and both.name == f"{PROMPTUS}+{H265}"
    with pytest.raises(InputError, match="no rung of rank 5"):
        resolve_ladder(PROMPTUS + "[r5]")
    with pytest.raises(InputError, match="bad rung selector"):
        resolve_ladder(PROMPTUS + "[x]")


# ------------------------------------------------------- running and storage
def test_rows_do_not_depend_on_blocks_or_executor(trace_dir, tmp_path):
    grid = small_grid(trace_dir)
    ref = run_sweep(replace(grid, block=0)).table
    assert len(ref) == grid.n_sessions and ref["session"].tolist()[:10] == list(range(10))
    assert set(ref["family"]) == {"promptus", "h265"} and (ref["scale"] == 1.0).all()
    blocks = run_sweep(grid).table
    pd.testing.assert_frame_equal(ref, blocks)
    pooled = run_sweep(grid, tmp_path / "p", executor="process", workers=2)
    pd.testing.assert_frame_equal(ref, pooled.table)
    on_disk = pd.read_parquet(pooled.paths["table"])
    pd.testing.assert_frame_equal(ref, on_disk, check_dtype=False)
    # sessions are paired across grid points: session i plays trace i mod 4 whatever the policy
    assert (ref.groupby("session")["trace"].nunique() == 1).all()


def test_interrupted_sweep_resumes_and_skips_finished_cells(trace_dir, tmp_path):
    grid = small_grid(trace_dir)
    total = len(grid.cells())

    def stop_after_3(cell, n):
        if n == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(grid, tmp_path, on_cell=stop_after_3)
    assert len(list((tmp_path / "cells").glob("*.parquet"))) == 3
    assert not list((tmp_path / "cells").glob(".*"))  # no half-written files left behind
    ran = []
    res = run_sweep(grid, tmp_path, on_cell=lambda cell, n: ran.append(cell.key))
    assert (res.ran, res.skipped, len(ran)) == (total - 3, 3, total - 3)
    pd.testing.assert_frame_equal(res.table, run_sweep(grid).table, check_dtype=False)
    again = run_sweep(grid, tmp_path)
    assert (again.ran, again.skipped) == (0, total)
    # a grid that grows reuses the cells it shares
    bigger = run_sweep(replace(grid, policies=("bola", "bba", "fixed")), tmp_path)
    assert (bigger.ran, bigger.skipped) == (total // 2, total)


def test_summary_and_best_under_stall(trace_dir):
    res = run_sweep(small_grid(trace_dir, devices=("h200", "snapdragon-8gen3")))
    s = res.summary
    assert len(s) == 8 and (s["sessions"] == 10).all()
    t = res.table
    one = t[(t["policy"] == "bba") & (t["ladder"] == H265) & (t["device"] == "h200")]
    row = s[(s["policy"] == "bba") & (s["ladder"] == H265) & (s["device"] == "h200")].iloc[0]
    assert row["qoe_mean"] == pytest.approx(one["qoe_mean"].mean())
    assert row["stall_ratio_p90"] == pytest.approx(one["stall_ratio"].quantile(0.9))
    best = best_under_stall(s, 0.01)
    assert list(best["device"]) == ["h200", "snapdragon-8gen3"]
    for _, b in best.iterrows():
        cand = s[(s["device"] == b["device"]) & (s["stall_ratio"] < 0.01)]
        assert b["meeting"] == len(cand)
        if len(cand):
            assert b["qoe_mean"] == pytest.approx(cand["qoe_mean"].max())
    # Promptus decodes 3x slower than real time on the phone: it never meets the target there
    phone = s[(s["device"] == "snapdragon-8gen3") & (s["ladder"] == PROMPTUS)]
    assert (phone["stall_ratio"] > 0.3).all()


def test_oracle_sweeps_as_a_bound_on_the_same_sessions(trace_dir):
    grid = small_grid(trace_dir, policies=("bola", "bba", "oracle:max_states=200"), ladders=(H265,), block=5)
    t = run_sweep(grid).table.pivot(index="session", columns="policy", values="qoe_total")
    assert (t["oracle:max_states=200"] >= t[["bola", "bba"]].max(axis=1) - 1e-9).all()
    with pytest.raises(InputError, match="oracle 'oracle:depth=3': unknown option 'depth'; valid keys: position_s"):
        run_sweep(small_grid(trace_dir, policies=("oracle:depth=3",)))


# ----------------------------------------------------------------- crossover
def test_sign_changes_interpolate_in_log_scale():
    assert sign_changes(np.array([1.0, 2.0, 4.0]), np.array([1.0, -1.0, -2.0])) == [(0, 1, pytest.approx(math.sqrt(2)))]
    # ties in between are skipped; a later sign change is reported too
    found = sign_changes(np.array([1.0, 2.0, 4.0, 8.0, 16.0]), np.array([-3.0, 0.0, 1.0, 1.0, -1.0]))
    assert [(i, j) for i, j, _ in found] == [(0, 2), (3, 4)]
    assert found[0][2] == pytest.approx(math.exp(0.75 * math.log(4.0)))
    assert sign_changes(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == []


def test_crossover_table_from_hand_made_summary():
    summary = pd.DataFrame({
        "policy": ["p"] * 6, "ladder": ["A"] * 3 + ["B"] * 3, "family": ["a"] * 3 + ["b"] * 3,
        "transform": ["scale=1", "scale=2", "scale=4"] * 2, "scale": [1.0, 2.0, 4.0] * 2, "sessions": [1] * 6,
        "qoe_mean": [0.9, 0.5, 0.6, 0.5, 0.7, 0.7], "trace_mbps": [1.0, 2.0, 4.0] * 2,
    })  # fmt: skip
    table = crossover_table(summary)
    assert len(table) == 1
    row = table.iloc[0]
    # d = 0.4, -0.2: zero at 2/3 of the way from 1 to 2 in log-scale
    assert row["scale"] == pytest.approx(2 ** (2 / 3)) and row["mbps"] == pytest.approx(2 ** (2 / 3))
    assert (row["below"], row["above"]) == ("A", "B")


def test_find_crossover_brackets_a_real_sign_change(trace_dir):
    # Promptus at ranks 1-2 only (<= 53 kbit/s) wins on thin links; H.265's top rungs win on fat ones
    # (over 60 chunks; in a 12-chunk video H.265's ramp-up costs more than its better top rungs win)
    low, h265 = "synthetic:promptus[r1/r2]", "synthetic:h265"
    kw = dict(policy="bba", device="h200", traces=trace_dir, sessions=8, seed=1, lo=1 / 16, hi=16.0, points=5,
              rtol=0.05)  # fmt: skip
    x = find_crossover(low, h265, **kw)
    assert x is not None and (x.below, x.above) == (low, h265)
    s0, s1 = x.bracket
    assert s0 <= x.scale <= s1 and s1 / s0 <= 1.05 and x.evaluations > 5
    # check the answer independently: at the bracket ends the winners are as reported
    grid = Grid(policies=("bba",), ladders=(low, h265), traces=(trace_dir,), sessions=8, block=0, seed=1,
                transforms=(f"scale={s0:.6g}", f"scale={s1:.6g}"))  # fmt: skip
    s = run_sweep(grid).summary.set_index(["transform", "ladder"])["qoe_mean"]
    lead = lambda t: low if s[(t, low)] > s[(t, h265)] else h265  # noqa: E731
    assert (lead(f"scale={s0:.6g}"), lead(f"scale={s1:.6g}")) == (low, h265)
    # the same pair compared by LPIPS (lower is better) crosses too, and the winners keep their meaning
    y = find_crossover(low, h265, metric="lpips_mean", **kw)
    assert y is not None and (y.below, y.above) == (low, h265)


def test_find_crossover_none_when_one_ladder_always_wins(trace_dir):
    # on the phone Promptus decodes 3x slower than real time: it loses at any bandwidth
    x = find_crossover(PROMPTUS, H265, policy="bba", device="snapdragon-8gen3", traces=trace_dir, sessions=4,
                       lo=0.25, hi=16.0, points=4)  # fmt: skip
    assert x is None


# --------------------------------------------------------------- CLI, report
def test_cli_sweep_with_report(trace_dir, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["--policy", "bba,bola", "--ladder", f"{PROMPTUS},{H265}", "--trace", trace_dir, "--scale", "0.5,2",
               "--sessions", "6", "--block", "3", "--out", str(out), "--format", "csv", "--no-progress"])  # fmt: skip
    assert rc == 0
    table = pd.read_csv(out / "sessions.csv")
    assert len(table) == 2 * 2 * 2 * 6 and sorted(table["scale"].unique()) == [0.5, 2.0]
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4  # vs scale, LPIPS CDF, crossovers, one session
    assert 'src="http' not in page and "<script" not in page  # self-contained
    assert "Synthetic (modelled, not measured)" in page
    assert (out / "crossovers.csv").is_file() and "ran 16 cells" in capsys.readouterr().out
    assert (
        main(
            [
                "--policy",
                "bba,bola",
                "--ladder",
                f"{PROMPTUS},{H265}",
                "--trace",
                trace_dir,
                "--scale",
                "0.5,2",
                "--sessions",
                "6",
                "--block",
                "3",
                "--out",
                str(out),
                "--no-report",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "ran 0 cells (16 already finished)" in capsys.readouterr().out


def test_cli_crossover_search(trace_dir, tmp_path, capsys):
    low = "synthetic:promptus[r1/r2]"
    argv = ["--crossover", "--policy", "bba", "--ladder", f"{low},synthetic:h265", "--device",
            "h200,snapdragon-8gen3", "--trace", trace_dir, "--sessions", "4", "--points", "5", "--rtol", "0.1",
            "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    table = pd.read_csv(tmp_path / "crossover_search.csv").set_index("device")
    assert table.loc["h200", "below"] == low and table.loc["h200", "above"] == "synthetic:h265"
    assert 1 / 16 < table.loc["h200", "scale"] < 16
    # decode-bound Promptus never wins on the phone: no crossover, H.265 leads throughout
    phone = table.loc["snapdragon-8gen3"]
    assert math.isnan(phone["scale"]) and phone["below"] == phone["above"] == "synthetic:h265"
    assert "crossovers in scale" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--policy", "nope"], "unknown policy 'nope'"),
        (["--ladder", "synthetic:promptus[r5]"], "no rung of rank 5"),
        (["--device", "toaster"], "unknown device 'toaster'"),
        (["--vary", "cap"], "--vary needs KEY=V1/V2"),
        (["--executor", "local", "--ray-address", "auto"], "--ray-address needs --executor ray"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(argv, message, trace_dir, tmp_path, capsys):
    rc = main([*argv, "--trace", trace_dir, "--sessions", "2", "--out", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err

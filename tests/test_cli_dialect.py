"""One dialect across the CLIs: --no-progress/--quiet, --chunk-s/--chunk, repeated --trace and
comma-separated --policy, and the blocks sim.run runs in for its progress bar."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd
import pytest

from abr.flags import add_chunk_flag, add_progress_flag


def test_shared_flags():
    p = argparse.ArgumentParser()
    add_progress_flag(p)
    add_chunk_flag(p, 2.0)
    assert p.parse_args([]).no_progress is False and p.parse_args([]).chunk_s == 2.0
    for flag in ("--no-progress", "--quiet"):
        assert p.parse_args([flag]).no_progress is True
    for flag in ("--chunk-s", "--chunk"):
        assert p.parse_args([flag, "4"]).chunk_s == 4.0
    text = p.format_help()
    assert "--no-progress" in text and "--chunk-s" in text  # one spelling documented
    assert "--quiet" not in text and "--chunk " not in text and "--chunk," not in text


def _parsers():
    from codec.decode import build_parser as decode
    from codec.encode import build_parser as encode
    from sim.run import build_parser as run
    from sim.whatif import build_parser as whatif

    return {"codec.decode": (decode(), "quiet"), "codec.encode": (encode(), "quiet"),
            "sim.run": (run(), "no_progress"), "sim.whatif": (whatif(), "no_progress")}  # fmt: skip


@pytest.mark.parametrize("name", ["codec.decode", "codec.encode", "sim.run", "sim.whatif"])
def test_every_cli_takes_both_progress_spellings(name):
    parser, dest = _parsers()[name]
    # the positional arguments some commands need, then each spelling
    required = [a for a in parser._actions if a.required or (not a.option_strings and a.nargs is None)]
    base = []
    for a in required:
        base += ([a.option_strings[0]] if a.option_strings else []) + ["x"]
    for flag in ("--no-progress", "--quiet"):
        assert getattr(parser.parse_args([*base, flag]), dest) is True
    assert "--no-progress" in parser.format_help() and "--quiet" not in parser.format_help()


@pytest.mark.parametrize("module", ["codec.ladder", "codec.promptus.train_tiny", "codec.promptmobile.train_upsampler"])
def test_help_of_main_only_parsers(module, capsys):
    import importlib

    if module != "codec.ladder":
        pytest.importorskip("torch")
    with pytest.raises(SystemExit):
        importlib.import_module(module).main(["--help"])
    text = capsys.readouterr().out
    assert "--no-progress" in text and "--quiet" not in text
    if module == "codec.ladder":
        assert "--chunk-s" in text and "--lpips {alex,vgg}" in text and "--lpips-net" not in text


def test_encode_chunk_alias():
    from codec.encode import build_parser

    p = build_parser()
    for flag in ("--chunk", "--chunk-s"):
        assert p.parse_args(["v.mp4", "--out", "o", flag, "1.5"]).chunk_s == 1.5
    assert p.parse_args(["v.mp4", "--out", "o"]).chunk_s == 2.0


def test_repeated_trace_pools_like_sim_train():
    from sim.run import build_parser
    from traces.cli import traces_from_args
    from traces.sets import load_traces

    p = build_parser()
    one = p.parse_args(["--trace", "lte", "--trace-count", "2"])
    assert one.trace == "lte"
    two = p.parse_args(["--trace", "lte", "--trace", "fcc", "--trace-count", "2"])
    assert two.trace == ("lte", "fcc")
    pooled = traces_from_args(two, seed=3)
    want = load_traces("lte", seed=3, count=2) + load_traces("fcc", seed=4, count=2)  # spec i seeded seed + i
    assert [t.name for t in pooled] == [t.name for t in want]
    assert all(np.array_equal(a.mbps, b.mbps) for a, b in zip(pooled, want))
    assert [t.name for t in traces_from_args(one, seed=3)] == [t.name for t in want[:2]]


def test_run_takes_comma_separated_policies(capsys):
    from sim.run import main

    assert main(["--policy", "bba,bola:gamma=5,qmax=25", "--trace-count", "2",
                 "--ladder", "synthetic:promptus:chunks=6"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "\nbba " in out and "\nbola:gamma=5,qmax=25 " in out


@pytest.mark.parametrize(("spec", "n"), [("bola", 1003), ("oracle:max_states=60", 53)])
def test_run_blocks_equal_one_batch(spec, n):
    """sim.run runs long jobs in blocks (for its progress bar): the results are one batch's."""
    from sim.resolve import resolve_run
    from sim.run import _BLOCK, _BOUND_BLOCK, _run_blocks
    from sim.runners import resolve_runner
    from traces.sets import load_traces

    assert n > (_BOUND_BLOCK if spec.startswith("oracle") else _BLOCK)
    traces = load_traces("lte", seed=1, count=3)
    setup = resolve_run("synthetic:promptus:chunks=5", "snapdragon-8gen3", "perceptual", "promptabr")
    run = resolve_runner(spec)
    blocks = _run_blocks(spec, run, traces, setup, setup.config, n, 7, progress=False)
    whole = run(traces, setup.ladder, setup.device, setup.qoe, config=setup.config, seed=7, sessions=n)
    pd.testing.assert_frame_equal(blocks.sessions_frame(), whole.sessions_frame(), check_exact=True)
    assert all(np.array_equal(blocks.chunks[k], whole.chunks[k]) for k in whole.chunks)


def test_crossover_progress_counts_evaluations():
    from sim.sweep import crossover_search, expected_evaluations

    # coarse bracket ln(256)/8 = 0.693 wide; bisection to ln(1.01) = 0.00995 takes ceil(log2(69.7)) = 7 steps
    assert expected_evaluations(1 / 16, 16, 9, 0.01) == 9 + 7
    assert expected_evaluations(0.5, 2, 3, 1.0) == 3  # the coarse bracket (2x) is already within 1 + rtol
    seen = []
    found = crossover_search("synthetic:promptus:chunks=4", "synthetic:h265:chunks=4", policy="bba", sessions=2,
                             trace_count=2, lo=0.25, hi=4, points=3, rtol=0.5, on_evaluate=seen.append)  # fmt: skip
    assert sum(seen) == len(found.evaluated) and seen[0] == 3
    assert len(found.evaluated) <= expected_evaluations(0.25, 4, 3, 0.5)
    assert math.isfinite(sum(v[0] for v in found.evaluated.values()))


def test_ladder_progress_counts_rungs():
    """codec.ladder's bar moves per rung (encode + decode), not only per chunk."""
    pytest.importorskip("av")
    from codec.ladder import LadderBuildConfig, measure_chunk

    class _NoLPIPS:  # measure_chunk's only use of the model: distances of every rung's frames
        def distance_frames_many(self, ref, dists, batch_size):
            return [np.zeros(len(ref)) for _ in dists]

    base = np.random.default_rng(0).integers(0, 256, (8, 8, 3)).repeat(8, 0).repeat(8, 1).astype(np.uint8)
    ref = np.stack([np.roll(base, 2 * i, axis=1) for i in range(10)])  # a panning texture, 64x64
    cfg = LadderBuildConfig(codec="h264", kbps=(60.0, 30.0, 90.0), chunk_s=10 / 25, rate_control="abr")
    ticks = []
    res = measure_chunk(ref, cfg, 25.0, _NoLPIPS(), on_rung=lambda: ticks.append(1))
    assert len(ticks) == 3 and len(res.size_bytes) == 3


def test_device_means_a_device_profile_and_format_a_trace_format():
    """In codec.* the torch device is --torch-device (--device still accepted); sim.whatif's table
    format is --table-format (--format still accepted)."""
    from codec.decode import build_parser as decode
    from codec.encode import build_parser as encode
    from sim.whatif import build_parser as whatif

    for parser, base in ((encode(), ["v.mp4", "--out", "o"]), (decode(), ["s.bin", "--out", "o.mp4"])):
        assert parser.parse_args(base).device is None
        for flag in ("--torch-device", "--device"):
            assert parser.parse_args([*base, flag, "cpu"]).device == "cpu"
        text = parser.format_help()
        assert "--torch-device" in text and "--device" not in text.replace("--torch-device", "")
    w = whatif()
    assert w.parse_args([]).format == "parquet"
    for flag in ("--table-format", "--format"):
        assert w.parse_args([flag, "csv"]).format == "csv"
    assert "--table-format" in w.format_help() and "--format" not in w.format_help().replace("--table-format", "")

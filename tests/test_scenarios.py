"""Scenarios, the --scenario option, the "cannot bind" line, the calibrated QoE, model-ladder bytes, trace selection."""

from __future__ import annotations

import numpy as np
import pytest

from abr.errors import InputError
from abr.ladder import Ladder, RungInfo
from abr.promptus_model import (
    END_RECORD_BYTES,
    FIRST_LATENT_BYTES,
    KEYFRAME_RECORD_OVERHEAD,
    STREAM_HEADER_BYTES,
    promptus_chunk_bytes,
)
from abr.qoe import CALIBRATED_STALL_PENALTY, QOE_PRESETS, get_qoe
from abr.registry import get_ladder
from sim.core import SIM_PRESETS
from sim.device import get_device
from sim.scenarios import SCENARIOS, binding_note, get_scenario, parse_explicit, resolve, scenario_config
from traces.catalog import default_trace_root
from traces.select import SELECTIONS, select_traces, trace_stat_mbps
from traces.trace import Trace

SHARED = default_trace_root()
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/traces is absent")


# ----------------------------------------------------------------------------- registry
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_resolves(name):
    s = get_scenario(name)
    assert s.summary and "\n" not in s.summary
    for split in ("train", "test"):
        p = resolve(name, split)
        assert p.trace.endswith(f"@{split}")
        lad = get_ladder(p.ladder)
        assert lad.total_duration_s >= s.session_s  # the content is looped to the session length
        assert lad.total_duration_s < s.session_s + get_ladder(s.ladder).total_duration_s
        get_device(p.device)
        assert p.qoe in QOE_PRESETS and p.sim in SIM_PRESETS
    assert bool(s.transforms) == bool(s.what_if)  # a rescaled trace is always labelled a what-if


def test_unknown_scenario_is_one_clear_error():
    with pytest.raises(InputError, match="unknown scenario 'nope'"):
        resolve("nope")


# ----------------------------------------------------------------------------- CLI precedence
def _run_args(argv):
    from sim.run import apply_scenario, build_parser

    args, explicit = parse_explicit(build_parser(), argv)
    apply_scenario(args, explicit)
    return args


def test_run_scenario_fills_and_explicit_options_win():
    base = resolve("congested-cell")
    args = _run_args(["--scenario", "congested-cell"])
    assert (args.ladder, args.device, args.qoe, args.trace) == (base.ladder, base.device, base.qoe, base.trace)
    assert args.trace_transforms == list(base.transforms)
    # explicit options override, even when they equal sim.run's own defaults
    args = _run_args(["--scenario", "congested-cell", "--device", "h200", "--qoe", "perceptual", "--scale", "0.5"])
    assert args.device == "h200" and args.qoe == "perceptual" and args.ladder == base.ladder
    assert args.trace_transforms == [("scale", "0.5")]  # the given scale replaces the scenario's
    args = _run_args(["--scenario", "congested-cell", "--outages", "2"])
    assert args.trace_transforms == [*base.transforms, ("outages", "2")]  # other keys are kept
    # without a scenario nothing changes
    plain = _run_args([])
    assert plain.ladder == "promptus-paper-model*4" and plain.trace == "lte" and plain.trace_transforms == []


def test_whatif_and_train_take_the_scenario():
    from sim.whatif import build_parser, grid_from_args

    base = resolve("congested-cell")
    grid = grid_from_args(build_parser().parse_args(["--scenario", "congested-cell", "--ladder", "h265-measured"]))
    assert grid.ladders == ("h265-measured",) and grid.devices == (base.device,) and grid.traces == (base.trace,)
    assert grid.transforms == (base.transform_spec,)
    grid = grid_from_args(build_parser().parse_args(["--scenario", "congested-cell", "--scale", "0.5,1"]))
    assert sorted(grid.transforms) == ["scale=0.5", "scale=1"]
    cfg = scenario_config("hybrid")
    assert cfg["traces"] == (resolve("hybrid", "train").trace,) and cfg["ladder"] == resolve("hybrid").ladder
    assert cfg["transform"] == ""
    # a what-if scenario trains on its transformed traces: every rate of the train split / 32
    from sim.train_config import TrainConfig
    from sim.trainer import _setup

    cfg = scenario_config("congested-cell")
    assert cfg["transform"] == resolve("congested-cell", "train").transform_spec == "scale=0.03125"
    scaled, plain = _setup(TrainConfig(**cfg)), _setup(TrainConfig(**{**cfg, "transform": ""}))
    assert [t.name for t in scaled.train_traces] == [t.name for t in plain.train_traces]
    for a, b in zip(scaled.train_traces + scaled.eval_traces, plain.train_traces + plain.eval_traces):
        np.testing.assert_allclose(a.mbps * 32, b.mbps, rtol=1e-12)


# ----------------------------------------------------------------------------- cannot bind
def test_default_job_says_it_cannot_bind(capsys):
    from sim.run import main

    assert main(["--policy", "bola", "--trace", "lte", "--sessions", "2"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "cannot bind" in line]
    assert len(lines) == 1 and "--scenario lowband-mobile" in lines[0]


def test_binding_runs_print_nothing(tmp_path, capsys):
    from sim.run import main

    slow = tmp_path / "slow.csv"
    slow.write_text("time_s,mbps\n100,0.1\n200,0.1\n")  # 100 kbit/s: the default ladder's rungs bind
    assert main(["--policy", "bola", "--trace", str(slow), "--sessions", "2"]) == 0
    assert "cannot bind" not in capsys.readouterr().out
    lad = get_ladder("promptus-paper-model")
    fast = [Trace([10.0], [50.0])]
    assert binding_note(fast, lad, get_device("h200")) is not None
    # the same fast links, but Promptus on a phone decodes slower than real time: it binds
    assert binding_note(fast, lad, get_device("snapdragon-8gen3")) is None
    assert binding_note([Trace([10.0, 10.0], [50.0, 0.1])], lad, get_device("h200")) is None


# ----------------------------------------------------------------------------- QoE
def test_calibrated_qoe_hand_computed():
    qoe = get_qoe("perceptual-calibrated")
    q = np.array([1 - 0.05])
    # 0.95 - 0.10 x 2 s - |0.95 - 0.90| = 0.70
    assert qoe.reward(q, np.array([2.0]), np.array([0.9]))[0] == pytest.approx(0.70)
    assert qoe.reward(q, np.array([0.0]), np.array([np.nan]))[0] == pytest.approx(0.95)
    assert get_qoe("perceptual").stall_penalty == 1.0  # the old preset keeps its name and weight


def test_calibrated_stall_weight_follows_its_basis():
    """Pensieve: 4.3 per second of stall against a 4.0 quality span (0.3-4.3 Mbit/s); ours: the same ratio
    times the LPIPS span of the measured H.265 ladder (a rate range like Pensieve's)."""
    h265 = get_ladder("h265-measured")
    span = float(np.mean(h265.lpips_mean[:, 0] - h265.lpips_mean[:, -1]))
    assert 12 < h265.kbps.max() / h265.kbps.min() < 17  # Pensieve's ladder spans 14.3x
    assert CALIBRATED_STALL_PENALTY == pytest.approx(4.3 / 4.0 * span, rel=0.15)


# ----------------------------------------------------------------------------- model-ladder bytes
def test_model_chunk_bytes_hand_computed():
    # one 120-frame clip in two 60-frame chunks, r = 2, N = 10: keyframes 0, 10, ..., 110 and 119.
    # Keyframe k is charged to the chunk of frame k - 1: chunk 0 gets 0, 10..60 (7), chunk 1 70..110 and 119 (6)
    record = 1101 * 2 + 16 + 18
    got = promptus_chunk_bytes(np.array([60, 60]), [2], rank=2, interval=10)
    assert KEYFRAME_RECORD_OVERHEAD == 18 and FIRST_LATENT_BYTES == 16410
    assert got.tolist() == [7 * record + 83 + 16410, 6 * record + 13]
    # two clips of one chunk each: every clip is its own stream (its own header, latent, end)
    two = promptus_chunk_bytes(np.array([30, 30]), [1, 1], rank=1, interval=15)
    per = 3 * (1101 + 34) + STREAM_HEADER_BYTES + FIRST_LATENT_BYTES + END_RECORD_BYTES  # keyframes 0, 15, 29
    assert two.tolist() == [per, per]


def test_model_chunk_bytes_match_our_bitstream():
    """Every byte the model counts is one codec.promptus.bitstream writes (raw coder), charged as codec.encode does."""
    pytest.importorskip("torch")
    from codec.promptus.bitstream import KeyframeRecord, LatentRecord, StreamHeader, decode_stream_bytes, encode_stream
    from codec.promptus.fit import keyframe_positions
    from codec.promptus.pipeline import chunk_bytes
    from codec.promptus.quant import QParams

    rng = np.random.default_rng(0)
    frames, fpc, rank, interval = 100, 25, 3, 15
    qp = QParams(0.01, 3.0)
    pos = keyframe_positions(frames, interval)
    kfs = [KeyframeRecord(rng.integers(0, 256, (77, rank), dtype=np.uint8),
                          rng.integers(0, 256, (rank, 1024), dtype=np.uint8), qp, qp,
                          frame=k, length=k - prev if k else 1)
           for prev, k in zip([-1, *pos[:-1]], pos)]  # fmt: skip
    kfs[0] = KeyframeRecord(kfs[0].u, kfs[0].v, qp, qp, frame=0, length=1)
    header = StreamHeader("sd-turbo", "00" * 8, "promptus", 512, 512, (4, 64, 64), (77, 1024), rank, interval, 25.0,
                          0, frames, len(pos))  # fmt: skip
    latent = LatentRecord(rng.integers(0, 256, (1, 4, 64, 64), dtype=np.uint8), qp)
    data, _ = encode_stream(header, latent, kfs, coder="raw")
    stream = decode_stream_bytes(data)
    real = chunk_bytes(stream, fpc, frames // fpc)
    model = promptus_chunk_bytes(np.full(frames // fpc, fpc), [frames // fpc], rank, interval)
    assert model.tolist() == real.tolist() and model.sum() == len(data)


def test_wide_model_reaches_the_links():
    wide = get_ladder("promptmobile-wide-model")
    assert wide.kbps.min() < 40 and 300 < wide.kbps.max() < 500  # tens to a few hundred kbit/s
    assert {r.interval for r in wide.rungs} >= {5, 10, 15, 30} and all(r.decoder == "promptmobile" for r in wide.rungs)


# ----------------------------------------------------------------------------- trace selection
def test_selection_rule_hand_computed():
    # 1 s at 0.2, 1 s at 5, 2 s at 0.5 Mbit/s: time-weighted median 0.5, mean (0.2 + 5 + 1) / 4 = 1.55
    t = Trace([1.0, 1.0, 2.0], [0.2, 5.0, 0.5], name="a")
    assert trace_stat_mbps(t, "p50") == pytest.approx(0.5)
    assert trace_stat_mbps(t, "mean") == pytest.approx(1.55)
    fast = Trace([1.0], [2.0], name="b")
    assert [x.name for x in select_traces([t, fast], "p50", 1.0)] == ["a"]
    assert select_traces([t, fast], "mean", 1.0) == []
    assert [x.name for x in select_traces([t, fast], "p50", 3.0, at_least_mbps=1.0)] == ["b"]


@needs_shared
def test_lowband_selection_on_the_real_sets():
    from traces.sets import load_traces

    sel = SELECTIONS["lowband-cellular"]
    every = [t for s in sel.sets for t in load_traces(str(SHARED / s))]
    chosen = load_traces("lowband-cellular")
    assert 0 < len(chosen) < len(every)
    assert {t.source for t in chosen} == {t.source for t in every if trace_stat_mbps(t, "p50") < 1.0}
    train, test = load_traces("lowband-cellular@train"), load_traces("lowband-cellular@test")
    assert {t.source for t in train}.isdisjoint(t.source for t in test) and len(train) + len(test) == len(chosen)


def test_binding_note_hand_computed():
    # one rung of 25,000 B per 2 s = 100 kbit/s, H.265 at 1 ms per frame on h200 is far faster than real time
    lad = Ladder(name="x", rungs=(RungInfo(family="h265", decoder="h265", kbps=100.0),), duration_s=[2.0], frames=[60],
                 size_bytes=[[25_000.0]], lpips_mean=[[0.1]], lpips_p95=[[0.2]], severe_frac=[[0.0]])  # fmt: skip
    assert binding_note([Trace([5.0], [1.0])], lad, get_device("h200")) is not None  # 100 kbit/s < 1000 kbit/s
    assert binding_note([Trace([5.0], [0.05])], lad, get_device("h200")) is None


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_scenario_runs_end_to_end(name, shared_data, capsys):
    """Each scenario as a user runs it: its real test-split traces load, resample and play."""
    from sim.run import main

    assert main(["--scenario", name, "--policy", "fixed", "--sessions", "1"]) == 0
    out = capsys.readouterr().out
    assert f"scenario {name}" in out and "fixed" in out

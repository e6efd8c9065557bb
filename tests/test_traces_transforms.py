"""What-if transforms: hand-computed effects, composition order, parsing and the CLI flags."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from abr.errors import InputError
from sim.network import TraceBank
from traces.cli import add_trace_arguments, traces_from_args, transform_pairs
from traces.trace import Trace
from traces.transforms import (
    AddRtt,
    Cap,
    Outages,
    RandomStart,
    Scale,
    SetRtt,
    Shift,
    Splice,
    apply_transforms,
    build_transforms,
    format_transforms,
    parse_transforms,
)


def flat(total_s: float = 100.0, mbps: float = 4.0, lat: float | None = None) -> Trace:
    n = int(total_s)
    return Trace(np.ones(n), np.full(n, mbps), None if lat is None else np.full(n, lat), name="flat")


def mbit(t: Trace) -> float:
    return float(np.dot(t.duration_s, t.mbps))


def test_scale_and_cap_compose_in_order():
    t = Trace(np.array([1.0, 1.0]), np.array([4.0, 1.0]))
    a = apply_transforms([t], [Scale(0.5), Cap(3.0)])[0]
    b = apply_transforms([t], [Cap(3.0), Scale(0.5)])[0]
    assert a.mbps.tolist() == [2.0, 0.5]
    assert b.mbps.tolist() == [1.5, 0.5]


def test_outages_blank_exact_time_without_overlap():
    t = flat(100.0)
    out = apply_transforms([t], [Outages(3, 7.5)], seed=1)[0]
    assert out.total_s == pytest.approx(100.0)
    assert mbit(out) == pytest.approx(mbit(t) * 0.775)
    assert out.outage_share == pytest.approx(0.225)  # exactly 3 x 7.5 s at 0: overlapping outages would blank less


def test_outages_are_seeded_per_trace():
    a = apply_transforms([flat(), flat()], [Outages(2, 5.0)], seed=3)
    b = apply_transforms([flat()], [Outages(2, 5.0)], seed=3)
    c = apply_transforms([flat()], [Outages(2, 5.0)], seed=4)
    np.testing.assert_array_equal(a[0].duration_s, b[0].duration_s)
    assert not np.array_equal(a[0].duration_s, a[1].duration_s)
    assert not np.array_equal(a[0].duration_s, c[0].duration_s)


def test_outages_that_do_not_fit():
    with pytest.raises(InputError, match="do not fit"):
        apply_transforms([flat(10.0)], [Outages(3, 4.0)])


def test_rtt_override_and_add():
    t = flat(3.0)
    assert apply_transforms([t], [SetRtt(50)])[0].latency_ms.tolist() == [50.0] * 3
    assert apply_transforms([t], [AddRtt(20)])[0].latency_ms.tolist() == [20.0] * 3
    assert apply_transforms([flat(3.0, lat=30.0)], [AddRtt(20)])[0].latency_ms.tolist() == [50.0] * 3
    with pytest.raises(InputError, match="negative"):
        apply_transforms([flat(3.0, lat=10.0)], [AddRtt(-20)])


def test_shift_and_random_start_keep_the_loop():
    t = Trace(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]))
    s = apply_transforms([t], [Shift(4.0)])[0]
    assert s.duration_s.tolist() == pytest.approx([2.0, 1.0, 2.0, 1.0])
    assert s.mbps.tolist() == [3.0, 1.0, 2.0, 3.0]
    r = apply_transforms([t], [RandomStart()], seed=5)[0]
    assert r.total_s == pytest.approx(6.0) and mbit(r) == pytest.approx(mbit(t))
    assert not np.array_equal(r.mbps, t.mbps)


def test_splice_joins_traces(tmp_path):
    other = tmp_path / "o.csv"
    other.write_text("time_s,mbps\n0,9\n10,9\n")
    t = Trace(np.array([30.0]), np.array([2.0]))
    whole = apply_transforms([t], [Splice(str(other))])[0]
    assert whole.duration_s.tolist() == [30.0, 10.0] and whole.mbps.tolist() == [2.0, 9.0]
    cut = apply_transforms([t], [Splice(str(other), 12.0)])[0]
    assert cut.duration_s.tolist() == [12.0, 10.0]
    model = apply_transforms([t, t], [Splice("lte:duration_s=20")], seed=2)
    assert [m.total_s for m in model] == pytest.approx([50.0, 50.0])
    assert not np.array_equal(model[0].mbps, model[1].mbps)


@pytest.mark.parametrize(
    "text",
    [
        "scale=0.5,cap=3",
        "outages=2,outage_s=10,rtt_ms=40",
        "add_rtt_ms=5,shift_s=12.5,random_start",
        "splice=3g,splice_at=60",
    ],
)
def test_parse_format_round_trip(text):
    tfs = parse_transforms(text)
    assert parse_transforms(format_transforms(tfs)) == tfs
    assert format_transforms(tfs) == text


def test_modifier_applies_to_nearest_target():
    tfs = build_transforms([("outages", "1"), ("outage_s", "3"), ("outages", "2"), ("outage_s", "9")])
    assert tfs == [Outages(1, 3.0), Outages(2, 9.0)]
    assert build_transforms([("outage_s", "4"), ("outages", "2")]) == [Outages(2, 4.0)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("zoom=2", "unknown transform 'zoom'"),
        ("scale=0", "scale must be a positive number"),
        ("scale=abc", "expected a finite number"),
        ("scale=nan", "expected a finite number"),
        ("cap=-1", "cap must be a positive rate"),
        ("outage_s=5", "outage_s needs a outages transform"),
        ("outages=1.5", "expected a whole number"),
        ("cap", "needs a value"),
    ],
)
def test_parse_errors(text, message):
    with pytest.raises(InputError, match=message):
        parse_transforms(text)


# ----------------------------------------------------------------------------- command line


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser()
    add_trace_arguments(ap)
    return ap


def test_flags_keep_command_line_order(tmp_path):
    f = tmp_path / "t.cooked"
    f.write_text("0 4\n1 4\n2 1\n")
    args = parser().parse_args(["--trace", str(f), "--cap", "3", "--scale", "0.5", "--rtt-ms", "70"])
    assert transform_pairs(args) == [("cap", "3"), ("scale", "0.5"), ("rtt_ms", "70")]
    (t,) = traces_from_args(args, seed=0)
    assert t.mbps.tolist() == [1.5, 0.5]
    assert t.latency_ms.tolist() == [70.0, 70.0]


def test_defaults_and_format_alias():
    args = parser().parse_args([])
    assert (args.trace, args.trace_count, args.trace_format, transform_pairs(args)) == ("lte", 16, None, [])
    assert parser().parse_args(["--format", "cooked"]).trace_format == "cooked"
    ap = argparse.ArgumentParser()
    ap.add_argument("--format", default="table")  # an entry point with its own --format keeps it
    add_trace_arguments(ap)
    args = ap.parse_args(["--format", "csv", "--trace-format", "sabre"])
    assert (args.format, args.trace_format) == ("csv", "sabre")


def test_model_traces_from_args_are_seeded():
    args = parser().parse_args(["--trace", "wifi", "--trace-count", "3", "--outages", "2", "--outage-s", "4"])
    a, b = traces_from_args(args, seed=9), traces_from_args(args, seed=9)
    assert len(a) == 3
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.mbps, y.mbps)
        assert x.outage_share >= 8.0 / 600.0 - 1e-9


# ----------------------------------------------------------------------------- the simulator waits through outages


def test_download_waits_through_an_outage_exactly():
    t = Trace(np.array([1.0, 5.0, 1.0]), np.array([8.0, 0.0, 8.0]))  # 1 MB/s, nothing for 5 s, 1 MB/s
    bank = TraceBank([t])
    took = bank.download(np.array([0]), np.array([0.0]), np.array([1.5e6]))
    assert took[0] == pytest.approx(6.5)
    # a download starting inside the outage, wrapping the loop: 0.5 s gap left + 1 MB + ... + next loop
    took = bank.download(np.array([0]), np.array([5.5]), np.array([2.5e6]))
    assert took[0] == pytest.approx(0.5 + 1.0 + 1.0 + 5.0 + 0.5)

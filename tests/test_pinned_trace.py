"""``traces.trace.Trace`` pinned by hand-computed cases: every validation bound (just inside and
just outside), the summary properties, resampling, cutting, rotating, joining and Pensieve-style
samples. The expected numbers are worked out by hand in the comments.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from abr.errors import InputError
from traces.trace import MAX_LATENCY_MS, MAX_MBPS, MAX_TOTAL_S, MIN_MBPS, Trace

# 1 s at 4 Mbit/s, 2 s of outage, 3 s at 2 Mbit/s
T = Trace(np.array([1.0, 2.0, 3.0]), np.array([4.0, 0.0, 2.0]), np.array([10.0, 20.0, 30.0]), name="t", source="s")


def test_summary_properties_by_hand():
    assert T.total_s == 6.0
    assert T.start_s.tolist() == [0.0, 1.0, 3.0]
    assert T.end_s.tolist() == [1.0, 3.0, 6.0]
    assert T.mean_mbps == pytest.approx(10 / 6)  # (1*4 + 2*0 + 3*2) / 6
    assert T.outage_share == pytest.approx(2 / 6)
    assert Trace(np.array([2.0]), np.array([5.0])).outage_share == 0.0


def test_arrays_are_float64_copies_and_read_only():
    d, m, lat = [1, 2], [3, 4], [5, 6]
    t = Trace(d, m, lat)
    for a in (t.duration_s, t.mbps, t.latency_ms):
        assert a.dtype == np.float64 and not a.flags.writeable
    src = np.array([1.0, 2.0])
    t2 = Trace(src, np.array([1.0, 1.0]))
    src[0] = 9.0  # the trace holds its own copy
    assert t2.duration_s.tolist() == [1.0, 2.0]
    assert Trace([1.0], [1.0]).latency_ms is None


LIMITS = r"outside 0 or \[1e-09, 1e\+06\] Mbit/s"
POS = r"trace segments must have positive duration \(times must increase\)"
SHAPES = r"durations \({}\) and rates \({}\) must be 1-D of equal length"
LAT = r"latency_ms must be in \[0, 100000\] ms, one per segment"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"duration_s": [[1.0]], "mbps": [[1.0]]}, SHAPES.format("1, 1", "1, 1")),
        ({"duration_s": [1.0, 2.0], "mbps": [1.0]}, SHAPES.format("2,", "1,")),
        ({"duration_s": [], "mbps": []}, "trace is empty"),
        ({"duration_s": [1.0, math.nan], "mbps": [1.0, 1.0]}, "trace holds NaN or infinite values"),
        ({"duration_s": [1.0], "mbps": [math.inf]}, "trace holds NaN or infinite values"),
        ({"duration_s": [1.0, 0.0], "mbps": [1.0, 1.0]}, POS),
        ({"duration_s": [1.0, -1.0], "mbps": [1.0, 1.0]}, POS),
        ({"duration_s": [1.0, 1.0], "mbps": [1.0, -0.5]}, "trace has negative bandwidth"),
        ({"duration_s": [1.0, 1.0], "mbps": [0.0, 0.0]}, r"trace has no capacity at all \(every rate is 0\)"),
        ({"duration_s": [1.0, 1.0], "mbps": [1.0, MAX_MBPS * 1.5]}, r"trace rate 1.5e\+06 Mbit/s is " + LIMITS),
        ({"duration_s": [1.0, 1.0], "mbps": [1.0, MIN_MBPS / 2]}, r"trace rate 5e-10 Mbit/s is " + LIMITS),
        # the rate named is the first bad one: 0 and both bounds themselves are good
        ({"duration_s": [1.0] * 4, "mbps": [0.0, MIN_MBPS, MAX_MBPS, 2 * MAX_MBPS]}, r"trace rate 2e\+06 .*"),
        ({"duration_s": [MAX_TOTAL_S, 1.0], "mbps": [1.0, 1.0]}, r"trace lasts 1e\+08 s \(limit 1e\+08 s\)"),
        ({"duration_s": [1.0], "mbps": [1.0], "t0_s": -0.5}, "first time stamp must be finite and >= 0, got -0.5"),
        ({"duration_s": [1.0], "mbps": [1.0], "t0_s": math.nan}, "first time stamp must be finite and >= 0, got nan"),
        ({"duration_s": [1.0], "mbps": [1.0], "t0_s": math.inf}, "first time stamp must be finite and >= 0, got inf"),
        ({"duration_s": [1.0, 1.0], "mbps": [1.0, 1.0], "latency_ms": [5.0]}, LAT),
        ({"duration_s": [1.0], "mbps": [1.0], "latency_ms": [-1.0]}, LAT),
        ({"duration_s": [1.0], "mbps": [1.0], "latency_ms": [math.nan]}, LAT),
        ({"duration_s": [1.0], "mbps": [1.0], "latency_ms": [MAX_LATENCY_MS * 1.01]}, LAT),
    ],
)  # fmt: skip
def test_each_bound_is_checked_and_named(kw, message):
    with pytest.raises(InputError) as e:
        Trace(**kw, source="f.txt")
    assert re.fullmatch("f.txt: " + message, str(e.value)), str(e.value)


def test_name_is_used_when_there_is_no_source():
    with pytest.raises(InputError, match="^x: trace is empty"):
        Trace([], [], name="x")


def test_values_on_the_bounds_are_accepted():
    # an outage next to the smallest and largest rates, the largest latency, t0 = 0, a loop of
    # exactly MAX_TOTAL_S: all valid
    t = Trace([1.0, 1.0, MAX_TOTAL_S - 2.0], [0.0, MIN_MBPS, MAX_MBPS], [0.0, MAX_LATENCY_MS, 1.0], t0_s=0.0)
    assert t.total_s == MAX_TOTAL_S and t.mbps.tolist() == [0.0, MIN_MBPS, MAX_MBPS]


def test_resample_by_hand():
    # bins of 2 s over [0, 6): (1*4 + 1*0)/2 = 2, (1*0 + 1*2)/2 = 1, 2
    r = T.resample(2.0)
    assert r.duration_s.tolist() == [2.0, 2.0, 2.0]
    assert r.mbps.tolist() == pytest.approx([2.0, 1.0, 2.0])
    assert r.latency_ms.tolist() == pytest.approx([15.0, 25.0, 30.0])  # time-weighted the same way
    assert (r.name, r.source) == ("t", "s")
    # 2.5 s does not divide 6 s: bins [0, 2.5), [2.5, 5), [5, 6) -> 4/2.5, (0.5*0 + 2*2)/2.5, 2
    r = T.resample(2.5)
    assert r.duration_s.tolist() == pytest.approx([2.5, 2.5, 1.0])
    assert r.mbps.tolist() == pytest.approx([1.6, 1.6, 2.0])
    # a bin as long as the trace: its mean; longer: still one bin of the trace's length
    for step in (6.0, 10.0):
        r = T.resample(step)
        assert r.duration_s.tolist() == [6.0] and r.mbps.tolist() == pytest.approx([10 / 6])
    assert Trace([1.0], [3.0]).resample(0.5).latency_ms is None


def test_resample_drops_a_last_bin_that_is_only_rounding():
    # 2.1 s in 0.3 s steps: np.arange(0, 2.1, 0.3) has 8 edges, the last one 2.1 itself
    # (7 * 0.3 rounds below 2.1), which would make an empty eighth bin: 7 bins of 0.3 s
    t = Trace([1.05, 1.05], [1.0, 3.0])
    assert len(np.arange(0.0, t.total_s, 0.3)) == 8  # the rounding this test is about
    r = t.resample(0.3)
    assert r.duration_s.tolist() == pytest.approx([0.3] * 7)
    assert r.mbps.tolist() == pytest.approx([1, 1, 1, 2, 3, 3, 3])  # bin [0.9, 1.2): half and half


@pytest.mark.parametrize("step", [0.0, -1.0, math.nan])
def test_resample_rejects_a_step_that_is_not_positive(step):
    with pytest.raises(ValueError, match="step_s must be > 0"):
        T.resample(step)


def test_resample_merges_only_a_remainder_below_a_billionth_of_the_loop():
    # 1000.0000001 s in 500 s bins: the 1e-7 s remainder is below 1e-9 of the loop (1e-6 s),
    # so it joins the last bin; a 1 s trace keeps a 1.5e-9 s remainder as a bin of its own
    # (the tolerance is 1e-9 s for loops up to 1 s)
    r = Trace([500.0, 500.0000001], [1.0, 2.0]).resample(500.0)
    assert r.duration_s.tolist() == pytest.approx([500.0, 500.0000001], abs=1e-12)
    r = Trace([0.5, 0.5000000015], [1.0, 2.0]).resample(0.5)
    assert len(r.duration_s) == 3 and r.duration_s[2] == pytest.approx(1.5e-9, rel=1e-3)


def test_cut_by_hand():
    # [2, 4): 1 s of outage (1..3 -> from 2), then 1 s at 2 Mbit/s
    c = T.cut(2.0, 4.0)
    assert c.duration_s.tolist() == pytest.approx([1.0, 1.0])
    assert c.mbps.tolist() == [0.0, 2.0] and c.latency_ms.tolist() == [20.0, 30.0]
    assert (c.name, c.source) == ("t", "s")
    # [13, 20) starts 1 s into the third loop (13 mod 6 = 1) and spans into the fourth:
    # 2 s outage, 3 s at 2, then 1 s at 4 and 1 s of outage
    c = T.cut(13.0, 20.0)
    assert c.duration_s.tolist() == pytest.approx([2.0, 3.0, 1.0, 1.0])
    assert c.mbps.tolist() == [0.0, 2.0, 4.0, 0.0]
    assert c.total_s == pytest.approx(7.0)
    # a loop shorter than 1 s, cut across four loops
    c = Trace([0.25, 0.25], [1.0, 2.0]).cut(0.0, 1.0)
    assert c.duration_s.tolist() == pytest.approx([0.25] * 4) and c.mbps.tolist() == [1.0, 2.0, 1.0, 2.0]
    # a piece shorter than 1e-12 of the loop is dropped: 1e-8 s of a 2e6 s loop
    c = Trace([1e6, 1e6], [1.0, 2.0]).cut(1e6 - 1e-8, 1.5e6)
    assert c.mbps.tolist() == [2.0] and c.duration_s.tolist() == pytest.approx([5e5])
    # exactly one whole loop from its start
    c = T.cut(0.0, 6.0)
    assert c.duration_s.tolist() == pytest.approx([1.0, 2.0, 3.0]) and c.mbps.tolist() == [4.0, 0.0, 2.0]
    # inside one segment
    c = T.cut(3.5, 4.0)
    assert c.duration_s.tolist() == pytest.approx([0.5]) and c.mbps.tolist() == [2.0]
    for a, b in [(2.0, 2.0), (3.0, 1.0)]:
        with pytest.raises(ValueError, match="cut needs end_s > start_s"):
            T.cut(a, b)


def test_rotate_by_hand():
    r = T.rotate(4.0)  # 2 s at 2, 1 s at 4, 2 s outage, 1 s at 2
    assert r.duration_s.tolist() == pytest.approx([2.0, 1.0, 2.0, 1.0])
    assert r.mbps.tolist() == [2.0, 4.0, 0.0, 2.0]
    assert r.total_s == pytest.approx(6.0) and r.mean_mbps == pytest.approx(T.mean_mbps)
    assert T.rotate(0.0) is T and T.rotate(12.0) is T
    assert T.rotate(-2.0).mbps.tolist() == T.rotate(4.0).mbps.tolist()  # -2 s = 4 s of a 6 s loop


def test_concat_names_sources_and_latency():
    a = Trace([1.0], [1.0], [5.0], name="a", source="fa")
    b = Trace([2.0], [3.0], [6.0], name="b")
    j = Trace.concat([a, b])
    assert j.duration_s.tolist() == [1.0, 2.0] and j.mbps.tolist() == [1.0, 3.0]
    assert j.latency_ms.tolist() == [5.0, 6.0]
    assert (j.name, j.source) == ("a+b", "fa + b")
    k = Trace.concat([a], name="n", source="src")
    assert (k.name, k.source) == ("n", "src")
    assert Trace.concat([Trace([1.0], [1.0])] * 2).latency_ms is None
    with pytest.raises(ValueError, match="^concat needs at least one trace$"):
        Trace.concat([])
    c, d = Trace([1.0], [1.0], name="c"), Trace([1.0], [1.0], name="d")
    with pytest.raises(InputError, match=r"^cannot join traces with and without latency \(c, d have none\)"):
        Trace.concat([a, c, b, d])


def test_with_revalidates():
    assert T.with_(name="u").name == "u"
    with pytest.raises(InputError, match="negative bandwidth"):
        T.with_(mbps=np.array([1.0, -1.0, 1.0]))


def test_from_samples_by_hand():
    # Pensieve: rate i holds from time i-1 to time i; the first sample only fixes the start
    t = Trace.from_samples([0.5, 1.5, 3.5], [9.0, 4.0, 2.0], [7.0, 8.0, 9.0], name="p")
    assert t.duration_s.tolist() == [1.0, 2.0] and t.mbps.tolist() == [4.0, 2.0]
    assert t.latency_ms.tolist() == [8.0, 9.0] and t.t0_s == 0.5 and t.name == "p"
    d = Trace.from_samples([-1.0, 1.0], [0.0, 1.0])
    assert d.t0_s == 0.0  # a negative start clamps to 0
    assert (d.name, d.source) == ("trace", "")
    assert Trace.from_samples([0, 1], [1, 1], source="src").source == "src"
    with pytest.raises(InputError, match="^f: trace needs at least 2 samples, got 1"):
        Trace.from_samples([0.0], [1.0], source="f")
    with pytest.raises(InputError, match=r"^f:3: time is not strictly increasing at sample 3") as e:
        Trace.from_samples([0.0, 1.0, 1.0, 2.0], [1.0] * 4, source="f")
    assert e.value.line == 3
    with pytest.raises(InputError, match="at sample 2"):
        Trace.from_samples([0.0, math.nan, 2.0], [1.0] * 3, name="g")
    with pytest.raises(InputError, match="at sample 4"):
        Trace.from_samples([0.0, 1.0, 2.0, 1.5], [1.0] * 4)


def test_from_samples_names_the_sample_whose_time_is_not_finite():
    """An infinite or NaN time stamp is named where it is (it once read as 'not increasing at
    sample 2' wherever it was)."""
    for bad, at in (([0, 1, 2, np.inf], 4), ([np.nan, 1, 2], 1), ([0, np.inf, 2], 2)):
        with pytest.raises(InputError, match=rf"^f:{at}: time at sample {at} is not a finite number"):
            Trace.from_samples(bad, [1.0] * len(bad), source="f")

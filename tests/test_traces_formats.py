"""Trace readers, writers, detection and the Trace helpers, on small hand-made files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from abr.errors import InputError
from traces.formats import FORMATS, detect_format, format_trace, read_trace, write_trace
from traces.trace import Trace


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# ----------------------------------------------------------------------------- readers, hand-computed


def test_cooked_first_sample_fixes_start(tmp_path):
    t = read_trace(_write(tmp_path, "a", "0\t1\n1\t2\n3\t4\n"))
    assert t.duration_s.tolist() == [1.0, 2.0]
    assert t.mbps.tolist() == [2.0, 4.0]
    assert t.mean_mbps == pytest.approx((2 * 1 + 4 * 2) / 3)


def test_cooked_unit_override(tmp_path):
    t = read_trace(_write(tmp_path, "a", "0 1\n1 0.5\n2 0.25\n"), unit="MBps")
    assert t.mbps.tolist() == [4.0, 2.0]


def test_cooked_tolerates_blank_lines(tmp_path):
    t = read_trace(_write(tmp_path, "a", "0 1\n\n1 2\n2 3\n\n"))
    assert t.mbps.tolist() == [2.0, 3.0]


def test_mahimahi_one_packet_per_ms_is_12_mbps(tmp_path):
    stamps = "\n".join(str(i) for i in range(1, 1001)) + "\n"
    t = read_trace(_write(tmp_path, "a.down", stamps))
    assert t.total_s == pytest.approx(1.0)
    assert t.mean_mbps == pytest.approx(12.0)


def test_mahimahi_repeated_stamps_are_several_packets(tmp_path):
    # 3 packets at ms 50, 1 at ms 100 -> 4 packets over a 100-ms period = 4*1500*8/0.1 s = 0.48 Mbit/s
    t = read_trace(_write(tmp_path, "a", "50\n50\n50\n100\n"))
    assert t.total_s == pytest.approx(0.1)
    assert t.mean_mbps == pytest.approx(0.48)


def test_sabre_units(tmp_path):
    data = [
        {"duration_ms": 500, "bandwidth_kbps": 2000, "latency_ms": 30},
        {"duration_ms": 1500, "bandwidth_kbps": 0, "latency_ms": 40},
    ]
    t = read_trace(_write(tmp_path, "a.json", json.dumps(data)))
    assert t.duration_s.tolist() == [0.5, 1.5]
    assert t.mbps.tolist() == [2.0, 0.0]
    assert t.latency_ms.tolist() == [30.0, 40.0]
    assert t.outage_share == pytest.approx(0.75)


def test_bytes_csv_rows_cover_the_second_before(tmp_path):
    t = read_trace(_write(tmp_path, "x.csv", "1,125000\n2,250000\n4,0\n5,125000\n"))
    assert t.duration_s.tolist() == [1.0, 1.0, 2.0, 1.0]
    assert t.mbps.tolist() == [1.0, 2.0, 0.0, 1.0]


GNET_HEADER = "Timestamp,Longitude,Latitude,NetworkMode,DL_bitrate,UL_bitrate,State\n"


def test_gnettrack_averages_shared_seconds_and_merges_small_clock_steps(tmp_path):
    rows = [
        "2020.01.01_10.00.00,0,0,5G,1000,1,D",
        "2020.01.01_10.00.01,0,0,5G,2000,1,D",
        "2020.01.01_10.00.01,0,0,5G,4000,1,D",  # same second: averaged with the row before
        "2020.01.01_10.00.03,0,0,LTE,-,1,D",  # missing value: skipped
        "2020.01.01_10.00.03,0,0,LTE,6000,1,D",
        "2020.01.01_10.00.02,0,0,LTE,0,1,I",  # clock one second back: merged into 10.00.03
    ]
    t = read_trace(_write(tmp_path, "g.csv", GNET_HEADER + "\n".join(rows) + "\n"))
    assert t.duration_s.tolist() == [1.0, 1.0, 2.0]
    assert t.mbps.tolist() == pytest.approx([1.0, 3.0, 3.0])


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("2020.01.01_10.00.0x,0,0,5G,1000,1,D", r"g\.csv:3: Timestamp '2020.01.01_10.00.0x' is not YYYY"),
        ("2020.01.01_10.00.01,0,0,5G,fast,1,D", r"g\.csv:3: DL_bitrate 'fast' is not a number"),
        ("2020.01.01_10.00.01,0,0", r"g\.csv:3: expected 7 columns"),
        ("2020.01.01_10.00.01,0,0,5G,-5,1,D", r"g\.csv:3: invalid DL_bitrate -5"),
    ],
)
def test_gnettrack_bad_rows(tmp_path, row, message):
    p = _write(tmp_path, "g.csv", GNET_HEADER + "2020.01.01_10.00.00,0,0,5G,1000,1,D\n" + row + "\n")
    with pytest.raises(InputError, match=message):
        read_trace(p)


def test_gnettrack_clock_far_back_is_an_error(tmp_path):
    rows = [
        "2020.01.01_10.00.05,0,0,5G,1000,1,D",
        "2020.01.01_10.00.06,0,0,5G,1000,1,D",
        "2020.01.01_10.00.01,0,0,5G,1,1,D",
    ]
    p = _write(tmp_path, "g.csv", GNET_HEADER + "\n".join(rows) + "\n")
    with pytest.raises(InputError, match=r"g\.csv:4: Timestamp steps back 5 s"):
        read_trace(p)


@pytest.mark.parametrize(
    ("header", "scale_t", "scale_v"),
    [("time_s,mbps", 1.0, 1.0), ("time_ms,kbps", 1e-3, 1e-3), ("TIME_S,bytes_per_s", 1.0, 8e-6)],
)
def test_plain_csv_units_from_header(tmp_path, header, scale_t, scale_v):
    t = read_trace(_write(tmp_path, "p.csv", f"{header}\n0,10\n2,20\n5,30\n"))
    assert t.duration_s.tolist() == pytest.approx([2 * scale_t, 3 * scale_t])
    assert t.mbps.tolist() == pytest.approx([20 * scale_v, 30 * scale_v])
    assert t.latency_ms is None


def test_plain_csv_with_rtt(tmp_path):
    t = read_trace(_write(tmp_path, "p.csv", "time_s,mbps,rtt_ms\n0,1,10\n1,2,20\n3,4,30\n"))
    assert t.latency_ms.tolist() == [20.0, 30.0]


# ----------------------------------------------------------------------------- detection and forcing


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("0.0\t1.5\n1.0\t2.5\n", "cooked"),
        ("0\n0\n5\n", "mahimahi"),
        ('[{"duration_ms": 1000, "bandwidth_kbps": 5, "latency_ms": 1}]', "sabre"),
        ("1,100\n2,200\n", "bytes-csv"),
        ("time_s,mbps\n0,1\n1,2\n", "csv"),
        (GNET_HEADER + "2020.01.01_10.00.00,0,0,5G,1000,1,D\n", "gnettrack"),
    ],
)
def test_detect_by_content(tmp_path, text, fmt):
    assert detect_format(_write(tmp_path, "f", text)) == fmt


def test_forced_format_wins(tmp_path):
    p = _write(tmp_path, "f", "1 2\n3 4\n")
    with pytest.raises(InputError, match=r"f:1: expected one integer millisecond timestamp"):
        read_trace(p, "mahimahi")
    with pytest.raises(InputError, match="unknown trace format 'nope'"):
        read_trace(p, "nope")


# ----------------------------------------------------------------------------- one clear error per problem


@pytest.mark.parametrize(
    ("text", "fmt", "message"),
    [
        ("0 1\n2 1\n1 1\n", None, r"bad:3: time 1 does not increase"),
        ("0 1\n1 1\n1 1\n", None, r"bad:3: time 1 does not increase"),
        ("-1 1\n1 1\n", None, r"bad:1: negative time"),
        ("0 1\n1 nan\n", None, r"bad:2: bandwidth is NaN"),
        ("0 1\n1 -2\n", None, r"bad:2: negative bandwidth -2"),
        ("0 1\n1 2 3\n", "cooked", r"bad:2: expected 'time_s value'"),
        ("", None, r"bad: trace file is empty"),
        ("  \n\n", None, r"bad: trace file is empty"),
        ("time,throughput\n0,1\n1,2\n", None, r"bad:1: unknown CSV header"),
        ("time_s,mbit\n0,1\n", None, r"bad:1: unknown CSV header"),
        ("0,1,2\n1,2,3\n", None, r"bad:1: numeric CSV with 3 columns and no header"),
        ("hello world again\n", None, r"bad:1: cannot tell the trace format"),
        ("0 0\n1 0\n2 0\n", None, r"bad: trace has no capacity at all"),
        ("5\n3\n", None, r"bad:2: timestamps decrease"),
        ("1,100\n1,100\n", None, r"bad:2: time 1 does not increase"),
        ("1,100\n2,-1\n", None, r"bad:2: negative bytes per second"),
        ('[{"duration_ms": 0, "bandwidth_kbps": 5}]', None, r"bad:1: entry 0: invalid duration_ms 0"),
        ('[{"duration_ms": 5, "bandwidth_kbps": 5},\n {"duration_ms": 5}]', None, r"bad:2: entry 1 must be an object"),
        ('[{"duration_ms": 5,', None, r"bad:1: invalid JSON"),
        ("time_s,mbps\n", None, r"bad:2: CSV has a header but no rows"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, text, fmt, message):
    p = _write(tmp_path, "bad", text)
    with pytest.raises(InputError, match=message):
        read_trace(p, fmt)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="trace file not found"):
        read_trace(tmp_path / "nope")


# ----------------------------------------------------------------------------- writers: round trips


def _trace(lat: bool = False) -> Trace:
    d = np.array([0.5, 1.25, 2.0, 0.75])
    r = np.array([3.0, 0.0, 7.5, 1.2])
    return Trace(d, r, np.array([10.0, 20.0, 30.0, 40.0]) if lat else None, name="t")


@pytest.mark.parametrize(("fmt", "lat"), [("cooked", False), ("csv", False), ("csv", True), ("sabre", True)])
def test_round_trip_exact(tmp_path, fmt, lat):
    t = _trace(lat)
    p = tmp_path / f"x.{fmt}"
    write_trace(t, p, fmt)
    back = read_trace(p)  # detected by content
    np.testing.assert_allclose(back.duration_s, t.duration_s, rtol=1e-9)
    np.testing.assert_allclose(back.mbps, t.mbps, rtol=1e-9)
    if lat:
        np.testing.assert_allclose(back.latency_ms, t.latency_ms)


def test_mahimahi_round_trip_keeps_bytes_and_period(tmp_path):
    t = Trace(np.array([1.0, 2.0, 1.0]), np.array([12.0, 0.0, 6.0]))
    p = tmp_path / "x.down"
    write_trace(t, p, "mahimahi")
    back = read_trace(p)
    assert back.total_s == pytest.approx(t.total_s)
    # bytes: 12 Mbit/s x 1 s + 6 Mbit/s x 1 s = 18 Mbit = 1500 packets exactly
    assert back.mean_mbps * back.total_s == pytest.approx(18.0)
    one_s = back.resample(1.0).mbps
    assert one_s.tolist() == pytest.approx([12.0, 0.0, 0.0, 6.0])


def test_read_only_format_cannot_be_written():
    with pytest.raises(InputError, match="read-only"):
        format_trace(_trace(), "gnettrack")
    assert {n for n, f in FORMATS.items() if f.write} >= {"cooked", "mahimahi", "csv", "sabre"}


# ----------------------------------------------------------------------------- Trace helpers


def test_resample_conserves_bytes_and_averages():
    t = Trace(np.array([0.5, 1.0, 1.0]), np.array([2.0, 4.0, 0.0]))
    r = t.resample(1.0)
    assert r.duration_s.tolist() == [1.0, 1.0, 0.5]
    assert r.mbps.tolist() == pytest.approx([3.0, 2.0, 0.0])
    assert r.mean_mbps * r.total_s == pytest.approx(t.mean_mbps * t.total_s)


def test_rotate_and_cut_hand_computed():
    t = Trace(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]), np.array([5.0, 6.0, 7.0]))
    r = t.rotate(1.5)
    assert r.duration_s.tolist() == pytest.approx([1.5, 3.0, 1.0, 0.5])
    assert r.mbps.tolist() == [2.0, 3.0, 1.0, 2.0]
    assert r.latency_ms.tolist() == [6.0, 7.0, 5.0, 6.0]
    c = t.cut(5.0, 8.0)  # 1 s of the last segment, then 2 s into the next loop
    assert c.duration_s.tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert c.mbps.tolist() == [3.0, 1.0, 2.0]
    assert t.rotate(6.0) is t


def test_concat_needs_matching_latency():
    a = Trace(np.array([1.0]), np.array([1.0]))
    b = Trace(np.array([2.0]), np.array([3.0]), np.array([9.0]))
    assert Trace.concat([a, a]).total_s == 2.0
    with pytest.raises(InputError, match="with and without latency"):
        Trace.concat([a, b])


def test_ragged_rows_are_not_silently_re_paired(tmp_path):
    # 6 numbers on 3 lines would reshape into 3 pairs; the line with 3 numbers must be named instead
    with pytest.raises(InputError, match=r"r:2: expected 'time_s value'"):
        read_trace(_write(tmp_path, "r", "0 1\n1 2 3\n4\n"), "cooked")


def test_mahimahi_two_numbers_on_a_line(tmp_path):
    with pytest.raises(InputError, match=r"m:1: expected one integer millisecond timestamp per line, got '1 2'"):
        read_trace(_write(tmp_path, "m", "1 2\n\n3\n"), "mahimahi")

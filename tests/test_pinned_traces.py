"""traces.formats pinned with hand-made files: every number below is worked out by hand.

mahimahi: one line per 1500-byte packet opportunity, stamped in ms; the reader counts packets
in 100 ms bins over a period equal to the last stamp (mahimahi loops there), so a period of P
ms has ceil(P / 100) bins, the last one P - 100 (n - 1) ms long.
"""

from __future__ import annotations

import numpy as np
import pytest

from abr.errors import InputError
from traces.formats import (
    detect_format,
    format_trace,
    read_cooked,
    read_mahimahi,
    read_trace,
    write_cooked,
    write_mahimahi,
    write_trace,
)
from traces.trace import Trace

PKT_MBIT = 1500 * 8 / 1e6  # one packet, Mbit


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def _read(tmp_path, text, fmt, name="t", **kw):
    return read_trace(_write(tmp_path, name, text), fmt, **kw)


# ----------------------------------------------------------------------------- mahimahi


def test_mahimahi_bins_are_100_ms_and_the_count_rounds_up(tmp_path):
    # period 250 ms -> ceil(2.5) = 3 bins: [0,100), [100,200), [200,250]; one packet each
    t = _read(tmp_path, "50\n150\n250\n", "mahimahi")
    assert t.duration_s == pytest.approx([0.1, 0.1, 0.05])
    assert t.mbps == pytest.approx([PKT_MBIT / 0.1, PKT_MBIT / 0.1, PKT_MBIT / 0.05])
    assert t.total_s == pytest.approx(0.25)


def test_mahimahi_period_on_a_bin_edge(tmp_path):
    # period 200 ms -> 2 bins; the packet stamped 200 belongs to the last bin (not a third one)
    t = _read(tmp_path, "100\n200\n", "mahimahi")
    assert t.duration_s == pytest.approx([0.1, 0.1])
    assert t.mbps == pytest.approx([0.0, 2 * PKT_MBIT / 0.1])


def test_mahimahi_short_and_zero_periods(tmp_path):
    # period 30 ms: one 30 ms bin holding 3 packets
    t = _read(tmp_path, "0\n10\n30\n", "mahimahi")
    assert t.duration_s == pytest.approx([0.03])
    assert t.mbps == pytest.approx([3 * PKT_MBIT / 0.03])
    # all stamps 0: the period is taken as 1 ms
    t = _read(tmp_path, "0\n0\n", "mahimahi", name="z")
    assert t.duration_s == pytest.approx([0.001])
    assert t.mbps == pytest.approx([2 * PKT_MBIT / 0.001])


def test_mahimahi_repeated_stamps_and_slow_path_agree(tmp_path):
    # 4 packets in bin 0, none in bin 1, 2 in bin 2 (period 300)
    fast = _read(tmp_path, "0\n0\n5\n99\n250\n300\n", "mahimahi", name="a")
    slow = _read(tmp_path, "\n0\n0\n 5 \n99\n\n250\n300\n\n", "mahimahi", name="b")  # blanks: line-by-line path
    for t in (fast, slow):
        assert t.duration_s == pytest.approx([0.1, 0.1, 0.1])
        assert t.mbps == pytest.approx([4 * PKT_MBIT / 0.1, 0.0, 2 * PKT_MBIT / 0.1])
    crlf = _read(tmp_path, "0\r\n0\r\n5\r\n99\r\n250\r\n300\r\n", "mahimahi", name="c")
    assert crlf.mbps == pytest.approx(fast.mbps)


@pytest.mark.parametrize(
    "text, match, line",
    [
        ("5\n3\n", "timestamps decrease", 2),
        ("1\n2\n9\n4\n", "timestamps decrease", 4),
        ("1\n2.5\n", "expected one integer millisecond timestamp per line, got '2.5'", 2),
        ("1\n-3\n", "negative timestamp", 2),
        ("1\n\n-3\n", "expected one integer millisecond timestamp per line, got '-3'", 3),
        ("1\nx\n", "expected one integer", 2),
        ("\n\n \n", "empty", None),
    ],
)
def test_mahimahi_errors_name_the_line(tmp_path, text, match, line):
    with pytest.raises(InputError, match=match) as e:
        _read(tmp_path, text, "mahimahi")
    if line is not None:
        assert f":{line}" in str(e.value)


def test_mahimahi_writer_by_hand():
    # 0.24 Mbit/s for 0.1 s = 2 packets, spread from the segment start: 0, 50 ms; the last moves to 100
    text = format_trace(Trace([0.1], [2 * PKT_MBIT / 0.1]), "mahimahi")
    assert text == "0\n100\n"
    text = format_trace(Trace([0.1, 0.1], [4 * PKT_MBIT / 0.1, 2 * PKT_MBIT / 0.1]), "mahimahi")
    assert text == "0\n25\n50\n75\n100\n200\n"
    with pytest.raises(InputError, match="less than one 1500-byte packet"):
        format_trace(Trace([0.1], [0.01]), "mahimahi")


# ----------------------------------------------------------------------------- cooked / csv


def test_cooked_rate_holds_from_the_previous_time(tmp_path):
    t = _read(tmp_path, "0.5 9\n1.5 2\n4.0 0\n4.5 3\n", "cooked")
    assert t.duration_s == pytest.approx([1.0, 2.5, 0.5])
    assert t.mbps == pytest.approx([2.0, 0.0, 3.0])
    assert _read(tmp_path, "0 1\n1 2\n", "cooked", name="u", unit="MBps").mbps == pytest.approx([16.0])
    assert _read(tmp_path, "0 1\n1 2000\n", "cooked", name="k", unit="kbps").mbps == pytest.approx([2.0])
    assert _read(tmp_path, "0\t1\r\n1\t2\r\n", "cooked", name="tab").mbps == pytest.approx([2.0])


@pytest.mark.parametrize(
    "text, match, line",
    [
        ("0 1\n1 -2\n", "negative bandwidth -2", 2),
        ("0 1\n1 nan\n", "bandwidth is NaN or infinite", 2),
        ("0 1\ninf 2\n", "time is NaN or infinite", 2),
        ("0 1\n1 2\n1 3\n", "time 1 does not increase \\(previous 1\\)", 3),
        ("-1 1\n1 2\n", "negative time -1", 1),
        ("0 1\n1 2 3\n", "expected 'time_s value' \\(two numbers\\), got '1 2 3'", 2),
        ("0 1\n\n1 x\n", "got '1 x'", 3),
    ],
)
def test_cooked_errors_name_the_line(tmp_path, text, match, line):
    with pytest.raises(InputError, match=match) as e:
        _read(tmp_path, text, "cooked")
    assert f":{line}" in str(e.value)


def test_cooked_unknown_unit(tmp_path):
    with pytest.raises(InputError, match="unknown rate unit 'furlongs'; valid: mbps, kbps"):
        _read(tmp_path, "0 1\n1 2\n", "cooked", unit="furlongs")


def test_cooked_writer_by_hand():
    text = format_trace(Trace([1.0, 2.5], [2.0, 0.5]), "cooked")
    assert text == "0\t2\n1\t2\n3.5\t0.5\n"


def test_csv_units_from_the_header(tmp_path):
    t = _read(tmp_path, "time_ms,kbps,rtt_ms\n0,500,10\n1000,2000,40\n3000,1000,20\n", "csv")
    assert t.duration_s == pytest.approx([1.0, 2.0])
    assert t.mbps == pytest.approx([2.0, 1.0])
    assert t.latency_ms == pytest.approx([40.0, 20.0])
    t = _read(tmp_path, "time_s,bytes_per_s\n0,1\n2,125000\n", "csv", name="b")
    assert t.mbps == pytest.approx([1.0])
    t = _read(tmp_path, "Time_S , BPS\n0,1\n2,3000000\n", "csv", name="c")
    assert t.mbps == pytest.approx([3.0])
    assert _read(tmp_path, "time_s,mbps,latency_ms\n0,1,5\n1,2,7\n", "csv", name="d").latency_ms == pytest.approx([7.0])


@pytest.mark.parametrize(
    "text, match",
    [
        ("time,mbps\n0,1\n1,2\n", "unknown CSV header 'time,mbps'"),
        ("time_s,mbps,rtt_ms,x\n0,1,1,1\n", "unknown CSV header"),
        ("time_s\n0\n", "unknown CSV header"),
        ("time_s,mbps\n", "CSV has a header but no rows"),
        ("time_s,mbps,rtt_ms\n0,1,1\n1,2,-1\n", "negative rtt_ms -1"),
    ],
)
def test_csv_errors(tmp_path, text, match):
    with pytest.raises(InputError, match=match):
        _read(tmp_path, text, "csv")


def test_csv_and_sabre_writers_round_trip(tmp_path):
    t = Trace([1.0, 2.5], [2.0, 0.5], latency_ms=[10.0, 30.0])
    assert format_trace(t, "csv") == "time_s,mbps,rtt_ms\n0,2,10\n1,2,10\n3.5,0.5,30\n"
    assert format_trace(Trace([1.0], [2.0]), "csv") == "time_s,mbps\n0,2\n1,2\n"
    for fmt in ("csv", "sabre", "cooked"):
        p = tmp_path / f"x.{fmt}"
        write_trace(t, p, fmt)
        back = read_trace(p)
        assert back.duration_s == pytest.approx(t.duration_s)
        assert back.mbps == pytest.approx(t.mbps)
    sabre = format_trace(Trace([1.5], [2.0]), "sabre")
    assert '"duration_ms": 1500, "bandwidth_kbps": 2000, "latency_ms": 0' in sabre


# ----------------------------------------------------------------------------- sabre JSON


def test_sabre_units(tmp_path):
    text = (
        '[{"duration_ms": 1500, "bandwidth_kbps": 2000, "latency_ms": 75},\n'
        ' {"duration_ms": 500, "bandwidth_kbps": 0, "latency_ms": 100}]'
    )
    t = _read(tmp_path, text, "sabre")
    assert t.duration_s == pytest.approx([1.5, 0.5])
    assert t.mbps == pytest.approx([2.0, 0.0])
    assert t.latency_ms == pytest.approx([75.0, 100.0])
    t = _read(tmp_path, '[{"duration_ms": 1000, "bandwidth_kbps": 500}]', "sabre", name="n")
    assert t.latency_ms is None and t.mbps == pytest.approx([0.5])


OK1 = '[{"duration_ms": 1, "bandwidth_kbps": 1},\n'


@pytest.mark.parametrize(
    "text, match, line",
    [
        ("[1, 2", "invalid JSON", 1),
        ("{}", "expected a JSON list", None),
        ("[]", "expected a JSON list", None),
        (OK1 + '{"duration_ms": 1}]', "entry 1 must be an object with numeric duration_ms, bandwidth_kbps", 2),
        (OK1 + '{"duration_ms": "x", "bandwidth_kbps": 1}]', "entry 1 must be", 2),
        (OK1 + '{"duration_ms": 0, "bandwidth_kbps": 1}]', "entry 1: invalid duration_ms 0", 2),
        ('[{"duration_ms": 1, "bandwidth_kbps": -1}]', "entry 0: invalid bandwidth_kbps -1", 1),
        ('[{"duration_ms": 1, "bandwidth_kbps": 1, "latency_ms": -5}]', "entry 0: invalid latency_ms -5", 1),
    ],
)  # fmt: skip
def test_sabre_errors(tmp_path, text, match, line):
    with pytest.raises(InputError, match=match) as e:
        _read(tmp_path, text, "sabre")
    if line is not None:
        assert f":{line}" in str(e.value)


def test_sabre_zero_latency_and_zero_bandwidth_are_valid(tmp_path):
    t = _read(tmp_path, '[{"duration_ms": 10, "bandwidth_kbps": 0, "latency_ms": 0}, '
                        '{"duration_ms": 10, "bandwidth_kbps": 8, "latency_ms": 0}]', "sabre")  # fmt: skip
    assert t.latency_ms == pytest.approx([0.0, 0.0]) and t.mbps == pytest.approx([0.0, 0.008])


# ----------------------------------------------------------------------------- per-second CSVs


def test_bytes_csv_rows_cover_the_second_before_their_stamp(tmp_path):
    t = _read(tmp_path, "10,125000\n11,250000\n13,0\n", "bytes-csv")
    assert t.duration_s == pytest.approx([1.0, 1.0, 2.0])
    assert t.mbps == pytest.approx([1.0, 2.0, 0.0])
    with pytest.raises(InputError, match="negative bytes per second"):
        _read(tmp_path, "1,5\n2,-5\n", "bytes-csv", name="neg")


GNET_HEAD = "Timestamp,Longitude,DL_bitrate,UL_bitrate\n"


def test_gnettrack_seconds_averaged_and_small_steps_back_merged(tmp_path):
    rows = [
        "2018.01.01_10.00.00,0,1000,0",
        "2018.01.01_10.00.01,0,2000,0",
        "2018.01.01_10.00.01,0,4000,0",  # same second: mean 3000
        "2018.01.01_10.00.00,0,6000,0",  # one second back: merged into 10.00.01 -> mean of 2000, 4000, 6000
        "2018.01.01_10.00.02,0,-,0",  # missing: skipped
        "2018.01.01_10.00.03,0,500,0",
    ]
    t = _read(tmp_path, GNET_HEAD + "\n".join(rows) + "\n\n", "gnettrack")
    assert t.duration_s == pytest.approx([1.0, 1.0, 2.0])
    assert t.mbps == pytest.approx([1.0, 4.0, 0.5])


def test_gnettrack_across_midnight(tmp_path):
    rows = ["2018.12.31_23.59.59,0,1000,0", "2019.01.01_00.00.01,0,3000,0"]
    t = _read(tmp_path, GNET_HEAD + "\n".join(rows) + "\n", "gnettrack")
    assert t.duration_s == pytest.approx([1.0, 2.0])
    assert t.mbps == pytest.approx([1.0, 3.0])


@pytest.mark.parametrize(
    "body, match, line",
    [
        ("2018.01.01_10.00.05,0,1000,0\n2018.01.01_10.00.02,0,1000,0\n", "Timestamp steps back 3 s", 3),
        ("2018.01.01_10.00.05,0,1000,0\n2018.13.01_10.00.06,0,1000,0\n", "is not YYYY.MM.DD_HH.MM.SS", None),
        ("2018.01.01_10.00.05,0,1000,0\n2018.01.01_25.00.06,0,1000,0\n", "is not YYYY.MM.DD_HH.MM.SS", None),
        ("2018.01.01_10.00.05,0,1000,0\n10:00:06,0,1000,0\n", "'10:00:06' is not YYYY", 3),
        ("2018.01.01_10.00.05,0,abc,0\n", "DL_bitrate 'abc' is not a number", 2),
        ("2018.01.01_10.00.05,0,-7,0\n", "invalid DL_bitrate -7", 2),
        ("2018.01.01_10.00.05,0,-,0\n", "no rows with a DL_bitrate value", None),
        ("2018.01.01_10.00.05,0\n", "expected 4 columns", 2),
    ],
)
def test_gnettrack_errors(tmp_path, body, match, line):
    with pytest.raises(InputError, match=match) as e:
        _read(tmp_path, GNET_HEAD + body, "gnettrack")
    if line is not None:
        assert f":{line}" in str(e.value)
    with pytest.raises(InputError, match="needs 'Timestamp' and 'DL_bitrate'"):
        _read(tmp_path, "Time,DL\n1,2\n", "gnettrack", name="h")


# ----------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    "text, fmt",
    [
        ("  [ {}", "sabre"),
        ("{", "sabre"),
        ("10,125000\n", "bytes-csv"),
        (GNET_HEAD, "gnettrack"),
        ("time_s,mbps\n", "csv"),
        ("\n12\n", "mahimahi"),
        ("0.0 1.5\n", "cooked"),
        ("0\t2\n", "cooked"),
    ],
)
def test_detect_by_content(tmp_path, text, fmt):
    assert detect_format(_write(tmp_path, "f", text)) == fmt


@pytest.mark.parametrize(
    "text, match",
    [
        ("1,2,3\n", "numeric CSV with 3 columns and no header"),
        ("hello world\n", "cannot tell the trace format from the first line 'hello world'"),
        ("1.5\n", "cannot tell"),
        ("   \n", "empty"),
    ],
)
def test_detect_errors(tmp_path, text, match):
    with pytest.raises(InputError, match=match):
        detect_format(_write(tmp_path, "f", text))


def test_unknown_and_read_only_formats():
    with pytest.raises(InputError, match="unknown trace format 'xml'"):
        format_trace(Trace([1.0], [1.0]), "xml")
    with pytest.raises(InputError, match="format 'gnettrack' is read-only; write one of: cooked, mahimahi, sabre, csv"):
        format_trace(Trace([1.0], [1.0]), "gnettrack")


def test_read_trace_unknown_format(tmp_path):
    with pytest.raises(InputError, match="unknown trace format 'xml'"):
        _read(tmp_path, "0 1\n1 2\n", "xml")


def test_read_real_mahimahi_file(shared_data):
    folder = shared_data / "traces" / "mahimahi-us-cellular"
    files = sorted(p for p in folder.glob("*") if p.is_file() and p.suffix != ".md") if folder.is_dir() else []
    if not files:
        pytest.skip(f"no mahimahi files in {folder}")
    text = files[0].read_text()
    stamps = np.array(text.split(), dtype=np.int64)
    t = read_trace(files[0], "mahimahi")
    # bytes conserved: every packet in some bin; the period is the last stamp
    assert float(np.dot(t.duration_s, t.mbps)) == pytest.approx(stamps.size * PKT_MBIT)
    assert t.total_s == pytest.approx(stamps[-1] / 1000.0)
    assert len(t.duration_s) == -(-int(stamps[-1]) // 100)


def test_named_readers_and_writers(tmp_path):
    t = Trace([1.0, 2.5], [2.0, 0.5])
    write_cooked(t, tmp_path / "c")
    assert (tmp_path / "c").read_text() == "0\t2\n1\t2\n3.5\t0.5\n"
    back = read_cooked(tmp_path / "c")
    assert back.duration_s == pytest.approx([1.0, 2.5]) and back.mbps == pytest.approx([2.0, 0.5])
    assert read_cooked(tmp_path / "c", unit="kbps").mbps == pytest.approx([0.002, 0.0005])
    m = Trace([0.1, 0.1], [2 * PKT_MBIT / 0.1, 3 * PKT_MBIT / 0.1])
    write_mahimahi(m, tmp_path / "m")
    # 2 packets from 0 ms (0, 50), 3 from 100 ms (100, 133, 166), the last moved to the period
    assert (tmp_path / "m").read_text() == "0\n50\n100\n133\n200\n"
    assert read_mahimahi(tmp_path / "m").mbps == pytest.approx([2 * PKT_MBIT / 0.1, 3 * PKT_MBIT / 0.1])
    with pytest.raises(InputError, match="^tiny: trace carries less than one 1500-byte packet"):
        format_trace(Trace([0.1], [0.01], name="tiny"), "mahimahi")

"""traces.formats edges pinned with hand-made files: plausibility limits and their messages,
how the unit was chosen (``read_trace``) and the mahimahi reader's errors and edges.

Every expected number and message below is worked out by hand from the module docstring's
definitions (10 Gbit/s and 1 bit/s peak limits, 1 Gbit/s mean warning, 1500-byte mahimahi
packets in 100 ms bins over a period equal to the last stamp).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from abr.errors import InputError
from traces.formats import TraceUnitWarning, detect_format, format_trace, read_cooked, read_mahimahi, read_trace
from traces.trace import Trace

FIX = "pass --trace-unit (one of mbps, kbps, bps, MBps, kBps, Bps) or declare 'unit: NAME' in a UNIT file beside it"
DEFAULT_HOW = "read in Mbit/s by default: cooked files carry no unit"
HINT = " (kbit/s values read as Mbit/s?)"


def _file(tmp_path, name, text):
    d = tmp_path / "t"
    d.mkdir(exist_ok=True)
    p = d / name
    p.write_text(text)
    return p


def _read_error(path, *args, **kwargs) -> str:
    """The one-line message ``read_trace`` refuses ``path`` with."""
    with pytest.raises(InputError) as e:
        read_trace(path, *args, **kwargs)
    return str(e.value)


def _no_warning(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn()


# ----------------------------------------------------------------------------- plausibility


def test_peak_above_10_gbps_with_the_default_unit_names_the_kbps_hint(tmp_path):
    p = _file(tmp_path, "a.cooked", "0 20000\n1 20000\n")
    with pytest.raises(InputError) as e:
        read_trace(p)
    assert e.value.path == p
    assert str(e.value) == (
        f"{p}: implausible rates: peak 2e+04 Mbit/s is above 10 Gbit/s, {DEFAULT_HOW}; the unit is wrong{HINT}: {FIX}"
    )


def test_peak_above_10_gbps_given_as_mbps_keeps_the_hint(tmp_path):
    p = _file(tmp_path, "a.cooked", "0 20000\n1 20000\n")
    assert _read_error(p, unit="mbps") == (
        f"{p}: implausible rates: peak 2e+04 Mbit/s is above 10 Gbit/s, read as mbps (given); "
        f"the unit is wrong{HINT}: {FIX}"
    )


def test_peak_above_10_gbps_in_another_unit_has_no_kbps_hint(tmp_path):
    # 2e7 kbit/s = 2e4 Mbit/s
    p = _file(tmp_path, "a.cooked", "0 20000000\n1 20000000\n")
    assert _read_error(p, unit="kbps") == (
        f"{p}: implausible rates: peak 2e+04 Mbit/s is above 10 Gbit/s, read as kbps (given); the unit is wrong: {FIX}"
    )


def test_peak_of_exactly_10_gbps_and_mean_of_exactly_1_gbps_pass_silently(tmp_path):
    p = _file(tmp_path, "a.cooked", "0 10000\n1 10000\n")
    tr = _no_warning(lambda: read_trace(p, unit="mbps"))
    assert tr.mbps.tolist() == [10000.0]
    q = _file(tmp_path, "b.cooked", "0 1000\n1 1000\n")
    tr = _no_warning(lambda: read_trace(q))  # default unit, mean exactly 1 Gbit/s: not above
    assert tr.mbps.tolist() == [1000.0]


def test_peak_below_1_bps_is_refused_with_the_peak_in_bit_per_s(tmp_path):
    # 9.9949995e-7 Mbit/s = 0.99949995 bit/s, printed with 3 significant digits: 0.999
    p = _file(tmp_path, "a.cooked", "0 9.9949995e-7\n1 9.9949995e-7\n")
    with pytest.raises(InputError) as e:
        read_trace(p, unit="mbps")
    assert e.value.path == p
    assert str(e.value) == (
        f"{p}: implausible rates: peak 0.999 bit/s is below 1 bit/s, read as mbps (given); the unit is wrong: {FIX}"
    )


def test_peak_of_exactly_1_bps_passes(tmp_path):
    p = _file(tmp_path, "a.cooked", "0 1e-6\n1 1e-6\n")
    assert read_trace(p, unit="mbps").mbps.tolist() == [1e-6]


def test_mean_above_1_gbps_with_the_default_unit_warns(tmp_path):
    p = _file(tmp_path, "a.cooked", "0 2000\n1 2000\n")
    with pytest.warns(TraceUnitWarning) as rec:
        read_trace(p)
    assert len(rec) == 1
    assert str(rec[0].message) == (
        f"{p}: mean rate 2000 Mbit/s is above 1 Gbit/s, {DEFAULT_HOW}; if the values are kbit/s, pass --trace-unit kbps"
    )


def test_mean_above_1_gbps_with_a_given_unit_does_not_warn(tmp_path):
    p = _file(tmp_path, "a.cooked", "0 2000\n1 2000\n")
    assert _no_warning(lambda: read_trace(p, unit="mbps")).mbps.tolist() == [2000.0]


def test_an_ordinary_trace_without_a_unit_does_not_warn(tmp_path):
    p = _file(tmp_path, "a.cooked", "0 3\n1 3\n")
    assert _no_warning(lambda: read_trace(p)).mbps.tolist() == [3.0]


# ----------------------------------------------------------------------------- how the unit was chosen


def test_a_declared_unit_is_used_and_named(tmp_path):
    # a UNIT file beside the trace says MBps: 2000 MB/s = 16000 Mbit/s, above 10 Gbit/s
    p = _file(tmp_path, "a.cooked", "0 2000\n1 2000\n")
    (p.parent / "UNIT").write_text("MBps\n")
    assert _read_error(p) == (
        f"{p}: implausible rates: peak 1.6e+04 Mbit/s is above 10 Gbit/s, "
        f"read as MBps (declared in {p.parent / 'UNIT'}); the unit is wrong: {FIX}"
    )
    # 2 MB/s = 16 Mbit/s
    q = _file(tmp_path, "b.cooked", "0 2\n1 2\n")
    assert read_trace(q).mbps.tolist() == [16.0]


def test_other_formats_are_read_in_their_own_unit(tmp_path):
    # Sabre: 2e7 kbit/s = 2e4 Mbit/s; no unit given, and the format fixes it
    p = _file(tmp_path, "a.json", '[{"duration_ms": 1000, "bandwidth_kbps": 20000000}]')
    assert _read_error(p) == (
        f"{p}: implausible rates: peak 2e+04 Mbit/s is above 10 Gbit/s, read in the format's unit; "
        f"the unit is wrong{HINT}: {FIX}"
    )


def test_a_declared_unit_does_not_apply_to_formats_with_their_own(tmp_path):
    # UNIT says MBps, but Sabre's bandwidth_kbps is kbit/s: 3000 kbit/s = 3 Mbit/s
    p = _file(tmp_path, "a.json", '[{"duration_ms": 1000, "bandwidth_kbps": 3000}]')
    (p.parent / "UNIT").write_text("MBps\n")
    assert read_trace(p).mbps.tolist() == [3.0]


# ----------------------------------------------------------------------------- mahimahi


def test_mahimahi_single_stamp(tmp_path):
    # period 5 ms: one bin of 5 ms holding one packet: 12000 bit / 0.005 s = 2.4 Mbit/s
    p = _file(tmp_path, "one.mm", "5\n")
    tr = read_trace(p, "mahimahi")
    assert tr.duration_s.tolist() == [0.005]
    assert tr.mbps.tolist() == pytest.approx([2.4], rel=1e-12)
    assert tr.name == "one.mm"
    assert tr.source == str(p)


def test_mahimahi_negative_stamp_names_its_line(tmp_path):
    p = _file(tmp_path, "a.mm", "0\n-5\n7\n")
    with pytest.raises(InputError) as e:
        read_trace(p, "mahimahi")
    assert (e.value.line, str(e.value)) == (2, f"{p}:2: negative timestamp")


def test_mahimahi_decreasing_stamp_names_its_line(tmp_path):
    # 5, 5 is allowed (two packets in the same ms); 3 after 5 is on line 3
    p = _file(tmp_path, "a.mm", "5\n5\n3\n")
    with pytest.raises(InputError) as e:
        read_trace(p, "mahimahi")
    assert (e.value.line, str(e.value)) == (3, f"{p}:3: timestamps decrease")


def test_mahimahi_bad_line_is_quoted_up_to_40_characters(tmp_path):
    p = _file(tmp_path, "a.mm", "1\n" + "x" * 45 + "\n")
    assert _read_error(p, "mahimahi") == f"{p}:2: expected one integer millisecond timestamp per line, got {'x' * 40!r}"


@pytest.mark.parametrize("text", ["1 2\n\r\n5\n", "1\t2\n\r\n5\n", "1 2\n\x0b\n5\n", "1\t2\n\x0b\n5\n"])
def test_mahimahi_two_numbers_on_a_line_are_refused(tmp_path, text):
    p = _file(tmp_path, "a.mm", text)
    with pytest.raises(InputError) as e:
        read_trace(p, "mahimahi")
    assert e.value.line == 1
    assert "expected one integer millisecond timestamp per line" in str(e.value)


def test_mahimahi_too_many_bins_is_refused(tmp_path):
    # last stamp 1e9 + 1 ms: ceil(1000000001 / 100) = 10000001 bins, one above the limit
    p = _file(tmp_path, "a.mm", "0\n1000000001\n")
    with pytest.raises(InputError) as e:
        read_trace(p, "mahimahi")
    assert (e.value.path, e.value.line) == (p, 2)
    assert str(e.value) == f"{p}:2: last timestamp 1000000001 ms spans 10000001 bins of 100 ms (limit 10000000)"


# ----------------------------------------------------------------------------- Sabre


def test_sabre_invalid_json_names_the_format(tmp_path):
    p = _file(tmp_path, "a.json", "[{")
    with pytest.raises(InputError) as e:
        read_trace(p, "sabre")
    assert str(e.value).startswith(f"{p}:1: invalid JSON in Sabre trace file (")


def test_sabre_not_a_list_is_refused(tmp_path):
    p = _file(tmp_path, "a.json", '{"duration_ms": 1000, "bandwidth_kbps": 3000}')
    assert (
        _read_error(p, "sabre") == f"{p}: expected a JSON list of {{duration_ms, bandwidth_kbps[, latency_ms]}} objects"
    )


def test_sabre_trace_is_named_after_its_file(tmp_path):
    p = _file(tmp_path, "s.json", '[{"duration_ms": 500, "bandwidth_kbps": 3000, "latency_ms": 20}]')
    tr = read_trace(p, "sabre")
    assert (tr.duration_s.tolist(), tr.mbps.tolist(), tr.latency_ms.tolist()) == ([0.5], [3.0], [20.0])
    assert (tr.name, tr.source) == ("s.json", str(p))


# ----------------------------------------------------------------------------- CSV with header


def test_csv_long_unknown_header_is_quoted_up_to_80_characters(tmp_path):
    p = _file(tmp_path, "a.csv", "a" * 90 + "\n0,1\n")
    assert _read_error(p, "csv") == (
        f"{p}:1: unknown CSV header {'a' * 80!r}: expected time_s|time_ms, then mbps|kbps|bps|bytes_per_s, "
        "then optionally rtt_ms|latency_ms (units must be named)"
    )


def test_csv_bad_row_names_the_header_and_the_file_line(tmp_path):
    # the header is line 1, so the bad row '1,x' is the file's line 3 (it was named :2 before)
    p = _file(tmp_path, "a.csv", "time_s,mbps\n0,1\n1,x\n")
    assert _read_error(p, "csv") == f"{p}:3: expected time_s,mbps, got '1,x'"


def test_csv_line_numbers_count_the_header_and_blank_lines(tmp_path):
    # a blank line sends the body to the line-by-line pass: '1,x' and '1,-2' are on the file's line 4
    p = _file(tmp_path, "a.csv", "time_s,mbps\n0,1\n\n1,x\n")
    assert _read_error(p, "csv") == f"{p}:4: expected time_s,mbps, got '1,x'"
    q = _file(tmp_path, "b.csv", "time_s,mbps\n0,1\n\n1,-2\n")
    assert _read_error(q, "csv") == f"{q}:4: negative bandwidth -2"
    # a three-column body of the right shape takes the fast path: the first row is line 2
    r = _file(tmp_path, "c.csv", "time_s,mbps,rtt_ms\n0,-1,5\n1,1,5\n")
    assert _read_error(r, "csv") == f"{r}:2: negative bandwidth -1"


def test_bytes_csv_line_numbers_start_at_the_first_line(tmp_path):
    # no header: the first row is line 1 on the fast path and on the line-by-line pass
    p = _file(tmp_path, "a.csv", "1,-5\n2,1000\n")
    assert _read_error(p, "bytes-csv") == f"{p}:1: negative bytes per second -5"
    q = _file(tmp_path, "b.csv", "1,1000\n\n2,-5\n")
    assert _read_error(q, "bytes-csv") == f"{q}:3: negative bytes per second -5"


def test_cooked_fast_path_names_the_first_line(tmp_path):
    p = _file(tmp_path, "a.cooked", "0 -1\n1 1\n")
    assert _read_error(p, "cooked") == f"{p}:1: negative bandwidth -1"


def test_csv_negative_rate_names_the_file_line(tmp_path):
    p = _file(tmp_path, "a.csv", "time_s,mbps\n0,1\n1,-2\n")
    assert _read_error(p, "csv") == f"{p}:3: negative bandwidth -2"


def test_csv_negative_latency_names_the_column_and_line(tmp_path):
    p = _file(tmp_path, "a.csv", "time_s,mbps,latency_ms\n0,1,5\n1,1,-3\n")
    assert _read_error(p, "csv") == f"{p}:3: negative latency_ms -3"


def test_csv_units_from_the_header(tmp_path):
    # time in ms, rates in kbit/s: rows at 0, 1, 2 s; the first row only fixes the start
    p = _file(tmp_path, "c.csv", "time_ms,kbps,rtt_ms\n0,1000,20\n1000,3000,40\n2000,5000,60\n")
    tr = read_trace(p)
    assert tr.duration_s.tolist() == [1.0, 1.0]
    assert tr.mbps.tolist() == [3.0, 5.0]
    assert tr.latency_ms.tolist() == [40.0, 60.0]
    assert (tr.name, tr.source) == ("c.csv", str(p))


# ----------------------------------------------------------------------------- G-NetTrack

GH = "Timestamp,DL_bitrate\n"


def test_gnettrack_rows_are_per_second_and_named_after_the_file(tmp_path):
    # two 1 s rows at 1000 and 2000 kbit/s; the first covers the second before its stamp
    p = _file(tmp_path, "g.csv", GH + "2020.01.01_00.00.00,1000\n2020.01.01_00.00.01,2000\n")
    tr = read_trace(p, "gnettrack")
    assert (tr.duration_s.tolist(), tr.mbps.tolist()) == ([1.0, 1.0], [1.0, 2.0])
    assert (tr.name, tr.source) == ("g.csv", str(p))
    assert tr.t0_s == 0.0  # times count from the first stamp; the start one second before it clips to 0


def test_gnettrack_unit_can_be_given(tmp_path):
    p = _file(tmp_path, "g.csv", GH + "2020.01.01_00.00.00,1\n2020.01.01_00.00.01,2\n")
    assert read_trace(p, "gnettrack", unit="mbps").mbps.tolist() == [1.0, 2.0]
    assert (
        _read_error(p, "gnettrack", unit="furlongs")
        == f"{p}: unknown rate unit 'furlongs'; valid: mbps, kbps, bps, MBps, kBps, Bps"
    )


def test_gnettrack_needs_its_columns(tmp_path):
    p = _file(tmp_path, "g.csv", "Foo,Bar\n1,2\n")
    assert _read_error(p, "gnettrack") == f"{p}:1: G-NetTrack CSV needs 'Timestamp' and 'DL_bitrate' columns"


def test_gnettrack_short_row_names_its_line(tmp_path):
    # the first data row has both needed columns (Other is not needed); the second lacks DL_bitrate
    p = _file(tmp_path, "g.csv", "Timestamp,DL_bitrate,Other\n2020.01.01_00.00.00,1000\n2020.01.01_00.00.01\n")
    assert _read_error(p, "gnettrack") == f"{p}:3: expected 3 columns"


def test_gnettrack_empty_values_are_skipped(tmp_path):
    # the empty row is skipped: rows at 0 s and 2 s, the second covering (0, 2]
    text = GH + "2020.01.01_00.00.00,1000\n2020.01.01_00.00.01,\n2020.01.01_00.00.02,3000\n"
    tr = read_trace(_file(tmp_path, "g.csv", text), "gnettrack")
    assert (tr.duration_s.tolist(), tr.mbps.tolist()) == ([1.0, 2.0], [1.0, 3.0])


def test_gnettrack_without_any_value_is_refused(tmp_path):
    p = _file(tmp_path, "g.csv", GH + "2020.01.01_00.00.00,-\n")
    assert _read_error(p, "gnettrack") == f"{p}: no rows with a DL_bitrate value"


def test_gnettrack_long_bad_stamp_is_quoted_up_to_30_characters(tmp_path):
    p = _file(tmp_path, "g.csv", GH + "x" * 35 + ",1000\n")
    assert _read_error(p, "gnettrack") == f"{p}:2: Timestamp {'x' * 30!r} is not YYYY.MM.DD_HH.MM.SS"


@pytest.mark.parametrize(
    "stamp",
    [
        "2020.01.01_24.00.00",  # hour 24
        "2020.01.01_00.60.00",  # minute 60
        "2020.01.01_00.00.61",  # second 61 (60 is a leap second)
    ],
)
def test_gnettrack_out_of_range_clock_is_refused(tmp_path, stamp):
    p = _file(tmp_path, "g.csv", GH + stamp + ",1000\n")
    assert _read_error(p, "gnettrack") == f"{p}:2: Timestamp {stamp!r} is not YYYY.MM.DD_HH.MM.SS"


def test_gnettrack_stamp_with_six_numbers_in_other_places_is_refused(tmp_path):
    # 19 characters but seven numbers: not the YYYY.MM.DD_HH.MM.SS layout
    p = _file(tmp_path, "g.csv", GH + "2020.01.01_00.00.00,1000\n2020.01.01_00.0.0.0,1000\n")
    assert _read_error(p, "gnettrack") == f"{p}:3: Timestamp '2020.01.01_00.0.0.0' is not YYYY.MM.DD_HH.MM.SS"


def test_gnettrack_leap_second_and_leap_day(tmp_path):
    # 23:59:59 on 29 Feb 2020, then the leap second 23:59:60, then 00:00:00 on 1 Mar (= 23:59:60 + 0 s
    # in this count, which has no leap seconds: stamp 60 is second 86400 of the day, as is 00:00:00
    # next day, so the two rows share a second and are averaged)
    text = GH + "2020.02.29_23.59.59,1000\n2020.02.29_23.59.60,2000\n2020.03.01_00.00.00,4000\n"
    tr = read_trace(_file(tmp_path, "g.csv", text), "gnettrack")
    assert (tr.duration_s.tolist(), tr.mbps.tolist()) == ([1.0, 1.0], [1.0, 3.0])


def test_gnettrack_clock_steps_back(tmp_path):
    # seconds 0, 2, 1, 5, 3: the step back of 1 s (row 3) merges into second 2; the step back of
    # 2 s (row 5, file line 6) is an error
    rows = ["00", "02", "01", "05", "03"]
    text = GH + "".join(f"2020.01.01_00.00.{s},1000\n" for s in rows)
    p = _file(tmp_path, "g.csv", text)
    assert _read_error(p, "gnettrack") == f"{p}:6: Timestamp steps back 2 s"
    # without the last row: seconds 0 and 2 (two rows averaged), then 5
    text = GH + "".join(f"2020.01.01_00.00.{s},{v}\n" for s, v in zip(rows[:4], (1000, 2000, 4000, 5000)))
    tr = read_trace(_file(tmp_path, "h.csv", text), "gnettrack")
    assert (tr.duration_s.tolist(), tr.mbps.tolist()) == ([1.0, 2.0, 3.0], [1.0, 3.0, 5.0])


# ----------------------------------------------------------------------------- more readers, detection, writer


def test_read_cooked_and_read_mahimahi_force_their_format(tmp_path):
    # "5\n7\n" looks like mahimahi and "0 1\n1 2\n" like cooked; the named readers do not guess
    mm = _file(tmp_path, "a.mm", "5\n7\n")
    with pytest.raises(InputError, match="expected 'time_s value' \\(two numbers\\)"):
        read_cooked(mm)
    ck = _file(tmp_path, "a.cooked", "0 1\n1 2\n")
    with pytest.raises(InputError, match="expected one integer millisecond timestamp per line"):
        read_mahimahi(ck)


def test_cooked_name_source_and_unknown_unit(tmp_path):
    p = _file(tmp_path, "k.cooked", "0 1\n1 2\n")
    tr = read_trace(p, "cooked")
    assert (tr.name, tr.source) == ("k.cooked", str(p))
    assert (
        _read_error(p, "cooked", unit="furlongs")
        == f"{p}: unknown rate unit 'furlongs'; valid: mbps, kbps, bps, MBps, kBps, Bps"
    )


def test_first_negative_value_and_time_are_named(tmp_path):
    # the rate 0 on line 2 is allowed; -2 on line 3 is not
    p = _file(tmp_path, "a.cooked", "0 1\n1 0\n2 -2\n")
    assert _read_error(p, "cooked") == f"{p}:3: negative bandwidth -2"
    q = _file(tmp_path, "b.cooked", "0 1\n-1 1\n")
    assert _read_error(q, "cooked") == f"{q}:2: negative time -1"


def test_cooked_bad_lines_are_named_and_quoted_up_to_60_characters(tmp_path):
    p = _file(tmp_path, "a.cooked", "0 1\n1 abc\n")  # two fields, one not a number
    assert _read_error(p, "cooked") == f"{p}:2: expected 'time_s value' (two numbers), got '1 abc'"
    q = _file(tmp_path, "b.cooked", "0 1\n" + "y" * 70 + "\n")
    assert _read_error(q, "cooked") == f"{q}:2: expected 'time_s value' (two numbers), got {'y' * 60!r}"


def test_blank_lines_keep_file_line_numbers(tmp_path):
    p = _file(tmp_path, "a.cooked", "0 1\n\n1 -2\n")
    assert _read_error(p, "cooked") == f"{p}:3: negative bandwidth -2"


def test_bytes_csv_unit_blank_lines_and_bad_rows(tmp_path):
    # 1000 and 2000 kB/s = 8 and 16 Mbit/s; the first row covers (0, 1]; a blank line is skipped
    p = _file(tmp_path, "b.csv", "1,1000\n\n2,2000\n")
    tr = read_trace(p, "bytes-csv", unit="kBps")
    assert (tr.duration_s.tolist(), tr.mbps.tolist()) == ([1.0, 1.0], [8.0, 16.0])
    assert (
        _read_error(p, "bytes-csv", unit="furlongs")
        == f"{p}: unknown rate unit 'furlongs'; valid: mbps, kbps, bps, MBps, kBps, Bps"
    )
    q = _file(tmp_path, "c.csv", "1,1000\n2,x\n")
    assert _read_error(q, "bytes-csv") == f"{q}:2: expected 'second,bytes_per_second', got '2,x'"


def test_sabre_bad_entry_names_its_file_line(tmp_path):
    # the text starts with a newline: entry 1 (duration 0) is on line 4
    text = '\n[\n{"duration_ms": 1000, "bandwidth_kbps": 1000},\n{"duration_ms": 0, "bandwidth_kbps": 1000}\n]\n'
    p = _file(tmp_path, "a.json", text)
    assert _read_error(p, "sabre") == f"{p}:4: entry 1: invalid duration_ms 0"


def test_detection_messages_and_gnettrack_header(tmp_path):
    g = _file(tmp_path, "g.csv", GH + "2020.01.01_00.00.00,1000\n")
    assert detect_format(g) == "gnettrack"
    n = _file(tmp_path, "n.csv", "1,2,3\n")
    with pytest.raises(InputError) as e:
        detect_format(n)
    assert str(e.value) == (
        f"{n}:1: numeric CSV with 3 columns and no header: unknown layout and units; "
        "add a header time_s,mbps[,rtt_ms] or pass --format"
    )
    z = _file(tmp_path, "z.txt", "z" * 70 + "\n")
    with pytest.raises(InputError) as e:
        detect_format(z)
    assert str(e.value) == (
        f"{z}:1: cannot tell the trace format from the first line {'z' * 60!r}; "
        "pass --format (cooked, mahimahi, sabre, gnettrack, bytes-csv, csv)"
    )


def test_mahimahi_writer_refuses_more_than_50_million_packets():
    # 1e6 Mbit/s for 1 s = 1e12 bit / 12000 bit per packet = 8.33e7 packets
    tr = Trace(np.array([1.0]), np.array([1e6]), name="big", source="src.txt")
    with pytest.raises(InputError) as e:
        format_trace(tr, "mahimahi")
    assert str(e.value) == (
        "src.txt: trace carries 8.33e+07 packets of 1500 bytes per loop; "
        "mahimahi output is limited to 50000000 (lower the rates or shorten the trace)"
    )


def test_sabre_integers_beyond_int64_are_read_as_floats(tmp_path):
    # 1e30 kbit/s = 1e27 Mbit/s: refused (by Trace's own range check) with a message, not a crash
    p = _file(tmp_path, "a.json", '[{"duration_ms": 1000, "bandwidth_kbps": 1' + "0" * 30 + "}]")
    with pytest.raises(InputError, match="1e\\+27 Mbit/s"):
        read_trace(p, "sabre")


def test_a_first_line_starting_with_x_is_not_sabre(tmp_path):
    p = _file(tmp_path, "x.txt", "X\n")
    with pytest.raises(InputError, match="cannot tell the trace format from the first line 'X'"):
        detect_format(p)


@pytest.mark.parametrize("text", ["1\x0b2\n\n-5\n", "\n1\x0b2\n-5\n"])
def test_mahimahi_signed_stamp_after_a_blank_line_is_not_an_integer(tmp_path, text):
    # a blank (or leading empty) line sends the file to the line-by-line reader, where '-5' is not
    # a run of digits; the vertical tab is a line break there
    p = _file(tmp_path, "a.mm", text)
    with pytest.raises(InputError, match="expected one integer millisecond timestamp per line, got '-5'"):
        read_trace(p, "mahimahi")


def test_comma_readers_refuse_whitespace_separated_rows(tmp_path):
    # two whitespace-separated numbers a line are a cooked row, not a CSV row: refused on line 1 (2 after a header)
    p = _file(tmp_path, "a.csv", "1 1000\n2 2000\n")
    assert _read_error(p, "bytes-csv") == f"{p}:1: expected 'second,bytes_per_second', got '1 1000'"
    q = _file(tmp_path, "b.csv", "time_s,mbps\n0 1\n1 2\n")
    assert _read_error(q, "csv") == f"{q}:2: expected time_s,mbps, got '0 1'"

"""Every real set in ../shared/data/traces loads with the right units.

Expected figures are the ones stated in each set's PROVENANCE.md (rounded there). Those
per-file means are plain averages of the file's values; here they are recomputed as the
plain average over the trace's segments, which drops each cooked file's first sample (it
only fixes the start time), hence a 2 % tolerance on top of the rounding. A unit mistake
would be off by 8x or 1000x.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from traces.catalog import REAL_SETS, real_set_of
from traces.formats import detect_format
from traces.sets import list_trace_files, load_traces
from traces.trace import Trace


@pytest.fixture(scope="module")
def root(shared_data) -> Path:
    return shared_data / "traces"


def _load(root: Path, folder: str, pattern: str = "") -> dict[str, Trace]:
    spec = str(root / folder / pattern) if pattern else str(root / folder)
    files = list_trace_files(spec)
    return {p.name: t for p, t in zip(files, load_traces(spec))}


def _stats(values):
    v = np.asarray(list(values))
    return v.min(), v.max(), float(np.median(v))


def _close(got, want, rel=0.02, abs_=0.0):
    assert got == pytest.approx(want, rel=rel, abs=abs_), f"got {got}, PROVENANCE says {want}"


def test_every_file_is_detected_as_its_sets_format(root):
    files = list_trace_files(str(root))
    assert len(files) == 662  # 13 + 100 + 80 + 86 + 40 + 100 + 100 + 83 + 60 data files
    wrong = [f for f in files if detect_format(f) != real_set_of(f).fmt]
    assert not wrong
    assert {real_set_of(f).folder for f in files} == set(REAL_SETS)


# mahimahi PROVENANCE table: lines, span (s), mean capacity (Mbit/s)
MAHIMAHI = {
    "ATT-LTE-driving-2016.down": (120.0, 4.56),
    "ATT-LTE-driving-2016.up": (120.0, 1.91),
    "ATT-LTE-driving.down": (786.1, 5.17),
    "ATT-LTE-driving.up": (1012.5, 0.83),
    "TMobile-LTE-driving.down": (474.6, 12.77),
    "TMobile-LTE-short.down": (140.0, 16.70),
    "TMobile-LTE-short.up": (140.0, 13.32),
    "TMobile-UMTS-driving.down": (928.4, 2.02),
    "TMobile-UMTS-driving.up": (931.2, 0.94),
    "Verizon-EVDO-driving.down": (1062.0, 0.52),
    "Verizon-EVDO-driving.up": (1064.7, 0.84),
    "Verizon-LTE-short.down": (140.0, 5.03),
    "Verizon-LTE-short.up": (140.0, 5.95),
}


def test_mahimahi_packets_per_ms(root):
    traces = _load(root, "mahimahi-us-cellular")
    assert set(traces) == set(MAHIMAHI)
    for name, (span_s, mean_mbps) in MAHIMAHI.items():
        assert traces[name].total_s == pytest.approx(span_s, abs=0.06), name
        assert traces[name].mean_mbps == pytest.approx(mean_mbps, abs=0.006), name


def test_fcc_cooked_mbps(root):
    tr = _load(root, "fcc-broadband-2016-pensieve-cooked")
    assert len(tr) == 100
    durs = [t.total_s for t in tr.values()]
    assert min(durs) >= 299 and max(durs) <= 320
    lo, hi, med = _stats(t.mbps.mean() for t in tr.values())
    _close(lo, 0.42), _close(hi, 3.28), _close(med, 1.07)
    five = [t for n, t in tr.items() if n.startswith("trace_")]
    assert len(five) == 59 and all(np.allclose(t.duration_s, 5.0) for t in five)


def test_norway_cooked_mbps(root):
    tr = _load(root, "norway-hsdpa-3g-pensieve-cooked")
    assert len(tr) == 80
    lo, hi, med = _stats(t.total_s for t in tr.values())
    assert (round(lo), round(hi)) == (68, 317)
    lo, hi, med = _stats(t.mbps.mean() for t in tr.values())
    _close(lo, 0.60), _close(hi, 4.59), _close(med, 1.35)


def test_norway_sabre_kbps(root):
    tr = _load(root, "norway-hsdpa-3g-sabre-json")
    assert len(tr) == 86
    lo, hi, med = _stats(t.total_s for t in tr.values())
    assert lo == pytest.approx(196, abs=1) and hi == pytest.approx(12_224, abs=1) and med == pytest.approx(1161, abs=1)
    lo, hi, med = _stats(t.mean_mbps * 1000 for t in tr.values())  # duration-weighted, kbit/s
    _close(lo, 56), _close(hi, 3471, 0.001), _close(med, 987, 0.001)
    assert all(np.all(t.latency_ms == 100) for t in tr.values())


def test_belgium_sabre_kbps(root):
    tr = _load(root, "belgium-4g-lte-sabre-json")
    assert len(tr) == 40
    lo, hi, med = _stats(t.total_s for t in tr.values())
    assert (round(lo), round(hi), round(med)) == (166, 763, 477)
    lo, hi, med = _stats(t.mean_mbps * 1000 for t in tr.values())
    _close(lo, 14_062, 1e-4), _close(hi, 59_720, 1e-4), _close(med, 31_935, 1e-4)
    assert all(np.all(t.latency_ms == 20) for t in tr.values())


def test_puffer_megabytes_per_second(root):
    tr = _load(root, "puffer-2021-10-17-merina-cooked")
    assert len(tr) == 100
    assert REAL_SETS["puffer-2021-10-17-merina-cooked"].unit == "MBps"
    lo, hi, med = _stats(t.mbps.mean() / 8 for t in tr.values())  # back in the file's MB/s
    _close(lo, 0.32), _close(hi, 3.46), _close(med, 1.97)
    assert max(t.mbps.max() for t in tr.values()) == pytest.approx(21.3 * 8, rel=0.01)


def test_oboe_cooked_mbps(root):
    tr = _load(root, "oboe-merina-cooked")
    assert len(tr) == 100
    lo, hi, med = _stats(t.total_s for t in tr.values())
    assert (round(lo), round(hi), round(med)) == (147, 196, 176)
    lo, hi, med = _stats(t.mbps.mean() for t in tr.values())
    _close(lo, 0.35), _close(hi, 4.91), _close(med, 2.94)
    assert max(t.mbps.max() for t in tr.values()) == pytest.approx(10.26, abs=0.01)


def test_ucc_5g_kbps(root):
    tr = _load(root, "ucc-5g-mmsys2020")
    assert len(tr) == 83
    assert max(t.mbps.max() for t in tr.values()) == pytest.approx(532.905)  # DL_bitrate max 532,905 kbit/s


def test_sbu_bytes_per_second(root):
    for kind, (lo_w, hi_w, med_w) in {"wifi": (1.5, 52.2, 25.0), "cellular": (0.8, 53.5, 40.1)}.items():
        tr = _load(root, "sbu-fsc-wifi-cellular-pairs", f"*_{kind}.csv")
        assert len(tr) == 30
        lo, hi, med = _stats(t.mean_mbps for t in tr.values())
        _close(lo, lo_w, abs_=0.05), _close(hi, hi_w), _close(med, med_w)  # stated to one decimal
        assert all(t.duration_s[0] == 1.0 for t in tr.values())

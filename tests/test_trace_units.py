"""Trace value units come from what the data says; implausible rates are refused or warned about."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from abr.errors import InputError
from traces.catalog import declared_unit
from traces.formats import TraceUnitWarning, read_trace
from traces.sets import load_traces

PUFFER = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces" / "puffer-2021-10-17-merina-cooked"
PUFFER_NAME = "trace+2DPNtEJUochZNjS8MTCYKZgTjkJ2Tj77Y5QyJpa4lI=_0"


def _cooked(path: Path, values) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i * 2.0} {v}\n" for i, v in enumerate(values)))
    return path


def test_puffer_files_under_another_folder_name_are_read_as_megabytes(tmp_path):
    values = [0.5, 2.0, 1.0, 3.0]
    day = _cooked(tmp_path / "puffer-2022-01-05-other-day" / PUFFER_NAME, values)
    plain = _cooked(tmp_path / "mine" / "trace_0", values)
    assert declared_unit(day)[0] == "MBps" and declared_unit(plain) is None
    # cooked rows: row i holds from row i-1's time, so the first value only fixes the start
    assert read_trace(day).mbps.tolist() == [8 * v for v in values[1:]]
    assert read_trace(plain).mbps.tolist() == values[1:]
    assert load_traces(str(day.parent))[0].mean_mbps == pytest.approx(8 * np.mean(values[1:]))
    assert read_trace(day, unit="mbps").mbps.tolist() == values[1:]  # --trace-unit still wins


@pytest.mark.skipif(not PUFFER.is_dir(), reason="../shared/data/traces (Puffer set) not present")
def test_real_puffer_file_copied_under_a_new_name_keeps_its_unit(tmp_path):
    src = PUFFER / PUFFER_NAME
    dst = tmp_path / "puffer-2021-10-18" / PUFFER_NAME
    dst.parent.mkdir()
    shutil.copy(src, dst)
    assert read_trace(dst).mean_mbps == pytest.approx(read_trace(src).mean_mbps)
    assert read_trace(dst).mean_mbps == pytest.approx(8 * read_trace(src, unit="mbps").mean_mbps)


def test_a_unit_line_beside_the_traces_declares_the_unit(tmp_path):
    f = _cooked(tmp_path / "set" / "a" / "t.txt", [500, 1500, 2500])
    (tmp_path / "set" / "PROVENANCE.md").write_text("# my set\n\n- unit: kbit/s\n")
    assert declared_unit(f) == ("kbps", f"declared in {tmp_path / 'set' / 'PROVENANCE.md'}")
    assert read_trace(f).mbps.tolist() == [1.5, 2.5]
    (tmp_path / "set" / "a" / "UNIT").write_text("kBps\n")  # the nearer folder wins
    assert read_trace(f).mbps.tolist() == [12.0, 20.0]
    (tmp_path / "set" / "a" / "UNIT").write_text("MBps\n")  # 1500 MB/s = 12 Gbit/s: no network
    with pytest.raises(InputError, match="above 10 Gbit/s, read as MBps .declared in .*UNIT"):
        read_trace(f)
    (tmp_path / "set" / "a" / "UNIT").write_text("furlongs\n")
    with pytest.raises(InputError, match="unknown rate unit 'furlongs'"):
        read_trace(f)


def test_kbit_values_read_as_mbit_are_warned_or_refused(tmp_path):
    warned = _cooked(tmp_path / "k1" / "t.txt", [4000, 5000, 6000, 5000])  # 5 Mbit/s as kbit/s
    with pytest.warns(TraceUnitWarning, match="--trace-unit kbps"):
        assert read_trace(warned).mean_mbps == pytest.approx(16000 / 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_trace(warned, unit="kbps").mean_mbps == pytest.approx(16 / 3)
    refused = _cooked(tmp_path / "k2" / "t.txt", [20000, 25000, 12000])
    with pytest.raises(InputError, match=r"peak 2\.5e\+04 Mbit/s is above 10 Gbit/s.*--trace-unit"):
        read_trace(refused)
    with pytest.raises(InputError, match="above 10 Gbit/s"):
        load_traces(str(refused.parent))
    assert read_trace(refused, unit="kbps").mbps.tolist() == [25.0, 12.0]


def test_rates_below_one_bit_per_second_are_refused(tmp_path):
    f = _cooked(tmp_path / "t.txt", [1e-8, 2e-8, 5e-8])
    with pytest.raises(InputError, match="below 1 bit/s.*--trace-unit"):
        read_trace(f)

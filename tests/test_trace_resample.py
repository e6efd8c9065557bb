"""Resampling a long trace: bins where nothing arrives are exactly 0, not rounding residue of the
cumulative sums (which the trace's own bounds would refuse as a sub-1e-9 Mbit/s rate)."""

from __future__ import annotations

import numpy as np

from traces.formats import read_trace
from traces.stats import summarize
from traces.trace import Trace


def test_zero_stretches_resample_to_exact_zeros():
    rng = np.random.default_rng(5)
    blocks = [rng.uniform(0.1, 9.0, 37) if i % 2 else np.zeros(23) for i in range(250)]  # 0.1-s rows
    mbps = np.concatenate(blocks)
    tr = Trace(np.full(len(mbps), 0.1), mbps, name="bursty")
    out = tr.resample(1.0)
    assert np.all((out.mbps == 0) | (out.mbps > 1e-3))
    idle = np.add.reduceat(mbps, np.arange(0, len(mbps), 10)) == 0  # 1-s bins with no bytes at all
    assert idle.any() and np.all(out.mbps[idle] == 0)
    assert np.isclose((out.mbps * out.duration_s).sum(), (mbps * 0.1).sum(), rtol=1e-9)


def test_real_mahimahi_drive_summarizes(shared_data):
    # this drive's 1-s resample left a 2e-12 Mbit/s residue that the trace bounds refused
    path = shared_data / "traces" / "mahimahi-us-cellular" / "TMobile-UMTS-driving.down"
    tr = read_trace(path)
    s = summarize([tr])
    assert s.outage_share > 0 and np.isfinite(s.lag1_autocorr)

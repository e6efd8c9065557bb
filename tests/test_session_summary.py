"""Session summaries do not depend on the batch a session ran in (bit for bit)."""

from __future__ import annotations

import numpy as np

from abr.ladder import Ladder, RungInfo
from abr.qoe import get_qoe
from policies.bola import BOLA
from sim.device import DeviceProfile
from sim.session import _chunk_sum, run_sessions
from traces.trace import Trace


def _ladder(rng: np.random.Generator, chunks: int = 37) -> Ladder:
    sizes = np.sort(rng.uniform(2e4, 4e5, size=(chunks, 4)), axis=1)
    lp = np.sort(rng.uniform(0.01, 0.4, size=(chunks, 4)), axis=1)[:, ::-1].copy()
    return Ladder(
        name="t",
        rungs=tuple(RungInfo("h265", "h265", k) for k in (100.0, 200.0, 400.0, 800.0)),
        duration_s=rng.uniform(1.9, 2.1, chunks),
        frames=np.full(chunks, 50),
        size_bytes=sizes,
        lpips_mean=lp,
        lpips_p95=lp * 1.3,
        severe_frac=rng.uniform(0, 0.3, size=(chunks, 4)),
    )


def test_chunk_sum_is_in_chunk_order_for_any_batch():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(40, 6)) * 10.0 ** rng.integers(-8, 8, size=(40, 6))
    want = [0.0] * 6
    for j in range(6):  # the plain left-to-right sum, by hand
        acc = 0.0
        for v in values[:, j]:
            acc += float(v)
        want[j] = acc
    assert _chunk_sum(values).tolist() == want
    for j in range(6):
        assert _chunk_sum(values[:, j : j + 1]).tolist() == [want[j]]
    assert _chunk_sum(np.zeros((0, 3))).tolist() == [0.0, 0.0, 0.0]


def test_summary_of_a_session_alone_equals_its_row_in_a_batch():
    rng = np.random.default_rng(3)
    traces = [Trace(np.full(80, 1.0), rng.uniform(0.05, 1.5, 80)) for _ in range(4)]
    kw = dict(ladder=_ladder(rng), device=DeviceProfile("t", {"*": 5.0}), qoe=get_qoe("perceptual"), seed=7)
    batch = run_sessions(BOLA(), traces, sessions=9, **kw).summary_arrays()
    for i in range(9):
        one = run_sessions(BOLA(), traces, session_ids=np.array([i]), **kw).summary_arrays()
        for name, arr in batch.items():
            assert arr[i] == one[name][0], (name, i, arr[i] - one[name][0])

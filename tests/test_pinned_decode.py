"""policies.decode pinned by hand: the decode-time estimate a decode-aware client keeps.

predicted[k, r] = nominal[k, r] x ratio[decoder of r], ratio = the median of the last ``memory``
observed / nominal decode times of that decoder variant; an unseen variant takes the largest
ratio seen on any other, and 1 before anything is seen (module docstring of policies.decode).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import make_ladder

from abr.qoe import get_qoe
from policies.base import Observation, PolicyContext
from policies.decode import DecodeEstimate, faster_rung

LOG = get_qoe("pensieve-log")
NOMINAL = np.array([0.5, 1.0, 2.0])  # nominal decode seconds of rungs 0, 1, 2 (every chunk)


def ctx_of(decoders=("npu", "h265", "npu"), n_chunks=12):
    lad = make_ladder([[100e3, 200e3, 400e3]] * n_chunks, kbps=[400.0, 800.0, 1600.0])
    lad = dataclasses.replace(lad, rungs=tuple(dataclasses.replace(r, decoder=d) for r, d in zip(lad.rungs, decoders)))
    dec = np.tile(NOMINAL, (n_chunks, 1)) * (1.0 + 0.1 * np.arange(n_chunks))[:, None]  # nominal grows per chunk
    return PolicyContext(lad, LOG, LOG.chunk_quality(lad), dec, 25.0)


def obs_of(k, last_rung, decode_s):
    last = np.atleast_1d(np.asarray(last_rung, dtype=np.int64))
    n = len(last)
    dec = None if decode_s is None else np.full((n, 4), np.nan)
    if dec is not None:
        dec[:, -1] = decode_s
    z = np.zeros(n)
    hist = np.full((n, 4), np.nan)
    return Observation(k, z, last, hist, hist, z, z, z, decode_s=dec)


def estimate(ctx, n=1, memory=3):
    est = DecodeEstimate(memory)
    est.reset(ctx, n)
    return est


def test_decoder_variants_are_indexed_by_sorted_name():
    est = estimate(ctx_of(("npu", "h265", "npu")))
    assert est.index.tolist() == [1, 0, 1]  # h265 < npu
    assert est.hist.shape == (1, 2, 3) and np.isnan(est.hist).all()
    assert estimate(ctx_of(), n=4, memory=5).hist.shape == (4, 2, 5)


def test_nothing_seen_predicts_the_nominal_table():
    ctx = ctx_of()
    est = estimate(ctx, n=2)
    assert est.ratio().tolist() == [[1.0, 1.0], [1.0, 1.0]]
    # session 0 sees a ratio of 2 on rung 0: session 1, which has seen nothing, keeps 1
    est.update(obs_of(1, [0, -1], [2.0 * ctx.decode_s[0, 0], np.nan]))
    assert est.ratio().tolist() == [[2.0, 2.0], [1.0, 1.0]]
    est = estimate(ctx, n=2)
    pred = est.predict(2, 5)
    assert pred.shape == (2, 3, 3)
    assert pred[1] == pytest.approx(ctx.decode_s[2:5])


def test_ratio_is_the_median_of_the_last_memory_observations():
    ctx = ctx_of()
    est = estimate(ctx, memory=3)
    # rung 1 (h265) fetched at chunks 0..3: observed / nominal 2, 4, 3, 10
    for k, ratio in enumerate([2.0, 4.0, 3.0]):
        est.update(obs_of(k + 1, 1, ratio * ctx.decode_s[k, 1]))
        assert est.hist[0, 0, -1] == pytest.approx(ratio)  # the nominal time of the chunk before
    assert est.ratio()[0, 0] == pytest.approx(3.0)  # median(2, 4, 3)
    est.update(obs_of(4, 1, 10.0 * ctx.decode_s[3, 1]))
    assert est.ratio()[0, 0] == pytest.approx(4.0)  # median(4, 3, 10): the 2 is forgotten
    # the unseen npu variant takes the largest ratio seen on any other
    assert est.ratio()[0, 1] == pytest.approx(4.0)
    pred = est.predict(6, 7)[0, 0]
    assert pred == pytest.approx(4.0 * ctx.decode_s[6])


def test_unseen_variant_takes_the_largest_seen_ratio_per_session():
    ctx = ctx_of(("a", "b", "c"))
    est = estimate(ctx, n=2, memory=1)
    # session 0 saw rung 0 (variant a) at ratio 3; session 1 saw rung 1 (b) at 0.5 and nothing else
    est.update(obs_of(1, [0, 1], [3.0 * ctx.decode_s[0, 0], 0.5 * ctx.decode_s[0, 1]]))
    np.testing.assert_allclose(est.ratio(), [[3.0, 3.0, 3.0], [0.5, 0.5, 0.5]])
    est.update(obs_of(2, [2, 2], [1.5 * ctx.decode_s[1, 2], 6.0 * ctx.decode_s[1, 2]]))
    # session 0: a 3, c 1.5, b unseen -> max 3; session 1: b 0.5, c 6, a unseen -> 6
    np.testing.assert_allclose(est.ratio(), [[3.0, 3.0, 1.5], [6.0, 0.5, 6.0]])


def test_update_skips_what_tells_nothing():
    ctx = ctx_of()
    est = estimate(ctx, n=3)
    est.update(obs_of(0, [0, 0, 0], [9.0, 9.0, 9.0]))  # chunk 0: nothing fetched yet
    est.update(obs_of(1, [0, 0, 0], None))  # no decode times in the observation
    assert np.isnan(est.hist).all()
    # session 0: no previous rung; session 1: a NaN decode time; session 2: counted
    est.update(obs_of(1, [-1, 2, 2], [1.0, np.nan, 4.0 * ctx.decode_s[0, 2]]))
    assert np.isnan(est.hist[:2]).all()
    assert est.hist[2, 1, -1] == pytest.approx(4.0)
    # a rung of zero nominal decode time gives no ratio
    zero = dataclasses.replace(ctx, decode_s=np.zeros_like(ctx.decode_s))
    est = estimate(zero)
    est.update(obs_of(1, 0, 1.0))
    assert np.isnan(est.hist).all()


def test_memory_must_be_positive():
    with pytest.raises(ValueError, match="memory"):
        DecodeEstimate(0)
    assert DecodeEstimate(1).memory == 1
    assert DecodeEstimate().memory == 3


def test_faster_rung_keeps_a_rung_that_fits_exactly_and_never_goes_larger():
    size = np.array([10.0, 20.0, 30.0])
    q = np.array([0.1, 0.5, 0.3])
    # rung 2 predicted at exactly the chunk's 2 s: it fits, kept
    assert faster_rung(np.array([2]), np.array([[0.1, 0.1, 2.0]]), 2.0, q, size).tolist() == [2]
    # rung 0 too slow: rung 1 fits and has better quality, but is larger than rung 0 -> the fastest
    assert faster_rung(np.array([0]), np.array([[3.0, 1.0, 2.5]]), 2.0, q, size).tolist() == [1]
    # rung 2 too slow: rungs 0 and 1 fit and are smaller -> the best quality, rung 1
    assert faster_rung(np.array([2]), np.array([[1.0, 1.5, 2.5]]), 2.0, q, size).tolist() == [1]
    # a rung of equal size counts as no larger: rung 2 (q 0.3) rather than rung 0 (q 0.1)
    got = faster_rung(np.array([1]), np.array([[1.5, 2.5, 1.9]]), 2.0, q, np.array([10.0, 20.0, 20.0]))
    assert got.tolist() == [2] and got.dtype == np.int64
    # per session: session 0 may take rungs 0-1 (best 1), session 1 only rung 0
    pred = np.array([[1.0, 1.0, 3.0], [1.0, 3.0, 3.0]])
    assert faster_rung(np.array([2, 1]), pred, 2.0, q, size).tolist() == [1, 0]

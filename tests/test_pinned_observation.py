"""policies.observation pinned by hand: the vector a learned policy sees, from a hand-built state.

Every expected entry below is worked out by hand from ObservationBuilder's docstring table
(throughput and delay / 10, buffer / cap, (last rung + 1) / R, next chunk's rates / 10, q / max |q|,
decode / chunk duration, backlog / chunk duration, chunks left / total, the lookahead's q and rates,
measured decode times / 10; NaN read as 0; everything clipped to [0, 100]).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import make_ladder

from abr.qoe import get_qoe
from policies.base import Observation, PolicyContext
from policies.observation import ObservationBuilder, check_start_rung, observation_size

NAN = np.nan

# three chunks of 2, 4 and 1 s, two rungs; rates in Mbit/s = bytes x 8e-6 / duration:
# chunk 0: 1, 2; chunk 1: 2, 6; chunk 2: 1, 20 (so / 10: 0.1 0.2 | 0.2 0.6 | 0.1 2.0)
SIZES = [[250_000, 500_000], [1_000_000, 3_000_000], [125_000, 2_500_000]]
DURATION = [2.0, 4.0, 1.0]
# q / max |q| (= 4): -0.25 0.5 | 0.125 1.0 | 0.25 -0.125 (negatives clip to 0)
QUALITY = [[-1.0, 2.0], [0.5, 4.0], [1.0, -0.5]]
# decode seconds / duration: 0.25 0.5 | 0.5 1.5 | 0.25 3.0
DECODE = [[0.5, 1.0], [2.0, 6.0], [0.25, 3.0]]


def _ctx(quality=QUALITY, cap_s=20.0) -> PolicyContext:
    lad = make_ladder(SIZES)
    lad = dataclasses.replace(lad, duration_s=np.array(DURATION))
    return PolicyContext(lad, get_qoe("pensieve-log"), np.array(quality, float), np.array(DECODE), cap_s)


def _obs(chunk, decode_s=((NAN, 0.3), (0.5, 2000.0))) -> Observation:
    """Two sessions with history 2: session 0 has one chunk behind it, session 1 two."""
    return Observation(
        chunk=chunk,
        buffer_s=np.array([4.0, 30.0]),
        last_rung=np.array([-1, 1]),
        throughput_mbps=np.array([[NAN, 5.0], [3.0, 20.0]]),
        delay_s=np.array([[NAN, 2.0], [1.0, 0.5]]),
        decode_backlog_s=np.array([1.0, 2.0]),
        clock_s=np.zeros(2),
        stall_s=np.zeros(2),
        decode_s=None if decode_s is None else np.array(decode_s),
    )


def test_vector_with_lookahead_by_hand():
    b = ObservationBuilder.from_context(_ctx(), history=2, lookahead=2)
    assert (b.n_chunks, b.n_rungs, b.size, b.history, b.lookahead, b.buffer_cap_s) == (3, 2, 20, 2, 2, 20.0)
    v = b(_obs(1))
    assert v.dtype == np.float32 and v.shape == (2, 20)
    # thr (2) | delay (2) | buffer | last | rates (2) | q (2) | decode (2) | backlog | left | q ahead (2)
    # | rates ahead (2) | measured decode (2); chunk 1 lasts 4 s, chunk 2 is the one ahead
    s0 = [0, 0.5, 0, 0.2, 0.2, 0, 0.2, 0.6, 0.125, 1.0, 0.5, 1.5, 0.25, 2 / 3, 0.25, 0, 0.1, 2.0, 0, 0.03]
    s1 = [0.3, 2.0, 0.1, 0.05, 1.5, 1.0, 0.2, 0.6, 0.125, 1.0, 0.5, 1.5, 0.5, 2 / 3, 0.25, 0, 0.1, 2.0, 0.05, 100]
    np.testing.assert_allclose(v, np.array([s0, s1], np.float32), rtol=1e-6, atol=0)


def test_first_chunk_without_lookahead_by_hand():
    b = ObservationBuilder.from_context(_ctx(), history=2)
    assert (b.lookahead, b.n_rungs, b.size) == (1, 2, 16)
    v = b(_obs(0, decode_s=None))
    # chunk 0 lasts 2 s: backlog 1 and 2 s -> 0.5, 1.0; 3 of 3 chunks left; no measured decode -> 0
    s0 = [0, 0.5, 0, 0.2, 0.2, 0, 0.1, 0.2, 0, 0.5, 0.25, 0.5, 0.5, 1.0, 0, 0]
    s1 = [0.3, 2.0, 0.1, 0.05, 1.5, 1.0, 0.1, 0.2, 0, 0.5, 0.25, 0.5, 1.0, 1.0, 0, 0]
    np.testing.assert_allclose(v, np.array([s0, s1], np.float32), rtol=1e-6, atol=0)


def test_past_the_last_chunk_shows_the_last_chunk_and_nothing_left():
    # chunk 3 of 3 (the session is over): the last chunk's row (1 s long), 0 chunks left, nothing ahead
    b = ObservationBuilder.from_context(_ctx(), history=2, lookahead=3)
    assert (b.n_rungs, b.size) == (2, 24)
    v = b(_obs(3))
    tail = [0.1, 2.0, 0.25, 0, 0.25, 3.0, 1.0, 0.0, 0, 0, 0, 0, 0, 0, 0, 0]  # rates, q, decode, backlog, left, ahead
    np.testing.assert_allclose(v[0, 6:22], np.array(tail, np.float32), rtol=1e-6, atol=0)
    # chunk 1 with lookahead 3: chunk 2's q and rates, then zeros past the end of the video
    w = b(_obs(1))
    ahead = [0.25, 0, 0, 0, 0.1, 2.0, 0, 0]  # q of chunks 2, 3 | rates of chunks 2, 3
    np.testing.assert_allclose(w[1, 14:22], np.array(ahead, np.float32), rtol=1e-6, atol=0)


def test_quality_scale_has_a_floor_for_an_all_zero_ladder():
    # max |q| = 1e-12 is below the 1e-9 floor: q / 1e-9 = 1e-3 (not 1); all zeros stay 0 (not NaN)
    b = ObservationBuilder.from_context(_ctx(quality=[[1e-12, 0.0]] * 3), history=2)
    np.testing.assert_allclose(b(_obs(0))[0, 8:10], [1e-3, 0.0], rtol=1e-6)
    z = ObservationBuilder.from_context(_ctx(quality=[[0.0, 0.0]] * 3), history=2)
    assert z(_obs(0))[0, 8:10].tolist() == [0.0, 0.0]


def test_buffer_is_scaled_by_the_cap():
    b = ObservationBuilder.from_context(_ctx(cap_s=8.0), history=2)
    np.testing.assert_allclose(b(_obs(0))[:, 4], [0.5, 3.75], rtol=1e-6)


def test_space_and_size():
    b = ObservationBuilder.from_context(_ctx(), history=2, lookahead=2)
    sp = b.space()
    assert (sp.shape, sp.dtype) == ((20,), np.float32)
    assert sp.low.tolist() == [0.0] * 20 and sp.high.tolist() == [100.0] * 20
    # 3H + 3R + 4 + 2 (L - 1) R
    assert observation_size(8, 6) == 46
    assert observation_size(2, 3, 3) == 6 + 9 + 4 + 12
    assert observation_size(1, 1, 2) == 3 + 3 + 4 + 2


def test_bad_lookahead_and_history_are_refused():
    with pytest.raises(ValueError, match=r"^lookahead must be >= 1, got 0$"):
        ObservationBuilder.from_context(_ctx(), history=2, lookahead=0)
    ObservationBuilder.from_context(_ctx(), history=2, lookahead=1)  # 1 is allowed
    b = ObservationBuilder.from_context(_ctx(), history=3)
    with pytest.raises(ValueError, match=r"^observation has history 2, builder expects 3$"):
        b(_obs(0))


def test_check_start_rung():
    lad = _ctx().ladder
    assert check_start_rung(None, lad) is None
    for r in (0, 1):
        got = check_start_rung(np.int64(r), lad)
        assert got == r and type(got) is int
    for bad in (-1, 2):
        with pytest.raises(ValueError, match=rf"^start_rung must be a rung of the ladder \(0\.\.1\), got {bad}$"):
            check_start_rung(bad, lad)

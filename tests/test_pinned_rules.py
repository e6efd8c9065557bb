"""The smaller policies pinned by hand: Sabre's throughput rule (safety 0.9, insufficient-buffer
rule 0.9 -> 0.5, abandonment after 0.5 s when the projection exceeds 1.8 chunks), the shared
rung rules, Dynamic's hysteresis (Sabre: 10 s), BBA-0 (Pensieve: reservoir 5 s, cushion 10 s)
and the estimators (Sabre's EWMA half-lives 3 s and 8 s)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from conftest import make_ladder

from abr.qoe import get_qoe
from policies.base import DownloadProgress, Observation, PolicyContext
from policies.bba import BBA
from policies.dynamic import Dynamic
from policies.estimators import Ewma, RobustEstimate, harmonic_mean, new_samples
from policies.fixed import Fixed
from policies.rate import IBR_SAFETY_INIT, IBR_SAFETY_MIN, RateBased, Throughput, insufficient_buffer_cap
from policies.rules import best_within, cheapest_at_least, realtime_rungs, throughput_rung, utilities

LOG = get_qoe("pensieve-log")
KBPS = [400.0, 800.0, 1600.0, 3200.0]  # 2 s chunks: 100k, 200k, 400k, 800k bytes


def ctx_of(kbps=KBPS, n=10, chunk_s=2.0, decode=None, qoe=LOG):
    ladder = make_ladder([[k * 1000 / 8 * chunk_s for k in kbps]] * n, chunk_s=chunk_s, kbps=list(kbps))
    dec = np.zeros(ladder.size_bytes.shape) if decode is None else np.broadcast_to(decode, ladder.size_bytes.shape)
    return PolicyContext(ladder, qoe, qoe.chunk_quality(ladder), np.array(dec, dtype=float), 25.0)


def obs_of(k, buffer_s, last=0, thr=None, delay=None):
    b = np.atleast_1d(np.asarray(buffer_s, dtype=float))
    n = len(b)
    hist, dl = np.full((n, 8), np.nan), np.full((n, 8), np.nan)
    if thr is not None:
        t = np.asarray(thr, dtype=float).reshape(n, -1)
        hist[:, -t.shape[1] :] = t
        dl[:, -t.shape[1] :] = 1.0 if delay is None else np.asarray(delay, dtype=float).reshape(n, -1)
    return Observation(k, b, np.full(n, last, dtype=np.int64), hist, dl, np.zeros(n), np.zeros(n), np.zeros(n))


def ready(policy, ctx, n=1):
    policy.reset(ctx, n)
    return policy


# ----------------------------------------------------------------------------- rules


def test_best_within_and_cheapest_at_least():
    q = np.array([0.1, 0.5, 0.5, 0.9])
    size = np.array([1.0, 2.0, 3.0, 4.0])
    allowed = np.array([True, True, True, False])
    assert best_within(q, size, allowed, np.array([0.5, 1.0, 2.5, 3.0, 10.0])).tolist() == [0, 0, 1, 1, 1]
    assert cheapest_at_least(q, size, allowed, np.array([0.0, 0.2, 0.5, 0.6])).tolist() == [0, 1, 1, 1]  # none: best
    # q exactly at the target (within 1e-12) counts as reaching it
    assert cheapest_at_least(q, size, allowed, np.array([0.5 + 1e-13])).tolist() == [1]


def test_realtime_rungs_and_throughput_rung():
    ctx = ctx_of(decode=np.array([1.0, 2.0, 2.5, 3.0]))  # 2 s chunks: rungs 0, 1 decode in time
    assert realtime_rungs(ctx, 0).tolist() == [True, True, False, False]
    slow = ctx_of(decode=np.array([3.0, 2.5, 2.5, 4.0]))  # none in time: the fastest ones
    assert realtime_rungs(slow, 0).tolist() == [False, True, True, False]
    fast = ctx_of()
    # budget = est x safety x 1e6 / 8 x 2 s: 1.6 Mbit/s -> 400k bytes -> rung 2 exactly
    assert throughput_rung(fast, 0, np.array([1.6, 1.59, np.nan, 100.0])).tolist() == [2, 1, 0, 3]
    assert throughput_rung(fast, 0, np.array([1.6]), 0.5).tolist() == [1]  # 200k bytes
    assert throughput_rung(ctx, 0, np.array([100.0])).tolist() == [1]  # not beyond the real-time rungs


def test_utilities_map_quality_onto_log_size():
    q = np.array([0.2, 0.4, 0.8])
    size = np.array([1.0, 2.0, 8.0])
    allowed = np.ones(3, bool)
    assert utilities(q, size, allowed) == pytest.approx([0.0, math.log(8) / 3, math.log(8)])
    assert utilities(q, size, allowed, offset=1.0) == pytest.approx([1.0, 1 + math.log(8) / 3, 1 + math.log(8)])
    assert utilities(np.full(3, 0.5), size, allowed, offset=2.0).tolist() == [2.0, 2.0, 2.0]
    assert utilities(q, np.full(3, 4.0), allowed).tolist() == [0.0, 0.0, 0.0]
    part = np.array([True, True, False])  # range of the allowed rungs only: ln 2 over q 0.2..0.4
    assert utilities(q, size, part) == pytest.approx([0.0, math.log(2), 3 * math.log(2)])


# ----------------------------------------------------------------------------- estimators


def test_ewma_by_hand():
    e = Ewma((3.0, 8.0))
    e.reset(1)
    # one chunk of 2 Mbit/s over 1 s: both averages are 2 after the zero-bias correction
    assert e.update(obs_of(1, 0.0, thr=[2.0], delay=[1.0]))[0] == pytest.approx(2.0)
    # then 1 Mbit/s over 3 s: fast a = 0.5^(3/3) = 0.5, slow a = 0.5^(3/8)
    o = obs_of(2, 0.0, thr=[2.0, 1.0], delay=[1.0, 3.0])
    est = e.update(o)[0]
    fast = (0.5 * (1 - 0.5 ** (1 / 3)) * 2.0 + 0.5 * 1.0) / (1 - 0.5 ** (4 / 3))
    slow_a = 0.5 ** (3 / 8)
    slow = (slow_a * (1 - 0.5 ** (1 / 8)) * 2.0 + (1 - slow_a) * 1.0) / (1 - 0.5 ** (4 / 8))
    assert est == pytest.approx(min(fast, slow))
    assert e.update(o)[0] == pytest.approx(est)  # nothing new: unchanged
    fresh = Ewma()
    fresh.reset(2)
    assert np.isnan(fresh.estimate()).all()
    assert fresh.half_lives_s.tolist() == [3.0, 8.0]
    with pytest.raises(ValueError, match="half-lives must be positive"):
        Ewma((3.0, 0.0))


def test_harmonic_mean_and_new_samples():
    t = np.array([[np.nan, 1.0, 2.0, 4.0], [np.nan, np.nan, np.nan, np.nan], [0.0, 0.0, 2.0, 2.0]])
    h = harmonic_mean(t, 3)
    assert h[0] == pytest.approx(3 / (1 + 0.5 + 0.25)) and np.isnan(h[1]) and h[2] == pytest.approx(2.0)
    assert harmonic_mean(t, 1)[0] == pytest.approx(4.0)
    o = obs_of(5, 0.0, thr=[1.0])
    assert new_samples(o, 3) == 2 and new_samples(o, 5) == 0 and new_samples(o, 7) == 0
    assert new_samples(obs_of(20, 0.0), 0) == 8  # at most the history


def test_robust_estimate_by_hand():
    est = RobustEstimate(window=2, error_window=2)
    est.reset(1)
    assert np.isnan(est.update(obs_of(0, 0.0))[0])
    assert est.update(obs_of(1, 0.0, thr=[2.0]))[0] == pytest.approx(2.0)  # first error is 0
    # prediction was 2, actual 1: error 1; new prediction harmonic(2, 1) = 4/3, discounted by 2
    assert est.update(obs_of(2, 0.0, thr=[2.0, 1.0]))[0] == pytest.approx(4 / 3 / 2)
    # prediction 4/3, actual 4: error 2/3; errors (1, 2/3): max 1; harmonic(1, 4) = 1.6
    assert est.update(obs_of(3, 0.0, thr=[2.0, 1.0, 4.0]))[0] == pytest.approx(1.6 / 2)
    # one more (actual 1.6 = prediction): errors (2/3, 0): max 2/3 -> the error of 1 left the window
    assert est.update(obs_of(4, 0.0, thr=[2.0, 1.0, 4.0, 1.6]))[0] == pytest.approx(2 / (1 / 4 + 1 / 1.6) / (5 / 3))


# ----------------------------------------------------------------------------- rate policies


def test_rate_based_defaults_and_choice():
    p = RateBased.Params()
    assert (p.window, p.safety) == (5, 1.0)
    ctx = ctx_of()
    # harmonic mean of the last 5 of (0.5, 1.6 x 5): 1.6 -> rung 2; over 6: 1.17 -> rung 1
    o = obs_of(6, 0.0, thr=[0.5, 1.6, 1.6, 1.6, 1.6, 1.6])
    assert ready(RateBased(), ctx).act(o)[0] == 2
    assert ready(RateBased(RateBased.Params(safety=0.5)), ctx).act(o)[0] == 1
    assert ready(RateBased(RateBased.Params(window=6)), ctx).act(o)[0] == 1
    for bad in (dict(window=0), dict(safety=0.0), dict(safety=2.5)):
        with pytest.raises(ValueError, match="window must be >= 1 and safety in"):
            RateBased.Params(**bad)


def test_insufficient_buffer_cap_by_hand():
    size = np.array([100.0, 200.0, 400.0, 800.0])
    got = insufficient_buffer_cap(
        size, np.array([3, 3, 3, 3, 0, 2]), np.array([1000.0, 500.0, 250.0, 50.0, 50.0, np.nan])
    )
    # 1000: nothing too big; 500: rung 3 too big -> 2; 250: rung 2 first too big -> 1;
    # 50: rung 1 too big -> 0 (rung 0 is never capped); rung 0 asked: stays; NaN: unchanged
    assert got.tolist() == [3, 2, 1, 0, 0, 2]
    assert (IBR_SAFETY_INIT, IBR_SAFETY_MIN) == (0.9, 0.5)


def test_throughput_rule_safety_and_insufficient_buffer_rule():
    p = Throughput.Params()
    assert (p.safety, p.half_life_fast_s, p.half_life_slow_s, p.abandon_multiplier, p.grace_s) == (
        0.9,
        3.0,
        8.0,
        1.8,
        0.5,
    )
    ctx = ctx_of()
    # estimate 3.6 Mbit/s x 0.9 = 3.24 -> rung 3 (3.2 Mbit/s) without the buffer rule
    o = obs_of(1, 100.0, thr=[3.6], delay=[1.0])
    assert ready(Throughput(Throughput.Params(ibr=False)), ctx).act(o)[0] == 3
    t = ready(Throughput(), ctx)
    # buffer 2 s: safe bytes = 0.9 x 2 s x 3.6e6 / 8 = 810k -> rung 3 (800k) fits
    assert t.act(obs_of(1, 2.0, thr=[3.6], delay=[1.0]))[0] == 3
    # next decision the safety is 0.81: 0.81 x 2 x 450k = 729k < 800k -> rung 2
    assert t.ibr_safety[0] == pytest.approx(0.81)
    assert t.act(obs_of(1, 2.0, thr=[3.6], delay=[1.0]))[0] == 2
    for _ in range(20):
        t.act(obs_of(1, 2.0, thr=[3.6], delay=[1.0]))
    assert t.ibr_safety[0] == 0.5
    bads = [(dict(safety=0.0), "safety"), (dict(half_life_fast_s=0.0), "half-lives"),
            (dict(abandon_multiplier=0.0), "abandon_multiplier"), (dict(grace_s=-1.0), "grace_s")]  # fmt: skip
    for bad, match in bads:
        with pytest.raises(ValueError, match=match):
            Throughput.Params(**bad)


def _progress(rung, got, elapsed, latency, size, active=True):
    one = lambda x, t=float: np.array([x], dtype=t)  # noqa: E731
    return DownloadProgress(0, one(active, bool), one(rung, np.int64), one(size), one(got), one(elapsed),
                            one(latency), one(0.0))  # fmt: skip


def test_throughput_rule_abandonment_by_hand():
    ctx = ctx_of()
    t = ready(Throughput(), ctx)
    size = 800e3  # rung 3
    # 100 kB in 1 s of transfer (0.8 Mbit/s): 700 kB more need 7 s: projected 8.1 s > 1.8 x 2 s.
    # The rung 0.8 x 0.9 Mbit/s sustains is 0 (100k bytes < 700k left): abandon to 0.
    assert t.abandon(_progress(3, 100e3, 1.1, 0.1, size))[0] == 0
    # after 1.5 s the projection is 1.5 s x 800k / received: 340 kB -> 3.53 s <= 1.8 x 2 s: keep;
    # 330 kB -> 3.64 s: abandon, to the rung 0.9 x 220 kB/s x 2 s = 396k sustains (rung 1)
    assert t.abandon(_progress(3, 340e3, 1.5, 0.0, size))[0] == -1
    assert t.abandon(_progress(3, 330e3, 1.5, 0.0, size))[0] == 1
    # 125 kB/s (projected 6.4 s; 0.9 x 125k x 2 s = 225k sustains rung 1): not within the 0.5 s grace
    assert t.abandon(_progress(3, 50e3, 0.4, 0.0, size))[0] == -1
    assert t.abandon(_progress(3, 62.5e3, 0.5, 0.0, size))[0] == 1
    assert t.abandon(_progress(3, 0.0, 0.1, 0.1, size))[0] == -1  # no transfer time
    assert t.abandon(_progress(3, 100e3, 1.1, 0.1, size, active=False))[0] == -1
    assert t.abandon(_progress(0, 1e3, 5.0, 0.1, 100e3))[0] == -1  # nothing lower
    # the target chunk must be smaller than what is left: 95 kB left of rung 1 (200k)
    assert t.abandon(_progress(1, 105e3, 10.0, 0.0, 200e3))[0] == -1
    assert t.can_abandon and not ready(Throughput(Throughput.Params(abandon=False)), ctx).can_abandon


# ----------------------------------------------------------------------------- dynamic, BBA, fixed


def test_dynamic_hysteresis():
    p = Dynamic.Params()
    assert (p.low_s, p.high_s, p.gamma, p.qmax) == (10.0, 10.0, 5.0, 25.0)
    with pytest.raises(ValueError, match="need 0 <= low_s <= high_s, got 5.0, 4.0"):
        Dynamic.Params(low_s=5.0, high_s=4.0)
    with pytest.raises(ValueError, match="need 0 <= low_s"):
        Dynamic.Params(low_s=-1.0)
    ctx = ctx_of(n=30)
    d = ready(Dynamic(Dynamic.Params(low_s=5.0, high_s=12.0)), ctx)
    assert d.bola.params.variant == "u" and not d.bola.params.abandon
    slow = 0.3  # sustains rung 0 only: throughput rule says 0
    # starts in throughput mode; 11 s is not above 12: stays
    assert d.act(obs_of(10, 11.0, thr=[slow]))[0] == 0 and not d.is_bola[0]
    # above 12 s with BOLA's rung >= the throughput rule's: BOLA mode
    d.act(obs_of(11, 20.0, thr=[slow]))
    assert d.is_bola[0]
    # fast network: the throughput rule asks for more than BOLA at a low buffer;
    # 8 s is not below 5: stays in BOLA
    assert d.act(obs_of(12, 8.0, thr=[slow, 50.0]))[0] == d.bola.act(obs_of(12, 8.0, thr=[slow, 50.0]))[0]
    assert d.is_bola[0]
    # below 5 s with BOLA asking for less than the throughput rule: back to throughput
    d.act(obs_of(13, 1.0, thr=[slow, 50.0, 50.0]))
    assert not d.is_bola[0]
    assert d.can_abandon and not ready(Dynamic(Dynamic.Params(abandon=False)), ctx).can_abandon
    assert d.abandon(_progress(3, 100e3, 1.1, 0.1, 800e3))[0] == 0  # the throughput rule's abandonment


def test_bba_map_by_hand():
    p = BBA.Params()
    assert (p.reservoir_s, p.cushion_s) == (5.0, 10.0)
    for bad in (dict(reservoir_s=-1.0), dict(cushion_s=0.0)):
        with pytest.raises(ValueError, match="reservoir_s must be >= 0 and cushion_s > 0"):
            BBA.Params(**bad)
    # q = ln(R/400): 0, ln 2, ln 4, ln 8; f(B) = ln 8 x (B - 5) / 10 between 5 and 15 s
    ctx = ctx_of()
    b = ready(BBA(), ctx, 6)
    first = b.act(obs_of(0, [0.0, 5.0, 8.4, 10.0, 15.0, 30.0], last=-1))
    # f = 0, 0, 0.34 ln8 = 1.02 ln2 -> rung 1, 1.5 ln2 -> rung 1, 3 ln2 -> 3
    assert first.tolist() == [0, 0, 1, 1, 3, 3]
    # from rung 2 (q = 2 ln 2 = f at 11.67 s): up only once f reaches ln 8, down once f < ln 2
    o = obs_of(3, [7.0, 8.5, 12.0, 14.9, 15.0], last=2)
    assert b.act(o).tolist()[:5] == [1, 2, 2, 2, 3]


def test_fixed_counts_negative_rungs_from_the_top():
    ctx = ctx_of()
    assert ready(Fixed(Fixed.Params(rung=-1)), ctx, 2).act(obs_of(0, [0.0, 0.0])).tolist() == [3, 3]
    assert ready(Fixed(Fixed.Params(rung=1)), ctx).act(obs_of(0, 0.0)).dtype == np.int64
    assert Fixed.Params().rung == 0


# ------------------------------------------------------------ BBA on a perceptual ladder
def _bba_ctx(lpips, sizes, decode=None, n=10):
    """A 2-s ladder on perceptual quality q = 1 - LPIPS (rungs need not rise in quality)."""
    qoe = get_qoe("perceptual")
    ladder = make_ladder([sizes] * n, lpips=[lpips] * n)
    dec = np.broadcast_to(np.asarray(0.0 if decode is None else decode, dtype=float), ladder.size_bytes.shape)
    return PolicyContext(ladder, qoe, qoe.chunk_quality(ladder), np.array(dec), 25.0)


def test_bba_on_a_ladder_whose_quality_does_not_rise_with_rung():
    # q = 0.5, 0.1, 0.9, 0.3 at 100k, 200k, 300k, 400k bytes; rung 1 cannot be decoded in real
    # time, so the map runs over q 0.3 .. 0.9: f(B) = 0.3 + 0.6 (B - 5) / 10 between 5 and 15 s
    ctx = _bba_ctx([0.5, 0.9, 0.1, 0.7], [100e3, 200e3, 300e3, 400e3], decode=[0.0, 3.0, 0.0, 0.0])
    b = ready(BBA(), ctx, 3)
    got = b.act(obs_of(0, [0.0, 5.0, 15.0], last=-1))
    # first chunk: the best rung with q <= f(B) (below the reservoir f is the floor 0.3: rung 3)
    assert got.tolist() == [3, 3, 2] and got.dtype == np.int64
    # from rung 0 (q 0.5) at f = 0.4 (B = 6.67 s): the best rung under f is rung 3 (0.3), not above
    # 0.5, and the cheapest rung over f is rung 0 itself: rung 0 is kept
    assert b.act(obs_of(3, [5.0 + 10.0 / 6.0], last=0))[0] == 0
    # from rung 3 (q 0.3) at f = 0.3: the best rung under f is rung 3 itself (not above 0.3);
    # the previous choice is the cheapest allowed rung with q >= 0.3: rung 0
    assert b.act(obs_of(3, [0.0], last=3))[0] == 0


def test_bba_takes_the_cheaper_of_equal_quality_rungs():
    ctx = _bba_ctx([0.5, 0.1, 0.1], [100e3, 300e3, 200e3])
    assert ready(BBA(), ctx).act(obs_of(0, [20.0], last=-1))[0] == 2


@pytest.mark.parametrize("below, want", [(0.9, 1), (1.1, 0)])
def test_bba_reaches_a_rung_within_a_relative_tolerance(below, want):
    # log-rate q = 0, 0.75, 1.5: a target below rung 1's q by `below` x 1e-12 x q_max reaches it
    # when below < 1 (rounding), not when below > 1
    kbps = [400.0, 400.0 * math.exp(0.75), 400.0 * math.exp(1.5)]
    ctx = ctx_of(kbps)
    q = ctx.quality[3]
    assert q[2] == pytest.approx(1.5) and q[1] == pytest.approx(0.75)
    target = q[1] - below * 1e-12 * q[2]
    buffer_s = 5.0 + 10.0 * (target - q[0]) / (q[2] - q[0])
    assert ready(BBA(), ctx).act(obs_of(3, [buffer_s], last=-1))[0] == want


def test_dynamic_switches_strictly_outside_its_band():
    # the two rules' answers are set by hand: BOLA mode is left below low_s when BOLA asks for
    # less than the throughput rule, entered above high_s when BOLA asks for at least as much
    ctx = ctx_of()
    d = ready(Dynamic(Dynamic.Params(low_s=5.0, high_s=12.0)), ctx, 4)
    assert d.ctx is ctx
    answers = {}
    d.bola.act = lambda obs: answers["bola"]
    d.tput.act = lambda obs: answers["tput"]

    def step(level, b, t):
        answers["bola"], answers["tput"] = np.array(b), np.array(t)
        return d.act(obs_of(5, level)).tolist()

    # enter: 12 s is not above 12; 12.5 s is, with BOLA's rung equal to the throughput rule's
    assert step([12.0, 12.5, 12.5, 20.0], [2, 2, 1, 3], [0, 2, 2, 3]) == [0, 2, 2, 3]
    assert d.is_bola.tolist() == [False, True, False, True]
    # leave (sessions 1 and 3 are in BOLA mode): 5 s is not below 5; an equal rung is not less
    assert step([5.0, 5.0, 4.0, 4.0], [0, 0, 1, 2], [2, 2, 2, 2]) == [2, 0, 2, 2]
    assert d.is_bola.tolist() == [False, True, False, True]
    # below 5 s with BOLA lower: both leave
    assert step([1.0, 4.9, 1.0, 1.0], [0, 0, 0, 0], [1, 1, 1, 1]) == [1, 1, 1, 1]
    assert not d.is_bola.any()


def test_dynamic_passes_its_options_to_both_rules():
    d = Dynamic(Dynamic.Params(gamma=4.0, qmax=20.0, abandon=False, peer="sabre"))
    assert (d.bola.params.gamma, d.bola.params.qmax, d.bola.params.variant, d.bola.params.peer) == (
        4.0,
        20.0,
        "u",
        "sabre",
    )
    assert (d.tput.params.abandon, d.tput.params.peer) == (False, "sabre")


# ------------------------------------------------------------ Sabre's semantics
def test_follows_sabre():
    from policies.rules import follows_sabre

    plain, sabre = ctx_of(), dataclasses.replace(ctx_of(), peer="sabre")
    assert [follows_sabre(o, plain) for o in ("auto", "sabre", "none")] == [False, True, False]
    assert [follows_sabre(o, sabre) for o in ("auto", "sabre", "none")] == [True, True, False]
    with pytest.raises(ValueError, match="peer must be one of auto, sabre, none, got 'x'"):
        follows_sabre("x", plain)


def test_nominal_sizes_and_rung_by_hand():
    from policies.rules import nominal_rung, nominal_sizes

    # nominal bitrates 400..3200 kbit/s, 2-s chunks; real sizes 3x the nominal ones
    ladder = make_ladder([[k * 1000 / 8 * 2.0 * 3.0 for k in KBPS]] * 4, chunk_s=2.0, kbps=KBPS)
    ctx = PolicyContext(ladder, LOG, LOG.chunk_quality(ladder), np.zeros(ladder.size_bytes.shape), 25.0)
    assert nominal_sizes(ctx, 2).tolist() == [100e3, 200e3, 400e3, 800e3]
    # highest q with latency + 2 x kbps_q / (safety x estimate) <= 2: at 1.0 Mbit/s, no latency,
    # 800 kbit/s fits (1.6 s) and 1600 does not; 0.4 s of latency leaves 1.6 s: 800 still fits
    # exactly; 0.5 s leaves 1.5 s: only 400. Safety 0.5 halves the estimate.
    est = np.array([1.0, 1.0, 1.0, 1.0, 1.0, np.nan, 0.0, 100.0])
    lat = np.array([0.0, 0.4, 0.5, np.nan, 0.0, 0.0, 0.0, 1.0])
    got = nominal_rung(ctx, 2, est, lat).tolist()
    assert got == [1, 1, 0, 1, 1, 0, 0, 3]
    assert nominal_rung(ctx, 2, est, lat, safety=0.5).tolist() == [0, 0, 0, 0, 0, 0, 0, 3]
    assert nominal_rung(ctx, 2, np.array([3.3]), np.array([0.0]), safety=0.5).tolist() == [2]  # 1650 kbit/s
    assert nominal_rung(ctx, 2, est, lat).dtype == np.int64


def test_best_within_falls_back_to_the_smallest_allowed_rung_per_session():
    q = np.array([0.1, 0.5, 0.9])
    size = np.array([1.0, 2.0, 3.0])
    allowed = np.array([False, True, True])  # rung 0 (the smallest) not allowed
    # session 0 affords rung 1; session 1 affords nothing: the smallest allowed rung, 1
    assert best_within(q, size, allowed, np.array([2.5, 0.5])).tolist() == [1, 1]
    assert best_within(q, size, np.array([False, False, True]), np.array([0.5])).tolist() == [2]


def test_throughput_rung_has_no_slack():
    # 0.8 Mbit/s x 2 s is rung 1's 200 kB exactly; 1e-7 less is not enough
    ctx = ctx_of()
    assert throughput_rung(ctx, 0, np.array([0.8, 0.8 * (1 - 1e-7)])).tolist() == [1, 0]


def test_nominal_rung_has_no_slack_and_divides_quietly():
    import warnings

    from policies.rules import nominal_rung

    ctx = ctx_of()
    # 800 kbit/s x 2 s in 2 s fits exactly at 0.8 Mbit/s; 1e-4 less does not
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a zero estimate divides by zero without a warning
        got = nominal_rung(ctx, 0, np.array([0.8, 0.8 * (1 - 1e-4), 0.0]), np.zeros(3))
    assert got.tolist() == [1, 0, 0]


def _with_latency(obs, latency):
    lat = np.full(obs.delay_s.shape, np.nan)
    lat[:, -latency.shape[1] :] = latency
    return dataclasses.replace(obs, latency_s=lat)


def test_sabre_ewma_keeps_latency_apart_by_hand():
    """Sabre's estimator: a sample is the chunk's bits over its transfer time (delay - latency),
    weighted by that time; the latency has its own average, one step per chunk with half-lives of
    h / segment chunks, zero-bias corrected, the highest (most conservative) one winning."""
    e = Ewma((3.0, 8.0), latency_apart=True, segment_s=2.0)
    e.reset(1)
    # chunk 1: 1 Mbit/s over a 2-s delay with 0.5 s latency: 2 Mbit in 1.5 s = 4/3 Mbit/s
    est = e.update(_with_latency(obs_of(1, 0.0, thr=[1.0], delay=[2.0]), np.array([[0.5]])))
    assert est[0] == pytest.approx(4 / 3) and e.latency_s[0] == pytest.approx(0.5)
    # chunk 2: 2 Mbit/s over 1 s with 0.2 s latency: 2 Mbit in 0.8 s = 2.5 Mbit/s
    o = _with_latency(obs_of(2, 0.0, thr=[1.0, 2.0], delay=[2.0, 1.0]), np.array([[0.5, 0.2]]))
    est = e.update(o)[0]
    want, lat = [], []
    for h in (3.0, 8.0):
        a1, a2 = 0.5 ** (1.5 / h), 0.5 ** (0.8 / h)
        want.append((a2 * (1 - a1) * 4 / 3 + (1 - a2) * 2.5) / (1 - 0.5 ** (2.3 / h)))
        b = 0.5 ** (2.0 / h)
        lat.append((b * (1 - b) * 0.5 + (1 - b) * 0.2) / (1 - b * b))
    assert est == pytest.approx(min(want))
    assert e.latency_s[0] == pytest.approx(max(lat))
    # a chunk whose delay is all latency (no transfer time) or unknown is skipped entirely
    o3 = _with_latency(obs_of(4, 0.0, thr=[1.0, 2.0, 3.0, 1.0], delay=[2.0, 1.0, 0.5, np.nan]),
                       np.array([[0.5, 0.2, 0.5, 0.1]]))  # fmt: skip
    assert e.update(o3)[0] == pytest.approx(est) and e.latency_s[0] == pytest.approx(max(lat))
    fresh = Ewma((3.0, 8.0), latency_apart=True, segment_s=2.0)
    fresh.reset(2)
    assert np.isnan(fresh.latency_s).all()
    fresh.update(_with_latency(obs_of(1, [0.0, 0.0], thr=[[1.0], [np.nan]], delay=[[2.0], [1.0]]),
                               np.array([[0.5], [0.1]])))  # fmt: skip
    assert fresh.latency_s[0] == pytest.approx(0.5) and np.isnan(fresh.latency_s[1])


def test_estimators_edges_and_quiet_arithmetic():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no sample (0 / 0) and a zero-throughput chunk raise no warning
        assert np.isnan(harmonic_mean(np.full((1, 3), np.nan))[0])
        e = Ewma()
        e.reset(1)
        assert np.isnan(e.estimate()[0])
        r = RobustEstimate(window=2, error_window=2)
        r.reset(1)
        # the first update may come after a chunk: no prediction yet, no error
        assert r.update(obs_of(1, 0.0, thr=[2.0]))[0] == pytest.approx(2.0)
        # a zero-throughput chunk: its relative error is infinite and counts as 0; the harmonic
        # mean skips the sample
        assert r.update(obs_of(2, 0.0, thr=[2.0, 0.0]))[0] == pytest.approx(2.0)
    # asking twice about the same chunk records its error once: prediction 4 against 1 is an error
    # of 3; the new prediction harmonic(4, 1) = 1.6 is not judged against that same chunk
    r = RobustEstimate(window=2, error_window=1)
    r.reset(1)
    r.update(obs_of(1, 0.0, thr=[4.0]))
    o = obs_of(2, 0.0, thr=[4.0, 1.0])
    assert r.update(o)[0] == pytest.approx(1.6 / 4.0)
    assert r.update(o)[0] == pytest.approx(1.6 / 4.0)
    # a half-life of 1 s (or less) is valid; the latency half-lives count 1-s segments by default
    assert Ewma((1.0, 0.5)).half_lives_s.tolist() == [1.0, 0.5]
    assert Ewma().segment_s == 1.0 and not Ewma().latency_apart


def test_throughput_rule_under_sabre_by_hand():
    # one chunk: 3.4 Mbit/s over a 1-s delay of which 0.1 s latency: Sabre's estimate is
    # 3.4 / 0.9 = 3.78 Mbit/s with latency 0.1 s apart; x 0.9 = 3400 kbit/s, and
    # 0.1 + 2 x 3200 / 3400 = 1.98 <= 2 s: rung 3. Our own rule: 3.4 x 0.9 x 2 s / 8 = 765 kB < 800 kB: rung 2
    ctx = ctx_of()
    first = _with_latency(obs_of(1, 20.0, thr=[3.4], delay=[1.0]), np.array([[0.1]]))
    assert ready(Throughput(Throughput.Params(peer="sabre")), ctx).act(first)[0] == 3
    assert ready(Throughput(Throughput.Params(peer="none")), ctx).act(first)[0] == 2
    # insufficient-buffer rule on B - latency: 0.9 x (1.95 - 0.1) s x 3.78e6 / 8 = 786 kB < 800 kB: rung 2
    low = _with_latency(obs_of(1, 1.95, thr=[3.4], delay=[1.0]), np.array([[0.1]]))
    t = ready(Throughput(Throughput.Params(peer="sabre")), ctx)
    assert t.act(low)[0] == 2
    assert ready(Throughput(Throughput.Params(peer="sabre", ibr=False)), ctx).act(low)[0] == 3
    # abandonment: the rung the measured rate sustains, latency apart (the 0.1-s estimate)
    size = 800e3
    prog = lambda k, got, elapsed: DownloadProgress(  # noqa: E731
        k, np.ones(1, bool), np.array([3]), np.array([size]), np.array([got]), np.array([elapsed]),
        np.zeros(1), np.zeros(1))  # fmt: skip
    # 100 kB in 1.1 s: 0.727 Mbit/s x 0.9 = 655 kbit/s: 0.1 + 2 x 400 / 655 <= 2: rung 0 (100 kB < 700 kB left)
    assert t.abandon(prog(1, 100e3, 1.1))[0] == 0
    assert t.abandon(prog(0, 100e3, 1.1))[0] == -1  # never the first segment
    assert t.abandon(prog(1, 700e3, 1.1))[0] == -1  # on time: 1.1 + 100 kB / 636 kB/s < 3.6 s
    # past the grace time with nothing but latency so far: no rate, no decision
    none_yet = dataclasses.replace(prog(1, 0.0, 1.0), latency_s=np.ones(1))
    assert t.abandon(none_yet)[0] == -1 and ready(Throughput(), ctx).abandon(none_yet)[0] == -1
    # 330 kB in 1.5 s: 1.76 Mbit/s x 0.9 = 1584 kbit/s sustains rung 1 (800: 0.1 + 1.01 s); 200 kB < 470 kB left
    assert t.abandon(prog(1, 330e3, 1.5))[0] == 1
    # the safety of the insufficient-buffer rule decays from the second chunk on only
    t0 = ready(Throughput(), ctx)
    t0.act(obs_of(0, 0.0))
    assert t0.ibr_safety[0] == 0.9
    assert ready(Throughput(Throughput.Params(ibr=False)), ctx).act(obs_of(1, 0.1, thr=[3.6], delay=[1.0]))[0] == 3


def test_rate_and_estimator_edges():
    import warnings

    ctx = ctx_of()
    # a chunk of exactly the safe bytes is allowed (800 kB at rung 3)
    assert insufficient_buffer_cap(
        np.array([100.0, 200.0, 400.0, 800.0]), np.array([3]), np.array([800.0])
    ).tolist() == [3]
    # Sabre's rule applies its 0.9 safety: 3.1 Mbit/s over a 1-s delay with 0.1 s latency is
    # 3.44 Mbit/s: x 0.9 = 3100 kbit/s and 0.1 + 2 x 3200 / 3100 > 2 s: rung 2 (rung 3 at safety 1)
    o = _with_latency(obs_of(1, 20.0, thr=[3.1], delay=[1.0]), np.array([[0.1]]))
    assert ready(Throughput(Throughput.Params(peer="sabre", ibr=False)), ctx).act(o)[0] == 2
    assert ready(Throughput(Throughput.Params(peer="sabre", ibr=False, safety=1.0)), ctx).act(o)[0] == 3
    # abandoning needs a target chunk strictly smaller than what is left: 100 kB left of rung 3 and
    # the sustainable rung 0 is 100 kB (Sabre: 800 kB x 400 / 3200)
    sab = ready(Throughput(Throughput.Params(peer="sabre")), ctx)
    sab.act(o)
    ours = ready(Throughput(), ctx)

    def prog(got, elapsed, latency=0.0):
        return DownloadProgress(1, np.ones(1, bool), np.array([3]), np.array([800e3]), np.array([got]),
                                np.array([elapsed]), np.array([latency]), np.zeros(1))  # fmt: skip

    for t in (sab, ours):
        assert t.abandon(prog(700e3, 10.0))[0] == -1
        got = t.abandon(prog(100e3, 1.1))
        assert got.tolist() == [0] and got.dtype == np.int64
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no transfer time yet, with and without bytes: quiet
            assert t.abandon(prog(0.0, 1.0, 1.0))[0] == -1 and t.abandon(prog(5.0, 1.0, 1.0))[0] == -1
    lad = dataclasses.replace(ctx.ladder, duration_s=np.r_[3.0, np.full(ctx.ladder.n_chunks - 1, 2.0)])
    assert (
        ready(Throughput(Throughput.Params(peer="sabre")), dataclasses.replace(ctx, ladder=lad)).ewma.segment_s == 3.0
    )
    # the EWMA skips a chunk with an unknown throughput or delay
    e = Ewma()
    e.reset(1)
    e.update(obs_of(1, 0.0, thr=[2.0], delay=[1.0]))
    assert e.update(obs_of(3, 0.0, thr=[2.0, np.nan, 8.0], delay=[1.0, 1.0, np.nan]))[0] == pytest.approx(2.0)
    # Sabre's: a chunk that is all latency is skipped without a warning; so is a session with none
    s = Ewma((3.0, 8.0), latency_apart=True, segment_s=2.0)
    s.reset(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.update(
            _with_latency(obs_of(1, [0.0, 0.0], thr=[[1.0], [0.0]], delay=[[0.5], [0.5]]), np.array([[0.5], [0.5]]))
        )
    assert np.isnan(s.latency_s).all() and np.isnan(s.estimate()).all()


def test_estimator_defaults_are_pensieves_five_chunks():
    # the harmonic mean of the last 5 chunks: the 6th-oldest sample (100) is left out
    assert harmonic_mean(np.array([[100.0, 1.0, 1.0, 1.0, 1.0, 1.0]]))[0] == pytest.approx(1.0)
    r = RobustEstimate()
    assert (r.window, r.error_window) == (5, 5)

"""policies.bola pinned by Sabre's BOLA decisions and the published formulas.

BOLA (Spiteri et al., INFOCOM 2016): ``argmax_m (V (v_m + gamma p) - Q) / S_m`` with
``V = (Q_max - p) / (v_M + gamma p)`` (buffer in seconds, p the chunk length). BOLA-O/U shrink
Q_max to ``max(min(k, K - k) / 2, 3)`` chunks and limit up-switches only; BOLA-E (MMSys 2018)
sets ``gamma p = (v_M - 1) / (target / min_buffer - 1)`` and ``V = min_buffer / gamma p``.

A ladder whose sizes are proportional to its bitrates and whose quality is
``ln(R / R_min)`` (the ``pensieve-log`` preset) gives exactly Sabre's utilities, so Sabre's
``-a bola`` (BOLA-U) decisions in ``../shared/data/peers/sabre/golden_segments.csv`` can be
replayed from the buffer level it printed.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections import defaultdict

import numpy as np
import pytest
from conftest import make_ladder

from abr.qoe import get_qoe
from policies.base import DownloadProgress, Observation, PolicyContext
from policies.bola import BOLA, BOLAE, bola_choice

LOG = get_qoe("pensieve-log")


def _ctx(kbps, n_chunks=30, chunk_s=2.0, cap_s=25.0):
    sizes = [[k * 1000 / 8 * chunk_s for k in kbps]] * n_chunks
    ladder = make_ladder(sizes, chunk_s=chunk_s, kbps=[float(k) for k in kbps])
    return PolicyContext(ladder, LOG, LOG.chunk_quality(ladder), np.zeros(ladder.size_bytes.shape), cap_s)


def _obs(k, buffer_s, last_rung, thr=None):
    buffer_s = np.atleast_1d(np.asarray(buffer_s, dtype=float))
    n = len(buffer_s)
    hist = np.full((n, 8), np.nan)
    delay = np.full((n, 8), np.nan)
    if thr is not None:
        hist[:, -1] = thr
        delay[:, -1] = 1.0
    return Observation(
        chunk=k, buffer_s=buffer_s, last_rung=np.broadcast_to(np.asarray(last_rung, dtype=np.int64), (n,)).copy(),
        throughput_mbps=hist, delay_s=delay, decode_backlog_s=np.zeros(n), clock_s=np.zeros(n),
        stall_s=np.zeros(n),
    )  # fmt: skip


def _policy(cls, ctx, n=1, **kw):
    p = cls(cls.Params(**kw))
    p.reset(ctx, n)
    return p


# ----------------------------------------------------------------------------- Sabre golden


def test_bola_u_replays_sabre_decisions(shared_data):
    peers = shared_data / "peers" / "sabre"
    if not (peers / "golden_segments.csv").is_file():
        pytest.skip(f"{peers} not found")
    movie = json.loads((peers / "movie.json").read_text())
    kbps = movie["bitrates_kbps"]
    seg_s = movie["segment_duration_ms"] / 1000.0
    K = len(movie["segment_sizes_bits"])
    # sizes proportional to bitrate: BOLA's score per bit then equals Sabre's score per bitrate
    ctx = _ctx(kbps, n_chunks=K, chunk_s=seg_s, cap_s=25.0)
    runs = defaultdict(list)
    with (peers / "golden_segments.csv").open() as f:
        for row in csv.DictReader(f):
            if row["algorithm"] == "bola" and row["abandon"] == "off":
                runs[row["network"]].append(row)
    assert len(runs) == 6
    by_k = defaultdict(list)  # (last, final, buffer) of every decision, grouped by segment
    for rows in runs.values():
        rows.sort(key=lambda r: int(r["attempt"]))
        for prev, row in zip(rows, rows[1:]):
            bl = float(row["bl_request_ms"]) / 1000.0  # Sabre printed it truncated to the ms
            by_k[int(row["segment"])].append((int(prev["quality"]), int(row["quality"]), bl))
    checked = {"down": 0, "up": 0}
    every = np.ones(len(kbps), bool)
    for k, rows in sorted(by_k.items()):
        last = np.array([r[0] for r in rows] * 2)
        bl = np.array([r[2] for r in rows] + [r[2] + 0.001 for r in rows])
        policy = _policy(BOLA, ctx, n=len(bl), variant="u")
        policy.last = last.copy()  # BOLA limits up-switches against its own last choice (Sabre's)
        got = policy.act(_obs(k, bl, last, thr=np.full(len(bl), 1e-9)))
        m = bola_choice(policy._plan[0], ctx.ladder.size_bytes[k], every, policy._plan[1], 5.0, bl)
        n = len(rows)
        for i, (prev, final, _) in enumerate(rows):
            if m[i] != m[n + i]:
                continue  # within a printed millisecond of a threshold
            if final < prev:  # a down-switch is BOLA's buffer choice, untouched by the up-switch limit
                assert got[i] == final, (k, bl[i], prev, final)
                checked["down"] += 1
            elif final > prev:  # an up-switch is limited, never raised
                assert m[i] >= final, (k, bl[i], prev, final)
                checked["up"] += 1
    assert checked["down"] > 20 and checked["up"] > 20


# ----------------------------------------------------------------------------- formulas by hand

KBPS = [250, 500, 1000, 2000]  # utilities ln(R / 250) = 0, ln 2, ln 4, ln 8


def _thresholds(V, gp):
    """Buffer level above which rung m+1 beats rung m (sizes double per rung)."""
    # (V(v_m + gp) - B) / S = (V(v_{m+1} + gp) - B) / 2S  <=>  B = V (gp + 2 v_m - v_{m+1}) = V (gp + (m - 1) ln 2)
    return [V * (gp + (m - 1) * math.log(2)) for m in range(3)]


def test_bola_basic_V_is_qmax_minus_one_chunk_over_vmax_plus_gp():
    ctx = _ctx(KBPS)
    V = (25.0 - 2.0) / (math.log(8) + 5.0)
    policy = _policy(BOLA, ctx)
    for m, b in enumerate(_thresholds(V, 5.0)):
        assert policy.act(_obs(10, b - 1e-6, 0))[0] == m
        assert policy.act(_obs(10, b + 1e-6, 0))[0] == m + 1
    assert policy._plan[1] == pytest.approx(V)
    p = BOLA.Params()
    assert (p.gamma, p.qmax, p.variant, p.half_life_fast_s, p.half_life_slow_s) == (5.0, 25.0, "auto", 3.0, 8.0)
    assert policy.variant == "basic"  # auto: basic outside the sabre preset (BOLA-U there, Sabre's default)


@pytest.mark.parametrize("k, chunks", [(1, 3.0), (2, 3.0), (6, 3.0), (7, 3.5), (10, 5.0), (20, 5.0), (28, 3.0)])
def test_bola_o_buffer_target_shrinks_with_a_three_chunk_floor(k, chunks):
    # 30 chunks of 2 s: Q_max = min(25, max(min(k, 30 - k) / 2, 3) x 2) seconds
    ctx = _ctx(KBPS)
    qmax = min(25.0, chunks * 2.0)
    policy = _policy(BOLA, ctx, variant="o")
    policy.act(_obs(k, 0.0, 0, thr=100.0))
    assert policy._plan[1] == pytest.approx((qmax - 2.0) / (math.log(8) + 5.0))


def test_up_switch_limits():
    ctx = _ctx(KBPS)
    # 0.6 Mbit/s sustains rung 1 (0.5 Mbit/s) only: m_t = 1. At k=10 Q_max is 10 s:
    # V = 8 / (ln 8 + 5), rung 3 from V (5 + ln 2) = 6.4 s of buffer: at 7 s BOLA wants the top rung.
    obs_up = _obs(10, 7.0, 0, thr=0.6)
    assert _policy(BOLA, ctx).act(_obs(10, 21.0, 0, thr=0.6))[0] == 3  # basic: no limit (Q_max 25 s)
    assert _policy(BOLA, ctx, variant="o").act(obs_up)[0] == 1  # max(last, m_t)
    assert _policy(BOLA, ctx, variant="u").act(obs_up)[0] == 2  # m_t + 1
    # last above m_t: BOLA-U keeps last, no extra rung
    assert _policy(BOLA, ctx, variant="u").act(_obs(10, 7.0, 2, thr=0.6))[0] == 2
    # a down-switch is never limited: nearly empty buffer -> rung 0 even from the top rung
    for variant in ("o", "u"):
        assert _policy(BOLA, ctx, variant=variant).act(_obs(10, 0.1, 3, thr=0.6))[0] == 0
    # an up-switch within m_t is kept: 10 Mbit/s sustains everything
    assert _policy(BOLA, ctx, variant="o").act(_obs(10, 7.0, 0, thr=10.0))[0] == 3


def test_bola_choice_above_the_top_level_takes_the_best_utility():
    v = np.log(np.array(KBPS) / 250.0)
    size = np.array(KBPS, dtype=float)
    allowed = np.array([True, True, True, False])
    # above V (v_max + gp) every score is negative: the best allowed rung, not the largest chunk
    V = 1.0
    m = bola_choice(v, size, allowed, V, 5.0, np.array([0.0, 100.0]))
    assert m.tolist() == [0, 2]  # empty buffer: the smallest chunk; above the top level: rung 2 (3 not allowed)
    # the best utility even where it is not the largest chunk; raw (Sabre's): the largest score
    v3, size3, every = np.array([0.0, 1.0, 2.0]), np.array([1.0, 3.0, 2.0]), np.ones(3, bool)
    # scores at level 100: (5 - 100) / 1, (6 - 100) / 3, (7 - 100) / 2: rung 1 the largest
    assert bola_choice(v3, size3, every, 1.0, 5.0, np.array([100.0])).tolist() == [2]
    assert bola_choice(v3, size3, every, 1.0, 5.0, np.array([100.0]), raw=True).tolist() == [1]


def _progress(k, rung, size, got, elapsed, latency, buffer_s, active=True):
    one = lambda x, t=float: np.array([x], dtype=t)  # noqa: E731
    return DownloadProgress(
        chunk=k, active=one(active, bool), rung=one(rung, np.int64), size_bytes=one(size), downloaded_bytes=one(got),
        elapsed_s=one(elapsed), latency_s=one(latency), buffer_s=one(buffer_s),
    )  # fmt: skip


def test_bola_abandonment_conditions():
    ctx = _ctx(KBPS)
    policy = _policy(BOLA, ctx, variant="u")
    policy.act(_obs(10, 2.0, 3, thr=100.0))
    v, V = policy._plan
    size = ctx.ladder.size_bytes[10]  # 62.5k, 125k, 250k, 500k bytes
    # downloading rung 3, 100 kB of 500 kB received, buffer 2 s: remain 400 kB
    score = (V * (5.0 + v[3]) - 2.0) / 400e3
    others = (V * (5.0 + v[:3]) - 2.0) / size[:3]
    assert others.max() > score >= 0  # so the rule abandons, to the best-scoring lower rung
    want = int(np.argmax(others))
    assert policy.abandon(_progress(10, 3, size[3], 100e3, 1.0, 0.1, 2.0))[0] == want
    # not while nothing has arrived, not when inactive, not when complete, never from rung 0
    assert policy.abandon(_progress(10, 3, size[3], 0.0, 1.0, 0.1, 2.0))[0] == -1
    assert policy.abandon(_progress(10, 3, size[3], 100e3, 1.0, 0.1, 2.0, active=False))[0] == -1
    assert policy.abandon(_progress(10, 3, size[3], size[3], 1.0, 0.1, 2.0))[0] == -1
    assert policy.abandon(_progress(10, 0, size[0], 1e3, 1.0, 0.1, 2.0))[0] == -1
    # a lower chunk at least as large as what is left is never taken: 450 kB received, 50 kB left
    assert policy.abandon(_progress(10, 3, size[3], 450e3, 1.0, 0.1, 2.0))[0] == -1
    # a negative current score (buffer above BOLA's top level) never abandons
    high = V * (5.0 + v[3]) + 1.0
    assert policy.abandon(_progress(10, 3, size[3], 100e3, 1.0, 0.1, high))[0] == -1
    assert not _policy(BOLA, ctx).can_abandon and not _policy(BOLA, ctx, variant="u", abandon=False).can_abandon
    assert _policy(BOLA, ctx, variant="o").can_abandon


def test_bola_params_validation():
    for bad, match in [(dict(gamma=0.0), "gamma"), (dict(qmax=0.0), "qmax"), (dict(variant="x"), "variant")]:
        with pytest.raises(ValueError, match=match):
            BOLA.Params(**bad)
    for bad, match in [(dict(min_buffer_s=0.0), "min_buffer_s"), (dict(per_level_s=-1.0), "per_level_s"),
                       (dict(target_s=-1.0), "target_s"), (dict(variant="basic"), "variant")]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            BOLAE.Params(**bad)
    BOLAE.Params(per_level_s=0.0, target_s=0.0)


# ----------------------------------------------------------------------------- BOLA-E


SMALL = [500, 800, 1600]  # BOLA-E utilities 1 + ln(R / 500): 1, 1 + ln 1.6, 1 + ln 3.2


@pytest.mark.parametrize("cap_s, target", [(25.0, 25.0), (10.0, 16.0)])
def test_bola_e_gamma_p_and_V(cap_s, target):
    # target = max(min_buffer 10 + 2 s x 3 rungs, cap); gp = (v_M - 1) / (target / 10 - 1); V = 10 / gp
    ctx = _ctx(SMALL, cap_s=cap_s)
    policy = _policy(BOLAE, ctx)
    v, gp, V, min_level, max_level, allowed = policy._chunk(3)
    assert v == pytest.approx([1.0, 1.0 + math.log(1.6), 1.0 + math.log(3.2)])
    assert gp == pytest.approx(math.log(3.2) / (target / 10.0 - 1.0))
    assert V == pytest.approx(10.0 / gp)
    assert max_level == pytest.approx(V * (v + gp))
    # rung 1 takes over from rung 0 where their scores cross
    s0, s1 = 500.0, 800.0
    assert min_level[1] == pytest.approx(V * (gp + (s1 * v[0] - s0 * v[1]) / (s1 - s0)))
    assert min_level[0] == 0.0
    p = BOLAE.Params()
    assert (p.min_buffer_s, p.per_level_s, p.target_s, p.variant) == (10.0, 2.0, 0.0, "u")


def test_bola_e_abandonment_projects_past_the_new_request_latency():
    # Sabre: left = size - downloaded - ttfb x rate. Sizes 125k, 200k, 400k bytes; rung 2 is being
    # fetched, 150 kB received, buffer and placeholder 0.
    ctx = _ctx(SMALL)
    policy = _policy(BOLAE, ctx)
    policy.act(_obs(0, 0.0, -1))
    v, gp, V, *_ = policy._chunk(0)
    size = ctx.ladder.size_bytes[0]
    got = 150e3
    # current score V (gp + v2) / left against rung 0's V (gp + v0) / S0 (the best lower one):
    # abandon iff left > S0 (gp + v2) / (gp + v0) (about 207 kB) and S0 < left
    need = size[0] * (gp + v[2]) / (gp + v[0])
    assert size[2] - got > need > size[0]  # no latency: 250 kB left -> abandon to rung 0
    assert size[2] - got - 1.0 * got < need  # 1 s ttfb after 1 s of transfer: 100 kB left -> keep
    assert policy.abandon(_progress(0, 2, size[2], got, 1.0, 0.0, 0.0))[0] == 0
    assert policy.abandoned_to[0] == 0
    policy.abandoned_to[:] = -1
    assert policy.abandon(_progress(0, 2, size[2], got, 2.0, 1.0, 0.0))[0] == -1
    # no transfer time yet (elapsed = latency): no rate, no decision
    assert policy.abandon(_progress(0, 2, size[2], got, 0.5, 0.5, 0.0))[0] == -1
    assert policy.abandon(_progress(0, 2, size[2], 0.0, 1.0, 0.0, 0.0))[0] == -1
    assert policy.abandon(_progress(0, 2, size[2], got, 1.0, 0.0, 0.0, active=False))[0] == -1
    # the placeholder counts in the buffer level: with a large one rung 2 scores higher than rung 0
    policy.placeholder[:] = 3.0 * V
    assert policy.abandon(_progress(0, 2, size[2], got, 1.0, 0.0, 0.0))[0] == -1
    assert policy.abandoned_to[0] == -1


def test_bola_e_starts_at_the_lowest_rung_and_jumps_to_the_throughput_rung():
    ctx = _ctx(SMALL)
    policy = _policy(BOLAE, ctx, ibr=False)
    assert policy.act(_obs(0, 0.0, -1))[0] == 0
    # 1.0 Mbit/s sustains 800 kbps (rung 1), not 1600
    assert policy.act(_obs(1, 2.0, 0, thr=1.0))[0] == 1
    _, _, _, min_level, _, _ = policy._chunk(1)
    assert policy.placeholder[0] == pytest.approx(max(min_level[1] - 2.0, 0.0))


def test_sabre_mode_reasons_with_nominal_bitrates_only():
    # On a ladder whose sizes are the nominal bitrates and whose LOG qualities are ln(R / R_0),
    # our own inputs are Sabre's (the golden replay above relies on it): peer=sabre must decide the
    # same. On a ladder with other sizes and qualities but the same nominal bitrates, peer=sabre
    # must still decide the same, as it only sees the nominal bitrates.
    kbps = [250, 500, 1000, 2000]
    ctx = _ctx(kbps, n_chunks=6)
    other = [[k * 1000 / 8 * 2.0 * (1.5 + 0.5 * j) for j, k in enumerate(kbps)]] * 6
    lad2 = make_ladder(other, chunk_s=2.0, kbps=[float(k) for k in kbps])
    ctx2 = PolicyContext(lad2, LOG, LOG.chunk_quality(lad2) * 0.5, np.zeros(lad2.size_bytes.shape), 25.0)
    bl = np.linspace(0.0, 25.0, 101)
    for last in range(4):
        for k in (1, 4):
            ours = _policy(BOLA, ctx, n=len(bl), variant="u", peer="none")
            ours.last = np.full(len(bl), last)
            want = ours.act(_obs(k, bl, last, thr=np.full(len(bl), 1e-9)))
            for c in (ctx, ctx2):
                sab = _policy(BOLA, c, n=len(bl), variant="u", peer="sabre")
                sab.last = np.full(len(bl), last)
                obs = _obs(k, bl, last, thr=np.full(len(bl), 1e-9))
                got = sab.act(dataclasses.replace(obs, latency_s=np.zeros_like(obs.delay_s)))
                assert got.tolist() == want.tolist(), (last, k)
    assert len(set(want.tolist())) > 1  # the grid spans several rungs


def test_bola_abandonment_under_sabre_and_its_effect_on_the_last_choice():
    ctx = _ctx(KBPS)
    lat = lambda o: dataclasses.replace(o, latency_s=np.zeros_like(o.delay_s))  # noqa: E731
    ours = _policy(BOLA, ctx, variant="u", peer="none")
    sab = _policy(BOLA, ctx, variant="u", peer="sabre")
    for p in (ours, sab):
        p.act(lat(_obs(10, 2.0, 3, thr=100.0)))
    size = ctx.ladder.size_bytes[10]
    # the ladder's sizes are the nominal ones, so Sabre's scaled sizes are the same: same decision
    prog = _progress(10, 3, size[3], 100e3, 1.0, 0.1, 2.0)
    assert sab.abandon(prog)[0] == ours.abandon(prog)[0] != -1
    # Sabre never checks the first segment; our rule does
    first = _progress(0, 3, size[3], 100e3, 1.0, 0.1, 2.0)
    assert sab.abandon(first)[0] == -1 and ours.abandon(first)[0] != -1
    # abandoning to rung 0 makes rung 0 BOLA's last choice (the next up-switch limit counts from it)
    low = _policy(BOLA, ctx, variant="u")
    low.act(_obs(10, 0.5, 3, thr=100.0))
    assert low.abandon(_progress(10, 3, size[3], 100e3, 1.0, 0.1, 0.5))[0] == 0
    assert low.last.tolist() == [0]


def test_bola_e_abandonment_lowers_the_placeholder_as_sabre_does():
    # Sabre's report of an abandoned attempt: placeholder = min(placeholder, want - buffer), want the
    # 10 s minimum buffer after abandoning to rung 0, else the lowest level at which BOLA picks the
    # new rung; a download that goes on leaves the placeholder alone
    ctx = _ctx(SMALL)
    policy = _policy(BOLAE, ctx)
    policy.act(_obs(0, 0.0, -1))
    size = ctx.ladder.size_bytes[1]
    rung1_from = policy._chunk(1)[3][1]
    for ph, buf, got, to, after in [
        (5.0, 6.0, 10e3, 0, 10.0 - 6.0),
        (5.0, 9.0, 10e3, 1, rung1_from - 9.0),
        (8.0, 6.0, 10e3, 1, rung1_from - 6.0),
        (5.0, 6.0, 150e3, -1, 5.0),
    ]:
        policy.placeholder[:] = ph
        assert policy.abandon(_progress(1, 2, size[2], got, 1.0, 0.0, buf))[0] == to
        assert policy.placeholder[0] == pytest.approx(min(ph, after)), (ph, buf, got)
    assert 6.0 < rung1_from < 14.0  # the cases above do lower the placeholder


# ----------------------------------------------------------------------------- decode-aware BOLA

PERCEPTUAL = get_qoe("perceptual")


def _tie_ctx(decode=None, n_chunks=3):
    """2-s chunks of 12.5 kB and 25 kB at q = 0.5 and 0.75 (1 - LPIPS), decode times ``decode``
    (chunks x rungs; zero by default). Planned from an empty buffer at w bytes/s, rung r is worth
    q_r - S_r / w (the start-up is a stall): 0.5 - 12500 / w against 0.75 - 25000 / w, equal at
    exactly w = 50 000 B/s = 0.4 Mbit/s (the first rung wins the tie) and rung 1 above."""
    lad = make_ladder([[12500.0, 25000.0]] * n_chunks, lpips=[[0.5, 0.25]] * n_chunks)
    dec = np.zeros(lad.size_bytes.shape) if decode is None else np.asarray(decode, dtype=float)
    return PolicyContext(lad, PERCEPTUAL, PERCEPTUAL.chunk_quality(lad), dec, 25.0)


@pytest.mark.parametrize("mbps, want", [(0.4, 0), (0.4 * (1 + 1e-9), 1), (0.42, 1), (0.38, 0)])
def test_decode_aware_bola_plans_the_first_chunk_at_the_prior_throughput(mbps, want):
    ctx = _tie_ctx()
    policy = _policy(BOLA, ctx, n=2, decode_aware=True, startup_mbps=mbps)
    got = policy.act(_obs(0, [0.0, 20.0], -1))
    assert got.tolist() == [want, want] and got.dtype == np.int64  # the plan ignores BOLA's choice
    later = policy.act(_obs(1, [0.0, 20.0], want))
    assert later.dtype == np.int64


def test_decode_aware_bola_checks_the_decode_time_of_the_chunk_it_fetches():
    # nominal decode of rung 1: 0.1 s at chunks 0 and 1, 1.5 s at chunk 2 (real time: both rungs allowed)
    ctx = _tie_ctx(decode=[[0.1, 0.1], [0.1, 0.1], [0.1, 1.5]])
    assert _policy(BOLA, ctx).act(_obs(1, 20.0, 1))[0] == 1  # a full buffer: BOLA takes rung 1
    # chunk 1: rung 1 fits and is kept (not the start-up plan, which would take rung 0 at 0.4 Mbit/s)
    assert _policy(BOLA, ctx, decode_aware=True).act(_obs(1, 20.0, 1))[0] == 1
    # chunk 1 took 0.2 s on rung 1, twice its nominal time: chunk 2 at rung 1 is predicted at
    # 3 s, more than its 2 s of play, so decode-aware BOLA steps down; chunk 0 would have fitted
    decode = np.full((1, 8), np.nan)
    decode[0, -1] = 0.2
    obs = dataclasses.replace(_obs(2, 20.0, 1), decode_s=decode)
    assert _policy(BOLA, ctx).act(obs)[0] == 1
    assert _policy(BOLA, ctx, decode_aware=True).act(obs)[0] == 0


# ----------------------------------------------------------------------------- abandonment edges


def test_bola_abandonment_edges():
    ctx = _ctx(KBPS)
    size = ctx.ladder.size_bytes[10]
    # abandoning to rung 0 makes rung 0 BOLA's last choice, whatever it was before
    low = _policy(BOLA, ctx, variant="u")
    low.act(_obs(10, 0.5, 3, thr=100.0))
    low.last[:] = 3
    assert low.abandon(_progress(10, 3, size[3], 100e3, 1.0, 0.1, 0.5))[0] == 0
    assert low.last.tolist() == [0]
    # one byte received is enough to judge
    assert low.abandon(_progress(10, 3, size[3], 1.0, 1.0, 0.1, 0.5))[0] == 0
    # Sabre skips only the first segment: the second is checked
    sab = _policy(BOLA, ctx, variant="u", peer="sabre")
    sab.act(dataclasses.replace(_obs(1, 0.5, 3, thr=100.0), latency_s=np.zeros((1, 8))))
    assert sab.abandon(_progress(1, 3, size[3], 100e3, 1.0, 0.1, 0.5))[0] == 0


def test_abandon_rules_divide_quietly():
    """A finished download (nothing left) and one with no transfer time yet divide by zero;
    the rules answer -1 there without a numpy warning."""
    import warnings

    ctx = _ctx(KBPS)
    size = ctx.ladder.size_bytes[10]
    bola = _policy(BOLA, ctx, variant="u")
    bola.act(_obs(10, 2.0, 3, thr=100.0))
    v, V = bola._plan
    top = V * (5.0 + v[3])  # the buffer level at which the current rung's score numerator is 0
    bolae = _policy(BOLAE, ctx)
    bolae.act(_obs(10, 2.0, 3, thr=100.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bola.abandon_rule(_progress(10, 3, size[3], size[3], 1.0, 0.1, 2.0))[0] == -1  # x / 0
        assert bola.abandon_rule(_progress(10, 3, size[3], size[3], 1.0, 0.1, top))[0] == -1  # 0 / 0
        assert bolae.abandon_rule(_progress(10, 3, size[3], 100e3, 0.1, 0.1, 2.0))[0] == -1  # rate x / 0
        assert bolae.abandon_rule(_progress(10, 3, size[3], 0.0, 0.1, 0.1, 2.0))[0] == -1  # rate 0 / 0


def _bolae_decides(V, gp, v, S0, level, left):
    """Sabre's BOLA-E abandonment by hand: rung 0's whole chunk against what is left of rung 2."""
    return S0 < left and (V * (gp + v[0]) - level) / S0 > (V * (gp + v[2]) - level) / left


@pytest.mark.parametrize("buffer_s, ttfb", [(1.0, 0.5), (0.5, 0.0), (0.0, 0.3)])
def test_bola_e_abandonment_level_is_the_buffer_after_the_new_requests_latency(buffer_s, ttfb):
    # level = max(buffer + placeholder - ttfb, 0); the bytes left are chosen so that the decision
    # flips between that level and a level 1 s higher
    ctx = _ctx(SMALL)
    policy = _policy(BOLAE, ctx)
    policy.act(_obs(0, 0.0, -1))
    v, gp, V, *_ = policy._chunk(0)
    size = ctx.ladder.size_bytes[0]
    level = max(buffer_s - ttfb, 0.0)
    # the smallest left (in whole kB) at which rung 0 wins at `level`: left* = S0 (gp + v2 - L/V) / (gp + v0 - L/V)
    need = size[0] * (V * (gp + v[2]) - level) / (V * (gp + v[0]) - level)
    left = math.ceil(need / 1e3 + 1e-9) * 1e3
    assert _bolae_decides(V, gp, v, size[0], level, left)
    assert not _bolae_decides(V, gp, v, size[0], level + 1.0, left)
    assert not _bolae_decides(V, gp, v, size[0], level, left - 1e3)
    dl_s = 1.0
    got = 100e3
    rate = got / dl_s
    total = left + got + ttfb * rate  # left = total - got - ttfb x rate
    prog = _progress(0, 2, total, got, ttfb + dl_s, ttfb, buffer_s)
    assert policy.abandon_rule(prog)[0] == 0
    short = _progress(0, 2, total - 1e3, got, ttfb + dl_s, ttfb, buffer_s)
    assert policy.abandon_rule(short)[0] == -1


def test_bola_e_abandonment_placeholder_edges():
    ctx = _ctx(SMALL)
    size = ctx.ladder.size_bytes[1]
    # a buffer above the 10 s wanted after abandoning to rung 0: the placeholder drops to 0
    policy = _policy(BOLAE, ctx)
    policy.act(_obs(0, 0.0, -1))
    policy.placeholder[:] = 0.5
    assert policy.abandon(_progress(1, 2, size[2], 10e3, 1.0, 0.0, 10.5))[0] == 0
    assert policy.placeholder[0] == 0.0
    # under Sabre an abandoned attempt's time is remembered, one to rung 0 included
    sab = _policy(BOLAE, ctx, peer="sabre")
    sab.act(dataclasses.replace(_obs(0, 0.0, -1), latency_s=np.zeros((1, 8))))
    assert sab.abandon(_progress(1, 2, size[2], 10e3, 1.5, 0.0, 6.0))[0] == 0
    assert sab.abandoned_s[0] == 1.5


def test_bola_abandons_at_a_zero_score_for_a_better_lower_rung():
    # perceptual q = 1 - LPIPS: rung 0 is the best and the smallest. Fetching rung 3 with the buffer
    # exactly at its top level V (gp + v_3) scores 0, which still counts; rung 0 scores above it
    lad = make_ladder([[62.5e3, 125e3, 250e3, 500e3]] * 30, lpips=[[0.1, 0.3, 0.25, 0.2]] * 30)
    ctx = PolicyContext(lad, PERCEPTUAL, PERCEPTUAL.chunk_quality(lad), np.zeros(lad.size_bytes.shape), 25.0)
    policy = _policy(BOLA, ctx, variant="u")
    policy.act(_obs(10, 2.0, 3, thr=100.0))
    v, V = policy._plan
    assert v[0] > v[3]
    top = V * (5.0 + v[3])
    assert policy.abandon(_progress(10, 3, 500e3, 100e3, 1.0, 0.1, top))[0] == 0


def _perceptual_ctx(lpips, decode=None, n=30):
    lad = make_ladder([[62.5e3, 125e3, 250e3, 500e3]] * n, lpips=[lpips] * n)
    dec = np.broadcast_to(np.asarray(0.0 if decode is None else decode, dtype=float), lad.size_bytes.shape)
    return PolicyContext(lad, PERCEPTUAL, PERCEPTUAL.chunk_quality(lad), np.array(dec), 25.0)


def test_abandonment_targets_are_allowed_lower_rungs_smaller_than_what_is_left():
    # rung 0 cannot be decoded in real time (3 s for a 2-s chunk): abandoning goes to rung 1, not 0
    ctx = _perceptual_ctx([0.3, 0.2, 0.15, 0.1], decode=[3.0, 0.0, 0.0, 0.0])
    policy = _policy(BOLA, ctx, variant="u")
    policy.act(_obs(10, 0.5, 3, thr=100.0))
    assert policy.abandon(_progress(10, 3, 500e3, 10e3, 1.0, 0.1, 0.5))[0] == 1
    free = _policy(BOLA, _perceptual_ctx([0.3, 0.2, 0.15, 0.1]), variant="u")
    free.act(_obs(10, 0.5, 3, thr=100.0))
    assert free.abandon(_progress(10, 3, 500e3, 10e3, 1.0, 0.1, 0.5))[0] == 0  # rung 0 when it is allowed
    # rung 0 is the best and smallest rung, but a chunk exactly as large as what is left is no target
    best0 = _policy(BOLA, _perceptual_ctx([0.1, 0.3, 0.25, 0.2]), variant="u")
    best0.act(_obs(10, 2.0, 3, thr=100.0))
    assert best0.abandon(_progress(10, 3, 500e3, 500e3 - 62.5e3, 1.0, 0.1, 2.0))[0] == -1
    assert best0.abandon(_progress(10, 3, 500e3, 500e3 - 62.6e3, 1.0, 0.1, 2.0))[0] == 0


def test_abandonment_needs_a_strictly_better_score():
    # rungs 0 and 3 have the same quality (utility); at the buffer where rung 3's score is 0,
    # rung 0's is 0 too: a tie, no abandonment
    ctx = _perceptual_ctx([0.2, 0.3, 0.25, 0.2])
    policy = _policy(BOLA, ctx, variant="u")
    policy.act(_obs(10, 2.0, 3, thr=100.0))
    v, V = policy._plan
    assert v[0] == v[3]
    assert policy.abandon(_progress(10, 3, 500e3, 100e3, 1.0, 0.1, V * (5.0 + v[3])))[0] == -1


def test_bola_e_sabre_abandonment_skips_only_the_first_segment():
    ctx = _ctx(SMALL)
    lat = lambda o: dataclasses.replace(o, latency_s=np.zeros_like(o.delay_s))  # noqa: E731
    for k, want in [(0, -1), (1, 0)]:
        sab = _policy(BOLAE, ctx, peer="sabre")
        sab.act(lat(_obs(0, 0.0, -1)))
        size = ctx.ladder.size_bytes[k]
        assert sab.abandon_rule(_progress(k, 2, size[2], 150e3, 1.0, 0.0, 0.0))[0] == want
    # one byte received is enough to judge
    policy = _policy(BOLAE, ctx)
    policy.act(_obs(0, 0.0, -1))
    assert policy.abandon_rule(_progress(0, 2, ctx.ladder.size_bytes[0][2], 1.0, 1.0, 0.0, 0.0))[0] == 0


def test_bola_e_adds_the_buffer_cap_wait_before_the_second_decision():
    # chunk 0 took 1 s and the player then waited 3 s on the buffer cap (clock 4 s); no throughput
    # sample yet (the start-up jump waits for one): the placeholder is that 3 s wait
    ctx = _ctx(SMALL)
    policy = _policy(BOLAE, ctx)
    policy.act(_obs(0, 0.0, -1))
    obs = _obs(1, 2.0, 0)
    delay = np.full((1, 8), np.nan)
    delay[0, -1] = 1.0
    obs = dataclasses.replace(obs, delay_s=delay, clock_s=np.array([4.0]))
    assert policy.act(obs)[0] == 0
    assert policy.placeholder[0] == pytest.approx(3.0)


@pytest.mark.parametrize(
    "ph, buffer_s, clock_s, r, want",
    [
        # Sabre's report_download: level = buffer + wait (the buffer when the chunk arrived),
        # level_was = level + delay; ph = min(ph, max(max_level[r] - level_was, 0)); if level > 0:
        # ph = max(ph, min_level[r] - level_was); then ph + wait. Delay 1 s, previous clock 0.
        (100.0, 2.0, 4.0, 0, lambda lo, hi: hi[0] - 6.0 + 3.0),  # wait 3: level 5, level_was 6
        (0.0, 0.5, 1.0, 2, lambda lo, hi: lo[2] - 1.5),  # no wait: level 0.5 > 0 lifts it to min_level
        (0.0, 0.0, 1.0, 2, lambda lo, hi: 0.0),  # level 0 (an empty buffer): no lift
    ],
)  # fmt: skip
def test_bola_e_placeholder_after_a_download_by_hand(ph, buffer_s, clock_s, r, want):
    ctx = _ctx(SMALL)
    policy = _policy(BOLAE, ctx)
    _, _, _, min_level, max_level, _ = policy._chunk(3)
    assert max_level[0] > 6.0 and min_level[2] > 1.5
    policy.placeholder[:] = ph
    delay = np.full((1, 8), np.nan)
    delay[0, -1] = 1.0
    obs = dataclasses.replace(_obs(4, buffer_s, r), delay_s=delay, clock_s=np.array([clock_s]))
    policy._after_download(obs, 3)
    assert policy.placeholder[0] == pytest.approx(want(min_level, max_level))


def test_bola_e_scores_real_sizes_outside_sabre():
    # nominal sizes 125k, 200k, 400k bytes; real sizes 125k, 380k, 400k. In steady state with no
    # placeholder, no up-switch limit (a fast network) and no insufficient-buffer rule, BOLA-E takes
    # argmax (V (v_m + gp) - B) / S_m over the real sizes
    real = [125e3, 380e3, 400e3]
    lad = make_ladder([real] * 20, kbps=[500.0, 800.0, 1600.0], lpips=[[0.3, 0.2, 0.1]] * 20)
    ctx = PolicyContext(lad, PERCEPTUAL, PERCEPTUAL.chunk_quality(lad), np.zeros(lad.size_bytes.shape), 25.0)
    levels = np.linspace(0.0, 40.0, 161)
    policy = _policy(BOLAE, ctx, n=len(levels), ibr=False)
    policy.steady[:] = True
    v, gp, V, *_ = policy._chunk(5)
    got = policy.act(_obs(5, levels, 0, thr=np.full(len(levels), 100.0)))
    score = lambda S: (V * (v[None, :] + gp) - levels[:, None]) / np.asarray(S)[None, :]  # noqa: E731
    want = np.argmax(score(real), axis=1)
    assert got.tolist() == want.tolist()
    assert (np.argmax(score([125e3, 200e3, 400e3]), axis=1) != want).any()  # nominal sizes would differ


def test_bola_e_clamps_the_placeholder_with_the_levels_of_the_chunk_just_downloaded():
    # chunk 4's middle rung is smaller than the other chunks', which moves its levels; deciding
    # chunk 5 after fetching chunk 4 at rung 2 (1 s delay, no wait) lifts an empty placeholder
    # to chunk 4's min_level[2] - (buffer + delay)
    sizes = [[125e3, 200e3, 400e3]] * 10
    sizes[4] = [125e3, 150e3, 400e3]
    lad = make_ladder(sizes, kbps=[500.0, 800.0, 1600.0], lpips=[[0.3, 0.2, 0.1]] * 10)
    ctx = PolicyContext(lad, PERCEPTUAL, PERCEPTUAL.chunk_quality(lad), np.zeros(lad.size_bytes.shape), 25.0)
    policy = _policy(BOLAE, ctx, ibr=False)
    policy.steady[:] = True
    lift = [policy._chunk(j)[3][2] - 3.0 for j in (3, 4)]
    assert min(lift) > 0.0 and abs(lift[0] - lift[1]) > 0.5, lift
    obs = _obs(5, 2.0, 2, thr=100.0)
    policy.act(obs)
    assert policy.placeholder[0] == pytest.approx(lift[1])


def test_bola_e_start_on_a_slow_network_needs_no_placeholder():
    # 0.1 Mbit/s sustains rung 0 only: the start-up jump goes to rung 0, whose lowest level is 0
    ctx = _ctx(SMALL)
    policy = _policy(BOLAE, ctx, ibr=False)
    policy.act(_obs(0, 0.0, -1))
    assert policy.abandoned_to.tolist() == [-1]
    second = policy.act(_obs(1, 2.0, 0, thr=0.1))
    assert second.tolist() == [0] and second.dtype == np.int64
    assert policy.placeholder[0] == 0.0 and policy.steady[0]
    assert policy.abandoned_to.tolist() == [-1] and policy.abandoned_s.tolist() == [0.0]


def test_bola_e_insufficient_buffer_rule_drops_the_placeholder_to_the_capped_rungs_level():
    # steady state, rung 1 last, buffer 1 s + placeholder 12 s: BOLA wants rung 1, but 0.1 Mbit/s
    # x 0.9 x 1 s of buffer is 11 kB: the rule caps to rung 0, and the placeholder falls to
    # max(min_level[0] - buffer, 0) = 0
    ctx = _ctx(SMALL)
    policy = _policy(BOLAE, ctx)
    policy.steady[:] = True
    policy.placeholder[:] = 12.0
    _, _, _, min_level, max_level, _ = policy._chunk(4)
    assert min_level[1] < 13.0 < max_level[0] and min_level[1] - 2.0 < 12.0  # after the download: 12 s kept
    assert policy.act(_obs(5, 1.0, 1, thr=0.1))[0] == 0
    assert policy.placeholder[0] == 0.0


def _cross(V, gp, v, S, j, m):
    """The buffer level at which rung m's score overtakes rung j's: (V (v_j + gp) - B) / S_j =
    (V (v_m + gp) - B) / S_m solved for B."""
    return V * (gp + (S[m] * v[j] - S[j] * v[m]) / (S[m] - S[j]))


def test_bola_e_lowest_levels_count_only_allowed_lower_rungs_of_lower_utility():
    # q = 0.7, 0.9, 0.8, 0.8 at rising sizes: rung 1 beats rung 2 and 3 on utility, rungs 2 and 3 tie
    ctx = _perceptual_ctx([0.3, 0.1, 0.2, 0.2])
    policy = _policy(BOLAE, ctx)
    v, gp, V, min_level, max_level, allowed = policy._chunk(2)
    S = ctx.ladder.size_bytes[2]
    assert v[0] < v[2] == v[3] < v[1]
    assert min_level[0] == 0.0
    assert min_level[1] == pytest.approx(max(_cross(V, gp, v, S, 0, 1), 0.0))
    assert min_level[2] == pytest.approx(max(_cross(V, gp, v, S, 0, 2), 0.0))  # not rung 1 (better)
    assert min_level[3] == pytest.approx(max(_cross(V, gp, v, S, 0, 3), 0.0))  # not rung 2 (equal)
    assert _cross(V, gp, v, S, 1, 2) > min_level[2] and max_level[3] > min_level[3]  # they would count
    # rung 0 cannot be decoded in real time: no rung has an allowed lower rung of lower utility
    slow = _policy(BOLAE, _perceptual_ctx([0.3, 0.1, 0.2, 0.2], decode=[3.0, 0.0, 0.0, 0.0]))
    assert slow._chunk(2)[3].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert max(_cross(V, gp, v, S, 0, m) for m in (1, 2, 3)) > 0.0


def test_utilities_span_the_allowed_rungs_only():
    # rung 3 cannot be decoded in real time: v maps q of rungs 0-2 onto [offset, offset + ln(S_2 / S_0)]
    ctx = _perceptual_ctx([0.3, 0.2, 0.1, 0.05], decode=[0.0, 0.0, 0.0, 3.0])
    q = 1.0 - np.array([0.3, 0.2, 0.1])
    want = np.log(250e3 / 62.5e3) * (q - q[0]) / (q[2] - q[0])
    policy = _policy(BOLA, ctx)
    policy.act(_obs(10, 5.0, 0))
    assert policy._plan[0][:3] == pytest.approx(want)
    assert _policy(BOLAE, ctx)._chunk(10)[0][:3] == pytest.approx(1.0 + want)


def test_bola_v_floor_and_small_utility_range():
    # Q_max 2.5 s with 2-s chunks leaves 0.5 s: V = 0.5 / (v_max + gamma p)
    ctx = _ctx(KBPS)
    policy = _policy(BOLA, ctx, qmax=2.5)
    policy.act(_obs(10, 0.0, 0))
    assert policy._plan[1] == pytest.approx(0.5 / (math.log(8) + 5.0))
    # BOLA-E on a ladder spanning 2x in bitrate: gp = ln 2 / (target / 10 - 1) (no floor at 1)
    two = _policy(BOLAE, _ctx([500, 1000]))
    assert two._chunk(0)[1] == pytest.approx(math.log(2) / (25.0 / 10.0 - 1.0))


def test_sabre_first_segment_and_latency_half_lives_follow_the_first_segment():
    ctx = _ctx(KBPS)
    first = _policy(BOLA, ctx, variant="u", peer="sabre").act(
        dataclasses.replace(_obs(0, 0.0, -1), latency_s=np.zeros((1, 8)))
    )  # fmt: skip
    assert first.tolist() == [0] and first.dtype == np.int64
    # the latency half-lives are counted in segments of chunk 0's duration (3 s here, 2 s after)
    lad = dataclasses.replace(ctx.ladder, duration_s=np.r_[3.0, np.full(ctx.ladder.n_chunks - 1, 2.0)])
    ctx3 = dataclasses.replace(ctx, ladder=lad)
    assert _policy(BOLA, ctx3, peer="sabre").ewma.segment_s == 3.0
    assert _policy(BOLAE, ctx3, peer="sabre").ewma.segment_s == 3.0

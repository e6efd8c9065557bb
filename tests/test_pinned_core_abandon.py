"""sim.core's abandonment (latency mode) pinned by hand-computed small cases.

Every trace here runs at a constant 8 Mbit/s (1 MB/s) with 100 ms request latency unless said
otherwise, so the bytes of a transfer x seconds in are 1e6 x, and a check's times and bytes can
be worked out on paper. The same case runs through the check-by-check path (``abandon`` only) and
the event-driven one (``abandon_rule`` too), which must agree with the hand values.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import device, make_ladder

from abr.qoe import get_qoe
from policies.base import DownloadProgress
from sim.core import BatchSimulator, PlayerConfig, SimConfig
from sim.network import NetworkConfig
from sim.rng import session_keys
from traces.trace import Trace

LATENCY_NET = NetworkConfig(mode="latency", payload_fraction=1.0, noise_low=1.0, noise_high=1.0, random_start=False)
MB_S = Trace([100.0], [8.0], latency_ms=[100.0])


def start(trace, ladder, player, sessions=1):
    sim = BatchSimulator([trace], ladder, device(), get_qoe("perceptual"), SimConfig(LATENCY_NET, player))
    sim.reset(np.zeros(sessions, dtype=np.int64), session_keys(0, np.arange(sessions)))
    return sim


def copy(p: DownloadProgress) -> DownloadProgress:
    arrays = ("active", "rung", "size_bytes", "downloaded_bytes", "elapsed_s", "latency_s", "buffer_s")
    return dataclasses.replace(p, **{name: np.copy(getattr(p, name)) for name in arrays})


class Recorder:
    """Gives a download up for rung 0 once ``give_up_at`` bytes have arrived (never: inf); records
    what ``abandon`` saw. ``rule`` is the same answer, side-effect free."""

    def __init__(self, give_up_at=np.inf):
        self.give_up_at = give_up_at
        self.seen: list[DownloadProgress] = []

    def rule(self, p):
        return np.where(p.active & (p.rung > 0) & (p.downloaded_bytes >= self.give_up_at), 0, -1)

    def abandon(self, p):
        self.seen.append(copy(p))
        return self.rule(p)


# ----------------------------------------------------------------------------- throughput samples


@pytest.mark.parametrize("in_sample", [True, False])
def test_the_sample_of_an_abandoned_chunk(in_sample):
    # rung 1 (1 MB) given up at the first check (50 ms, 50 kB) for rung 0 (100 kB):
    # 0.1 + 0.05 + 0.1 + 0.1 = 0.35 s. With the abandoned attempt in the sample: 150 kB in 0.35 s;
    # without it (Sabre): 100 kB in the kept request's 0.2 s = 4 Mbit/s.
    sim = start(MB_S, make_ladder([[100_000, 1_000_000]] * 2), PlayerConfig(abandoned_in_sample=in_sample))
    rec = Recorder(give_up_at=0.0)
    obs, info, _ = sim.step(np.array([1]), rec.abandon)
    assert info.delay_s[0] == pytest.approx(0.35, rel=1e-12) and info.wasted_bytes[0] == pytest.approx(50_000)
    want_thr, want_delay = (150_000 * 8 / 0.35 / 1e6, 0.35) if in_sample else (4.0, 0.2)
    assert info.throughput_mbps[0] == pytest.approx(want_thr, rel=1e-12)
    assert obs.throughput_mbps[0, -1] == pytest.approx(want_thr, rel=1e-12)
    assert obs.delay_s[0, -1] == pytest.approx(want_delay, rel=1e-12)
    assert obs.latency_s[0, -1] == pytest.approx(0.1)  # the kept request's latency


# ----------------------------------------------------------------------------- bytes at a check


@pytest.mark.parametrize("use_rule", [False, True])
def test_bytes_at_each_check_across_the_traces_wrap(use_rule):
    # a 2.5 s trace at 1 MB/s; a 3 MB chunk requested at 0 starts at 0.1 and wraps at 2.5.
    # Checks every 0.5 s of transfer: 0.5 .. 2.5 s in, 0.5 .. 2.5 MB; given up at 2.5 MB (after the
    # wrap) for rung 0 (100 kB, from position 2.6 - 2.5 = 0.1): 0.1 + 2.5 + 0.1 + 0.1 = 2.8 s.
    trace = Trace([2.5], [8.0], latency_ms=[100.0])
    sim = start(trace, make_ladder([[100_000, 3_000_000]] * 2), PlayerConfig(abandon_check_s=0.5))
    rec = Recorder(give_up_at=2_400_000)
    _, info, _ = sim.step(np.array([1]), rec.abandon, rec.rule if use_rule else None)
    assert info.delay_s[0] == pytest.approx(2.8, rel=1e-12)
    assert info.wasted_bytes[0] == pytest.approx(2_500_000, rel=1e-12)
    assert sim.pos[0] == pytest.approx(0.3, rel=1e-9)
    if not use_rule:
        assert [p.downloaded_bytes[0] for p in rec.seen] == pytest.approx([5e5, 1e6, 1.5e6, 2e6, 2.5e6], rel=1e-12)
        assert [p.elapsed_s[0] for p in rec.seen] == pytest.approx([0.6, 1.1, 1.6, 2.1, 2.6], rel=1e-12)
    else:  # only the check that gives up is shown to abandon()
        assert len(rec.seen) == 1 and rec.seen[0].downloaded_bytes[0] == pytest.approx(2.5e6, rel=1e-12)


# ----------------------------------------------------------------------------- Sabre's check schedule


@pytest.mark.parametrize("use_rule", [False, True])
@pytest.mark.parametrize(
    "latency_ms, min_bytes, kb_at_checks",
    [
        # bytes rule the schedule: the first check at max(0.05 - 0.1, 0.1 s for 100 kB) = 0.1 s of
        # transfer, then every 100 kB (0.1 s > 50 ms): 100, 200, ..., 500 kB
        (100.0, 100_000, [100, 200, 300, 400, 500]),
        # time rules it: the first check 50 ms after the request leaves (0.03 s of transfer, > 10 kB),
        # then every 50 ms (> 10 kB): 30, 80, ..., 480 kB
        (20.0, 10_000, [30, 80, 130, 180, 230, 280, 330, 380, 430, 480]),
        # a 1-byte minimum is still Sabre's schedule, timed from the request: as above, not 50, 100, ...
        (20.0, 1, [30, 80, 130, 180, 230, 280, 330, 380, 430, 480]),
    ],
)
def test_sabre_check_schedule(latency_ms, min_bytes, kb_at_checks, use_rule):
    # a 1 MB chunk (1 s of transfer) given up for rung 0 (100 kB) once 450 kB have arrived
    trace = Trace([100.0], [8.0], latency_ms=[latency_ms])
    player = PlayerConfig(abandon_check_s=0.05, abandon_check_bytes=min_bytes, abandoned_in_sample=False)
    sim = start(trace, make_ladder([[100_000, 1_000_000]] * 2), player)
    rec = Recorder(give_up_at=450_000)
    _, info, _ = sim.step(np.array([1]), rec.abandon, rec.rule if use_rule else None)
    got = [p.downloaded_bytes[0] / 1000 for p in rec.seen if p.rung[0] == 1]
    assert got == pytest.approx(kb_at_checks[-1:] if use_rule else kb_at_checks, rel=1e-9)
    # the replacement is checked on its own schedule (none with the rule: nothing is below rung 0)
    again = [p.downloaded_bytes[0] / 1000 for p in rec.seen if p.rung[0] == 0]
    assert again == pytest.approx([] if use_rule or min_bytes == 100_000 else [30, 80], rel=1e-9)
    lat, x = latency_ms / 1000, kb_at_checks[-1] / 1000
    # abandoned lat + x s in; the replacement's 100 kB take lat + 0.1 s, with no check before they end
    assert info.delay_s[0] == pytest.approx(lat + x + lat + 0.1, rel=1e-9)
    assert info.wasted_bytes[0] == pytest.approx(x * 1e6, rel=1e-9)
    assert info.rung[0] == 0 and info.abandoned[0] == 1
    assert info.throughput_mbps[0] == pytest.approx(0.8 / (lat + 0.1), rel=1e-9)  # the kept request only


# ----------------------------------------------------------------------------- which checks there are


@pytest.mark.parametrize("use_rule", [False, True])
@pytest.mark.parametrize("dt", [0.5, 0.1])
def test_a_check_at_the_very_end_of_a_download_is_no_check(use_rule, dt):
    # 250 ms latency, a 1 MB chunk: the transfer ends 1.0 s in, at check number 1 / dt (checks are
    # m x dt, not a running sum of dt, which falls short of 1.0 after ten 0.1 s steps). A policy
    # giving up from 1 MB - dt/2 on is asked at dt, 2 dt, ... < 1 s only, and never abandons: 1.25 s.
    trace = Trace([100.0], [8.0], latency_ms=[250.0])
    sim = start(trace, make_ladder([[100_000, 1_000_000]] * 2), PlayerConfig(abandon_check_s=dt))
    rec = Recorder(give_up_at=1e6 * (1 - dt / 2))
    _, info, _ = sim.step(np.array([1]), rec.abandon, rec.rule if use_rule else None)
    assert info.abandoned[0] == 0 and info.delay_s[0] == 1.25
    want = [] if use_rule else [1e6 * dt * m for m in range(1, round(1 / dt))]
    assert [p.downloaded_bytes[0] for p in rec.seen] == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("use_rule", [False, True])
def test_sabre_schedule_gives_up_at_the_last_check_before_the_end(use_rule):
    # Sabre's schedule, 100 kB apart: a 1.05 MB chunk is checked at 100, 200, ..., 1000 kB. Given up
    # at the last of these (1 s of transfer, 50 ms before its end) for rung 0: 0.1 + 1 + 0.1 + 0.1 s.
    player = PlayerConfig(abandon_check_s=0.05, abandon_check_bytes=100_000)
    sim = start(MB_S, make_ladder([[100_000, 1_050_000]] * 2), player)
    rec = Recorder(give_up_at=950_000)
    _, info, _ = sim.step(np.array([1]), rec.abandon, rec.rule if use_rule else None)
    assert info.abandoned[0] == 1 and info.wasted_bytes[0] == pytest.approx(1_000_000, rel=1e-9)
    assert info.delay_s[0] == pytest.approx(1.3, rel=1e-9)
    assert len(rec.seen) == (1 if use_rule else 10)


def test_a_rule_answering_the_rung_in_flight_abandons_nothing():
    # "switch to the rung already downloading" is no abandonment: abandon() is never asked
    calls = []

    def abandon(p):
        calls.append(p.chunk)
        return p.rung

    sim = start(MB_S, make_ladder([[100_000, 1_000_000]] * 2), PlayerConfig())
    _, info, _ = sim.step(np.array([1]), abandon, lambda p: p.rung.copy())
    assert calls == [] and info.abandoned[0] == 0 and info.delay_s[0] == pytest.approx(1.1, rel=1e-12)


def test_the_rule_sees_the_buffer_at_each_check():
    # chunk 0 (1 MB, never given up) takes 1.1 s: no buffer yet at its checks. Chunk 1 is requested
    # at 1.1, when chunk 0 (2 s) starts playing: e s after the request the buffer is 2 - e s.
    # Chunk 1 is given up at 450 kB (0.55 s after the request) for rung 0.
    seen: list[tuple[int, float, float]] = []
    asked: list[DownloadProgress] = []

    def rule(p):
        seen.extend((p.chunk, e, b) for e, b in zip(p.elapsed_s, p.buffer_s))
        return np.where((p.chunk == 1) & (p.rung > 0) & (p.downloaded_bytes >= 450_000), 0, -1)

    def abandon(p):
        asked.append(copy(p))
        return rule(p)

    sim = start(MB_S, make_ladder([[100_000, 1_000_000]] * 2), PlayerConfig())
    _, info0, _ = sim.step(np.array([1]), abandon, rule)
    assert info0.abandoned[0] == 0 and info0.delay_s[0] == pytest.approx(1.1)
    first = [s for s in seen if s[0] == 0]
    assert len(first) >= 19 and all(b == 0.0 for _, _, b in first)
    _, info1, _ = sim.step(np.array([1]), abandon, rule)
    second = [s for s in seen if s[0] == 1]
    assert second and all(b == pytest.approx(2.0 - e, abs=1e-9) for _, e, b in second)
    assert info1.abandoned[0] == 1 and len(asked) == 1
    assert asked[0].buffer_s[0] == pytest.approx(2.0 - 0.55, abs=1e-9)


def test_a_download_ending_at_its_first_check_is_never_checked():
    # 250 ms latency, 500 kB: the transfer ends 0.5 s in, at the first 0.5 s check
    trace = Trace([100.0], [8.0], latency_ms=[250.0])
    sim = start(trace, make_ladder([[100_000, 500_000]] * 2), PlayerConfig(abandon_check_s=0.5))
    rec = Recorder(give_up_at=0.0)
    _, info, _ = sim.step(np.array([1]), rec.abandon)
    assert rec.seen == [] and info.abandoned[0] == 0 and info.delay_s[0] == 0.75


@pytest.mark.parametrize("use_rule", [False, True])
def test_answers_are_read_like_step_reads_rungs(use_rule):
    # a policy may answer with floats, in any shape holding one rung per entry (as step() takes rungs)
    rec = Recorder(give_up_at=450_000)

    def column(f):
        return lambda p: np.asarray(f(p), dtype=float)[:, None]

    sim = start(MB_S, make_ladder([[100_000, 1_000_000]] * 2), PlayerConfig(), sessions=2)
    _, info, _ = sim.step(np.array([1, 0]), column(rec.abandon), column(rec.rule) if use_rule else None)
    assert info.rung.dtype == np.int64 and info.rung.tolist() == [0, 0] and info.abandoned.tolist() == [1, 0]
    assert info.delay_s.shape == (2,) and info.delay_s == pytest.approx([0.1 + 0.45 + 0.2, 0.2], rel=1e-9)


def test_sabre_schedule_with_sessions_ending_in_different_blocks():
    # 1-byte minimum, 20 ms latency: checks at 30, 80, 130, ... kB. Session 0 downloads 200 kB (rung 1),
    # checked 4 times, never given up: 0.02 + 0.2 s. Session 1 downloads 1 MB (rung 2) and is given up
    # at 480 kB (the 10th check, in the rule's second block): 0.02 + 0.48 + 0.02 + 0.1 s.
    trace = Trace([100.0], [8.0], latency_ms=[20.0])
    player = PlayerConfig(abandon_check_s=0.05, abandon_check_bytes=1.0)
    sim = start(trace, make_ladder([[100_000, 200_000, 1_000_000]] * 2), player, sessions=2)
    rec = Recorder(give_up_at=450_000)
    _, info, _ = sim.step(np.array([1, 2]), rec.abandon, rec.rule)
    assert info.abandoned.tolist() == [0, 1] and info.rung.tolist() == [1, 0]
    assert info.delay_s == pytest.approx([0.22, 0.62], rel=1e-9)
    assert info.wasted_bytes == pytest.approx([0.0, 480_000], rel=1e-9)


def test_a_large_batch_gives_each_session_its_own_result():
    # 20,000 sessions searching at once (the rule's blocks are capped by the batch): the same as one
    trace = Trace([100.0], [8.0], latency_ms=[20.0])
    player = PlayerConfig(abandon_check_s=0.05, abandon_check_bytes=10_000)
    sim = start(trace, make_ladder([[100_000, 1_000_000]] * 2), player, sessions=20_000)
    rec = Recorder(give_up_at=450_000)
    _, info, _ = sim.step(np.ones(20_000, dtype=np.int64), rec.abandon, rec.rule)
    assert (info.abandoned == 1).all() and info.delay_s == pytest.approx(np.full(20_000, 0.62), rel=1e-9)

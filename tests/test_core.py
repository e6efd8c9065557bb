"""The simulator core against hand-computed cases, the Pensieve loop and its invariants."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import device, make_ladder

from abr.qoe import get_qoe
from policies.fixed import Fixed
from sim.core import BatchSimulator, PlayerConfig, SimConfig
from sim.network import NetworkConfig, TraceBank
from sim.reference import PensieveLoop
from sim.rng import session_keys, uniform
from sim.session import run_sessions
from traces.trace import Trace

EXACT = NetworkConfig(payload_fraction=1.0, rtt_s=0.0, noise_low=1.0, noise_high=1.0, random_start=False)


def exact(cap_s=60.0, quantum_s=0.0) -> SimConfig:
    return SimConfig(EXACT, PlayerConfig(buffer_cap_s=cap_s, sleep_quantum_s=quantum_s))


def run_fixed(trace, ladder, dev, config, rung=0):
    sim = BatchSimulator([trace], ladder, dev, get_qoe("perceptual"), config)
    sim.reset(np.array([0]), session_keys(0, np.array([0])))
    infos = []
    for _ in range(ladder.n_chunks):
        _, info, _ = sim.step(np.array([rung]))
        infos.append(info)
    return sim, infos


def test_stall_from_slow_network():
    # 1 Mbit/s, 500 kB chunks (4 s to download) of 2 s video: each chunk after the first stalls 2 s
    trace = Trace([10.0], [1.0])
    sim, infos = run_fixed(trace, make_ladder([[500_000]] * 3), device(), exact())
    assert [i.delay_s[0] for i in infos] == pytest.approx([4.0, 4.0, 4.0])
    assert infos[0].stall_s[0] == pytest.approx(4.0)  # startup
    assert [i.stall_s[0] for i in infos[1:]] == pytest.approx([2.0, 2.0])
    assert sim.play_start[0] == pytest.approx([4.0, 8.0, 12.0])


def test_stall_from_slow_decoder_on_fast_network():
    # 60 frames x 50 ms = 3 s to decode 2 s of video: 1 s stall per chunk even at 1 Gbit/s
    trace = Trace([10.0], [1000.0])
    size = 1000.0
    _, infos = run_fixed(trace, make_ladder([[size]] * 4), device(50.0), exact())
    dl = size * 8 / 1e9
    assert infos[0].stall_s[0] == pytest.approx(dl + 3.0)
    assert [i.stall_s[0] for i in infos[1:]] == pytest.approx([1.0, 1.0, 1.0])
    assert all(i.decode_s[0] == pytest.approx(3.0) for i in infos)


def test_realtime_decoder_adds_no_stall_after_startup():
    trace = Trace([10.0], [1000.0])
    _, infos = run_fixed(trace, make_ladder([[1000.0]] * 5), device(30.0), exact())  # 1.8 s per 2 s chunk
    assert infos[0].stall_s[0] == pytest.approx(1000 * 8 / 1e9 + 1.8)
    assert max(i.stall_s[0] for i in infos[1:]) == pytest.approx(0.0, abs=1e-12)


def test_buffer_cap_makes_the_downloader_wait():
    trace = Trace([10.0], [8000.0])  # 1 kB takes 1 microsecond
    dl = 1000 * 8 / 8e9
    sim, infos = run_fixed(trace, make_ladder([[1000.0]] * 5), device(), exact(cap_s=4.0))
    waits = [i.wait_s[0] for i in infos]
    # after chunk 1 the buffer holds 4 s - 2 dl: no wait; after chunk 2 it would hold 6 s
    assert waits[0] == 0.0 and waits[1] == 0.0
    assert waits[2] == pytest.approx(2.0 - 2 * dl, abs=1e-9)
    assert waits[3] == pytest.approx(2.0 - dl, abs=1e-9)
    assert waits[4] == 0.0  # nothing left to download
    assert max(i.buffer_s[0] for i in infos[:-1]) <= 4.0 + 1e-9


def test_buffer_cap_wait_is_quantised():
    trace = Trace([10.0], [8000.0])
    _, infos = run_fixed(trace, make_ladder([[1000.0]] * 4), device(), exact(cap_s=3.0, quantum_s=0.5))
    waits = np.array([i.wait_s[0] for i in infos])
    assert np.allclose(waits / 0.5, np.round(waits / 0.5))
    assert waits[1] == pytest.approx(1.0)  # 4 s buffered - 3 s cap = 1 s (rounded up to 0.5 s steps)


def test_outage_is_waited_through():
    # 1 s at 8 Mbit/s, 5 s outage, then 8 Mbit/s again: a 2 MB chunk spans the outage
    trace = Trace([1.0, 5.0, 10.0], [8.0, 0.0, 8.0])
    _, infos = run_fixed(trace, make_ladder([[2_000_000]]), device(), exact())
    assert infos[0].delay_s[0] == pytest.approx(1.0 + 5.0 + 1.0)


def test_download_matches_a_segment_walker_with_wraps():
    rng = np.random.default_rng(1)
    traces = [
        Trace(rng.uniform(0.2, 3.0, 30), np.where(rng.random(30) < 0.2, 0.0, rng.uniform(0.1, 20, 30)))
        for _ in range(5)
    ]
    bank = TraceBank(traces, payload_fraction=0.95)
    tix = rng.integers(0, 5, 200)
    pos = rng.random(200) * bank.total_s[tix]
    size = rng.uniform(1e3, 3e7, 200)  # up to several trace loops
    got = bank.download(tix, pos, size)
    for i in range(200):
        t = traces[tix[i]]
        loop = PensieveLoop(t.duration_s, t.mbps, pos[i], payload=0.95, rtt_s=0.0)
        want, *_ = loop.step(size[i], 1.0)
        assert got[i] == pytest.approx(want, rel=1e-9, abs=1e-9)
    # conservation: bytes deliverable over the computed interval equal the chunk size
    end = bank.advance(tix, pos, got)
    loops = np.floor((pos + got) / bank.total_s[tix] + 1e-12)
    delivered = bank.bytes_before(tix, end) + loops * bank.total_bytes[tix] - bank.bytes_before(tix, pos)
    assert delivered == pytest.approx(size, rel=1e-9)


def test_core_agrees_with_the_pensieve_loop():
    rng = np.random.default_rng(7)
    trace = Trace(np.full(300, 1.0), rng.uniform(0.3, 6.0, 300))
    ladder = make_ladder(rng.uniform(1e5, 2e6, size=(48, 6)), chunk_s=4.0)
    config = SimConfig()  # Pensieve defaults: 0.95 payload, 80 ms RTT, noise, random start, 60 s cap
    sim = BatchSimulator([trace], ladder, device(), get_qoe("pensieve-linear"), config)
    keys = session_keys(3, np.array([0]))
    sim.reset(np.array([0]), keys)
    loop = PensieveLoop(trace.duration_s, trace.mbps, start_s=float(sim.pos[0]))
    rungs = rng.integers(0, 6, 48)
    for k in range(48):
        _, info, _ = sim.step(rungs[k : k + 1])
        noise = 0.9 + 0.2 * uniform(keys, k, 1)[0]
        delay, rebuf, sleep, buf = loop.step(ladder.size_bytes[k, rungs[k]], 4.0, noise)
        assert info.delay_s[0] == pytest.approx(delay, rel=1e-9)
        assert info.stall_s[0] == pytest.approx(rebuf, abs=1e-9)
        if k < 47:
            assert info.wait_s[0] == pytest.approx(sleep, abs=1e-9)
            assert info.buffer_s[0] == pytest.approx(buf, abs=1e-9)


def test_time_is_conserved():
    rng = np.random.default_rng(3)
    trace = Trace(np.full(100, 1.0), rng.uniform(0.2, 4.0, 100))
    ladder = make_ladder(rng.uniform(1e5, 1e6, size=(30, 3)))
    sim, infos = run_fixed(trace, ladder, device(20.0), SimConfig(player=PlayerConfig(buffer_cap_s=10.0)), rung=2)
    clock = sum(i.delay_s[0] + i.wait_s[0] for i in infos)
    assert sim.clock[0] == pytest.approx(clock)
    # playback end = video length + startup + stalls
    stalls = sum(i.stall_s[0] for i in infos)
    assert sim.play_end[0] == pytest.approx(ladder.total_duration_s + stalls)


def test_batched_equals_single_sessions():
    rng = np.random.default_rng(5)
    traces = [Trace(np.full(50, 1.0), rng.uniform(0.2, 5.0, 50)) for _ in range(3)]
    ladder = make_ladder(rng.uniform(1e5, 1e6, size=(20, 4)))
    policy = Fixed(Fixed.Params(rung=2))
    kw = dict(ladder=ladder, device=device(10.0), qoe=get_qoe("perceptual"), seed=11)
    batch = run_sessions(policy, traces, sessions=7, **kw)
    for i in range(7):
        one = run_sessions(policy, traces, session_ids=np.array([i]), **kw)
        for name, arr in batch.chunks.items():
            np.testing.assert_array_equal(arr[:, i], one.chunks[name][:, 0], err_msg=name)


def test_seeding():
    rng = np.random.default_rng(2)
    traces = [Trace(np.full(60, 1.0), rng.uniform(0.2, 5.0, 60))]
    ladder = make_ladder(rng.uniform(1e5, 1e6, size=(10, 3)))
    kw = dict(traces=traces, ladder=ladder, device=device(), qoe=get_qoe("perceptual"), sessions=4)
    a = run_sessions(Fixed(), seed=1, **kw).chunks["delay_s"]
    b = run_sessions(Fixed(), seed=1, **kw).chunks["delay_s"]
    c = run_sessions(Fixed(), seed=2, **kw).chunks["delay_s"]
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert len(np.unique(a[0])) == 4  # sessions differ from each other


def test_latency_mode_pays_latency_per_request():
    trace = Trace([10.0], [8.0], latency_ms=[100.0])
    config = SimConfig(NetworkConfig(mode="latency", payload_fraction=1.0, random_start=False), PlayerConfig())
    _, infos = run_fixed(trace, make_ladder([[1_000_000]] * 2), device(), config)
    assert [i.delay_s[0] for i in infos] == pytest.approx([1.1, 1.1])


def test_summary_metrics_by_hand():
    trace = Trace([10.0], [1.0])
    ladder = make_ladder([[500_000, 600_000]] * 3, lpips=[[0.2, 0.1]] * 3)
    policy = Fixed(Fixed.Params(rung=0))
    res = run_sessions(policy, [trace], ladder, device(), get_qoe("perceptual"), config=exact(), sessions=1)
    s = {k: float(v[0]) for k, v in res.summary_arrays().items()}
    assert s["startup_s"] == pytest.approx(4.0)
    assert s["stall_s"] == pytest.approx(4.0)
    assert s["stall_count"] == 2
    assert s["stall_ratio"] == pytest.approx(4.0 / 10.0)
    assert s["lpips_mean"] == pytest.approx(0.2)
    assert s["kbps"] == pytest.approx(500_000 * 8 / 2 / 1000)
    # QoE: q = 0.8 per chunk, stall penalty 1/s: 0.8 - 4 (startup), 0.8 - 2, 0.8 - 2
    assert s["qoe_total"] == pytest.approx(3 * 0.8 - 8.0)
    assert s["switches"] == 0

"""sim.core pinned by Pensieve's own simulator output and by hand-computed small cases.

The Pensieve rows (``../shared/data/peers/pensieve/fixed_env_golden.csv``) are the returned
values of Pensieve's ``fixed_env`` (80 ms RTT, 0.95 payload, 60 s buffer, 500 ms sleeps, no
noise), so they pin the ``pensieve`` preset's constants and the buffer/sleep/stall
recurrences independently of this code.
"""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest
from conftest import device, make_ladder

from abr.errors import InputError
from abr.qoe import get_qoe
from policies.base import DownloadProgress
from sim.core import SIM_PRESETS, BatchSimulator, PlayerConfig, SimConfig
from sim.network import NetworkConfig
from sim.rng import session_keys
from traces.formats import read_trace
from traces.trace import Trace

EXACT = NetworkConfig(payload_fraction=1.0, rtt_s=0.0, noise_low=1.0, noise_high=1.0, random_start=False)
PENSIEVE_KBPS = [300, 750, 1200, 1850, 2850, 4300]


def exact(cap_s=60.0, quantum_s=0.0) -> SimConfig:
    return SimConfig(EXACT, PlayerConfig(buffer_cap_s=cap_s, sleep_quantum_s=quantum_s))


def with_durations(ladder, durations):
    return dataclasses.replace(ladder, duration_s=np.asarray(durations, dtype=float))


def run(trace, ladder, dev, config, rungs, qoe="perceptual"):
    sim = BatchSimulator([trace], ladder, dev, get_qoe(qoe), config)
    sim.reset(np.array([0]), session_keys(0, np.array([0])))
    obs, infos = [], []
    for r in rungs:
        o, info, _ = sim.step(np.array([r]))
        obs.append(o)
        infos.append(info)
    return sim, obs, infos


# ----------------------------------------------------------------------------- hand-computed


def test_unequal_chunk_lengths_index_their_own_chunk():
    # 1 Mbit/s: every 500 kB chunk takes 4 s. Chunk lengths 1, 3, 2 s, no decode time.
    # k0: arrives 4, plays 4..5 (startup 4).  k1: arrives 8, plays 8..11 (stall 3).
    # k2: arrives 12, plays 12..14 (stall 1).
    ladder = with_durations(make_ladder([[500_000]] * 3), [1.0, 3.0, 2.0])
    sim, obs, infos = run(Trace([100.0], [1.0]), ladder, device(), exact(), [0, 0, 0])
    assert [i.stall_s[0] for i in infos] == pytest.approx([4.0, 3.0, 1.0])
    assert sim.play_start[0] == pytest.approx([4.0, 8.0, 12.0])
    assert sim.play_end[0] == pytest.approx(14.0)
    # buffer at each arrival = the length of the chunk just arrived (it starts at once)
    assert [i.buffer_s[0] for i in infos] == pytest.approx([1.0, 3.0, 2.0])
    assert [o.stall_s[0] for o in obs] == pytest.approx([0.0, 3.0, 4.0])  # startup excluded


def test_buffer_cap_wait_with_unequal_chunk_lengths():
    # near-instant downloads (d = 1 us), lengths 1, 3, 2, 1 s, cap 3.5 s; content ends 1, 4, 6, 7.
    # after k1 (content to 4 s): 0.5 s must have played -> chunk 0 (starts at d) -> wait 0.5 - d.
    # after k2 (content to 6 s): 2.5 s must have played -> 1.5 s into chunk 1 (starts at 1 + d)
    #   -> at 2.5 + d, from clock 0.5 + 2d: wait 2 - d.  Last chunk: no wait.
    d = 1000 * 8 / 8e9
    ladder = with_durations(make_ladder([[1000.0]] * 4), [1.0, 3.0, 2.0, 1.0])
    sim, obs, infos = run(Trace([100.0], [8000.0]), ladder, device(), exact(cap_s=3.5), [0, 0, 0, 0])
    assert [i.wait_s[0] for i in infos] == pytest.approx([0.0, 0.5 - d, 2.0 - d, 0.0], abs=1e-12)
    assert [i.buffer_s[0] for i in infos[:3]] == pytest.approx([1.0 - 0.0, 3.5, 3.5], abs=1e-9)
    assert sim.clock[0] == pytest.approx(2.5 + 2 * d)


def test_buffer_during_a_stall_is_the_unplayed_chunk_only():
    # 1 Mbit/s, 500 kB chunks (4 s), 2 s chunks, decode 0.6 s (60 frames x 10 ms).
    # k0: arrives 4, plays 4.6..6.6.  k1: arrives 8 (player stalled since 6.6), plays 8.6.
    # At clock 8 chunk 0 is fully played (clipped at its length) and chunk 1 not started:
    # buffer = 2 s (chunk 1), not 4 - (8 - 4.6).
    ladder = make_ladder([[500_000]] * 3)
    _, obs, infos = run(Trace([100.0], [1.0]), ladder, device(10.0), exact(), [0, 0, 0])
    assert infos[0].buffer_s[0] == pytest.approx(2.0)
    assert infos[1].buffer_s[0] == pytest.approx(2.0)
    assert infos[1].stall_s[0] == pytest.approx(2.0)
    assert infos[0].stall_s[0] == pytest.approx(4.6)
    assert obs[1].decode_backlog_s[0] == pytest.approx(0.6)


def test_decoder_queue_delays_the_next_decode():
    # fast network, decode 3 s per chunk (60 x 50 ms): decodes end at 3+d, 6+d, 9+d...
    d = 1000 * 8 / 1e9
    _, obs, infos = run(Trace([100.0], [1000.0]), make_ladder([[1000.0]] * 3), device(50.0), exact(), [0, 0, 0])
    assert [i.stall_s[0] for i in infos] == pytest.approx([3.0 + d, 1.0, 1.0])
    # backlog seen before chunk 1: decode of chunk 0 ends at 3 + d, clock is d
    assert obs[0].decode_backlog_s[0] == pytest.approx(3.0)
    assert obs[1].decode_backlog_s[0] == pytest.approx(6.0 - d)


def test_observation_history_is_newest_last_and_throughput_is_size_over_delay():
    trace = Trace([100.0], [1.0])  # 1 Mbit/s: 250 kB = 2 s, 500 kB = 4 s
    ladder = make_ladder([[250_000, 500_000]] * 3)
    _, obs, infos = run(trace, ladder, device(), SimConfig(EXACT, PlayerConfig(history=2)), [0, 1, 0])
    assert obs[0].throughput_mbps[0].tolist()[:1] == [pytest.approx(np.nan, nan_ok=True)]
    assert obs[2].delay_s[0] == pytest.approx([4.0, 2.0])
    assert obs[2].throughput_mbps[0] == pytest.approx([1.0, 1.0], rel=1e-12)
    assert obs[2].last_rung[0] == 0 and obs[1].last_rung[0] == 1 and obs[0].last_rung[0] == 0
    assert [i.size_bytes[0] for i in infos] == [250_000, 500_000, 250_000]


def test_rewards_use_the_previous_chunk_quality():
    # pensieve-linear on kbps 300 / 750: q = 0.3, 0.75; stalls 0 except startup
    trace = Trace([100.0], [1000.0])
    ladder = make_ladder([[1000.0, 1000.0]] * 3, kbps=[300.0, 750.0])
    _, _, infos = run(trace, ladder, device(), exact(), [0, 1, 1], qoe="pensieve-linear")
    d = 1000 * 8 / 1e9
    assert infos[0].reward[0] == pytest.approx(0.3 - 4.3 * d)
    assert infos[1].reward[0] == pytest.approx(0.75 - 0.45)
    assert infos[2].reward[0] == pytest.approx(0.75)


def test_latency_preset_constants():
    lat = SIM_PRESETS["latency"]
    assert lat.network.mode == "latency" and lat.network.payload_fraction == 1.0
    assert lat.player.buffer_cap_s == 25.0 and lat.player.sleep_quantum_s == 0.0
    pen = SIM_PRESETS["promptabr"]
    assert pen.player.buffer_cap_s == 60.0 and pen.player.sleep_quantum_s == 0.5
    assert pen.player.abandon_check_s == 0.05  # Sabre checks every 50 ms


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(buffer_cap_s=0.0), "buffer_cap_s"),
        (dict(sleep_quantum_s=-0.1), "sleep_quantum_s"),
        (dict(history=0), "history"),
        (dict(abandon_check_s=0.0), "abandon_check_s"),
    ],
)
def test_player_config_rejects_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        PlayerConfig(**kw)
    PlayerConfig(buffer_cap_s=0.5, sleep_quantum_s=0.0, history=1, abandon_check_s=0.01)  # valid edges


def test_step_rejects_bad_rungs_and_running_past_the_end():
    sim = BatchSimulator([Trace([10.0], [1.0])], make_ladder([[1000.0, 2000.0]]), device(), get_qoe("perceptual"))
    sim.reset(np.array([0]), session_keys(0, np.array([0])))
    with pytest.raises(ValueError, match="rung out of range"):
        sim.step(np.array([2]))
    with pytest.raises(ValueError, match="rung out of range"):
        sim.step(np.array([-1]))
    with pytest.raises(ValueError, match="expected 1 rungs"):
        sim.step(np.array([0, 0]))
    _, _, done = sim.step(np.array([1]))
    assert done
    with pytest.raises(RuntimeError, match=r"^step\(\) after the last chunk; call reset\(\)$"):
        sim.step(np.array([0]))
    with pytest.raises(ValueError, match="non-empty"):
        sim.reset(np.array([], dtype=np.int64), np.array([], dtype=np.uint64))


def test_abandonment_by_hand_counts_time_and_bytes():
    # latency mode, 8 Mbit/s (1 MB/s), 100 ms latency. Rung 1 (1 MB) is abandoned at the first
    # check (50 ms of transfer = 50 kB) for rung 0 (100 kB): 0.1 + 0.05 + 0.1 + 0.1 = 0.35 s.
    trace = Trace([100.0], [8.0], latency_ms=[100.0])
    ladder = make_ladder([[100_000, 1_000_000]] * 2)
    config = SimConfig(NetworkConfig(mode="latency", payload_fraction=1.0, random_start=False), PlayerConfig())
    sim = BatchSimulator([trace], ladder, device(), get_qoe("perceptual"), config)
    sim.reset(np.array([0]), session_keys(0, np.array([0])))
    seen: list[DownloadProgress] = []

    def abandon(p):
        seen.append(p)
        return np.where(p.rung > 0, 0, -1)

    _, info, _ = sim.step(np.array([1]), abandon)
    assert info.rung[0] == 0 and info.abandoned[0] == 1
    assert info.wasted_bytes[0] == pytest.approx(50_000)
    assert info.delay_s[0] == pytest.approx(0.35)
    assert info.size_bytes[0] == 100_000
    assert seen[0].elapsed_s[0] == pytest.approx(0.15) and seen[0].latency_s[0] == pytest.approx(0.1)
    assert seen[0].downloaded_bytes[0] == pytest.approx(50_000)
    # throughput counts the wasted bytes too: 150 kB in 0.35 s
    assert info.throughput_mbps[0] == pytest.approx(150_000 * 8 / 0.35 / 1e6)
    # second chunk: buffer seen during the download is the first chunk minus the elapsed time
    _, info2, _ = sim.step(np.array([1]), abandon)
    assert info2.abandoned[0] == 1
    first = next(p for p in seen if p.chunk == 1)
    assert first.buffer_s[0] == pytest.approx(2.0 - 0.15)
    # the replacement's first check: 0.15 s after the new request, which left 0.15 s in
    assert seen[-1].chunk == 1 and seen[-1].rung[0] == 0
    assert seen[-1].buffer_s[0] == pytest.approx(2.0 - 0.3)


# ----------------------------------------------------------------------------- Pensieve golden


def _pensieve_rows(shared_data):
    path = shared_data / "peers" / "pensieve" / "fixed_env_golden.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with path.open() as f:
        return list(csv.DictReader(f))


def _pensieve_ladder(shared_data):
    sizes = [
        [int(x) for x in (shared_data / "peers" / "pensieve" / f"video_size_{b}").read_text().split()][:48]
        for b in range(6)
    ]
    return make_ladder(np.array(sizes, dtype=float).T, chunk_s=4.0, kbps=[float(k) for k in PENSIEVE_KBPS])


@pytest.mark.parametrize("sequence", ["fixed0", "fixed5", "random_seed0", "bb"])
def test_core_reproduces_pensieve_fixed_env(shared_data, sequence):
    rows = [r for r in _pensieve_rows(shared_data) if r["sequence"] == sequence]
    names = sorted({r["trace"] for r in rows})
    traces = [read_trace(shared_data / "traces" / n, "cooked") for n in names]
    ladder = _pensieve_ladder(shared_data)
    by = {(r["trace"], int(r["chunk"])): r for r in rows}
    config = SimConfig(NetworkConfig(noise_low=1.0, noise_high=1.0, random_start=False))  # fixed_env: no noise
    sim = BatchSimulator(traces, ladder, device(), get_qoe("pensieve-linear"), config)
    n = len(names)
    sim.reset(np.arange(n), session_keys(0, np.arange(n)))
    for k in range(48):
        want = [by[(name, k)] for name in names]
        _, info, _ = sim.step(np.array([int(w["rung"]) for w in want]))
        assert info.size_bytes == pytest.approx([float(w["chunk_bytes"]) for w in want])
        assert info.delay_s * 1000 == pytest.approx([float(w["delay_ms"]) for w in want], rel=1e-9)
        assert info.stall_s == pytest.approx([float(w["rebuf_s"]) for w in want], abs=1e-9)
        if k < 47:  # Pensieve also sleeps after the last chunk; the simulator does not
            assert info.wait_s * 1000 == pytest.approx([float(w["sleep_ms"]) for w in want], abs=1e-6)
            assert info.buffer_s == pytest.approx([float(w["buffer_s"]) for w in want], abs=1e-9)
        if k > 0:  # Pensieve charges chunk 0 a switch from its default rung 1
            assert info.reward == pytest.approx([float(w["reward_linear"]) for w in want], abs=1e-9)


# ----------------------------------------------------------------------------- contracts


def test_reset_observation_and_input_checks():
    traces = [Trace([10.0], [1.0]), Trace([5.0], [2.0])]
    ladder = make_ladder([[1000.0, 2000.0]] * 2)
    qoe = get_qoe("perceptual")
    cfg = SimConfig(EXACT, PlayerConfig(buffer_cap_s=7.0, history=3))
    sim = BatchSimulator(traces, ladder, device(), qoe, cfg)
    assert (sim.n, sim.k, sim.n_chunks) == (0, 0, 2)
    ctx = sim.context
    assert ctx.qoe is qoe and ctx.buffer_cap_s == 7.0 and ctx.ladder is ladder
    assert ctx.quality == pytest.approx(qoe.chunk_quality(ladder)) and ctx.decode_s.shape == (2, 2)
    obs = sim.reset(np.array([1.0, 0.0]), [5, 6])  # float indices and plain-int keys are converted
    assert obs.chunk == 0 and sim.n == 2 and sim.tix.tolist() == [1, 0]
    assert obs.last_rung.tolist() == [-1, -1] and obs.last_rung.dtype == np.int64
    assert obs.throughput_mbps.shape == (2, 3) and np.isnan(obs.throughput_mbps).all()
    assert obs.delay_s.shape == (2, 3) and np.isnan(obs.delay_s).all()
    for arr in (obs.buffer_s, obs.clock_s, obs.stall_s, obs.play_end_s, obs.decode_backlog_s):
        assert arr.tolist() == [0.0, 0.0]
    assert sim.keys.dtype == np.uint64
    with pytest.raises(ValueError, match="^trace_index must be a non-empty 1-D array$"):
        sim.reset(np.zeros((1, 1), dtype=np.int64), session_keys(0, np.array([0])))
    with pytest.raises(InputError, match="^trace index out of range 0..1$"):
        sim.reset(np.array([2]), session_keys(0, np.array([0])))
    with pytest.raises(InputError, match="^trace index out of range 0..1$"):
        sim.reset(np.array([-1]), session_keys(0, np.array([0])))
    sim.reset(np.array([1]), session_keys(0, np.array([0])))  # the last index is valid
    _, info, _ = sim.step(np.array([[1]]))  # any shape holding one rung per session
    assert info.rung.tolist() == [1] and info.chunk == 0
    assert info.abandoned.dtype == np.int64 and info.abandoned.tolist() == [0] and info.wasted_bytes.tolist() == [0.0]
    assert not info.abandoned.flags.writeable and not info.wasted_bytes.flags.writeable
    with pytest.raises(ValueError, match=r"^expected 1 rungs, got shape \(2,\)$"):
        sim.step(np.array([0, 0]))
    with pytest.raises(ValueError, match=r"^rung out of range 0..1: 2..2$"):
        sim.step(np.array([2]))
    _, info, _ = sim.step(np.array([1.0]))
    assert info.rung.dtype == np.int64


def test_random_start_spreads_over_the_whole_trace():
    trace = Trace([100.0], [1.0])
    config = SimConfig(NetworkConfig(noise_low=1.0, noise_high=1.0, random_start=True))
    sim = BatchSimulator([trace], make_ladder([[1000.0]]), device(), get_qoe("perceptual"), config)
    sim.reset(np.zeros(200, dtype=np.int64), session_keys(0, np.arange(200)))
    assert sim.pos.min() >= 0.0 and sim.pos.max() < 100.0
    assert sim.pos.max() > 90.0 and sim.pos.min() < 10.0 and len(np.unique(sim.pos)) == 200


def test_latency_mode_uses_the_rtt_where_the_trace_has_no_latency():
    config = SimConfig(NetworkConfig(mode="latency", payload_fraction=1.0, rtt_s=0.25, random_start=False))
    _, _, infos = run(Trace([10.0], [8.0]), make_ladder([[1_000_000]]), device(), config, [0])
    assert infos[0].delay_s[0] == pytest.approx(1.25)


def test_buffer_cap_target_exactly_met_needs_no_wait():
    # 2 s chunks, cap 4 s, decode 0.6 s: after chunk 1 the content (4 s) equals the cap -> no wait,
    # even though chunk 0 has not started playing yet
    d = 1000 * 8 / 8e9
    _, _, infos = run(Trace([100.0], [8000.0]), make_ladder([[1000.0]] * 3), device(10.0), exact(cap_s=4.0), [0] * 3)
    assert infos[1].wait_s[0] == 0.0
    assert infos[0].stall_s[0] == pytest.approx(0.6 + d)


def test_buffer_cap_wait_after_a_stall_counts_from_the_late_start():
    # decode 3 s per 2 s chunk, cap 4 s. Chunk 0 plays 3+d..5+d, chunk 1 (decoded at 6+d) from 6+d.
    # After chunk 2 (content 6 s) 2 s must have played: that is the start of chunk 1 (6 + d),
    # not the end of chunk 0 (5 + d): wait 6 + d - 3d.
    d = 1000 * 8 / 8e9
    _, _, infos = run(Trace([100.0], [8000.0]), make_ladder([[1000.0]] * 4), device(50.0), exact(cap_s=4.0), [0] * 4)
    assert infos[1].wait_s[0] == 0.0
    assert infos[2].wait_s[0] == pytest.approx(6.0 - 2 * d)


def test_a_wait_moves_the_trace_position():
    # rate 8 Mbit/s for 1 s, then 0.8 Mbit/s. Cap 2 s, 2 s chunks of 100 kB (0.1 s at 8 Mbit/s).
    # Chunk 0 arrives at 0.1 and plays 0.1..2.1; chunk 1 arrives at 0.2 and then 4 s of content
    # exceed the cap by 2 s: wait until chunk 0 has played (2.1), i.e. 1.9 s. Chunk 2 is then
    # requested at 2.1 and downloads at 0.8 Mbit/s (1 s), not at 8 Mbit/s.
    trace = Trace([1.0, 99.0], [8.0, 0.8])
    _, _, infos = run(trace, make_ladder([[100_000]] * 3), device(), exact(cap_s=2.0), [0] * 3)
    assert [i.delay_s[0] for i in infos] == pytest.approx([0.1, 0.1, 1.0])
    assert infos[1].wait_s[0] == pytest.approx(1.9)


def test_abandonment_batched_by_hand_with_trace_wraps():
    # latency mode, 1 MB/s, 100 ms latency, a 1 s trace (transfers wrap around it). Rungs 100 kB,
    # 500 kB, 1 MB; checks every 50 ms of transfer. All request rung 2 (1 s of transfer).
    # session 0: abandons at its 3rd check (150 kB) to rung 1, then at rung 1's 2nd check (100 kB)
    #            to rung 0: 0.25 + 0.2 + 0.2 s = 0.65 s, 250 kB wasted, 2 abandonments
    # session 1: never (answers its own rung or -1): 1.1 s, checked at 50, 100, ..., 950 kB
    # session 2: abandons at the first check (50 kB) to rung 0: 0.15 + 0.2 = 0.35 s
    trace = Trace([1.0], [8.0], latency_ms=[100.0])
    ladder = make_ladder([[100_000, 500_000, 1_000_000]] * 2)
    config = SimConfig(NetworkConfig(mode="latency", payload_fraction=1.0, random_start=False), PlayerConfig())
    sim = BatchSimulator([trace], ladder, device(), get_qoe("perceptual"), config)
    sim.reset(np.zeros(3, dtype=np.int64), session_keys(0, np.arange(3)))
    seen: list[DownloadProgress] = []

    def abandon(p):
        seen.append(dataclasses.replace(p, **{f: np.copy(getattr(p, f)) for f in ("active", "downloaded_bytes")}))
        got = np.round(p.downloaded_bytes / 1000.0)
        out = np.full(3, -1)
        out[0] = 1 if (p.rung[0] == 2 and got[0] == 150) else (0 if (p.rung[0] == 1 and got[0] == 100) else -1)
        out[1] = p.rung[1] if got[1] % 100 == 0 else -1  # "the same rung" is not an abandonment
        out[2] = 0 if p.rung[2] == 2 else -1
        return out

    _, info, _ = sim.step(np.array([2, 2, 2]), abandon)
    assert info.rung.tolist() == [0, 2, 0]
    assert info.abandoned.tolist() == [2, 0, 1] and info.abandoned.dtype == np.int64
    assert info.wasted_bytes == pytest.approx([250_000, 0, 50_000])
    assert info.delay_s == pytest.approx([0.65, 1.1, 0.35])
    assert info.size_bytes.tolist() == [100_000, 1_000_000, 100_000]
    assert np.mod(sim.pos, 1.0) == pytest.approx([0.65, 0.1, 0.35])
    # session 1 is checked every 50 ms of transfer while active, across the trace's wrap at 1 s
    one = [p.downloaded_bytes[1] for p in seen if p.active[1]]
    assert one == pytest.approx([50_000.0 * i for i in range(1, 20)])
    assert all(p.size_bytes[1] == 1_000_000 and p.rung[1] == 2 for p in seen)
    # finished or inactive sessions report nothing downloaded; chunk 0 has no buffer yet
    assert all((p.downloaded_bytes[~p.active] == 0).all() for p in seen)
    assert all(p.active.dtype == bool and (p.buffer_s == 0).all() for p in seen)
    assert [p.size_bytes[0] for p in seen[:4]] == [1_000_000, 1_000_000, 1_000_000, 500_000]
    assert seen[3].elapsed_s[0] == pytest.approx(0.15) and seen[3].latency_s[0] == pytest.approx(0.1)
    # the next chunk leaves from where each transfer ended: 100 kB at 1 MB/s plus latency
    _, info2, _ = sim.step(np.array([0, 0, 0]), abandon)
    assert info2.delay_s == pytest.approx([0.2, 0.2, 0.2]) and info2.abandoned.tolist() == [0, 0, 0]
    assert np.mod(sim.pos, 1.0) == pytest.approx([0.85, 0.3, 0.55])


# ----------------------------------------------------------------------------- configuration paths


def test_player_config_checks_the_buffer_rule_and_the_first_rung():
    PlayerConfig(buffer_rule="before")
    PlayerConfig(buffer_rule="after")
    with pytest.raises(ValueError, match=r"^PlayerConfig.buffer_rule must be 'after' or 'before', got 'sideways'$"):
        PlayerConfig(buffer_rule="sideways")
    msg = r"^PlayerConfig.first_prev_rung must be >= -1 and score_from >= 0$"
    for kw in (dict(first_prev_rung=-2), dict(score_from=-1), dict(first_prev_rung=-2, score_from=-1)):
        with pytest.raises(ValueError, match=msg):
            PlayerConfig(**kw)
    PlayerConfig(first_prev_rung=-1, score_from=0)  # the edges are valid


def test_context_and_device_come_from_the_config():
    dev, trace, ladder, qoe = device(5.0), Trace([10.0], [1.0]), make_ladder([[1000.0]]), get_qoe("perceptual")
    sim = BatchSimulator([trace], ladder, dev, qoe, SIM_PRESETS["sabre"])
    assert sim.device is dev and sim.context.peer == "sabre"
    assert BatchSimulator([trace], ladder, dev, qoe).context.peer == ""


@pytest.mark.parametrize("wrap, want_s", [("zero", 3.4), ("loop", 4.3)])
def test_wrap_to_zero_starts_at_the_first_time_stamp_and_lengthens_later_loops(wrap, want_s):
    # samples at t = 1, 2, 3 s: 8 Mbit/s (1 MB/s) from 1 to 2, 0.8 Mbit/s (0.1 MB/s) from 2 to 3.
    # zero (Pensieve): start at 1; 1 MB by 2, 0.1 MB by 3, wrap to 0 where 1 MB/s runs to 2 s:
    #   the last 1.4 MB take 1.4 s: 3.4 s.  loop: start at 0, 1 MB + 0.1 MB per 2 s loop, then 0.3 s.
    trace = Trace([1.0, 1.0], [8.0, 0.8], t0_s=1.0)
    net = NetworkConfig(payload_fraction=1.0, rtt_s=0.0, noise_low=1.0, noise_high=1.0, random_start=False, wrap=wrap)
    _, _, infos = run(trace, make_ladder([[2_500_000]]), device(), SimConfig(net), [0])
    assert infos[0].delay_s[0] == pytest.approx(want_s, rel=1e-12)


def test_sample_start_is_a_segment_start_drawn_uniformly():
    # four 2.5 s segments: a "sample" start is one of 0, 2.5, 5, 7.5, each about a quarter of the time,
    # and it is the start of the segment a "time" start of the same session falls in
    trace = Trace([2.5] * 4, [1.0, 2.0, 3.0, 4.0])
    n = 400
    pos = {}
    for start in ("sample", "time"):
        net = NetworkConfig(payload_fraction=1.0, noise_low=1.0, noise_high=1.0, random_start=True, start=start)
        sim = BatchSimulator([trace], make_ladder([[1000.0]]), device(), get_qoe("perceptual"), SimConfig(net))
        sim.reset(np.zeros(n, dtype=np.int64), session_keys(3, np.arange(n)))
        pos[start] = sim.pos.copy()
        assert sim.cum == pytest.approx(
            np.minimum(sim.pos, 2.5) * 125_000
            + np.clip(sim.pos - 2.5, 0, 2.5) * 250_000
            + np.clip(sim.pos - 5.0, 0, 2.5) * 375_000
            + np.clip(sim.pos - 7.5, 0, 2.5) * 500_000
        )  # C(pos), bytes from the loop start
    values, counts = np.unique(pos["sample"], return_counts=True)
    assert values.tolist() == [0.0, 2.5, 5.0, 7.5]
    assert counts.min() > 70 and counts.max() < 130
    assert pos["sample"].tolist() == (np.floor(pos["time"] / 2.5) * 2.5).tolist()


def test_first_prev_rung_is_chunk_0s_quality_at_that_rung():
    # perceptual q = 1 - LPIPS: chunk 0 = 0.7, 0.9; chunk 1 = 0.8, 0.95 (chunk 1 must not be read).
    # A 1 kB chunk at 1 GB/s: startup d = 1e-6 s.
    d = 1e-6
    ladder = make_ladder([[1000.0, 1000.0]] * 2, lpips=[[0.3, 0.1], [0.2, 0.05]])
    trace = Trace([100.0], [8000.0])
    cases = [(-1, 1, 0.9 - d), (0, 1, 0.9 - d - 0.2), (1, 0, 0.7 - d - 0.2), (1, 1, 0.9 - d), (2, 1, 0.9 - d)]
    for first, rung, want in cases:  # first_prev_rung 2 is past the top rung: no switch term, as -1
        config = SimConfig(EXACT, PlayerConfig(first_prev_rung=first))
        _, _, infos = run(trace, ladder, device(), config, [rung])
        assert infos[0].reward[0] == pytest.approx(want, abs=1e-12), (first, rung)


def test_history_of_latency_and_decode_times():
    # latency mode, 100 ms then 300 ms latency; 1 MB/s; 100 kB chunks; decode 0.6 s (60 x 10 ms)
    trace = Trace([0.15, 100.0], [8.0, 8.0], latency_ms=[100.0, 300.0])
    config = SimConfig(NetworkConfig(mode="latency", payload_fraction=1.0, random_start=False),
                       PlayerConfig(history=3, sleep_quantum_s=0.0))  # fmt: skip
    sim = BatchSimulator([trace], make_ladder([[100_000]] * 2), device(10.0), get_qoe("perceptual"), config)
    obs = sim.reset(np.array([0]), session_keys(0, np.array([0])))
    for arr in (obs.latency_s, obs.decode_s):
        assert arr.shape == (1, 3) and arr.dtype == np.float64 and np.isnan(arr).all()
    obs, info, _ = sim.step(np.array([0]))  # request at 0: 0.1 s latency, 0.1 s transfer; clock 0.2
    assert info.delay_s[0] == pytest.approx(0.2)
    obs, info, _ = sim.step(np.array([0]))  # request at 0.2, in the 300 ms segment: 0.3 + 0.1 s
    assert info.delay_s[0] == pytest.approx(0.4)
    assert obs.latency_s[0, 1:] == pytest.approx([0.1, 0.3]) and np.isnan(obs.latency_s[0, 0])
    assert obs.decode_s[0, 1:] == pytest.approx([0.6, 0.6]) and np.isnan(obs.decode_s[0, 0])


# ----------------------------------------------------------------------------- buffer rules


def test_sabre_buffer_rule_waits_until_the_next_chunk_fits():
    # near-instant downloads (d = 1 us per 1 kB at 1 GB/s), no decode, lengths 1, 2, 3, 3.5 s, cap 4 s.
    # k0: plays d..1+d; the next chunk (2 s) fits: 1 + 2 <= 4, no wait.
    # k1 (arrives 2d, plays 1+d..3+d): 3 s downloaded, the next is 3 s: 2 s must have played, at 2+d:
    #    wait 2 - d.  k2 (arrives 2+2d, plays 3+d..6+d): 6 s downloaded, next 3.5 s: 5.5 s must have
    #    played, at 5.5+d: wait 3.5 - d.  k3 is the last: no wait.  Buffer after a wait: cap - next.
    d = 1e-6
    ladder = with_durations(make_ladder([[1000.0]] * 4), [1.0, 2.0, 3.0, 3.5])
    config = SimConfig(EXACT, PlayerConfig(buffer_cap_s=4.0, sleep_quantum_s=0.0, buffer_rule="before"))
    _, _, infos = run(Trace([100.0], [8000.0]), ladder, device(), config, [0] * 4)
    assert [i.wait_s[0] for i in infos] == pytest.approx([0.0, 2.0 - d, 3.5 - d, 0.0], abs=1e-12)
    assert [i.buffer_s[0] for i in infos] == pytest.approx([1.0, 1.0, 0.5, 4.0 - d], abs=1e-9)


def test_sabre_buffer_rule_empties_the_buffer_for_a_chunk_as_long_as_the_cap():
    # lengths 1, 3 s, cap 3 s: after k0 (plays d..1+d) chunk 1 fits only into an empty buffer: wait to 1+d
    d = 1e-6
    ladder = with_durations(make_ladder([[1000.0]] * 2), [1.0, 3.0])
    config = SimConfig(EXACT, PlayerConfig(buffer_cap_s=3.0, sleep_quantum_s=0.0, buffer_rule="before"))
    _, _, infos = run(Trace([100.0], [8000.0]), ladder, device(), config, [0] * 2)
    assert infos[0].wait_s[0] == pytest.approx(1.0, abs=1e-12)
    assert infos[1].stall_s[0] == pytest.approx(d, abs=1e-12)


@pytest.mark.parametrize("after_last, wait", [(False, 0.0), (True, 1.0)])
def test_the_last_chunk_waits_only_when_asked(after_last, wait):
    # one 2 s chunk arriving (and playing) at d, cap 1 s: 1 s must play before the cap holds
    config = SimConfig(EXACT, PlayerConfig(buffer_cap_s=1.0, sleep_quantum_s=0.0, wait_after_last=after_last))
    sim, _, infos = run(Trace([100.0], [8000.0]), make_ladder([[1000.0]]), device(), config, [0])
    assert infos[0].wait_s[0] == pytest.approx(wait, abs=1e-12)
    assert infos[0].buffer_s[0] == pytest.approx(2.0 - wait, abs=1e-9)
    assert sim.pos[0] == pytest.approx(1e-6 + wait, abs=1e-12)


# ----------------------------------------------------------------------------- NPU heat


def test_npu_heat_carries_from_chunk_to_chunk_and_cools_while_idle():
    # 1 s decodes (10 frames x 100 ms) on an NPU throttled to half speed when hot, tau 10 s, no jitter.
    # 1 MB/s; chunk 0 is 1 kB (arrives 1 ms), chunk 1 is 3 MB (arrives 3.001 s), chunk 2 1 kB.
    # k0: cold, 1 s; heat 1 - e^-0.1.  k1 starts at 3.001, 2 s after k0's decode ended (1.001):
    # heat (1 - e^-0.1) e^-0.2, speed 1 - heat / 2, decode 1 / speed.  k2 arrives while k1 decodes:
    # no idle, heat 1 - (1 - h1) e^(-dec1 / 10).
    from sim.device import DeviceProfile, Variability

    var = Variability(npu_decoders=("h265",), floor=0.5, tau_s=10.0)
    dev = DeviceProfile(name="npu", decode_ms_per_frame={"h265": 100.0}, variability=var)
    ladder = make_ladder([[1000.0], [3_000_000.0], [1000.0]], frames=10)
    _, obs, infos = run(Trace([100.0], [8.0]), ladder, dev, exact(), [0, 0, 0])
    h1 = (1 - np.exp(-0.1)) * np.exp(-0.2)
    dec1 = 1 / (1 - 0.5 * h1)
    h2 = 1 - (1 - h1) * np.exp(-dec1 / 10)
    assert [i.decode_s[0] for i in infos] == pytest.approx([1.0, dec1, 1 / (1 - 0.5 * h2)], rel=1e-12)
    assert dec1 == pytest.approx(1.04054, abs=1e-5)
    assert obs[2].decode_s[0, -3:] == pytest.approx([1.0, dec1, 1 / (1 - 0.5 * h2)], rel=1e-12)

"""Phone decoders (jitter, throttling, populations), decode-aware policies, the seeded oracle."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from conftest import make_ladder

from abr.qoe import get_qoe
from policies import Observation, get_policy
from policies.base import PolicyContext
from policies.decode import faster_rung
from sim.core import SIM_PRESETS, PlayerConfig, SimConfig
from sim.device import DevicePopulation, DeviceProfile, Variability, get_device
from sim.oracle import ORACLE_LABEL, OracleGrid, oracle_sessions, seed_policies
from sim.rng import session_keys
from sim.run import summarize
from sim.runners import resolve_runner
from sim.session import run_sessions
from traces.trace import Trace

PERCEPTUAL = get_qoe("perceptual")
NPU = "promptmobile"


def mixed_ladder(sizes, decoders, lpips, chunk_s=2.0, frames=50):
    """make_ladder with one decoder variant per rung."""
    lad = make_ladder(sizes, chunk_s=chunk_s, frames=frames, lpips=lpips)
    rungs = tuple(dataclasses.replace(r, decoder=d) for r, d in zip(lad.rungs, decoders))
    return dataclasses.replace(lad, rungs=rungs)


def phone(npu_ms=20.0, hw_ms=1.0, **variability) -> DeviceProfile:
    return DeviceProfile(
        name="test-phone",
        decode_ms_per_frame={NPU: npu_ms, "h265": hw_ms},
        variability=Variability(npu_decoders=(NPU,), **variability),
    )


# ------------------------------------------------------------------ throttling
def test_throttled_decoder_by_hand():
    """floor 0.5, tau 100 s, 1 s of nominal NPU decode per chunk, no jitter."""
    lad = mixed_ladder([[1000.0, 1000.0]] * 3, [NPU, "h265"], [[0.1, 0.2]] * 3)  # 50 frames x 20 ms = 1 s
    model = phone(floor=0.5, tau_s=100.0).decoder(lad)
    keys = session_keys(0, np.arange(1))
    # chunk 0, cold: nominal time; heat after 1 s of load = 1 - exp(-1/100) = 0.00995017
    d0, h = model.chunk_s(keys, 0, np.array([0]), np.array([0.0]), np.zeros(1))
    assert d0[0] == 1.0
    assert h[0] == pytest.approx(0.0099501663, abs=1e-9)
    # chunk 1 after 1 s idle: heat 0.00995017 x exp(-0.01) = 0.00985116; speed 1 - 0.5 x that = 0.99507442
    d1, h = model.chunk_s(keys, 1, np.array([0]), np.array([1.0]), h)
    assert d1[0] == pytest.approx(1 / 0.99507442, abs=1e-7)
    # the fixed-function decoder neither throttles nor heats: nominal 0.05 s, heat only cools
    d2, h2 = model.chunk_s(keys, 2, np.array([1]), np.array([0.0]), h)
    assert d2[0] == 0.05
    assert h2[0] == pytest.approx(h[0] * math.exp(-0.05 / 100), rel=1e-12)


def test_sustained_load_settles_at_nominal_over_floor():
    """Back-to-back NPU decodes for many time constants: decode time -> nominal / floor."""
    lad = mixed_ladder([[1.0, 1.0]] * 200, [NPU, "h265"], [[0.1, 0.2]] * 200, frames=25)  # 0.5 s nominal
    model = phone(floor=0.6, tau_s=10.0).decoder(lad)
    keys = session_keys(0, np.arange(1))
    heat, times = np.zeros(1), []
    for k in range(200):
        d, heat = model.chunk_s(keys, k, np.array([0]), np.zeros(1), heat)
        times.append(d[0])
    assert np.all(np.diff(times) > 0)  # slower and slower under load
    assert times[-1] == pytest.approx(0.5 / 0.6, rel=1e-4)


# ---------------------------------------------------------------------- jitter
def test_jitter_statistics_match_the_published_range():
    """p90/p50 of many draws: the profile's value (1.026, MLPerf SD 1.5 on an 8 Elite phone),
    inside the published phone range 1.001-1.118; spikes as frequent as configured."""
    dev = get_device("snapdragon-8gen3")
    v = dev.variability
    lad = mixed_ladder([[1.0]], [NPU], [[0.1]])
    model = dev.decoder(lad)
    keys = session_keys(3, np.arange(200_000))
    j = model.jitter(keys, 0, np.zeros(len(keys), dtype=np.int64))
    body = j[j < 1.3]
    p50, p90 = np.percentile(body, [50, 90])
    assert 1.001 <= p90 / p50 <= 1.118
    assert p90 / p50 == pytest.approx(v.p90_p50, abs=0.002)
    assert p50 == pytest.approx(1.0, abs=0.002)
    assert np.mean(j > 1.3) == pytest.approx(v.spike_prob, abs=0.002)
    # the next chunk's draw is a different one
    assert not np.array_equal(j, model.jitter(keys, 1, np.zeros(len(keys), dtype=np.int64)))


def test_builtin_phones_cite_every_variability_number():
    for name in ("snapdragon-8gen2", "snapdragon-8gen3", "snapdragon-8elite"):
        v = get_device(name).variability
        assert v.npu_decoders and v.floor < 1.0 and v.p90_p50 > 1.0
        for f in ("npu_decoders", "p90_p50", "spike_prob", "spike_factor", "floor", "tau_s"):
            assert v.sources.get(f), f"{name}: no source for {f}"


@pytest.mark.parametrize(
    "variability",
    [{"floor": 0.0}, {"p90_p50": float("nan")}, {"spike_prob": 2}, {"npu_decoders": "promptus"}, {"tau": 3}],
)
def test_bad_variability_is_one_clear_input_error(tmp_path, variability):
    import json

    from abr.errors import InputError
    from sim.device import load_device

    path = tmp_path / "phone.json"
    path.write_text(json.dumps({"decode_ms_per_frame": {"promptus": 90.0}, "variability": variability}))
    with pytest.raises(InputError, match="phone"):
        load_device(path)


# ----------------------------------------------------------------- population
def test_population_draws_each_member_deterministically():
    pop = get_device("snapdragon-population")
    assert isinstance(pop, DevicePopulation)
    lad = mixed_ladder([[1.0]], [NPU], [[0.1]])
    model = pop.decoder(lad)
    m = model.member(session_keys(5, np.arange(30_000)))
    assert np.allclose(np.bincount(m, minlength=3) / len(m), 1 / 3, atol=0.01)
    assert np.array_equal(m[7:9], model.member(session_keys(5, np.arange(7, 9))))
    assert not np.array_equal(m, model.member(session_keys(6, np.arange(30_000))))


def test_a_population_session_decodes_as_its_member_device():
    trace = Trace(np.ones(100), np.full(100, 0.5))
    lad = mixed_ladder([[20_000.0, 40_000.0]] * 6, [NPU, "h265"], [[0.05, 0.1]] * 6)
    pop = get_device("snapdragon-population")
    ids = np.arange(6)
    pol = get_policy("fixed:rung=0")
    res = run_sessions(pol, [trace], lad, pop, PERCEPTUAL, session_ids=ids)
    member = pop.decoder(lad).member(session_keys(0, ids))
    for i, m in enumerate(member):
        alone = run_sessions(pol, [trace], lad, pop.members[m], PERCEPTUAL, session_ids=ids[i : i + 1])
        assert np.array_equal(alone.chunks["decode_s"][:, 0], res.chunks["decode_s"][:, i])


def test_batched_equals_one_at_a_time_with_jitter_and_throttling():
    rng = np.random.default_rng(0)
    traces = [Trace(rng.uniform(0.5, 2.0, 80), rng.uniform(0.05, 1.0, 80)) for _ in range(3)]
    lad = mixed_ladder(
        np.sort(rng.uniform(5e3, 6e4, (8, 4)), axis=1), [NPU, "h265", NPU, "h265"], rng.uniform(0.02, 0.2, (8, 4))
    )
    pop = get_device("snapdragon-population")
    ids = np.arange(5)
    for spec in ("robustmpc:decode_aware=true", "bola:decode_aware=true"):
        kw = dict(ladder=lad, device=pop, qoe=PERCEPTUAL, seed=9)
        batch = run_sessions(get_policy(spec), traces, **kw, session_ids=ids)
        for i in ids:
            one = run_sessions(get_policy(spec), traces, **kw, session_ids=ids[i : i + 1])
            for name, arr in one.chunks.items():
                assert np.array_equal(arr[:, 0], batch.chunks[name][:, i]), (spec, name)
    # the observation carries the decode times the simulator charged
    assert np.any(batch.chunks["decode_s"] != pop.decoder(lad).nominal[np.arange(8)[:, None], batch.chunks["rung"]])


# ------------------------------------------------------------ decode-aware
#: rung 0: small, best quality, 1 s of NPU decode per 2-s chunk; rung 1: 4x larger, 0.05 s to decode
AWARE_LADDER = mixed_ladder([[5000.0, 20000.0]] * 2, [NPU, "h265"], [[0.05, 0.10]] * 2)


def context(device=None) -> PolicyContext:
    dev = device or phone()
    return PolicyContext(AWARE_LADDER, PERCEPTUAL, PERCEPTUAL.chunk_quality(AWARE_LADDER),
                         dev.decode_s(AWARE_LADDER), 60.0)  # fmt: skip


def observe(chunk, last_rung=-1, thr_mbps=np.nan, ahead=0.0, decode=np.nan) -> Observation:
    hist = lambda v: np.full((1, 8), v)  # noqa: E731
    return Observation(
        chunk=chunk, buffer_s=np.array([ahead]), last_rung=np.array([last_rung]), throughput_mbps=hist(thr_mbps),
        delay_s=hist(np.nan), decode_backlog_s=np.zeros(1), clock_s=np.zeros(1), stall_s=np.zeros(1),
        play_end_s=np.array([ahead]), decode_s=hist(decode),
    )  # fmt: skip


def act(spec, obs):
    pol = get_policy(spec)
    pol.reset(context(), 1)
    return int(pol.act(obs)[0])


@pytest.mark.parametrize("name", ["mpc", "robustmpc", "bola"])
def test_decode_aware_start_up_differs_from_unaware(name):
    """First chunk at a prior of 0.4 Mbit/s (50 kB/s), perceptual QoE (q = 1 - LPIPS, 1 s stall = 1):
    rung 0 starts after 5000/50000 + 1.0 = 1.1 s: 0.95 - 1.1 = -0.15; rung 1 after
    20000/50000 + 0.05 = 0.45 s: 0.90 - 0.45 = 0.45. Aware: rung 1. Unaware: MPC's first_rung 0;
    BOLA on an empty buffer takes rung 0 (higher utility and smaller)."""
    opts = "horizon=1,decode_aware=true,startup_mbps=0.4" if name != "bola" else "decode_aware=true,startup_mbps=0.4"
    base = "horizon=1" if name != "bola" else ""
    assert act(f"{name}:{base}" if base else name, observe(0)) == 0
    assert act(f"{name}:{opts}", observe(0)) == 1


@pytest.mark.parametrize("name", ["mpc", "robustmpc"])
def test_decode_aware_mpc_plans_with_the_observed_decode_time(name):
    """Chunk 1 after rung 0, 0.4 Mbit/s seen, 1.05 s ahead. Unaware (rung 0 decodes in its nominal
    1.0 s): rung 0 arrives at 0.1, decoded 1.1, stall 0.05: 0.95 - 0.05 = 0.90; rung 1 decoded
    at 0.45, no stall, switch 0.05: 0.85 -> rung 0. Aware: chunk 0 took 2.0 s on rung 0 (ratio 2),
    so rung 0 is decoded at 2.1, stall 1.05: 0.95 - 1.05 = -0.10 -> rung 1."""
    obs = observe(1, last_rung=0, thr_mbps=0.4, ahead=1.05, decode=2.0)
    extra = ",error_window=1" if name == "robustmpc" else ""
    # RobustMPC's first prediction has no past error: the same 0.4 Mbit/s
    assert act(f"{name}:horizon=1{extra}", obs) == 0
    assert act(f"{name}:horizon=1,decode_aware=true{extra}", obs) == 1


def test_decode_aware_bola_steps_down_from_a_rung_it_cannot_decode_in_time():
    """Chunk 0 took 2.2 s on rung 0 (nominal 1.0): predicted 2.2 s > the 2-s chunk. BOLA keeps
    rung 0; decode-aware BOLA takes the rung that fits (rung 1, 0.05 s)."""
    obs = observe(1, last_rung=0, thr_mbps=0.4, ahead=1.0, decode=2.2)
    assert act("bola", obs) == 0
    assert act("bola:decode_aware=true", obs) == 1


def test_faster_rung_by_hand():
    size = np.array([10.0, 20.0, 30.0, 40.0])
    q = np.array([0.1, 0.3, 0.2, 0.4])
    pred = np.array([[0.5, 1.0, 3.0, 3.0], [0.5, 1.0, 3.0, 3.0], [3.0, 3.0, 2.5, 3.0]])
    m = np.array([3, 1, 1])
    # session 0: rung 3 too slow -> best quality among fitting, no larger: rung 1 (q 0.3)
    # session 1: rung 1 fits -> kept; session 2: nothing fits -> fastest (rung 2)
    assert faster_rung(m, pred, 2.0, q, size).tolist() == [1, 1, 2]


# ---------------------------------------------------------------------- oracle
def bursty_traces(seed, n=3, segments=120):
    """Long near-outages between short bursts: where merging states by position loses most."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        thr = np.where(rng.random(segments) < 0.15, rng.uniform(0.5, 3.0, segments), rng.uniform(0.02, 0.08, segments))
        out.append(Trace(rng.uniform(0.3, 1.5, segments), thr, latency_ms=np.full(segments, 40.0)))
    return out


@pytest.mark.parametrize("sim", ["promptabr", "latency"])
def test_oracle_is_at_least_every_shipped_policy_in_every_session(sim):
    rng = np.random.default_rng(2)
    lad = mixed_ladder(
        np.sort(rng.uniform(3e3, 6e4, (8, 3)), axis=1),
        [NPU, "h265", "h265"],
        np.sort(rng.uniform(0.02, 0.2, (8, 3)))[:, ::-1],
    )
    dev = get_device("snapdragon-population")
    traces = bursty_traces(4)
    config = SimConfig(player=PlayerConfig(buffer_cap_s=6.0)) if sim == "promptabr" else SIM_PRESETS["latency"]
    kw = dict(config=config, seed=1, sessions=4)
    grid = OracleGrid(position_s=2.0, ahead_s=2.0, backlog_s=2.0, max_states=20)  # coarse: merging loses a lot
    oracle = oracle_sessions(traces, lad, dev, PERCEPTUAL, grid=grid, **kw).chunks["reward"].sum(axis=0)
    worst = -np.inf
    for spec in seed_policies(lad):
        value = run_sessions(get_policy(spec), traces, lad, dev, PERCEPTUAL, **kw).chunks["reward"].sum(axis=0)
        worst = max(worst, float(np.max(value - oracle)))
    assert worst <= 1e-9


def test_distinct_oracle_options_are_distinct_rows():
    trace = [Trace(np.ones(60), np.full(60, 0.3))]
    lad = make_ladder([[20_000.0, 60_000.0]] * 4)
    dev = phone()
    frames = [
        resolve_runner(spec)(trace, lad, dev, PERCEPTUAL, config=None, sessions=1, seed=0).sessions_frame()
        for spec in ("oracle", "oracle:max_states=2,seeds=false", "oracle:max_states=2,seeds=false")
    ]
    assert frames[0]["policy"][0] == ORACLE_LABEL
    assert list(summarize(frames).index) == [ORACLE_LABEL, "oracle:max_states=2,seeds=false (bound)"]

"""The oracle bound: exact on tiny cases, a real replayable session, at least every policy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import device, make_ladder

from abr.qoe import get_qoe
from abr.registry import get_ladder
from policies import POLICIES, Observation, Policy, get_policy
from sim.core import PlayerConfig, SimConfig
from sim.network import NetworkConfig
from sim.oracle import ORACLE_LABEL, OracleGrid, oracle_plans, oracle_sessions
from sim.session import run_sessions
from traces.sets import load_traces
from traces.trace import Trace

PERCEPTUAL = get_qoe("perceptual")
#: cells far below any time difference: nothing is merged but identical states
EXACT_GRID = OracleGrid(position_s=1e-9, ahead_s=1e-9, backlog_s=1e-9, max_states=10**6, seeds=False)
LATENCY = SimConfig(
    NetworkConfig(mode="latency", payload_fraction=1.0, noise_low=1.0, noise_high=1.0, random_start=False),
    PlayerConfig(buffer_cap_s=8.0, sleep_quantum_s=0.0),
)
PENSIEVE = SimConfig(player=PlayerConfig(buffer_cap_s=8.0))  # noise, RTT, random start; a small cap so it binds


class Plan(Policy):
    """Plays the rung sequence it is given (the same for every session)."""

    name = "plan"

    def __init__(self, seq):
        super().__init__()
        self.seq = seq

    def act(self, obs: Observation) -> np.ndarray:
        return np.full(obs.n_sessions, self.seq[obs.chunk], dtype=np.int64)


def varied_traces(seed, n=3, segments=60):
    rng = np.random.default_rng(seed)
    return [
        Trace(rng.uniform(0.5, 2.0, segments), rng.uniform(0.05, 2.5, segments), latency_ms=np.full(segments, 30.0))
        for _ in range(n)
    ]


@pytest.mark.parametrize("config", [PENSIEVE, LATENCY], ids=["pensieve", "latency"])
def test_oracle_equals_exhaustive_search_on_a_tiny_case(config):
    traces = varied_traces(0, n=2)
    rng = np.random.default_rng(1)
    ladder = make_ladder(
        np.sort(rng.uniform(2e4, 3e5, (5, 3)), axis=1), lpips=np.sort(rng.uniform(0.03, 0.3, (5, 3)))[:, ::-1]
    )
    dev = device(30.0)  # 1.8 s of decoding per 2 s chunk
    kw = dict(ladder=ladder, device=dev, qoe=PERCEPTUAL, config=config, seed=4, sessions=2)
    totals = np.array(
        [
            run_sessions(Plan(seq), traces, **kw).chunks["reward"].sum(axis=0)
            for seq in itertools.product(range(3), repeat=ladder.n_chunks)
        ]
    )  # (sequences, sessions)
    plan, value = oracle_plans(
        traces, ladder, dev, PERCEPTUAL, config=config, seed=4, session_ids=np.arange(2), grid=EXACT_GRID
    )
    assert value == pytest.approx(totals.max(axis=0), abs=1e-12)
    # the plan is one of the best sequences
    seqs = list(itertools.product(range(3), repeat=ladder.n_chunks))
    for s in range(2):
        assert totals[seqs.index(tuple(plan[:, s])), s] == pytest.approx(totals[:, s].max(), abs=1e-12)
    # with the default (coarse) cells the search is an achievable schedule, so never above the optimum
    coarse_grid = OracleGrid(seeds=False)
    _, coarse = oracle_plans(
        traces, ladder, dev, PERCEPTUAL, config=config, seed=4, session_ids=np.arange(2), grid=coarse_grid
    )
    assert np.all(coarse <= totals.max(axis=0) + 1e-12)


def test_oracle_results_are_a_real_session_of_the_same_network():
    traces = varied_traces(2)
    ladder = make_ladder(np.tile([2e4, 8e4, 2e5, 4e5], (12, 1)), lpips=np.tile([0.3, 0.15, 0.08, 0.05], (12, 1)))
    kw = dict(ladder=ladder, device=device(10.0), qoe=PERCEPTUAL, config=PENSIEVE, seed=7, sessions=5)
    res = oracle_sessions(traces, **kw)
    assert res.policy == ORACLE_LABEL
    plan, value = oracle_plans(
        traces, ladder, device(10.0), PERCEPTUAL, config=PENSIEVE, seed=7, session_ids=np.arange(5)
    )
    np.testing.assert_array_equal(res.chunks["rung"], plan)
    assert res.chunks["reward"].sum(axis=0) == pytest.approx(value, abs=1e-12)
    # same sessions as run_sessions: a plan that is constant replays the same delays as Fixed
    fixed = run_sessions(get_policy("fixed:rung=1"), traces, **kw)
    again = run_sessions(Plan([1] * 12), traces, **kw)
    np.testing.assert_array_equal(fixed.chunks["delay_s"], again.chunks["delay_s"])
    np.testing.assert_array_equal(fixed.trace_index, res.trace_index)


@pytest.mark.parametrize("config", [PENSIEVE, LATENCY], ids=["pensieve", "latency"])
def test_oracle_is_at_least_every_policy(config):
    traces = varied_traces(3, n=4)
    rng = np.random.default_rng(5)
    ladder = make_ladder(
        np.sort(rng.uniform(1e4, 4e5, (20, 5)), axis=1), lpips=np.sort(rng.uniform(0.02, 0.3, (20, 5)))[:, ::-1]
    )
    kw = dict(ladder=ladder, device=device(25.0), qoe=PERCEPTUAL, config=config, seed=2, sessions=6)
    oracle = oracle_sessions(traces, **kw).chunks["reward"].sum(axis=0)
    for name in POLICIES:
        qoe = run_sessions(get_policy(name), traces, **kw).chunks["reward"].sum(axis=0)
        assert np.all(oracle >= qoe - 1e-9), (name, oracle - qoe)


def test_oracle_is_at_least_every_policy_on_real_traces(shared_data):
    traces = load_traces(str(shared_data / "traces" / "norway-hsdpa-3g-pensieve-cooked"))[:4]
    for ladder_name, qoe_name in (
        ("synthetic:pensieve:chunks=24", "pensieve-linear"),
        ("synthetic:promptus:chunks=30", "perceptual"),
    ):
        ladder, qoe = get_ladder(ladder_name), get_qoe(qoe_name)
        dev = device(0.5, decoder=ladder.decoders[0])
        kw = dict(ladder=ladder, device=dev, qoe=qoe, seed=1)
        oracle = oracle_sessions(traces, **kw).chunks["reward"].sum(axis=0)
        for name in POLICIES:
            qoe_p = run_sessions(get_policy(name), traces, **kw).chunks["reward"].sum(axis=0)
            assert np.all(oracle >= qoe_p - 1e-9), (ladder_name, name)


def test_grid_validation():
    with pytest.raises(ValueError):
        OracleGrid(position_s=0.0)
    with pytest.raises(ValueError):
        OracleGrid(max_states=0)


def test_oracle_does_not_depend_on_the_batch():
    # sessions of very different state counts share a search: the cap must act per session
    rng = np.random.default_rng(0)
    traces = [
        Trace(np.full(100, 1.0), rng.uniform(0.1, 3.0, 100)),
        Trace(np.full(100, 1.0), np.full(100, 50.0)),
        Trace(np.full(100, 1.0), rng.uniform(0.5, 1.0, 100)),
    ]
    ladder = make_ladder(
        np.sort(rng.uniform(2e4, 6e5, (24, 6)), axis=1), lpips=np.sort(rng.uniform(0.02, 0.3, (24, 6)))[:, ::-1]
    )
    kw = dict(config=PENSIEVE, seed=3, grid=OracleGrid(max_states=60, seeds=False))
    plan, value = oracle_plans(traces, ladder, device(10.0), PERCEPTUAL, session_ids=np.arange(3), **kw)
    for i in range(3):
        p1, v1 = oracle_plans(traces, ladder, device(10.0), PERCEPTUAL, session_ids=np.array([i]), **kw)
        np.testing.assert_array_equal(p1[:, 0], plan[:, i])
        assert v1[0] == value[i]

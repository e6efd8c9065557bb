"""sim.oracle's pruning pinned by hand-made state sets, and the search at its limits.

The merging rules (module docstring): per (session, cells) group keep the best state of each
``ahead`` cell, then only a Pareto front (more time ahead or a higher QoE so far), then at most
``max_states`` per session: the union of the best ``max_states // 7`` by ``QoE + w x ahead``
for w in stall_penalty x (0, 1/64, 1/16, 1/8, 1/4, 1/2, 1).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import device, make_ladder

from abr.qoe import get_qoe
from policies.fixed import Fixed
from policies.registry import get_policy
from sim.core import PlayerConfig, SimConfig
from sim.network import NetworkConfig
from sim.oracle import (
    ORACLE_LABEL,
    OracleGrid,
    _cap,
    _prune,
    _segmented_running_max,
    oracle_plans,
    oracle_sessions,
    seed_policies,
)
from sim.session import run_sessions
from traces.trace import Trace

WEIGHTS = np.array([0.0, 1 / 64, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0])
EXACT = SimConfig(
    NetworkConfig(payload_fraction=1.0, rtt_s=0.0, noise_low=1.0, noise_high=1.0, random_start=False),
    PlayerConfig(buffer_cap_s=6.0, sleep_quantum_s=0.0),
)


def test_cap_keeps_the_best_state_for_every_buffer_weight():
    # value = -ahead^2 / 2: value + w ahead peaks at ahead = w, so each weight picks its own state
    ahead = np.array([0.0, 1 / 64, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0, 0.03, 0.75, 2.0, 0.4])
    value = -(ahead**2) / 2
    owner = np.zeros(len(ahead), dtype=np.int64)
    kept = _cap(owner, np.arange(len(ahead)), ahead, value, 7, WEIGHTS)
    assert sorted(kept.tolist()) == list(range(7))
    # the stall penalty scales the weights: with penalty 2 each weight w picks ahead = 2 w
    kept = _cap(owner, np.arange(len(ahead)), ahead, value, 7, 2.0 * WEIGHTS)
    assert sorted(ahead[kept].tolist()) == sorted({min(ahead, key=lambda a: abs(a - 2 * w)) for w in WEIGHTS})


def test_cap_quota_per_weight_and_per_session():
    ahead = np.array([0.0, 1 / 64, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0, 0.03, 0.75, 2.0, 0.4])
    value = -(ahead**2) / 2
    owner = np.zeros(len(ahead), dtype=np.int64)
    # under the cap: everything stays
    assert sorted(_cap(owner, np.arange(11), ahead, value, 11, WEIGHTS).tolist()) == list(range(11))
    # 14 states allowed -> 2 per weight: weight 0 adds the runner-up ahead = 0.03 (value -0.00045), ...
    kept = set(_cap(owner, np.arange(11), ahead, value, 10, WEIGHTS).tolist())
    assert kept == set(range(7))  # 10 // 7 = 1 per weight
    kept = set(_cap(owner, np.arange(11), ahead, value, 7 * 2, WEIGHTS[:1]).tolist())
    assert kept == set(range(11))  # 11 <= 14: under the cap
    kept = set(_cap(owner, np.arange(11), ahead, value, 2, WEIGHTS[:1]).tolist())
    assert kept == {0, 1}  # weight 0 only, 2 per weight: the two highest values (ahead 0, 1/64)
    # a second session under the cap keeps all its states while the first is cut
    owner2 = np.array([0] * 11 + [1, 1])
    a2, v2 = np.append(ahead, [5.0, 6.0]), np.append(value, [-100.0, -200.0])
    kept = set(_cap(owner2, np.arange(13), a2, v2, 7, WEIGHTS).tolist())
    assert kept == set(range(7)) | {11, 12}


def test_prune_keeps_the_best_per_ahead_cell_then_a_pareto_front():
    grid = OracleGrid(ahead_s=1.0, max_states=100)
    # one session, one cell: (ahead, value)
    ahead = np.array([0.2, 0.7, 1.5, 2.5, 3.1])
    value = np.array([5.0, 3.0, 4.0, 6.0, 1.0])
    owner = np.zeros(5, dtype=np.int64)
    cells = (np.zeros(5), np.zeros(5), np.zeros(5, dtype=np.int64))
    # ahead cells 0, 0, 1, 2, 3: cell 0 keeps value 5; then from most ahead down: 1 (cell 3) kept,
    # 6 (cell 2) kept, 4 (cell 1) < 6 dropped, 5 (cell 0) < 6 dropped
    assert sorted(_prune(owner, cells, ahead, value, grid, WEIGHTS).tolist()) == [3, 4]
    # equal value with less ahead is dropped too (a state must beat every state with more ahead)
    assert sorted(_prune(owner[:2], tuple(c[:2] for c in cells), np.array([0.5, 1.5]), np.array([2.0, 2.0]),
                         grid, WEIGHTS).tolist()) == [1]  # fmt: skip
    # different rungs, positions or backlogs are different groups: nothing compared across them
    for axis in range(3):
        c = [np.zeros(5), np.zeros(5), np.zeros(5, dtype=np.int64)]
        c[axis] = np.arange(5)
        assert sorted(_prune(owner, tuple(c), ahead, value, grid, WEIGHTS).tolist()) == [0, 1, 2, 3, 4]
    # different sessions likewise
    assert sorted(_prune(np.arange(5), cells, ahead, value, grid, WEIGHTS).tolist()) == [0, 1, 2, 3, 4]
    # finer ahead cells keep more: 0.5 s cells put 0.2 and 0.7 apart
    fine = OracleGrid(ahead_s=0.5, max_states=100)
    assert sorted(_prune(owner, cells, ahead, value, fine, WEIGHTS).tolist()) == [3, 4]
    assert sorted(_prune(owner, (), ahead, value, grid, WEIGHTS).tolist()) == [3, 4]  # last chunk: no cells


def test_segmented_running_max():
    x = np.array([1.0, 5.0, 2.0, 7.0, 3.0, 0.0, 9.0, 4.0, 2.0])
    g = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
    _segmented_running_max(x, g)
    assert x.tolist() == [1.0, 5.0, 5.0, 7.0, 3.0, 3.0, 9.0, 9.0, 9.0]
    y = np.arange(20, 0, -1.0)
    _segmented_running_max(y, np.zeros(20))
    assert (y == 20.0).all()


def _exhaustive(trace, ladder, qoe, config):
    best, best_seq = -np.inf, None
    for seq in itertools.product(range(ladder.n_rungs), repeat=ladder.n_chunks):

        class Seq(Fixed):
            def act(self, obs, seq=seq):
                return np.full(obs.n_sessions, seq[obs.chunk])

        res = run_sessions(Seq(), [trace], ladder, device(), qoe, config=config, sessions=1)
        v = float(res.chunks["reward"].sum())
        if v > best:
            best, best_seq = v, seq
    return best, best_seq


def test_oracle_at_its_limits_on_a_tiny_case():
    # 3 rungs x 4 chunks = 81 sequences; a trace with a dip, so greed loses
    trace = Trace([2.0, 3.0, 2.0, 10.0], [4.0, 0.3, 4.0, 2.0])
    ladder = make_ladder([[50_000, 200_000, 600_000]] * 4, lpips=[[0.3, 0.15, 0.05]] * 4)
    qoe = get_qoe("perceptual")
    best, seq = _exhaustive(trace, ladder, qoe, EXACT)
    exact = OracleGrid(position_s=1e-9, ahead_s=1e-9, backlog_s=1e-9, max_states=10**6)
    plan, value = oracle_plans([trace], ladder, device(), qoe, config=EXACT, session_ids=np.array([0]), grid=exact)
    assert value[0] == pytest.approx(best, abs=1e-12)
    # one huge cell and one state per weight: still a real schedule, never above the optimum
    coarse = OracleGrid(position_s=1e9, ahead_s=1e9, backlog_s=1e9, max_states=1)
    plan, value = oracle_plans([trace], ladder, device(), qoe, config=EXACT, session_ids=np.array([0]), grid=coarse)
    assert value[0] <= best + 1e-12
    res = oracle_sessions([trace], ladder, device(), qoe, config=EXACT, sessions=1, grid=coarse)
    assert res.chunks["reward"].sum() == pytest.approx(value[0])
    assert res.chunks["rung"][:, 0].tolist() == plan[:, 0].tolist()
    assert res.policy == ORACLE_LABEL == "oracle (bound)"


def test_oracle_plans_group_sessions_to_fit_the_batch():
    trace = Trace([2.0, 3.0, 2.0, 10.0], [4.0, 0.3, 4.0, 2.0])
    ladder = make_ladder([[50_000, 200_000, 600_000]] * 3, lpips=[[0.3, 0.15, 0.05]] * 3)
    qoe = get_qoe("perceptual")
    ids = np.arange(5)
    kw = dict(config=EXACT, session_ids=ids)
    a = oracle_plans([trace], ladder, device(), qoe, grid=OracleGrid(max_states=4, batch_states=12), **kw)
    b = oracle_plans([trace], ladder, device(), qoe, grid=OracleGrid(max_states=4), **kw)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].shape == (3, 5)


@pytest.mark.parametrize(
    "kw", [dict(position_s=0.0), dict(ahead_s=-1.0), dict(backlog_s=0.0), dict(max_states=0), dict(batch_states=0)]
)
def test_grid_validation_names_the_problem(kw):
    with pytest.raises(ValueError, match="OracleGrid"):
        OracleGrid(**kw)


def test_grid_defaults():
    g = OracleGrid()
    assert (g.position_s, g.ahead_s, g.backlog_s, g.max_states, g.batch_states) == (1.0, 1.0, 1.0, 1000, 60_000)


def test_oracle_sessions_ids_and_seed():
    traces = [Trace([2.0, 3.0, 2.0, 10.0], [4.0, 0.3, 4.0, 2.0]), Trace([1.0, 1.0], [0.5, 6.0])]
    ladder = make_ladder([[50_000, 200_000]] * 3, lpips=[[0.3, 0.1]] * 3)
    qoe = get_qoe("perceptual")
    grid = OracleGrid(max_states=20)
    res = oracle_sessions(traces, ladder, device(), qoe, session_ids=[3, 0], grid=grid)  # a list is fine
    assert res.session_ids.tolist() == [3, 0] and res.trace_index.tolist() == [1, 0]
    plan, value = oracle_plans(traces, ladder, device(), qoe, session_ids=np.array([3, 0]), grid=grid)
    assert res.chunks["reward"].sum(axis=0) == pytest.approx(value)
    # the default seed is 0 (the sessions run_sessions plays by default: random start, delay noise)
    again = oracle_sessions(traces, ladder, device(), qoe, session_ids=[3, 0], grid=grid, seed=0)
    other = oracle_sessions(traces, ladder, device(), qoe, session_ids=[3, 0], grid=grid, seed=1)
    np.testing.assert_array_equal(res.chunks["delay_s"], again.chunks["delay_s"])
    assert not np.allclose(res.chunks["delay_s"], other.chunks["delay_s"])


def test_oracle_sessions_checks_the_replay_against_the_search(monkeypatch):
    import sim.oracle as oracle

    trace = Trace([2.0, 3.0, 2.0, 10.0], [4.0, 0.3, 4.0, 2.0])
    ladder = make_ladder([[50_000, 200_000]] * 3, lpips=[[0.3, 0.1]] * 3)
    qoe, grid = get_qoe("perceptual"), OracleGrid(max_states=20)
    plan, value = oracle_plans([trace], ladder, device(), qoe, config=EXACT, session_ids=np.array([0]), grid=grid)
    assert abs(value[0]) < 8  # the tolerances below are sized for this
    tol = 1e-9 + 1e-9 * abs(value[0])  # rtol 1e-9, atol 1e-9
    for wrong in (value + 2 * tol, value * (1 + 1e-7) + 2e-9, value - 2 * tol):
        monkeypatch.setattr(oracle, "oracle_plans", lambda *a, w=wrong, **k: (plan, w))
        with pytest.raises(RuntimeError, match=r"^oracle: the replayed plan does not score the searched value \("):
            oracle_sessions([trace], ladder, device(), qoe, config=EXACT, sessions=1, grid=grid)
    monkeypatch.setattr(oracle, "oracle_plans", lambda *a, **k: (plan, value + tol / 4))
    oracle_sessions([trace], ladder, device(), qoe, config=EXACT, sessions=1, grid=grid)  # within tolerance


def test_take_refuses_state_that_is_not_per_session():
    from types import SimpleNamespace

    from sim.oracle import _Take

    sim = SimpleNamespace(n=2, a=np.zeros(2), b=np.zeros(3), old=np.zeros(5), c=7)
    with pytest.raises(RuntimeError, match=r"^oracle: simulator state \['b'\] is not per-session; update sim.oracle$"):
        _Take(sim, {"old"})
    sim.b = np.arange(2.0)
    take = _Take(sim, {"old"})
    assert take.names == ["a", "b"]
    take(sim, np.array([1, 1, 0]))
    assert sim.b.tolist() == [1.0, 1.0, 0.0] and sim.n == 3 and sim.old.shape == (5,)


def test_grid_refuses_empty_cells_and_budgets_and_accepts_one():
    OracleGrid(max_states=1, batch_states=1)  # the smallest budgets are valid
    with pytest.raises(ValueError, match=r"^OracleGrid cells must be > 0$"):
        OracleGrid(ahead_s=0.0)
    with pytest.raises(ValueError, match=r"^OracleGrid\.max_states and batch_states must be >= 1$"):
        OracleGrid(batch_states=0)


def test_cap_keeps_an_owner_at_exactly_the_cap_whole():
    # owner 0 holds exactly max_states = 2 states, owner 1 holds 3; two weights give a quota of 1
    # per weight. Owner 0 keeps both (it is not over the cap); owner 1 keeps its best by value
    # (state 2, w = 0) and its best by value + 10 x ahead (state 4: 1 + 20 = 21 > 2 + 10 > 3).
    owner = np.array([0, 0, 1, 1, 1])
    value = np.array([1.0, 2.0, 3.0, 2.0, 1.0])
    ahead = np.array([0.0, 0.0, 0.0, 1.0, 2.0])
    kept = _cap(owner, np.arange(5), ahead, value, 2, np.array([0.0, 10.0]))
    assert sorted(kept.tolist()) == [0, 1, 2, 4]


def _spy_prune(monkeypatch):
    import sim.oracle as oracle

    calls, real = [], oracle._prune

    def spy(owner, cells, ahead, value, grid, weights):
        calls.append((tuple(np.array(c) for c in cells), ahead.copy(), weights.copy()))
        return real(owner, cells, ahead, value, grid, weights)

    monkeypatch.setattr(oracle, "_prune", spy)
    return calls


def test_search_cells_time_ahead_and_weights(monkeypatch):
    # 4 Mbit/s for 2 s: chunk 0 at 50 / 200 / 600 kB arrives after 0.1 / 0.4 / 1.2 s of trace
    trace = Trace([2.0, 3.0, 2.0, 10.0], [4.0, 0.3, 4.0, 2.0])
    ladder = make_ladder([[50_000, 200_000, 600_000]] * 4, lpips=[[0.3, 0.15, 0.05]] * 4)
    qoe = get_qoe("perceptual")
    calls = _spy_prune(monkeypatch)
    grid = OracleGrid(position_s=0.5, seeds=False)
    oracle_plans([trace], ladder, device(), qoe, config=EXACT, session_ids=np.array([0]), grid=grid)
    assert len(calls) == 4
    (pos, backlog, rung), ahead, weights = calls[0]
    assert pos.tolist() == [0, 0, 2] and rung.tolist() == [0, 1, 2]  # 0.1 / 0.5, 0.4 / 0.5, 1.2 / 0.5
    assert ahead.tolist() == [2.0, 2.0, 2.0]  # instant decoding: the first chunk plays on arrival
    np.testing.assert_array_equal(weights, qoe.stall_penalty * WEIGHTS)
    for cells, _, _ in calls[:-1]:
        assert (cells[1] == 0).all()  # instant decoding: never a backlog
    assert calls[-1][0] == () and (calls[-1][1] == 0).all()  # last chunk: no cells, nothing ahead
    # 60 frames x 30 ms: each chunk takes 1.8 s to decode, from its arrival (the decoder is idle)
    calls.clear()
    grid = OracleGrid(backlog_s=0.5, seeds=False)
    oracle_plans([trace], ladder, device(30.0), qoe, config=EXACT, session_ids=np.array([0]), grid=grid)
    (pos, backlog, _), ahead, _ = calls[0]
    assert pos.tolist() == [0, 0, 1] and backlog.tolist() == [3, 3, 3]  # floor(1.8 / 0.5)
    np.testing.assert_allclose(ahead, [3.8, 3.8, 3.8])  # 1.8 s decoding, then 2 s of play


def test_oracle_plans_are_rung_indices_and_take_whole_float_ids():
    trace = Trace([2.0, 3.0, 2.0, 10.0], [4.0, 0.3, 4.0, 2.0])
    traces = [trace, Trace([1.0, 1.0], [0.5, 6.0])]
    ladder = make_ladder([[50_000, 200_000]] * 3, lpips=[[0.3, 0.1]] * 3)
    qoe, grid = get_qoe("perceptual"), OracleGrid(max_states=20, seeds=False)
    plan, value = oracle_plans(traces, ladder, device(), qoe, config=EXACT, session_ids=np.array([1, 0]), grid=grid)
    assert plan.dtype == np.int64
    fplan, fvalue = oracle_plans(
        traces, ladder, device(), qoe, config=EXACT, session_ids=np.array([1.0, 0.0]), grid=grid
    )
    np.testing.assert_array_equal(fplan, plan)
    np.testing.assert_array_equal(fvalue, value)
    res = oracle_sessions(traces, ladder, device(), qoe, config=EXACT, session_ids=np.array([1.0, 0.0]), grid=grid)
    assert res.trace_index.tolist() == [1, 0]
    assert res.chunks["reward"].sum(axis=0) == pytest.approx(value)


def test_seeds_keep_every_shipped_policys_path_through_a_one_state_search():
    # one state kept per chunk: unseeded, the search settles on rung 0 throughout (2.7), while
    # fixed:rung=1 scores 3.0; seeded, that path survives every cut and the oracle reaches it
    trace = Trace([2.0, 3.0, 2.0, 10.0], [4.0, 0.3, 4.0, 2.0])
    ladder = make_ladder([[50_000, 200_000, 600_000]] * 4, lpips=[[0.3, 0.15, 0.05]] * 4)
    qoe = get_qoe("perceptual")
    kw = dict(config=EXACT, session_ids=np.array([0]))
    totals = {
        spec: run_sessions(get_policy(spec), [trace], ladder, device(), qoe, config=EXACT, sessions=1)
        .chunks["reward"].sum()
        for spec in seed_policies(ladder)
    }  # fmt: skip
    best = max(totals.values())
    assert best == pytest.approx(totals["fixed:rung=1"]) == pytest.approx(3.0)
    tight = dict(position_s=1e9, ahead_s=1e9, backlog_s=1e9, max_states=1)
    plan, value = oracle_plans([trace], ladder, device(), qoe, grid=OracleGrid(**tight, seeds=False), **kw)
    assert value[0] == pytest.approx(totals["fixed:rung=0"]) and value[0] < best - 0.2
    assert plan[:, 0].tolist() == [0, 0, 0, 0]
    plan, value = oracle_plans([trace], ladder, device(), qoe, grid=OracleGrid(**tight), **kw)
    assert value[0] == pytest.approx(best)
    assert plan[:, 0].tolist() == [1, 1, 1, 1]


def test_seeds_are_kept_up_to_the_second_last_chunk():
    # 3 chunks: the one-state search drops the best seed's path at chunk 1 unless it is kept there
    trace = Trace([2.0, 3.0, 2.0, 10.0], [4.0, 0.3, 4.0, 2.0])
    ladder = make_ladder([[50_000, 200_000, 600_000]] * 3, lpips=[[0.3, 0.15, 0.05]] * 3)
    qoe = get_qoe("perceptual")
    best = max(
        run_sessions(get_policy(spec), [trace], ladder, device(), qoe, config=EXACT, sessions=1).chunks["reward"].sum()
        for spec in seed_policies(ladder)
    )
    tight = dict(position_s=1e9, ahead_s=1e9, backlog_s=1e9, max_states=1)
    kw = dict(config=EXACT, session_ids=np.array([0]))
    _, value = oracle_plans([trace], ladder, device(), qoe, grid=OracleGrid(**tight), **kw)
    assert value[0] == pytest.approx(best)
    _, unseeded = oracle_plans([trace], ladder, device(), qoe, grid=OracleGrid(**tight, seeds=False), **kw)
    assert unseeded[0] < best - 0.1  # the seeds are what reaches it


def test_seed_policies_play_the_same_sessions(monkeypatch):
    import sim.oracle as oracle

    seen, real = [], oracle.run_sessions

    def spy(*args, **kw):
        seen.append((kw["config"], kw["seed"], kw["session_ids"].tolist()))
        return real(*args, **kw)

    monkeypatch.setattr(oracle, "run_sessions", spy)
    trace = Trace([2.0, 3.0, 2.0, 10.0], [4.0, 0.3, 4.0, 2.0])
    ladder = make_ladder([[50_000, 200_000]] * 2, lpips=[[0.3, 0.1]] * 2)
    grid = OracleGrid(max_states=4)
    oracle_plans([trace], ladder, device(), get_qoe("perceptual"), config=EXACT, seed=5, session_ids=[2, 0], grid=grid)
    assert len(seen) == len(seed_policies(ladder))
    assert all(s == (EXACT, 5, [2, 0]) for s in seen)


def test_prune_compares_ahead_cells_within_a_session_only():
    # session 0: one state in ahead cell 2; session 1: cells 3 (value 1) and 2 (value 5). Session
    # 1's cell-2 state beats the only state with more time ahead, so all three stay
    owner = np.array([0, 1, 1])
    kept = _prune(owner, (), np.array([2.5, 3.5, 2.5]), np.array([0.0, 1.0, 5.0]), OracleGrid(), WEIGHTS)
    assert sorted(kept.tolist()) == [0, 1, 2]

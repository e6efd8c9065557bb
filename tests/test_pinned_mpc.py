"""policies.mpc pinned by Pensieve's robustMPC and by hand-computed plans.

``../shared/data/peers/pensieve/robustmpc_golden.csv`` holds, for 1128 decisions, the state
Pensieve's ``test/mpc.py`` saw, its throughput estimate, the best value over all 6^L rung
sequences and the decision with the corrected chunk index and first-best ties (PROVENANCE
1.3). Pensieve plans with no buffer cap, so the context's cap is made unreachable here.
"""

from __future__ import annotations

import csv
from collections import defaultdict

import numpy as np
import pytest
from conftest import make_ladder

from abr.qoe import QoE, get_qoe
from policies.base import Observation, PolicyContext
from policies.mpc import MPC, RobustMPC, plan

PENSIEVE_KBPS = [300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0]
LINEAR = get_qoe("pensieve-linear")
NO_CAP = 1e9


def _golden(shared_data):
    path = shared_data / "peers" / "pensieve" / "robustmpc_golden.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    sizes = [
        [int(x) for x in (shared_data / "peers" / "pensieve" / f"video_size_{b}").read_text().split()][:48]
        for b in range(6)
    ]
    ladder = make_ladder(np.array(sizes, dtype=float).T, chunk_s=4.0, kbps=PENSIEVE_KBPS)
    return rows, ladder


def _agrees(row, rung, tol=1e-9):
    """The decision equals Pensieve's, or is tied with it within floating-point noise."""
    if float(row["gap_other_first_corrected"]) > tol:
        return rung == int(row["rung_corrected"])
    return float(row[f"best_first{rung}_corrected"]) >= float(row["value_corrected"]) - tol


def test_plan_reproduces_pensieve_values_and_decisions(shared_data):
    rows, ladder = _golden(shared_data)
    q = LINEAR.chunk_quality(ladder)
    dec = np.zeros_like(q)
    for row in rows:
        k, h = int(row["chunk"]), int(row["horizon"])
        rung, value = plan(
            np.array([float(row["future_MBps"]) * 1e6]), np.array([float(row["buffer_s"])]), np.zeros(1),
            np.array([q[k - 1, int(row["last_rung"])]]), ladder.size_bytes[k : k + h], q[k : k + h], dec[k : k + h],
            ladder.duration_s[k : k + h], NO_CAP, LINEAR,
        )  # fmt: skip
        assert value[0] == pytest.approx(float(row["value_corrected"]), rel=1e-12, abs=1e-9)
        assert _agrees(row, int(rung[0])), row


def test_robustmpc_policy_reproduces_pensieve_decisions(shared_data):
    """Defaults (horizon 5, windows 5), the estimator and the plan together, one session per run."""
    rows, ladder = _golden(shared_data)
    runs = defaultdict(dict)
    for row in rows:
        runs[(row["trace"], row["sequence"])][int(row["chunk"])] = row
    keys = sorted(runs)
    n = len(keys)
    ctx = PolicyContext(ladder, LINEAR, LINEAR.chunk_quality(ladder), np.zeros(ladder.size_bytes.shape), NO_CAP)
    policy = RobustMPC()
    policy.reset(ctx, n)
    hist = np.full((n, 8), np.nan)
    first = policy.act(_obs(0, hist, np.zeros(n), np.full(n, -1)))
    assert (first == 0).all()  # first_rung default
    for k in range(1, 48):
        now = [runs[key][k] for key in keys]
        hist = np.full((n, 8), np.nan)
        for i, row in enumerate(now):
            tput = [float(row[f"tput_MBps_{j}"]) * 8.0 for j in range(1, 6)]
            hist[i, 3:] = [x if x > 0 else np.nan for x in tput]
        obs = _obs(k, hist, np.array([float(r["buffer_s"]) for r in now]), np.array([int(r["last_rung"]) for r in now]))
        want_est = np.array([float(r["future_MBps"]) * 8.0 for r in now])
        est_policy = RobustMPC()
        est_policy.estimator = _replay_estimator(policy)
        np.testing.assert_allclose(est_policy.predict_mbps(obs), want_est, rtol=1e-12)
        got = policy.act(obs)
        for i, row in enumerate(now):
            assert _agrees(row, int(got[i])), (k, keys[i], int(got[i]), row["rung_corrected"])


def _replay_estimator(policy):
    """A copy of the policy's estimator state (so checking the estimate does not advance it)."""
    import copy

    return copy.deepcopy(policy.estimator)


def _obs(k, hist, buffer_s, last_rung):
    n = len(buffer_s)
    return Observation(
        chunk=k, buffer_s=buffer_s, last_rung=last_rung, throughput_mbps=hist,
        delay_s=np.where(np.isnan(hist), np.nan, 1.0), decode_backlog_s=np.zeros(n), clock_s=np.zeros(n),
        stall_s=np.zeros(n), play_end_s=buffer_s.copy(),
    )  # fmt: skip


def test_defaults_are_the_published_ones():
    p = RobustMPC.Params()
    assert (p.horizon, p.window, p.error_window, p.first_rung) == (5, 5, 5, 0)
    assert (MPC.Params().horizon, MPC.Params().window) == (5, 5)
    for bad, match in [(dict(horizon=0), "horizon"), (dict(horizon=9), "horizon"), (dict(window=0), "window")]:
        with pytest.raises(ValueError, match=match):
            MPC.Params(**bad)
    with pytest.raises(ValueError, match="error_window"):
        RobustMPC.Params(error_window=0)
    MPC.Params(horizon=1, window=1)
    MPC.Params(horizon=8)


# ----------------------------------------------------------------------------- by hand

Q = QoE("t", "mbps", stall_penalty=1.0, switch_penalty=1.0)


def test_plan_waits_for_the_buffer_cap():
    # 1 MB/s. Chunk 0: 100 kB (0.1 s), chunk 1: 3 MB (3 s); 10 s ahead, cap 2 s, 2 s chunks.
    # Chunk 0 arrives at 0.1 and plays 10..12; the next request waits until 12 - 2 = 10,
    # arrives at 13: a 1 s stall. Value = 0.5 + 0.5 - 1 = 0.
    size = np.array([[1e5], [3e6]])
    q = np.full((2, 1), 0.5)
    args = (np.array([1e6]), np.array([10.0]), np.zeros(1), np.array([np.nan]), size, q, np.zeros((2, 1)))
    _, value = plan(*args, np.array([2.0, 2.0]), 2.0, Q)
    assert value[0] == pytest.approx(0.0)
    _, value = plan(*args, np.array([2.0, 2.0]), 60.0, Q)  # no wait: no stall
    assert value[0] == pytest.approx(1.0)


def test_plan_ties_go_to_the_first_sequence():
    size = np.full((2, 3), 1e3)
    q = np.array([[0.2, 0.9, 0.9], [0.2, 0.9, 0.9]])
    rung, value = plan(np.array([1e6]), np.array([5.0]), np.zeros(1), np.array([0.9]), size, q, np.zeros((2, 3)),
                       np.array([2.0, 2.0]), 60.0, Q)  # fmt: skip
    assert rung[0] == 1 and value[0] == pytest.approx(1.8)


def test_plan_decode_backlog_and_startup():
    # nothing ahead: the first chunk's wait is a stall (startup); a 1 s decode backlog delays it
    size, q = np.array([[1e6]]), np.array([[2.0]])
    _, v = plan(np.array([1e6]), np.zeros(1), np.array([1.0]), np.array([np.nan]), size, q, np.array([[0.5]]),
                np.array([2.0]), 60.0, Q)  # fmt: skip
    assert v[0] == pytest.approx(2.0 - 1.5)  # arrives 1.0, decode starts after the backlog (1.0): ends 1.5
    _, v = plan(np.array([1e6]), np.array([0.5]), np.array([0.0]), np.array([2.0]), size, q, np.array([[0.25]]),
                np.array([2.0]), 60.0, Q)  # fmt: skip
    assert v[0] == pytest.approx(2.0 - 0.75)  # ends at 1.25, buffer ran dry at 0.5


def test_mpc_switch_term_uses_the_previous_chunk_quality():
    # chunk 0 q = [0.9, 0.95], chunk 1 q = [0.3, 0.85] (perceptual), switch penalty 2.
    # After rung 0 of chunk 0 (q 0.9): rung 0 -> 0.3 - 1.2 = -0.9, rung 1 -> 0.85 - 0.1 = 0.75.
    # (Against chunk 1's rung-0 quality 0.3 instead, rung 0 would win.)
    ladder = make_ladder([[1e3, 1e3]] * 2, lpips=[[0.1, 0.05], [0.7, 0.15]])
    qoe = QoE("s", "lpips", stall_penalty=1.0, switch_penalty=2.0)
    ctx = PolicyContext(ladder, qoe, qoe.chunk_quality(ladder), np.zeros((2, 2)), 60.0)
    policy = MPC()
    policy.reset(ctx, 1)
    hist = np.full((1, 8), np.nan)
    hist[0, -1] = 100.0
    obs = _obs(1, hist, np.array([2.0]), np.array([0]))
    assert policy.act(obs)[0] == 1


def test_mpc_horizon_sees_five_chunks_ahead():
    # a huge chunk 5 (index 5 after k=1) at rung 1 only: 5 chunks ahead it is seen and rung 1 avoided
    sizes = [[1e3, 1e3]] * 7
    sizes[5] = [1e3, 4e7]
    ladder = make_ladder(sizes, lpips=[[0.2, 0.1]] * 7)
    # q 0.8 / 0.9, switch penalty 3: four chunks up (3.6 - 0.3 = 3.3) beat four low (3.2), but up then
    # down at chunk 5 (4.4 - 0.6 = 3.8) loses to five low (4.0)
    qoe = QoE("s", "lpips", stall_penalty=1.0, switch_penalty=3.0)
    ctx = PolicyContext(ladder, qoe, qoe.chunk_quality(ladder), np.zeros((7, 2)), 60.0)
    hist = np.full((1, 8), np.nan)
    hist[0, -1] = 8.0  # 1 MB/s: 40 MB is 40 s
    obs = _obs(1, hist, np.array([2.0]), np.array([0]))
    # horizon 5 from k=1: chunks 1..5; staying low avoids switching twice; horizon 4 would go up
    five = MPC()
    five.reset(ctx, 1)
    four = MPC(MPC.Params(horizon=4))
    four.reset(ctx, 1)
    assert four.act(obs)[0] == 1
    assert five.act(obs)[0] == 0


def test_mpc_harmonic_window_is_five():
    # history 1, 1, 1, 1, 1, 100 (newest last): window 5 -> 5 / (4 + 0.01) ~ 1.247
    hist = np.full((1, 8), np.nan)
    hist[0, 2:] = [100.0, 1.0, 1.0, 1.0, 1.0, 100.0]
    obs = _obs(6, hist, np.array([0.0]), np.array([0]))
    ladder = make_ladder([[1e3]] * 8)
    policy = MPC()
    policy.reset(PolicyContext(ladder, Q, Q.chunk_quality(ladder), np.zeros((8, 1)), 60.0), 1)
    assert policy.predict_mbps(obs)[0] == pytest.approx(5 / (4 + 0.01))


def test_mpc_first_rung_before_any_throughput():
    ladder = make_ladder([[1e3, 2e3, 3e3]] * 3)
    ctx = PolicyContext(ladder, Q, Q.chunk_quality(ladder), np.zeros((3, 3)), 60.0)
    policy = MPC(MPC.Params(first_rung=2))
    policy.reset(ctx, 2)
    obs = _obs(0, np.full((2, 8), np.nan), np.zeros(2), np.full(2, -1))
    assert policy.act(obs).tolist() == [2, 2]


def test_plan_splits_large_batches_without_changing_the_result(monkeypatch):
    import policies.mpc as mpc

    rng = np.random.default_rng(3)
    n, h, R = 9, 3, 3
    args = (rng.uniform(1e5, 1e6, n), rng.uniform(0, 10, n), rng.uniform(0, 1, n), rng.uniform(0.2, 0.9, n))
    rest = (rng.uniform(1e4, 1e6, (h, R)), rng.uniform(0.1, 0.9, (h, R)), rng.uniform(0, 1, (h, R)),
            np.array([2.0, 3.0, 1.0]), 6.0, Q)  # fmt: skip
    whole = plan(*args, *rest)
    monkeypatch.setattr(mpc, "_BATCH_ELEMENTS", 2 * R**h)  # two sessions per pass: 5 passes
    split = plan(*args, *rest)
    np.testing.assert_array_equal(whole[0], split[0])
    np.testing.assert_array_equal(whole[1], split[1])
    assert split[0].shape == (n,) and split[1].shape == (n,)
    for i in range(n):  # and each equals the plain-Python reference
        r, v = mpc.reference_plan(*(a[i] for a in args), *rest)
        assert (split[0][i], split[1][i]) == (r, v)


def test_reference_plan_ties_and_window_option():
    from policies.mpc import reference_plan

    size = np.full((2, 3), 1e3)
    q = np.array([[0.2, 0.9, 0.9], [0.2, 0.9, 0.9]])
    r, v = reference_plan(1e6, 5.0, 0.0, 0.9, size, q, np.zeros((2, 3)), np.array([2.0, 2.0]), 60.0, Q)
    assert (r, v) == (1, pytest.approx(1.8))  # first of the tied best sequences, as plan()
    hist = np.full((1, 8), np.nan)
    hist[0, 2:] = [100.0, 1.0, 1.0, 1.0, 1.0, 100.0]
    obs = _obs(6, hist, np.array([0.0]), np.array([0]))
    ladder = make_ladder([[1e3]] * 8)
    three = MPC(MPC.Params(window=3))
    three.reset(PolicyContext(ladder, Q, Q.chunk_quality(ladder), np.zeros((8, 1)), 60.0), 1)
    assert three.predict_mbps(obs)[0] == pytest.approx(3 / (2 + 0.01))


def test_robustmpc_windows_and_a_tiny_but_known_throughput():
    ladder = make_ladder([[1e3, 2e3, 3e3]] * 3)
    ctx = PolicyContext(ladder, Q, Q.chunk_quality(ladder), np.zeros((3, 3)), 60.0)
    r = RobustMPC(RobustMPC.Params(window=2, error_window=4, first_rung=2))
    r.reset(ctx, 1)
    assert (r.estimator.window, r.estimator.error_window) == (2, 4)
    # 1e-7 Mbit/s (0.0125 B/s) is known, however small: plan (lowest rung), not the first rung
    hist = np.full((1, 8), np.nan)
    hist[0, -1] = 1e-7
    m = MPC(MPC.Params(first_rung=2))
    m.reset(ctx, 1)
    assert m.act(_obs(1, hist, np.array([0.0]), np.array([0])))[0] == 0

"""MPC and RobustMPC (Yin et al., SIGCOMM 2015) over perceptual quality, decode time included.

Before chunk k the policy predicts a throughput ``w`` and scores every sequence of rungs for
chunks k .. k+h-1 (h = ``horizon``, fewer near the end) with the run's QoE, replaying the
simulator's own recurrences (``sim.core``) on the prediction, times relative to now:

* request of chunk j leaves at t_j (t_0 = 0) and arrives at ``a_j = t_j + S_j / w``;
* decoding ends at ``e_j = max(a_j, e_{j-1}) + D_j`` (e_{-1} = the observed decode backlog);
* playback of chunk j starts at ``p_j = max(e_j, P_{j-1})``, a stall of ``p_j - P_{j-1}``,
  and ends at ``P_j = p_j + L_j`` (P_{-1} = ``play_ahead_s``, the time until the scheduled
  playback runs dry; 0 before the first chunk, where the stall is the startup delay);
* the next request waits for the buffer cap: ``t_{j+1} = max(a_j, P_j - cap)``;
* value = sum of ``QoE.reward(q_j, stall_j, q_{j-1})``.

The first rung of the best sequence is played (first best in lexicographic order on ties).
MPC predicts the harmonic mean of the last 5 throughputs; RobustMPC divides it by
1 + the largest relative error of its last 5 predictions.

Decode times D_j: by default (decode-unaware) the device profile's nominal table, the same
for every session and chunk, and the first chunk is ``first_rung``. With ``decode_aware``,
each session plans with the decode times its own past chunks predict
(:class:`policies.decode.DecodeEstimate`: jitter, throttling, which phone of a population),
and plans the first chunk too, with the prior throughput ``startup_mbps``, which prices the
start-up decode on a slow device.

Speed: the R^h sequences are never enumerated one by one. The search walks the tree of
sequence prefixes level by level with numpy (level j holds R^(j+1) prefixes per session,
each extended by all R rungs at once), so the work is R + R^2 + ... + R^h array elements
per session, and a batch of sessions is one set of array operations. Every sequence's value
is computed with the same floating-point operations, in the same order, as the plain-Python
:func:`reference_plan`, so the two choose identical rungs (the tests check this).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from abr.qoe import QoE
from policies.base import Observation, Policy, PolicyContext
from policies.decode import DecodeEstimate
from policies.estimators import RobustEstimate, harmonic_mean

__all__ = ["MPC", "RobustMPC", "plan", "reference_plan"]

_BATCH_ELEMENTS = 1 << 20  # sessions x sequences per numpy pass (bounds memory)


def plan(
    w_Bps: np.ndarray,
    ahead_s: np.ndarray,
    backlog_s: np.ndarray,
    prev_q: np.ndarray,
    size: np.ndarray,
    q: np.ndarray,
    dec: np.ndarray,
    chunk_s: np.ndarray,
    cap_s: float,
    qoe: QoE,
) -> tuple[np.ndarray, np.ndarray]:
    """Best first rung and its sequence's value for every session (see the module docstring).

    :param w_Bps: predicted throughput per session, bytes/s (> 0), shape ``(n,)``.
    :param ahead_s: time until the scheduled playback runs dry, ``(n,)``.
    :param backlog_s: decode work queued, ``(n,)``.
    :param prev_q: quality of the previous chunk (NaN before the first), ``(n,)``.
    :param size: bytes of the next h chunks per rung, ``(h, R)``; ``q`` likewise.
    :param dec: decode times likewise, ``(h, R)``, or per session ``(n, h, R)``.
    :param chunk_s: durations of the next h chunks, ``(h,)``.
    """
    n = len(w_Bps)
    h, R = size.shape
    per_session = dec.ndim == 3
    per = max(1, _BATCH_ELEMENTS // R**h)
    if n > per:
        parts = [
            plan(w_Bps[i : i + per], ahead_s[i : i + per], backlog_s[i : i + per], prev_q[i : i + per],
                 size, q, dec[i : i + per] if per_session else dec, chunk_s, cap_s, qoe)
            for i in range(0, n, per)
        ]  # fmt: skip
        return np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts])
    # arrays of level j have shape (n, R, ..., R): one axis per planned chunk, the newest last
    w = np.asarray(w_Bps, dtype=np.float64).reshape(n, *([1] * h))
    t = np.zeros((n,) + (1,) * h)
    E = np.asarray(backlog_s, dtype=np.float64).reshape(t.shape)
    P = np.asarray(ahead_s, dtype=np.float64).reshape(t.shape)
    pq = np.asarray(prev_q, dtype=np.float64).reshape(t.shape)
    total = np.zeros(t.shape)
    for j in range(h):
        shape = (1,) * (j + 1) + (R,) + (1,) * (h - j - 1)  # rung axis of chunk j
        a = t + size[j].reshape(shape) / w
        e = np.maximum(a, E)
        e += dec[:, j].reshape((n,) + shape[1:]) if per_session else dec[j].reshape(shape)
        p = np.maximum(e, P)
        stall = p - P
        total = total + qoe.reward(q[j].reshape(shape), stall, pq)
        if j + 1 < h:
            P = p + chunk_s[j]
            t = np.maximum(a, P - cap_s)
            E = e
            pq = q[j].reshape(shape)
    total = total.reshape(n, -1)
    best = np.argmax(total, axis=1)
    return best // R ** (h - 1), total[np.arange(n), best]


def reference_plan(
    w_Bps: float,
    ahead_s: float,
    backlog_s: float,
    prev_q: float,
    size: np.ndarray,
    q: np.ndarray,
    dec: np.ndarray,
    chunk_s: np.ndarray,
    cap_s: float,
    qoe: QoE,
) -> tuple[int, float]:
    """The slow reference: every rung sequence in turn, plain Python floats, one session."""
    h, R = size.shape
    best_value, best_first = -np.inf, 0
    for seq in itertools.product(range(R), repeat=h):
        t, E, P, pq = 0.0, float(backlog_s), float(ahead_s), float(prev_q)
        qs, stalls, pqs = [], [], []
        for j, r in enumerate(seq):
            a = t + float(size[j, r]) / float(w_Bps)
            e = max(a, E) + float(dec[j, r])
            p = max(e, P)
            stalls.append(p - P)
            qs.append(float(q[j, r]))
            pqs.append(pq)
            P = p + float(chunk_s[j])
            t = max(a, P - cap_s)
            E = e
            pq = float(q[j, r])
        value = 0.0
        for x in qoe.reward(np.array(qs), np.array(stalls), np.array(pqs)).tolist():
            value += x
        if value > best_value:
            best_value, best_first = value, seq[0]
    return best_first, best_value


class MPC(Policy):
    """Model predictive control over a horizon of chunks (see the module docstring)."""

    name = "mpc"

    @dataclass(frozen=True, slots=True)
    class Params:
        """:param horizon: chunks planned ahead (5 in Pensieve and RobustMPC).
        :param window: past chunks in the harmonic-mean prediction.
        :param first_rung: rung of the first chunk, before any throughput is known (decode-unaware).
        :param decode_aware: plan with the decode times observed on past chunks and plan the
            first chunk's start-up (see the module docstring).
        :param startup_mbps: prior throughput of the first chunk's plan (decode-aware only)."""

        horizon: int = 5
        window: int = 5
        first_rung: int = 0
        decode_aware: bool = False
        startup_mbps: float = 0.4

        def __post_init__(self) -> None:
            if not 1 <= self.horizon <= 8:
                raise ValueError(f"horizon must be in 1..8, got {self.horizon}")
            if self.window < 1:
                raise ValueError(f"window must be >= 1, got {self.window}")
            if not (np.isfinite(self.startup_mbps) and self.startup_mbps > 0):
                raise ValueError(f"startup_mbps must be > 0, got {self.startup_mbps}")

    def reset(self, ctx: PolicyContext, n_sessions: int) -> None:
        super().reset(ctx, n_sessions)
        self.decode_est = DecodeEstimate()
        self.decode_est.reset(ctx, n_sessions)

    def predict_mbps(self, obs: Observation) -> np.ndarray:
        """Throughput prediction per session, Mbit/s (NaN where nothing is known yet)."""
        return harmonic_mean(obs.throughput_mbps, self.params.window)

    def act(self, obs: Observation) -> np.ndarray:
        ctx, k, p = self.ctx, obs.chunk, self.params
        w = self.predict_mbps(obs) * 1e6 / 8.0
        out = np.full(obs.n_sessions, p.first_rung % ctx.ladder.n_rungs, dtype=np.int64)
        known = np.isfinite(w) & (w > 0)
        end = min(k + p.horizon, ctx.ladder.n_chunks)
        if p.decode_aware:
            self.decode_est.update(obs)
            w = np.where(known, w, p.startup_mbps * 1e6 / 8.0)
            known[:] = True
        if not known.any():
            return out
        ahead = obs.play_ahead_s
        prev_q = np.where(obs.last_rung >= 0, ctx.quality[max(k - 1, 0)][np.maximum(obs.last_rung, 0)], np.nan)
        idx = np.flatnonzero(known)
        dec = self.decode_est.predict(k, end)[idx] if p.decode_aware else ctx.decode_s[k:end]
        first, _ = plan(
            w[idx], ahead[idx], obs.decode_backlog_s[idx], prev_q[idx],
            ctx.ladder.size_bytes[k:end], ctx.quality[k:end], dec, ctx.ladder.duration_s[k:end],
            ctx.buffer_cap_s, ctx.qoe,
        )  # fmt: skip
        out[idx] = first
        return out


class RobustMPC(MPC):
    """MPC with the prediction divided by 1 + the largest recent relative prediction error."""

    name = "robustmpc"

    @dataclass(frozen=True, slots=True)
    class Params(MPC.Params):
        """MPC's parameters plus
        :param error_window: past prediction errors whose maximum discounts the prediction."""

        error_window: int = 5

        def __post_init__(self) -> None:
            super(RobustMPC.Params, self).__post_init__()
            if self.error_window < 1:
                raise ValueError(f"error_window must be >= 1, got {self.error_window}")

    def reset(self, ctx: PolicyContext, n_sessions: int) -> None:
        super().reset(ctx, n_sessions)
        self.estimator = RobustEstimate(self.params.window, self.params.error_window)
        self.estimator.reset(n_sessions)

    def predict_mbps(self, obs: Observation) -> np.ndarray:
        return self.estimator.update(obs)

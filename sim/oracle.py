"""The oracle: the best QoE a session could reach with the future trace known (a bound, not a policy).

The oracle plays the same sessions as :func:`sim.session.run_sessions` (same traces, same
random start and, in pensieve mode, the same delay noise: both come from the session keys)
and searches the rung sequences by dynamic programming forward over chunks:

* **State** after chunk k: the simulator's own per-session state (trace position, clock,
  decoder and playback times, history), so every transition is computed by
  :class:`sim.core.BatchSimulator` itself and every value is exactly what the simulator
  would score.
* **Expansion**: every kept state is extended by every rung (one batched simulator step).
* **Merging (the discretisation)**: states of the same session that chose the same rung and
  fall in the same cell of trace position (``position_s``) and decode backlog
  (``backlog_s``) are compared on (time until playback runs dry, QoE so far): per cell of
  ``ahead_s`` only the best is kept, and a state is dropped when another one has both more
  time ahead and a higher QoE so far (a Pareto front). A session then keeps at most
  ``max_states`` states per chunk: the union of the best by ``QoE + w x time ahead`` for
  weights w from 0 to the stall penalty (a second of buffer is worth at most one second
  of stall).
* **Seeds** (``seeds=True``, the default): first every shipped policy
  (:func:`seed_policies`: each registered policy with its default options, its documented
  variants, the decode-aware ones, and ``fixed`` at every rung) plays the same sessions, and
  the states on each one's path are never dropped by the merging, so the search's result is
  at least each of those policies' QoE in every session and improves on them where a
  deviation pays.
* **Result**: the best final state's rung sequence, replayed through
  :func:`~sim.session.run_sessions`, so the oracle's per-chunk table is a real session whose
  QoE equals the search's value.

What kind of bound this is: the optimum over all rung sequences (any policy's choices are one
of them) with the future known. The search is exact but for the merging: it returns a
schedule the session could really play (so a value never above the true optimum), and may
miss a better one when a dropped state had the better continuation. The merging is not safe
in general: more time ahead is not always better, because a fuller buffer makes the
downloader wait on the buffer cap and so skip part of the trace, and a trace position cell
hides bursts shorter than the cell. On real 5G traces scaled by 0.01 (long outages between
short bursts) the unseeded search fell up to 490 QoE (session totals of -240 to -800) below
``fixed:rung=0``; the seeds make it a bound against every shipped policy by construction,
and the tests check it on a small grid. A policy with other options, or a trained one, may
still beat it in some session. With vanishing cells the tests check it equals exhaustive
search (3 rungs, 5 chunks). Abandonment is not searched, and a seed policy that abandons
seeds the path of the rungs it finally fetched (with the future known, fetching the lower
rung from the start is never worse on a trace whose request latency is constant).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from abr.ladder import Ladder
from abr.qoe import QoE
from policies.base import Observation, Policy
from sim.core import BatchSimulator, SimConfig
from sim.device import Device
from sim.rng import session_keys
from sim.session import SessionResults, run_sessions
from traces.trace import Trace

__all__ = ["ORACLE_LABEL", "OracleGrid", "oracle_plans", "oracle_sessions", "seed_policies"]

#: The ``policy`` column of the oracle's results: a bound, named as one.
ORACLE_LABEL = "oracle (bound)"


@dataclass(frozen=True, slots=True)
class OracleGrid:
    """Cells in which the oracle's search merges states (see the module docstring).

    :param position_s: trace-position cell, seconds.
    :param ahead_s: cell of the time until playback runs dry (buffer plus scheduled stall), seconds.
    :param backlog_s: decode-backlog cell, seconds.
    :param max_states: most states kept per session after each chunk.
    :param batch_states: states stepped together (bounds memory; sessions are grouped to fit).
    :param seeds: keep the path of every shipped policy (:func:`seed_policies`) in the search.
    """

    position_s: float = 1.0
    ahead_s: float = 1.0
    backlog_s: float = 1.0
    max_states: int = 1000
    batch_states: int = 60_000
    seeds: bool = True

    def __post_init__(self) -> None:
        if min(self.position_s, self.ahead_s, self.backlog_s) <= 0:
            raise ValueError("OracleGrid cells must be > 0")
        if self.max_states < 1 or self.batch_states < 1:
            raise ValueError("OracleGrid.max_states and batch_states must be >= 1")


class _Take:
    """Select / replicate the sessions of a simulator by index (the per-session arrays are
    the ones :meth:`BatchSimulator.reset` creates: whatever it sets that was not there before)."""

    def __init__(self, sim: BatchSimulator, before: set[str]):
        self.names = [k for k, v in vars(sim).items() if k not in before and isinstance(v, np.ndarray)]
        bad = [k for k in self.names if getattr(sim, k).shape[:1] != (sim.n,)]
        if bad:
            raise RuntimeError(f"oracle: simulator state {bad} is not per-session; update sim.oracle")

    def __call__(self, sim: BatchSimulator, index: np.ndarray) -> None:
        for name in self.names:
            setattr(sim, name, getattr(sim, name)[index])
        sim.n = len(index)


def seed_policies(ladder: Ladder) -> list[str]:
    """The policy specs whose paths seed the search: every registered policy with its default
    options, the documented variants (BOLA-O/U, BOLA-E's O variant), the decode-aware
    variants, and ``fixed`` at every rung."""
    from policies.registry import POLICIES

    variants = ["bola:variant=o", "bola:variant=u", "bola-e:variant=o"]
    aware = [f"{name}:decode_aware=true" for name in ("mpc", "robustmpc", "bola")]
    return list(POLICIES) + variants + aware + [f"fixed:rung={r}" for r in range(ladder.n_rungs)]


def _seed_paths(traces, ladder, device, qoe, config, seed, ids) -> np.ndarray:
    """Rungs played by every seed policy, ``(policies, chunks, sessions)``."""
    from policies.registry import get_policy

    return np.stack([
        run_sessions(get_policy(spec), traces, ladder, device, qoe, config=config, seed=seed, session_ids=ids)
        .chunks["rung"]
        for spec in seed_policies(ladder)
    ])  # fmt: skip


def oracle_plans(
    traces: list[Trace],
    ladder: Ladder,
    device: Device,
    qoe: QoE,
    *,
    config: SimConfig | None = None,
    seed: int = 0,
    session_ids: np.ndarray,
    grid: OracleGrid | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Best rung sequence ``(chunks, sessions)`` and its total QoE ``(sessions,)`` for each session."""
    grid = grid or OracleGrid()
    ids = np.asarray(session_ids, dtype=np.int64)
    R, K = ladder.n_rungs, ladder.n_chunks
    seeds = _seed_paths(traces, ladder, device, qoe, config, seed, ids) if grid.seeds else None
    per_group = max(1, grid.batch_states // (grid.max_states * R))
    plans, values = [], []
    for g in range(0, len(ids), per_group):
        part = None if seeds is None else seeds[:, :, g : g + per_group]
        p, v = _search(traces, ladder, device, qoe, config, seed, ids[g : g + per_group], grid, part)
        plans.append(p)
        values.append(v)
    return np.concatenate(plans, axis=1).reshape(K, len(ids)), np.concatenate(values)


def _search(traces, ladder, device, qoe, config, seed, ids, grid: OracleGrid, seeds: np.ndarray | None):
    sim = BatchSimulator(traces, ladder, device, qoe, config)
    before = set(vars(sim))
    n, R, K = len(ids), ladder.n_rungs, ladder.n_chunks
    sim.reset(ids % len(traces), session_keys(seed, ids))
    take = _Take(sim, before)
    owner = np.arange(n)
    value = np.zeros(n)
    weights = qoe.stall_penalty * np.array([0.0, 1 / 64, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0])
    back: list[tuple[np.ndarray, np.ndarray]] = []
    # on_seed[state, s]: the state's rungs so far are seed policy s's (its path is never pruned)
    on_seed = np.ones((n, 0 if seeds is None else len(seeds)), dtype=bool)
    for k in range(K):
        parent = np.repeat(np.arange(len(owner)), R)
        rung = np.tile(np.arange(R, dtype=np.int64), len(owner))
        take(sim, parent)
        _, info, _ = sim.step(rung)
        val = value[parent] + info.reward
        own = owner[parent]
        on_seed = on_seed[parent]
        if seeds is not None:
            on_seed &= seeds[:, k, own].T == rung[:, None]
        ahead = sim.play_end - sim.clock
        if k + 1 < K:
            cells = (
                np.floor(sim.pos / grid.position_s),
                np.floor(np.maximum(sim.dec_free - sim.clock, 0.0) / grid.backlog_s),
                rung,
            )
        else:
            cells, ahead = (), np.zeros(len(val))
        keep = _prune(own, cells, ahead, val, grid, weights)
        if k + 1 < K and on_seed.shape[1]:
            keep = np.union1d(keep, np.flatnonzero(on_seed.any(axis=1)))
        take(sim, keep)
        owner, value, on_seed = own[keep], val[keep], on_seed[keep]
        back.append((parent[keep], rung[keep]))
    # one final state per session, in session order
    plan = np.empty((K, n), dtype=np.int64)
    idx = np.arange(len(owner))[np.argsort(owner, kind="stable")]
    for k in range(K - 1, -1, -1):
        parent, rung = back[k]
        plan[k] = rung[idx]
        idx = parent[idx]
    return plan, value[np.argsort(owner, kind="stable")]


def _prune(
    owner: np.ndarray, cells: tuple, ahead: np.ndarray, value: np.ndarray, grid: OracleGrid, weights: np.ndarray
) -> np.ndarray:
    """Indices of the states kept: per (owner, cells) group, the best state of every ``ahead``
    cell, then only those no state with more time ahead beats on value (a Pareto front), then
    at most ``max_states`` per owner (highest values)."""
    acell = np.floor(ahead / grid.ahead_s)
    order = np.lexsort((-value, -acell, *reversed(cells), owner))  # group, most ahead first, best first
    keys = np.stack([owner[order], *(c[order] for c in cells)], axis=1)
    new_group = np.ones(len(order), dtype=bool)
    new_group[1:] = np.any(keys[1:] != keys[:-1], axis=1)
    new_cell = new_group.copy()
    new_cell[1:] |= acell[order][1:] != acell[order][:-1]
    order, new_group = order[new_cell], new_group[new_cell]
    # Pareto: keep a state only if its value beats every state of its group with more time ahead
    v = value[order]
    best_before = np.full(len(v), -np.inf)
    best_before[1:] = np.where(new_group[1:], -np.inf, v[:-1])
    _segmented_running_max(best_before, np.cumsum(new_group))
    kept = order[v > best_before]
    return _cap(owner, kept, ahead, value, grid.max_states, weights)


def _segmented_running_max(x: np.ndarray, group: np.ndarray) -> None:
    """In place: x[i] = max of x[j] over j <= i in the same (contiguous) group; exact."""
    d = 1
    while d < len(x):
        same = group[d:] == group[:-d]
        np.maximum(x[d:], np.where(same, x[:-d], -np.inf), out=x[d:])
        d *= 2


def _cap(owner, kept, ahead, value, max_states: int, weights: np.ndarray) -> np.ndarray:
    """At most ``max_states`` states per owner: the union of the best by ``value + w ahead``
    for every weight w (buffer is worth between nothing and the stall penalty per second)."""
    own = owner[kept]
    counts = np.bincount(own)
    if counts.max() <= max_states:
        return kept
    per = max(1, max_states // len(weights))
    chosen = counts[own] <= max_states  # owners under the cap keep everything
    for w in weights:
        by = np.lexsort((-(value[kept] + w * ahead[kept]), own))
        o = own[by]
        rank = np.arange(len(by)) - np.searchsorted(o, o, side="left")
        chosen[by[rank < per]] = True
    return kept[chosen]


class _Replay(Policy):
    """Plays a fixed rung sequence per session (the oracle's plan)."""

    name = "oracle"

    def __init__(self, plan: np.ndarray):
        super().__init__()
        self.plan = plan

    def act(self, obs: Observation) -> np.ndarray:
        return self.plan[obs.chunk]


def oracle_sessions(
    traces: list[Trace],
    ladder: Ladder,
    device: Device,
    qoe: QoE,
    *,
    config: SimConfig | None = None,
    sessions: int | None = None,
    seed: int = 0,
    session_ids: np.ndarray | None = None,
    grid: OracleGrid | None = None,
    label: str = ORACLE_LABEL,
) -> SessionResults:
    """The oracle bound for the sessions :func:`~sim.session.run_sessions` would run with the
    same arguments, as a :class:`~sim.session.SessionResults` labelled ``label``."""
    ids = np.arange(sessions or len(traces)) if session_ids is None else np.asarray(session_ids, dtype=np.int64)
    plan, value = oracle_plans(traces, ladder, device, qoe, config=config, seed=seed, session_ids=ids, grid=grid)
    replay = _Replay(plan)
    replay.label = label
    res = run_sessions(replay, traces, ladder, device, qoe, config=config, seed=seed, session_ids=ids)
    total = res.chunks["reward"].sum(axis=0)
    if not np.allclose(total, value, rtol=1e-9, atol=1e-9):
        raise RuntimeError("oracle: the replayed plan does not score the searched value (simulator state not copied?)")
    return res

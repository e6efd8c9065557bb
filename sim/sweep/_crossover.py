"""Crossovers: the bandwidth at which one ladder overtakes another in QoE.

Both work on the bandwidth scale of the ``scale`` trace transform (every trace's throughput
times ``scale``) and on the mean over sessions of a per-session metric (``qoe_mean`` by
default). Sessions of both ladders share session ids and seed, so they see the same traces,
start positions and delay noise (common random numbers): the difference is smooth in the
scale instead of noisy.

- :func:`crossover_table` reads crossovers off a finished sweep: on the grid of scales it
  swept, it interpolates the sign change of QoE(A) - QoE(B) linearly in log-scale.
- :func:`find_crossover` searches one pair directly: a coarse log-spaced grid brackets the
  first sign change, then bisection in log-scale narrows it to ``rtol``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from abr.errors import InputError
from sim.resolve import DEFAULT_DEVICE
from sim.sweep._cell import transform_fields
from sim.sweep._grid import Grid

__all__ = [
    "LOWER_IS_BETTER",
    "Crossover",
    "CrossoverSearch",
    "crossover_search",
    "crossover_table",
    "find_crossover",
    "sign_changes",
]

#: Per-session metrics where less is better (the winner of a comparison has the lower value).
LOWER_IS_BETTER = frozenset({"lpips_mean", "stall_ratio", "stall_s", "stall_count", "startup_s", "switches",
                             "severe_frac", "kbps", "decode_ms_per_frame"})  # fmt: skip


def _winner(a: str, b: str, d: float, metric: str) -> str:
    """The better of ``a`` and ``b`` when ``metric(a) - metric(b) = d`` (``tie`` at 0)."""
    if d == 0 or not np.isfinite(d):
        return "tie"
    return a if (d > 0) != (metric in LOWER_IS_BETTER) else b


@dataclass(frozen=True, slots=True)
class Crossover:
    """Where ``metric(ladder_a) - metric(ladder_b)`` changes sign as bandwidth grows.

    :param ladder_a: first ladder; ``ladder_b``: second.
    :param scale: bandwidth scale at the crossover (log-linear interpolation in the final bracket).
    :param mbps: mean throughput of the scaled traces there, Mbit/s.
    :param below: the better ladder (by the metric) just below the crossover; ``above``: just above.
    :param bracket: the scales either side of it that were simulated.
    :param evaluations: scales simulated (each runs both ladders).
    :param sign_changes: sign changes seen on the coarse grid (more than 1: the curves cross
        again higher up; this is the lowest).
    """

    ladder_a: str
    ladder_b: str
    scale: float
    mbps: float
    below: str
    above: str
    bracket: tuple[float, float]
    evaluations: int
    sign_changes: int


def sign_changes(x: np.ndarray, d: np.ndarray) -> list[tuple[int, int, float]]:
    """Sign changes of ``d`` over increasing ``x > 0``: ``(i, j, x*)`` per change.

    ``i < j`` index the nearest points with non-zero ``d`` either side (zeros in between are
    ties); ``x*`` interpolates ``d`` linearly in ``log x`` between them.
    """
    x, d = np.asarray(x, dtype=float), np.asarray(d, dtype=float)
    nz = [i for i in range(len(d)) if d[i] != 0 and np.isfinite(d[i])]
    out = []
    for i, j in zip(nz, nz[1:]):
        if np.sign(d[i]) != np.sign(d[j]):
            t = d[i] / (d[i] - d[j])
            out.append((i, j, float(np.exp(np.log(x[i]) + t * (np.log(x[j]) - np.log(x[i]))))))
    return out


def _interp_log(x0: float, x1: float, y0: float, y1: float, x: float) -> float:
    if x1 == x0:
        return y0
    t = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
    return y0 + t * (y1 - y0)


def crossover_table(summary, metric: str = "qoe_mean"):
    """Crossovers between every pair of ladders of a sweep summary, per other grid point.

    One row per crossover, or one row with NaN ``scale`` where a pair never crosses in the
    swept range (``below`` = ``above`` = the ladder ahead on average). ``below``/``above``
    name the better ladder either side (lower is better for :data:`LOWER_IS_BETTER` metrics).
    Needs at least two scales; returns an empty frame otherwise.
    """
    import pandas as pd

    keys = list(summary.columns[: summary.columns.get_loc("sessions")])
    group = [k for k in keys if k not in ("ladder", "family", "transform", "scale")]
    rows = []
    if summary["scale"].nunique() < 2 or summary["ladder"].nunique() < 2:
        return pd.DataFrame(columns=[*group, "ladder_a", "ladder_b", "scale", "mbps", "below", "above"])
    for gkey, g in summary.groupby(group, sort=False, dropna=False):
        gkey = gkey if isinstance(gkey, tuple) else (gkey,)
        ladders = list(dict.fromkeys(g["ladder"]))
        for a, b in itertools.combinations(ladders, 2):
            ga = g[g["ladder"] == a].groupby("scale")[[metric, "trace_mbps"]].mean()
            gb = g[g["ladder"] == b].groupby("scale")[metric].mean()
            common = ga.index.intersection(gb.index).sort_values()
            x = common.to_numpy(dtype=float)
            d = ga.loc[common, metric].to_numpy() - gb.loc[common].to_numpy()
            mb = ga.loc[common, "trace_mbps"].to_numpy()
            base = dict(zip(group, gkey)) | {"ladder_a": a, "ladder_b": b}
            found = sign_changes(x, d) if len(x) >= 2 else []
            for i, j, xs in found:
                mbps = math.exp(_interp_log(x[i], x[j], math.log(mb[i]), math.log(mb[j]), xs))
                rows.append(base | {"scale": xs, "mbps": mbps, "below": _winner(a, b, d[i], metric),
                                    "above": _winner(a, b, d[j], metric)})  # fmt: skip
            if not found:
                lead = _winner(a, b, float(np.nanmean(d)) if len(d) else math.nan, metric)
                rows.append(base | {"scale": math.nan, "mbps": math.nan, "below": lead, "above": lead})
    return pd.DataFrame(rows)


@dataclass(frozen=True, slots=True)
class CrossoverSearch:
    """Everything a crossover search simulated.

    :param crossover: the lowest crossover, or None when there is none in range.
    :param leader: with no crossover, the ladder ahead throughout (``tie`` if neither); else None.
    :param evaluated: scale -> (metric(a) - metric(b), mean trace Mbit/s), every scale simulated.
    """

    crossover: Crossover | None
    leader: str | None
    evaluated: dict[float, tuple[float, float]]


def find_crossover(ladder_a: str, ladder_b: str, **kwargs) -> Crossover | None:
    """The lowest bandwidth scale where ``ladder_a`` and ``ladder_b`` swap places, or None when
    they do not in range; arguments as :func:`crossover_search`."""
    return crossover_search(ladder_a, ladder_b, **kwargs).crossover


def expected_evaluations(lo: float, hi: float, points: int, rtol: float) -> int:
    """Scales :func:`crossover_search` evaluates when it finds a crossover: the coarse points and
    the bisection steps that narrow one coarse bracket to ``1 + rtol`` (a progress bar's total)."""
    bracket = math.log(hi / lo) / max(points - 1, 1)
    return points + max(0, math.ceil(math.log2(bracket / math.log1p(rtol))))


def crossover_search(
    ladder_a: str,
    ladder_b: str,
    *,
    policy: str = "bola",
    device: str = DEFAULT_DEVICE,
    qoe: str = "perceptual",
    traces: str = "lte",
    transform: str = "",
    sim: str = "promptabr",
    sessions: int = 64,
    seed: int = 0,
    trace_count: int = 16,
    lo: float = 1 / 16,
    hi: float = 16.0,
    points: int = 9,
    rtol: float = 0.01,
    metric: str = "qoe_mean",
    executor="local",
    on_evaluate: Callable[[int], None] | None = None,
) -> CrossoverSearch:
    """Search the lowest bandwidth scale in ``[lo, hi]`` where ``ladder_a`` and ``ladder_b`` swap places.

    :param ladder_a: a ladder expression; ``ladder_b``: the other.
    :param policy: policy spec both ladders are streamed with.
    :param device: device profile; ``qoe``: QoE preset; ``traces``: trace spec; ``sim``: preset.
    :param transform: further trace transforms applied after the scale (must not scale).
    :param sessions: sessions per evaluation; ``seed``, ``trace_count``: as in :class:`Grid`.
    :param lo: lowest scale; ``hi``: highest; ``points``: log-spaced scales of the coarse search.
    :param rtol: stop bisecting when the bracket's ratio is below ``1 + rtol``.
    :param metric: per-session column compared by its mean.
    :param executor: executor name or instance for the evaluations.
    :param on_evaluate: called with the number of scales just evaluated (a progress bar's update).
    :returns: a :class:`CrossoverSearch`; its ``crossover`` is None when the sign of the
        difference never changes in range.
    """
    from sim.sweep._sweep import run_sweep

    if not 0 < lo < hi:
        raise InputError(f"crossover range must satisfy 0 < lo < hi, got lo={lo}, hi={hi}")
    if points < 2 or rtol <= 0:
        raise InputError(f"crossover needs points >= 2 and rtol > 0, got points={points}, rtol={rtol}")
    if "scale" in transform_fields(transform):
        raise InputError(f"transform {transform!r} already scales bandwidth; the crossover search sets the scale")
    if ladder_a == ladder_b:
        raise InputError(f"crossover needs two different ladders, got {ladder_a!r} twice")
    cache: dict[float, tuple[float, float]] = {}

    def spec(s: float) -> str:
        return ",".join(filter(None, [f"scale={s:.6g}", transform]))

    def evaluate(scales: list[float]) -> None:
        new = [s for s in scales if s not in cache]
        if not new:
            return
        grid = Grid(policies=(policy,), ladders=(ladder_a, ladder_b), devices=(device,), qoes=(qoe,),
                    traces=(traces,), transforms=tuple(spec(s) for s in new), sims=(sim,), sessions=sessions,
                    block=0, seed=seed, trace_count=trace_count)  # fmt: skip
        summ = run_sweep(grid, executor=executor).summary
        for s in new:
            rows = summ[summ["transform"] == spec(s)]
            va = rows.loc[rows["ladder"] == ladder_a, metric].iloc[0]
            vb = rows.loc[rows["ladder"] == ladder_b, metric].iloc[0]
            cache[s] = (float(va - vb), float(rows["trace_mbps"].iloc[0]))
        if on_evaluate is not None:
            on_evaluate(len(new))

    coarse = sorted({float(f"{s:.6g}") for s in np.geomspace(lo, hi, points)})
    evaluate(coarse)
    diffs = np.array([cache[s][0] for s in coarse])
    found = sign_changes(np.array(coarse), diffs)
    if not found:
        nonzero = diffs[(diffs != 0) & np.isfinite(diffs)]
        leader = _winner(ladder_a, ladder_b, float(nonzero[0]) if len(nonzero) else 0.0, metric)
        return CrossoverSearch(None, leader, dict(cache))
    i, j, _ = found[0]
    s0, s1 = coarse[i], coarse[j]
    while s1 / s0 > 1 + rtol:
        mid = float(f"{math.sqrt(s0 * s1):.6g}")
        if mid in (s0, s1):
            break
        evaluate([mid])
        d = cache[mid][0]
        if d == 0:
            s0 = s1 = mid
            break
        if np.sign(d) == np.sign(cache[s0][0]):
            s0 = mid
        else:
            s1 = mid
    (d0, m0), (d1, m1) = cache[s0], cache[s1]
    if s0 == s1:
        xs, mbps = s0, m0
    else:
        xs = sign_changes(np.array([s0, s1]), np.array([d0, d1]))[0][2]
        mbps = math.exp(_interp_log(s0, s1, math.log(m0), math.log(m1), xs))
    below = _winner(ladder_a, ladder_b, cache[coarse[i]][0], metric)
    above = ladder_b if below == ladder_a else ladder_a
    x = Crossover(ladder_a, ladder_b, xs, mbps, below, above, (s0, s1), len(cache), len(found))
    return CrossoverSearch(x, None, dict(cache))

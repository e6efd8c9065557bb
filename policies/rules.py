"""Building blocks the heuristic policies share: rung filters and choices on perceptual quality.

Every heuristic works on q, the chunk quality under the run's QoE (for the ``perceptual``
preset q = 1 - LPIPS), not on bitrate: where several rungs give the same quality, the
cheapest is taken. Heuristics also skip rungs the device cannot decode in real time (decode
time above the chunk's duration) unless no rung is fast enough; the planning policies (MPC,
the oracle) account for decode time exactly instead.
"""

from __future__ import annotations

import numpy as np

from policies.base import PolicyContext

__all__ = [
    "best_within", "cheapest_at_least", "follows_sabre", "nominal_rung", "nominal_sizes", "realtime_rungs",
    "throughput_rung", "utilities",
]  # fmt: skip

PEER_OPTIONS = ("auto", "sabre", "none")


def realtime_rungs(ctx: PolicyContext, k: int) -> np.ndarray:
    """Rungs of chunk k the device decodes in real time (the fastest ones if none does)."""
    ok = ctx.decode_s[k] <= ctx.ladder.duration_s[k]
    return ok if ok.any() else ctx.decode_s[k] <= ctx.decode_s[k].min()


def cheapest_at_least(q: np.ndarray, size: np.ndarray, allowed: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per session, the cheapest allowed rung with q >= target (the best allowed one if none)."""
    ok = allowed[None, :] & (q[None, :] >= target[:, None] - 1e-12)
    cost = np.where(ok, size[None, :], np.inf)
    best = int(np.argmax(np.where(allowed, q, -np.inf)))
    return np.where(ok.any(axis=1), np.argmin(cost, axis=1), best)


def best_within(q: np.ndarray, size: np.ndarray, allowed: np.ndarray, budget: np.ndarray) -> np.ndarray:
    """Per session, the highest-q allowed rung with size <= budget (cheapest on ties; lowest if none)."""
    ok = allowed[None, :] & (size[None, :] <= budget[:, None])
    score = np.where(ok, q[None, :] - size[None, :] * 1e-15, -np.inf)
    lowest = int(np.argmin(np.where(allowed, size, np.inf)))
    return np.where(ok.any(axis=1), np.argmax(score, axis=1), lowest)


def throughput_rung(ctx: PolicyContext, k: int, est_mbps: np.ndarray, safety: float = 1.0) -> np.ndarray:
    """The best real-time rung of chunk k whose download at ``safety * est_mbps`` fits in its duration.

    Sabre's ``quality_from_throughput`` on perceptual quality; the estimate already includes
    request latency (the observation's throughput is size over delay). NaN estimates give the
    lowest rung.
    """
    budget = np.where(np.isnan(est_mbps), 0.0, est_mbps) * safety * 1e6 / 8.0 * ctx.ladder.duration_s[k]
    return best_within(ctx.quality[k], ctx.ladder.size_bytes[k], realtime_rungs(ctx, k), budget)


def utilities(q: np.ndarray, size: np.ndarray, allowed: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """BOLA utilities from perceptual quality, one per rung.

    BOLA's own utility is ``ln(S_m / S_min)``; here the quality range of the allowed rungs is
    mapped linearly onto that same range: ``v_m = offset + ln(S_max / S_min) (q_m - q_min) /
    (q_max - q_min)``, so BOLA's parameters (gamma p, Q_max) keep their meaning while rungs of
    equal quality get equal utility (and the cheaper one always wins).
    """
    qa = q[allowed]
    span = qa.max() - qa.min()
    scale = float(np.log(size[allowed].max() / size[allowed].min()))
    if span <= 0 or scale <= 0:
        return np.full_like(q, offset, dtype=np.float64)
    return offset + (q - qa.min()) / span * scale


# ---- Sabre's semantics (issue 15): nominal bitrates, latency kept apart ------------------
def follows_sabre(option: str, ctx: PolicyContext) -> bool:
    """Whether a policy's ``peer`` option (``auto``/``sabre``/``none``) selects Sabre's semantics;
    ``auto`` follows the simulator preset (:attr:`PolicyContext.peer`)."""
    if option not in PEER_OPTIONS:
        raise ValueError(f"peer must be one of {', '.join(PEER_OPTIONS)}, got {option!r}")
    return option == "sabre" or (option == "auto" and ctx.peer == "sabre")


def nominal_sizes(ctx: PolicyContext, k: int) -> np.ndarray:
    """Chunk k's size per rung at its nominal bitrate, bytes (what Sabre's rules reason with)."""
    return ctx.ladder.kbps * 1000.0 / 8.0 * ctx.ladder.duration_s[k]


def nominal_rung(ctx: PolicyContext, k: int, est_mbps: np.ndarray, latency_s: np.ndarray,
                 safety: float = 1.0) -> np.ndarray:  # fmt: skip
    """Sabre's ``quality_from_throughput``: the highest rung q with
    ``latency + p x kbps_q / (safety x estimate) <= p`` (nominal bitrates, latency apart).
    NaN estimates give rung 0."""
    p = float(ctx.ladder.duration_s[k])
    tput = np.where(np.isfinite(est_mbps), est_mbps, 0.0) * 1000.0 * safety  # kbit/s
    lat = np.where(np.isfinite(latency_s), latency_s, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = lat[:, None] + p * ctx.ladder.kbps[None, 1:] / tput[:, None] <= p
    ok &= (tput > 0)[:, None]
    return np.cumprod(ok, axis=1).sum(axis=1).astype(np.int64)

"""Summary statistics of traces (``python -m traces info``, the model fits and their tests)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from traces.trace import Trace

__all__ = ["PERCENTILES", "TraceSummary", "lag1_autocorr", "pooled_quantiles", "summarize"]

#: Percentiles reported by :func:`summarize` and compared by the model fits.
PERCENTILES = (5, 10, 25, 50, 75, 90, 95)


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """Duration-weighted statistics of one or more traces (rates in Mbit/s).

    :param n_traces: number of traces.
    :param duration_s: total length of one loop of every trace.
    :param mean_mbps: time-weighted mean rate.
    :param percentiles_mbps: rate percentiles over time, keyed by :data:`PERCENTILES`.
    :param outage_share: fraction of time at zero rate.
    :param lag1_autocorr: within-trace lag-1 autocorrelation of the rate at ``step_s``.
    :param step_s: sample step used for the autocorrelation.
    :param mean_latency_ms: time-weighted mean latency (None where no trace has any).
    """

    n_traces: int
    duration_s: float
    mean_mbps: float
    percentiles_mbps: dict[int, float]
    outage_share: float
    lag1_autocorr: float
    step_s: float
    mean_latency_ms: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def _weighted_percentiles(values: np.ndarray, weights: np.ndarray, pct: tuple[int, ...]) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cw = np.cumsum(w)
    return v[np.minimum(np.searchsorted(cw, np.asarray(pct) / 100.0 * cw[-1], side="left"), v.size - 1)]


def lag1_autocorr(series: list[np.ndarray]) -> float:
    """Pooled within-series lag-1 autocorrelation.

    Each series is centred on its own mean; numerators and denominators are summed over the
    series (so long series weigh more and constant ones add nothing). NaN if all are constant.
    """
    num = den = 0.0
    for x in series:
        if x.size < 3:
            continue
        d = x - x.mean()
        num += float(np.dot(d[:-1], d[1:]))
        den += float(np.dot(d, d))
    return num / den if den > 0 else float("nan")


def pooled_quantiles(series: list[np.ndarray], pct: tuple[int, ...] = PERCENTILES) -> np.ndarray:
    """Percentiles of all samples of equally stepped series together."""
    return np.percentile(np.concatenate(series), pct)


def summarize(traces: list[Trace], step_s: float = 1.0) -> TraceSummary:
    """Statistics of ``traces`` taken together (time-weighted)."""
    dur = np.concatenate([t.duration_s for t in traces])
    rate = np.concatenate([t.mbps for t in traces])
    total = float(dur.sum())
    lat_tr = [t for t in traces if t.latency_ms is not None]
    lat = None
    if lat_tr:
        lat = float(sum(np.dot(t.duration_s, t.latency_ms) for t in lat_tr) / sum(t.total_s for t in lat_tr))
    pct = _weighted_percentiles(rate, dur, PERCENTILES)
    return TraceSummary(
        n_traces=len(traces),
        duration_s=total,
        mean_mbps=float(np.dot(dur, rate) / total),
        percentiles_mbps={p: float(v) for p, v in zip(PERCENTILES, pct)},
        outage_share=float(dur[rate <= 0].sum() / total),
        lag1_autocorr=lag1_autocorr([t.resample(step_s).mbps for t in traces]),
        step_s=step_s,
        mean_latency_ms=lat,
    )

"""Throughput estimators shared by every policy (batched: one estimate per session).

* :func:`harmonic_mean`: harmonic mean of the last n observed chunk throughputs (Pensieve's
  rate-based and MPC predictors); stateless, works on the observation's history.
* :class:`Ewma`: exponentially weighted moving averages with several half-lives measured in
  seconds of download time, zero-bias corrected, the most conservative (lowest) estimate
  wins (Sabre's default: half-lives 3 s and 8 s).
* :class:`RobustEstimate`: the harmonic mean divided by ``1 + max relative error`` of the
  last few predictions (RobustMPC, Yin et al. 2015, as in Pensieve's implementation).

The stateful estimators are fed the observation before every decision (``update``); they
ingest the chunks completed since their last update from the observation's history, so a
caller that skips decisions loses nothing as long as the gap fits in the history.
Throughput is what the observation reports: chunk size over download delay, request latency
(or Pensieve's RTT) included.
"""

from __future__ import annotations

import numpy as np

from policies.base import Observation

__all__ = ["Ewma", "RobustEstimate", "harmonic_mean", "new_samples"]


def harmonic_mean(throughput_mbps: np.ndarray, n: int = 5) -> np.ndarray:
    """Harmonic mean of the last ``n`` observed throughputs of every session.

    NaN entries (no chunk yet) are skipped; sessions with no sample at all get NaN.
    """
    recent = throughput_mbps[:, -n:]
    valid = np.isfinite(recent) & (recent > 0)
    count = valid.sum(axis=1)
    inv = np.where(valid, 1.0 / np.where(valid, recent, 1.0), 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, count / inv, np.nan)


def new_samples(obs: Observation, seen: int) -> int:
    """How many history entries of ``obs`` are chunks not seen by a consumer that saw ``seen`` chunks."""
    return max(0, min(obs.chunk - seen, obs.throughput_mbps.shape[1]))


class Ewma:
    """Sabre-style EWMA throughput estimate for a batch of sessions.

    After a chunk of throughput x downloaded in d seconds, each average moves by
    ``a = 0.5 ** (d / half_life)``: ``e = a e + (1 - a) x``. Dividing by ``1 - 0.5 ** (D / h)``
    (D = total download time so far) removes the bias of the zero start. The estimate is the
    minimum over the half-lives (the conservative one).

    With ``latency_apart`` (Sabre's own estimator) the request latency is taken out: a sample
    is the chunk's bits over its transfer time (delay - latency), weighted by that time, and
    the latency gets its own average, one step per chunk with half-lives of
    ``half_life / segment_s`` chunks, the most conservative (highest) one winning
    (:attr:`latency_s` after each update).

    :param half_lives_s: half-lives in seconds of download time.
    :param latency_apart: estimate throughput and latency separately (needs the observation's
        ``latency_s``).
    :param segment_s: chunk duration that scales the latency half-lives (Sabre: segment time).
    """

    def __init__(self, half_lives_s: tuple[float, ...] = (3.0, 8.0), latency_apart: bool = False,
                 segment_s: float = 1.0):  # fmt: skip
        if not half_lives_s or min(half_lives_s) <= 0:
            raise ValueError(f"half-lives must be positive, got {half_lives_s}")
        self.half_lives_s = np.asarray(half_lives_s, dtype=np.float64)
        self.latency_apart = latency_apart
        self.segment_s = segment_s
        self.reset(0)

    def reset(self, n_sessions: int) -> None:
        self.avg = np.zeros((n_sessions, len(self.half_lives_s)))
        self.weight_s = np.zeros(n_sessions)
        self.lat_avg = np.zeros((n_sessions, len(self.half_lives_s)))
        self.lat_weight = np.zeros(n_sessions)
        self.latency_s = np.full(n_sessions, np.nan)
        self.seen = 0

    def update(self, obs: Observation) -> np.ndarray:
        """Ingest the chunks completed since the last update; return the estimate (Mbit/s, NaN if none)."""
        m = new_samples(obs, self.seen)
        for j in range(obs.throughput_mbps.shape[1] - m, obs.throughput_mbps.shape[1]):
            x, d = obs.throughput_mbps[:, j], obs.delay_s[:, j]
            if self.latency_apart:
                lat = obs.latency_s[:, j]
                with np.errstate(divide="ignore", invalid="ignore"):
                    x = x * d / (d - lat)  # bits over transfer time
                d = d - lat
                ok = np.isfinite(x) & np.isfinite(d) & (d > 0)
                b = np.power(0.5, self.segment_s / self.half_lives_s)[None, :]
                self.lat_avg = np.where(ok[:, None], b * self.lat_avg + (1.0 - b) * np.where(ok, lat, 0.0)[:, None],
                                        self.lat_avg)  # fmt: skip
                self.lat_weight = self.lat_weight + ok
            ok = np.isfinite(x) & np.isfinite(d) & (d > 0)
            a = np.power(0.5, np.where(ok, d, 0.0)[:, None] / self.half_lives_s[None, :])
            self.avg = np.where(ok[:, None], a * self.avg + (1.0 - a) * np.where(ok, x, 0.0)[:, None], self.avg)
            self.weight_s = self.weight_s + np.where(ok, d, 0.0)
        self.seen = obs.chunk
        if self.latency_apart:
            zero = 1.0 - np.power(0.5, self.lat_weight[:, None] * self.segment_s / self.half_lives_s[None, :])
            with np.errstate(divide="ignore", invalid="ignore"):
                lat = (self.lat_avg / zero).max(axis=1)
            self.latency_s = np.where(self.lat_weight > 0, lat, np.nan)
        return self.estimate()

    def estimate(self) -> np.ndarray:
        zero = 1.0 - np.power(0.5, self.weight_s[:, None] / self.half_lives_s[None, :])
        with np.errstate(divide="ignore", invalid="ignore"):
            est = (self.avg / zero).min(axis=1)
        return np.where(self.weight_s > 0, est, np.nan)


class RobustEstimate:
    """RobustMPC's throughput prediction for a batch of sessions.

    Before each decision: the relative error ``|p - x| / x`` of the previous prediction p
    against the throughput x of the chunk it predicted joins the error history (0 before the
    first prediction); the new prediction is the harmonic mean of the last ``window``
    throughputs, and the estimate used is that prediction over ``1 + max`` of the last
    ``error_window`` errors.

    :param window: chunks in the harmonic mean.
    :param error_window: past errors whose maximum discounts the estimate.
    """

    def __init__(self, window: int = 5, error_window: int = 5):
        self.window, self.error_window = window, error_window
        self.reset(0)

    def reset(self, n_sessions: int) -> None:
        self.errors = np.full((n_sessions, self.error_window), np.nan)
        self.last_prediction = np.full(n_sessions, np.nan)
        self.seen = 0

    def update(self, obs: Observation) -> np.ndarray:
        """Record the error of the last prediction, predict anew; return the discounted estimate."""
        if new_samples(obs, self.seen) > 0:
            actual = obs.throughput_mbps[:, -1]
            with np.errstate(divide="ignore", invalid="ignore"):
                err = np.abs(self.last_prediction - actual) / actual
            err = np.where(np.isfinite(err), err, 0.0)
            self.errors = np.concatenate([self.errors[:, 1:], err[:, None]], axis=1)
        self.seen = obs.chunk
        prediction = harmonic_mean(obs.throughput_mbps, self.window)
        self.last_prediction = prediction
        worst = np.where(np.isnan(self.errors), 0.0, self.errors).max(axis=1)
        return prediction / (1.0 + worst)

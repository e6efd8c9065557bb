"""Generative network models (first cut: a two-state Markov model of log-throughput)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from abr.errors import unknown_name
from traces.trace import Trace

__all__ = ["MarkovModel", "NETWORK_MODELS", "get_model"]


@dataclass(frozen=True, slots=True)
class MarkovModel:
    """AR(1) log-throughput around a per-regime mean, regimes switching as a Markov chain.

    :param name: model name.
    :param log_mean: mean of ln(Mbit/s) in each regime.
    :param log_std: stationary std of ln(Mbit/s) within a regime.
    :param rho: lag-1 autocorrelation of the AR(1) at ``step_s``.
    :param stay: probability of staying in the regime each step.
    :param outage_p: probability that a step is an outage (0 Mbit/s).
    :param step_s: sample period, seconds.
    """

    name: str
    log_mean: tuple[float, ...]
    log_std: float
    rho: float
    stay: float
    outage_p: float = 0.0
    step_s: float = 1.0
    source: str = "hand-set"

    def sample(self, seed: int, duration_s: float = 320.0) -> Trace:
        rng = np.random.default_rng(seed)
        n = int(np.ceil(duration_s / self.step_s))
        regime = np.empty(n, dtype=np.int64)
        regime[0] = rng.integers(len(self.log_mean))
        switch = rng.random(n) > self.stay
        jump = rng.integers(1, max(len(self.log_mean), 2), size=n)
        for i in range(1, n):
            regime[i] = (regime[i - 1] + jump[i]) % len(self.log_mean) if switch[i] else regime[i - 1]
        eps = rng.standard_normal(n) * self.log_std * np.sqrt(1 - self.rho**2)
        x = np.empty(n)
        x[0] = rng.standard_normal() * self.log_std
        for i in range(1, n):
            x[i] = self.rho * x[i - 1] + eps[i]
        mbps = np.exp(np.asarray(self.log_mean)[regime] + x)
        mbps[rng.random(n) < self.outage_p] = 0.0
        if not np.any(mbps > 0):
            mbps[0] = float(np.exp(self.log_mean[0]))
        return Trace(np.full(n, self.step_s), mbps, name=f"{self.name}-{seed}", source=f"model:{self.name} seed={seed}")


NETWORK_MODELS: dict[str, MarkovModel] = {
    m.name: m
    for m in (
        MarkovModel("lte", log_mean=(np.log(4.0), np.log(15.0)), log_std=0.6, rho=0.8, stay=0.97, outage_p=0.005),
    )
}


def get_model(name: str) -> MarkovModel:
    try:
        return NETWORK_MODELS[name]
    except KeyError:
        raise unknown_name("network model", name, NETWORK_MODELS) from None

"""Named selections of the real trace sets: sessions chosen by a documented, deterministic rule.

A selection is a list of real sets (folders of ``../shared/data/traces``) and a rule on each
file's own throughput: its time-weighted median (``p50``) or mean, in Mbit/s, in
``[at_least_mbps, below_mbps)``. The rule depends on the file alone, so it commutes with the
``@train`` / ``@test`` split (which depends on the file name alone). ``--trace NAME@test``
loads one; the files are measurements, never rescaled (a scenario that rescales says it is a
what-if). What each selection holds, with counts: ``traces/data/SELECTIONS.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from abr.errors import InputError
from traces.trace import Trace

__all__ = ["SELECTIONS", "STATS", "TraceSelection", "select_traces", "trace_stat_mbps"]

#: Statistics a rule can use: name -> what it is.
STATS = {"p50": "time-weighted median throughput", "mean": "time-weighted mean throughput"}


def trace_stat_mbps(trace: Trace, stat: str) -> float:
    """The rule's statistic of one loop of ``trace``, Mbit/s."""
    if stat == "mean":
        return trace.mean_mbps
    if stat == "p50":
        order = np.argsort(trace.mbps, kind="stable")
        cum = np.cumsum(trace.duration_s[order])
        return float(trace.mbps[order][np.searchsorted(cum, 0.5 * cum[-1], side="left")])
    raise InputError(f"unknown trace statistic {stat!r}; valid: {', '.join(STATS)}")


def select_traces(traces: list[Trace], stat: str, below_mbps: float, at_least_mbps: float = 0.0) -> list[Trace]:
    """The traces whose ``stat`` lies in ``[at_least_mbps, below_mbps)``, in their order."""
    return [t for t in traces if at_least_mbps <= trace_stat_mbps(t, stat) < below_mbps]


@dataclass(frozen=True, slots=True)
class TraceSelection:
    """A named rule over real trace sets.

    :param name: the trace spec that loads it (``NAME``, ``NAME@train``, ``NAME@test``).
    :param sets: folders under the traces root (a set, or a sub-folder of one).
    :param stat: ``p50`` or ``mean`` (:data:`STATS`).
    :param below_mbps: keep files whose statistic is below this.
    :param at_least_mbps: ... and at least this.
    :param note: what it models, one line.
    """

    name: str
    sets: tuple[str, ...]
    stat: str = "p50"
    below_mbps: float = math.inf
    at_least_mbps: float = 0.0
    note: str = ""

    def __post_init__(self) -> None:
        if self.stat not in STATS:
            raise ValueError(f"TraceSelection.stat must be one of {', '.join(STATS)}, got {self.stat!r}")
        if not (self.at_least_mbps >= 0 and self.below_mbps > self.at_least_mbps):
            raise ValueError(f"TraceSelection {self.name}: need 0 <= at_least_mbps < below_mbps")

    @property
    def rule(self) -> str:
        """The rule in words."""
        lo = f"{self.at_least_mbps:g} <= " if self.at_least_mbps > 0 else ""
        hi = f" < {self.below_mbps:g} Mbit/s" if math.isfinite(self.below_mbps) else " (all files)"
        return f"files of {', '.join(self.sets)} with {lo}{self.stat}{hi}"


_NORWAY = "norway-hsdpa-3g-pensieve-cooked"
_MAHIMAHI = "mahimahi-us-cellular"
_FCC = "fcc-broadband-2016-pensieve-cooked"

#: The named selections (their counts and provenance: ``traces/data/SELECTIONS.md``).
SELECTIONS: dict[str, TraceSelection] = {
    s.name: s
    for s in (
        TraceSelection(
            "lowband-cellular",
            (_NORWAY, _MAHIMAHI),
            "p50",
            below_mbps=1.0,
            note="the slowest real cellular sessions we hold: Norway 3G commutes and US cellular links "
            "whose median is below 1 Mbit/s",
        ),
        TraceSelection(
            "sub3mbps-links",
            (_NORWAY, _FCC, _MAHIMAHI),
            "p50",
            below_mbps=3.0,
            at_least_mbps=0.1,
            note="real 3G, fixed-broadband and cellular sessions with a median of 0.1-3 Mbit/s",
        ),
        TraceSelection(
            "real-mobile-broadband",
            ("belgium-4g-lte-sabre-json", "ucc-5g-mmsys2020/Download", "sbu-fsc-wifi-cellular-pairs"),
            note="unscaled real LTE drives, 5G download logs and Wi-Fi/cellular walks, outages included",
        ),
    )
}

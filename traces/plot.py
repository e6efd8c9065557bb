"""PNG plots of traces: throughput over time and the time-weighted CDF (matplotlib, imported lazily)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from abr.io import write_atomic
from traces.trace import Trace

__all__ = ["plot_traces"]


def plot_traces(traces: list[Trace], out: str | Path, *, max_lines: int = 6, title: str = "") -> Path:
    """Write a two-panel PNG: rate over time of the first ``max_lines`` traces, and the CDF of all.

    The CDF is over time (each segment weighs its duration), pooled over every trace.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    fig, (ax_t, ax_c) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    for t in traces[:max_lines]:
        x = np.concatenate([[0.0], t.end_s])
        ax_t.step(x, np.concatenate([t.mbps, t.mbps[-1:]]), where="post", lw=0.9, label=t.name[:40])
    ax_t.set_xlabel("time (s)")
    ax_t.set_ylabel("throughput (Mbit/s)")
    ax_t.set_title(f"throughput over time (first {min(max_lines, len(traces))} of {len(traces)})")
    if len(traces) > 1:
        ax_t.legend(fontsize=7, loc="upper right")
    rate = np.concatenate([t.mbps for t in traces])
    dur = np.concatenate([t.duration_s for t in traces])
    order = np.argsort(rate, kind="stable")
    cdf = np.cumsum(dur[order]) / dur.sum()
    ax_c.step(rate[order], cdf, where="post", lw=1.2)
    ax_c.set_xlabel("throughput (Mbit/s)")
    ax_c.set_ylabel("share of time")
    ax_c.set_ylim(0, 1)
    ax_c.set_title("CDF over time")
    ax_c.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        write_atomic(out, lambda p: fig.savefig(p, dpi=110), suffix=out.suffix or ".png")
    finally:
        plt.close(fig)
    return out

"""Plots of a sweep (matplotlib, Agg backend, PNG): metrics against bandwidth scale, LPIPS
CDFs, and QoE differences between ladders with their crossovers.

Layout: one row of panels per *condition* (a combination of the varying parameters that a
deployment lives with: device, traces, QoE, simulator, transform fields other than scale),
and in each panel one line per *choice* (policy and ladder): colour by ladder, line style by
policy. At most ``max_rows`` conditions are drawn (the first ones, in grid order).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

__all__ = ["conditions", "plot_crossovers", "plot_lpips_cdf", "plot_vs_scale"]

_CHOICES = ("policy", "ladder")
_NOT_KEYS = ("transform", "scale", "family")
_METRICS = (("qoe_mean", "mean QoE per chunk", "QoE per chunk (preset units)"),
            ("stall_ratio", "stall ratio", "stall time / (stall + video time)"),
            ("lpips_mean", "mean LPIPS", "LPIPS (lower is better)"))
_STYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "v", "D", "P")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _keys(frame) -> list[str]:
    stop = "sessions" if "sessions" in frame.columns else "session"
    return [c for c in frame.columns[: frame.columns.get_loc(stop)] if c not in _NOT_KEYS]


def _varying(frame, cols) -> list[str]:
    return [c for c in cols if frame[c].nunique(dropna=False) > 1]


def conditions(frame, max_rows: int = 6) -> list[tuple[str, np.ndarray]]:
    """``(label, row mask)`` per combination of the varying non-choice key columns."""
    cols = _varying(frame, [c for c in _keys(frame) if c not in _CHOICES])
    if not cols:
        return [("", np.ones(len(frame), dtype=bool))]
    labels = frame[cols].astype(str).agg(" | ".join, axis=1).to_numpy()
    return [(f"{' | '.join(cols)}: {v}", labels == v) for v in list(dict.fromkeys(labels))[:max_rows]]


class _Lines:
    """Colour per ladder, line style and marker per policy (whichever vary)."""

    def __init__(self, frame):
        self.ladders = list(dict.fromkeys(frame["ladder"]))
        self.policies = list(dict.fromkeys(frame["policy"]))
        plt = _pyplot()
        self.colors = plt.get_cmap("tab10" if len(self.ladders) <= 10 else "tab20").colors

    def choices(self, frame):
        for pol, lad in itertools.product(self.policies, self.ladders):
            mask = ((frame["policy"] == pol) & (frame["ladder"] == lad)).to_numpy()
            if mask.any():
                yield pol, lad, mask

    def style(self, policy: str, ladder: str) -> dict:
        i, j = self.ladders.index(ladder), self.policies.index(policy)
        label = " | ".join(v for v, n in ((policy, len(self.policies)), (ladder, len(self.ladders))) if n > 1) or ladder
        return {"color": self.colors[i % len(self.colors)], "ls": _STYLES[j % len(_STYLES)],
                "marker": _MARKERS[j % len(_MARKERS)], "label": label}  # fmt: skip


def _scale_axis(ax, scales) -> None:
    """Log-2 bandwidth-scale axis whose ticks are the swept values themselves (0.125, not 2^-3)."""
    from matplotlib.ticker import FixedLocator, NullLocator

    ax.set_xscale("log", base=2)
    values = np.unique(np.asarray(scales, dtype=float))
    if len(values) > 9:  # keep the labels readable
        values = values[np.unique(np.linspace(0, len(values) - 1, 9).round().astype(int))]
    ax.xaxis.set_major_locator(FixedLocator(values))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{v:g}" for v in values], fontsize=8)


def _legend(fig, axes_row) -> None:
    handles, labels = axes_row[-1].get_legend_handles_labels()
    if handles:
        axes_row[-1].legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def plot_vs_scale(summary, path: Path, max_rows: int = 6) -> Path | None:
    """QoE, stall ratio and mean LPIPS against bandwidth scale; None with a single scale."""
    if summary["scale"].nunique() < 2:
        return None
    plt = _pyplot()
    conds = conditions(summary, max_rows)
    lines = _Lines(summary)
    fig, axes = plt.subplots(len(conds), 3, figsize=(15, 3.6 * len(conds)), squeeze=False)
    for row, (label, cmask) in zip(axes, conds):
        sub = summary[cmask]
        for pol, lad, mask in lines.choices(sub):
            pts = sub[mask].groupby("scale")[[m for m, _, _ in _METRICS]].mean().sort_index()
            for ax, (m, _, _) in zip(row, _METRICS):
                ax.plot(pts.index, pts[m], ms=3, **lines.style(pol, lad))
        for ax, (_, title, unit) in zip(row, _METRICS):
            _scale_axis(ax, summary["scale"])
            ax.set_title(f"{title}\n{label}" if label else title, fontsize=9)
            ax.set_ylabel(unit)
            ax.grid(alpha=0.3)
        row[1].axhline(0.01, color="grey", lw=0.8, ls="--")
        row[1].set_ylim(bottom=0)
        _legend(fig, row)
    for ax in axes[-1]:
        ax.set_xlabel("bandwidth scale (x the traces' throughput)")
    fig.tight_layout()
    return _save(fig, path)


def plot_lpips_cdf(table, path: Path, max_panels: int = 4, max_rows: int = 6) -> Path:
    """CDF of per-session mean LPIPS; one column per scale (at most ``max_panels``, evenly
    spread over the swept ones), one row per condition."""
    plt = _pyplot()
    scales = np.sort(table["scale"].unique())
    if len(scales) > max_panels:
        scales = scales[np.unique(np.linspace(0, len(scales) - 1, max_panels).round().astype(int))]
    conds = conditions(table, max_rows)
    lines = _Lines(table)
    fig, axes = plt.subplots(len(conds), len(scales), figsize=(4.4 * len(scales), 3.4 * len(conds)),
                             squeeze=False, sharey=True)  # fmt: skip
    for row, (label, cmask) in zip(axes, conds):
        for ax, s in zip(row, scales):
            sub = table[cmask & (table["scale"] == s).to_numpy()]
            for pol, lad, mask in lines.choices(sub):
                v = np.sort(sub.loc[mask, "lpips_mean"].to_numpy())
                st = lines.style(pol, lad)
                st.pop("marker")
                ax.step(v, np.arange(1, len(v) + 1) / len(v), where="post", **st)
            ax.set_title(f"scale {s:g}" + (f"\n{label}" if label else ""), fontsize=9)
            ax.grid(alpha=0.3)
        row[0].set_ylabel("fraction of sessions")
        _legend(fig, row)
    for ax in axes[-1]:
        ax.set_xlabel("session mean LPIPS (lower is better)")
    fig.tight_layout()
    return _save(fig, path)


def plot_crossovers(summary, crossovers, path: Path, metric: str = "qoe_mean", max_rows: int = 6) -> Path | None:
    """``metric(A) - metric(B)`` against bandwidth scale for every ladder pair, one panel per
    condition and policy, crossovers marked x; None without crossover rows."""
    if crossovers is None or len(crossovers) == 0:
        return None
    plt = _pyplot()
    conds = conditions(summary, max_rows)
    policies = list(dict.fromkeys(summary["policy"]))
    fig, axes = plt.subplots(len(conds), len(policies), figsize=(6.5 * len(policies), 3.8 * len(conds)),
                             squeeze=False)  # fmt: skip
    colors = plt.get_cmap("tab10").colors
    for row, (label, cmask) in zip(axes, conds):
        for ax, pol in zip(row, policies):
            sub = summary[cmask & (summary["policy"] == pol).to_numpy()]
            ladders = list(dict.fromkeys(sub["ladder"]))
            for k, (a, b) in enumerate(itertools.combinations(ladders, 2)):
                va = sub[sub["ladder"] == a].groupby("scale")[metric].mean()
                vb = sub[sub["ladder"] == b].groupby("scale")[metric].mean()
                d = (va - vb).dropna().sort_index()
                color = colors[k % len(colors)]
                ax.plot(d.index, d.to_numpy(), marker="o", ms=3, color=color, label=f"{a} - {b}")
                hits = crossovers[(crossovers["policy"] == pol) & (crossovers["ladder_a"] == a)
                                  & (crossovers["ladder_b"] == b)]  # fmt: skip
                keys = [c for c in _keys(summary) if c not in _CHOICES and c in hits.columns]
                if keys and len(sub):
                    first = sub.iloc[0]
                    for c in keys:
                        hits = hits[(hits[c] == first[c]) | (hits[c].isna() & (first[c] != first[c]))]
                for x in hits["scale"].dropna():
                    ax.axvline(x, color=color, ls=":", lw=1)
                    ax.plot([x], [0], "x", color=color, ms=10, mew=2)
            ax.axhline(0, color="black", lw=0.8)
            _scale_axis(ax, summary["scale"])
            ax.set_title(f"{pol}" + (f"\n{label}" if label else ""), fontsize=9)
            ax.grid(alpha=0.3)
        row[0].set_ylabel(f"{metric}(A) - {metric}(B), QoE per chunk")
        _legend(fig, row)
    for ax in axes[-1]:
        ax.set_xlabel("bandwidth scale (x the traces' throughput)")
    fig.tight_layout()
    return _save(fig, path)

"""The report of a sweep: plots, crossovers, the best choice under a stall target, and one
self-contained HTML page (PNGs embedded as base64, no external files or scripts)."""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path

from abr.io import write_atomic
from sim.session import SUMMARY_COLUMNS
from sim.sweep._crossover import crossover_table
from sim.sweep._plots import plot_crossovers, plot_lpips_cdf, plot_vs_scale
from sim.sweep._store import write_table

__all__ = ["best_under_stall", "write_report"]

#: Columns a deployment chooses; every other key column is a condition it must live with.
CHOICES = ("policy", "ladder", "family")


def best_under_stall(summary, max_stall_ratio: float = 0.01, metric: str = "qoe_mean"):
    """Per condition (device, traces, transform, QoE, simulator), the (policy, ladder) with the
    best ``metric`` among those whose mean stall ratio is below ``max_stall_ratio``.

    ``meeting`` counts the choices that meet the target out of ``choices``; where none does,
    policy and ladder are empty and the metric columns NaN.
    """
    import pandas as pd

    keys = list(summary.columns[: summary.columns.get_loc("sessions")])
    cond = [k for k in keys if k not in CHOICES]
    rows = []
    for ckey, g in summary.groupby(cond, sort=False, dropna=False):
        ckey = ckey if isinstance(ckey, tuple) else (ckey,)
        ok = g[g["stall_ratio"] < max_stall_ratio]
        base = dict(zip(cond, ckey)) | {"meeting": len(ok), "choices": len(g)}
        if len(ok):
            best = ok.loc[ok[metric].idxmax()]
            rows.append(
                base
                | {c: best[c] for c in ("policy", "ladder")}
                | {metric: best[metric], "stall_ratio": best["stall_ratio"], "lpips_mean": best["lpips_mean"]}
            )
        else:
            rows.append(base | {"policy": "", "ladder": "", metric: float("nan"), "stall_ratio": float("nan"),
                                "lpips_mean": float("nan")})  # fmt: skip
    return pd.DataFrame(rows)


def _img(path: Path | None, caption: str) -> str:
    if path is None:
        return ""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")  # fmt: skip


#: Summary columns a reader looks at first; the rest go into a collapsed block.
KEY_METRICS = ("sessions", "qoe_mean", "qoe_p10", "stall_ratio", "lpips_mean", "startup_s")


def _summary_html(summary) -> str:
    """The varying key columns and :data:`KEY_METRICS` first; every column in a <details> block."""
    keys = list(summary.columns[: summary.columns.get_loc("sessions")])
    varying = [k for k in keys if summary[k].nunique(dropna=False) > 1] or keys[:1]
    lead = varying + [m for m in KEY_METRICS if m in summary.columns]
    fixed = {k: summary[k].iloc[0] for k in keys if k not in varying and len(summary)}
    same = ("<p>Same in every row: " + "; ".join(f"<code>{html.escape(k)}</code> = {html.escape(str(v))}"
            for k, v in fixed.items()) + "</p>") if fixed else ""  # fmt: skip
    return (same + _table(summary[lead]) + "<details><summary>all "
            f"{len(summary.columns)} columns</summary>" + _table(summary) + "</details>")  # fmt: skip


def _session_plot(result, out: Path) -> tuple[Path | None, str]:
    """The per-chunk view of the first session of the grid's first point (re-run: cheap, exact)."""
    from sim.plots import plot_session
    from sim.sweep._cell import resolve_point

    g = result.grid
    if not g.points:
        return None, ""
    p = g.points[0]
    run, traces, ladder, device, qoe, config = resolve_point(p, g.seed, g.trace_count)
    import numpy as np

    res = run(list(traces), ladder, device, qoe, config=config, seed=g.seed, session_ids=np.array([0]))
    caption = (f"One session over time (session 0 of the first grid point: {p.policy}, {p.ladder}, {p.device}, "
               f"{p.traces}{' ' + p.transform if p.transform else ''})")  # fmt: skip
    return plot_session(res, out / "plots" / "session.png"), caption


def _table(frame, max_rows: int = 500) -> str:
    if frame is None or len(frame) == 0:
        return "<p><em>none</em></p>"
    note = f"<p><em>first {max_rows} of {len(frame)} rows; see the CSV</em></p>" if len(frame) > max_rows else ""
    return note + frame.head(max_rows).to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-", border=0)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1500px}table{border-collapse:collapse;
font-size:12px}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}th{background:#f4f4f4}
img{max-width:100%}figure{margin:1em 0}figcaption{color:#555;font-size:13px}.warn{background:#fff4d6;
padding:.5em 1em;border-left:4px solid #e0a800}pre{background:#f7f7f7;padding:.5em;font-size:12px}"""


def write_report(result, out: str | Path, *, max_stall_ratio: float = 0.01, title: str = "promptabr what-if sweep"):
    """Plots under ``out/plots``, ``crossovers.csv``, ``best_under_stall.csv`` and ``report.html``.

    :param result: a :class:`SweepResult`.
    :returns: the paths written, by name.
    """
    from sim.sweep._cell import resolve_ladder

    out = Path(out)
    summary, table = result.summary, result.table
    crossings = crossover_table(summary)
    best = best_under_stall(summary, max_stall_ratio)
    paths = {
        "crossovers": write_table(crossings, out / "crossovers.csv"),
        "best_under_stall": write_table(best, out / "best_under_stall.csv"),
    }
    plots = {
        "vs_scale": (plot_vs_scale(summary, out / "plots" / "vs_scale.png"),
                     "QoE, stall ratio (dashed: 1%) and mean LPIPS against bandwidth scale"),
        "lpips_cdf": (plot_lpips_cdf(table, out / "plots" / "lpips_cdf.png"), "CDF of per-session mean LPIPS"),
        "crossovers": (plot_crossovers(summary, crossings, out / "plots" / "crossovers.png"),
                       "QoE difference between ladders; x marks a crossover"),
        "session": _session_plot(result, out),
    }  # fmt: skip
    paths.update({f"plot_{k}": p for k, (p, _) in plots.items() if p is not None})
    synthetic = [lad for lad in result.grid.ladders if resolve_ladder(lad).is_synthetic]
    warn = ""
    if synthetic:
        warn = ('<p class="warn">Synthetic (modelled, not measured) ladders in this sweep: '
                f"{html.escape(', '.join(synthetic))}. Conclusions about them hold for the model's "
                "parameters (see <code>abr.synthetic</code>), not for measured video.</p>")  # fmt: skip
    g = result.grid
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
        f"<p>{time.strftime('%Y-%m-%d %H:%M')} &middot; {len(summary)} grid points &times; {g.sessions} sessions "
        f"= {len(table)} sessions in {result.ran + result.skipped} cells ({result.ran} run now, "
        f"{result.skipped} reused) &middot; seed {g.seed}</p>",
        warn,
        "<h2>Grid</h2><pre>" + html.escape(json.dumps(g.to_dict(), indent=1)) + "</pre>",
        f"<h2>Best choice keeping the mean stall ratio under {max_stall_ratio:.3g}</h2>",
        "<p>Per condition, the policy and ladder with the highest mean QoE among those that meet the target.</p>",
        _table(best),
        "<h2>Crossovers</h2><p>Bandwidth scale (and mean trace Mbit/s) where one ladder overtakes another "
        "in mean QoE, interpolated in log-scale between swept scales; '-' = no crossover in range.</p>",
        _table(crossings),
        "<h2>Plots</h2>",
        *(_img(p, cap) for p, cap in plots.values()),
        "<h2>Summary (one row per grid point)</h2>",
        "<p>Means over sessions unless named _p10/_p90 (percentiles over sessions). Per session: "
        + "; ".join(f"<code>{html.escape(k)}</code>: {html.escape(v)}" for k, v in SUMMARY_COLUMNS.items())
        + "; <code>trace_mbps</code>: mean throughput of the (transformed) trace played.</p>",
        _summary_html(summary),
        "</body></html>",
    ]
    text = "\n".join(parts)
    paths["report"] = write_atomic(out / "report.html", lambda tmp: Path(tmp).write_text(text))
    return paths

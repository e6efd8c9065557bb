"""``python -m traces``: inspect, convert and plot traces.

Examples::

    python -m traces info lte
    python -m traces info ../shared/data/traces/norway-hsdpa-3g-pensieve-cooked --per-file
    python -m traces info wifi --scale 0.5 --outages 3 --outage-s 10
    python -m traces convert ../shared/data/traces/norway-hsdpa-3g-pensieve-cooked/norway_bus_1 bus1.csv --to csv
    python -m traces convert 3g --trace-count 4 out_dir/ --to mahimahi
    python -m traces plot ../shared/data/traces/belgium-4g-lte-sabre-json --out lte.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from abr.errors import InputError, cli_main
from abr.io import check_output, write_text_atomic
from traces.cli import add_trace_arguments, traces_from_args
from traces.formats import FORMATS, format_trace, write_trace
from traces.stats import PERCENTILES, summarize
from traces.trace import Trace


def _info_line(name: str, traces: list[Trace]) -> str:
    s = summarize(traces)
    pct = " ".join(f"{s.percentiles_mbps[p]:.3g}" for p in (10, 50, 90))
    lat = f"  latency {s.mean_latency_ms:.0f} ms" if s.mean_latency_ms is not None else ""
    return (
        f"{name[:44]:44s} {s.n_traces:4d} {s.duration_s:10.0f} s  mean {s.mean_mbps:8.3f}  p10/50/90 {pct}"
        f"  outage {100 * s.outage_share:5.2f}%  lag1 {s.lag1_autocorr:.2f}{lat}"
    )


def cmd_info(args: argparse.Namespace, traces: list[Trace]) -> int:
    s = summarize(traces)
    print(f"{args.trace}: {s.n_traces} trace(s), {s.duration_s:.0f} s in all ({s.duration_s / 3600:.2f} h)")
    print(f"  mean        {s.mean_mbps:.4g} Mbit/s (time-weighted)")
    print("  percentiles " + "  ".join(f"p{p} {s.percentiles_mbps[p]:.4g}" for p in PERCENTILES) + "  (Mbit/s)")
    print(f"  outage      {100 * s.outage_share:.2f}% of the time at 0 Mbit/s")
    print(f"  lag-1 autocorrelation at {s.step_s:g} s: {s.lag1_autocorr:.3f}")
    if s.mean_latency_ms is not None:
        print(f"  latency     {s.mean_latency_ms:.1f} ms (time-weighted mean)")
    durs = sorted(t.total_s for t in traces)
    print(f"  durations   {durs[0]:.0f} .. {durs[-1]:.0f} s (median {durs[len(durs) // 2]:.0f})")
    if args.per_file:
        for t in traces:
            print("  " + _info_line(t.name, [t]))
    return 0


def cmd_convert(args: argparse.Namespace, traces: list[Trace]) -> int:
    out = Path(args.out)
    if len(traces) == 1 and not (out.is_dir() or args.out.endswith(("/", "\\"))):
        write_trace(traces[0], out, args.to)
        print(f"wrote {out}")
        return 0
    seen: dict[str, int] = {}
    texts = {}
    for t in traces:  # every trace formatted (and checked) before anything is written
        stem = Path(t.name).stem or "trace"
        n = seen.get(stem, 0)
        seen[stem] = n + 1
        texts[out / (f"{stem}.{args.to}" if n == 0 else f"{stem}-{n}.{args.to}")] = format_trace(t, args.to)
    for path, text in texts.items():
        write_text_atomic(path, text)
    print(f"wrote {len(traces)} file(s) to {out}/")
    return 0


#: Image formats matplotlib writes.
_PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".webp", ".eps", ".ps", ".tif", ".tiff")


def cmd_plot(args: argparse.Namespace, traces: list[Trace]) -> int:
    from traces.plot import plot_traces

    path = plot_traces(traces, args.out, max_lines=args.max_lines, title=args.trace)
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m traces",
        description="Inspect, convert and plot network traces.",
        epilog=__doc__.split("Examples::", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)
    writable = [n for n, f in FORMATS.items() if f.write is not None]
    specs = {
        "info": "duration, mean, percentiles, outage share and autocorrelation",
        "convert": "write traces in another format",
        "plot": "PNG of throughput over time and its CDF",
    }
    for name, help_ in specs.items():
        p = sub.add_parser(name, help=help_, description=help_)
        # convert takes IN OUT; an optional IN there would swallow OUT when options sit between them
        p.add_argument("spec", nargs=None if name == "convert" else "?",
                       help="a model, file, folder or glob (same as --trace)")
        if name == "convert":
            p.add_argument("out", help="output file (one trace) or folder")
            p.add_argument("--to", choices=writable, required=True, help="output format")
        if name == "info":
            p.add_argument("--per-file", action="store_true", help="one line per trace as well")
        if name == "plot":
            p.add_argument("--out", required=True, help="PNG file to write")
            p.add_argument("--max-lines", type=int, default=6, help="traces drawn over time (default 6)")
        p.add_argument("--seed", type=int, default=0, help="seed of model traces and random transforms")
        add_trace_arguments(p)
    return ap


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.spec:
        args.trace = args.spec
    if args.command == "plot":
        if Path(args.out).suffix.lower() not in _PLOT_SUFFIXES:
            raise InputError(f"--out must end in one of {', '.join(_PLOT_SUFFIXES)}", path=args.out)
        if args.max_lines < 0:
            raise InputError(f"--max-lines must be >= 0, got {args.max_lines}")
        check_output(args.out)
    elif args.command == "convert":
        check_output(args.out, folder=Path(args.out).is_dir() or args.out.endswith(("/", "\\")))
    traces = traces_from_args(args, seed=args.seed)
    return {"info": cmd_info, "convert": cmd_convert, "plot": cmd_plot}[args.command](args, traces)


if __name__ == "__main__":
    raise SystemExit(main())

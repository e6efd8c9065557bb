"""``python -m sim.run``: stream a video over traces with one or more ABR policies.

Example::

    python -m sim.run --policy bola --trace lte
    python -m sim.run --policy bba --policy bola:gamma=5,qmax=25 --trace PATH --device snapdragon-8gen3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from abr.errors import InputError, cli_main
from abr.io import write_text_atomic
from abr.qoe import QOE_PRESETS, get_qoe
from abr.registry import DEFAULT_LADDER, available_ladders, get_ladder
from policies.registry import describe_policies
from sim.core import SIM_PRESETS
from sim.device import available_devices, get_device
from sim.env import DEFAULT_DEVICE
from sim.provenance import run_metadata
from sim.session import SUMMARY_COLUMNS, resolve_runner
from traces.cli import add_trace_arguments, traces_from_args

__all__ = ["main", "build_parser", "summarize"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sim.run",
        description="Simulate adaptive-bitrate streaming sessions and print a QoE summary per policy.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "policies (options as name:key=value,...):\n  "
            + describe_policies().replace("\n", "\n  ")
            + "\n  rl:DIR: a policy trained by python -m sim.train"
            + "\n  oracle[:position_s=..,max_states=..]: the best achievable QoE with the future trace known"
            " (an upper bound, not a policy)\n"
            f"ladders:  {', '.join(available_ladders())} (or a ladder .json file)\n"
            f"devices:  {', '.join(available_devices())} (or a device .json file)\n"
            f"qoe:      {', '.join(QOE_PRESETS)}\n"
            f"sim:      {', '.join(SIM_PRESETS)}"
        ),
    )
    p.add_argument("--policy", action="append", metavar="SPEC",
                   help="ABR policy, e.g. bola or bola:gamma=5,qmax=25; repeat to compare (default: bola)")
    p.add_argument("--ladder", default=DEFAULT_LADDER, help=f"ladder name or file (default: {DEFAULT_LADDER})")
    p.add_argument("--device", default=DEFAULT_DEVICE, help=f"device profile (default: {DEFAULT_DEVICE})")
    p.add_argument("--qoe", default="perceptual", help="QoE preset (default: perceptual)")
    p.add_argument("--sim", default="pensieve", help="simulator preset: pensieve or latency (default: pensieve)")
    p.add_argument("--seed", type=int, default=0, help="seed of traces, start positions and noise (default: 0)")
    p.add_argument("--sessions", type=int, default=None, help="number of sessions (default: one per trace)")
    p.add_argument("--out", type=Path, default=None,
                   help="write results: FILE.csv (sessions; chunks go to FILE.chunks.csv, what it takes to re-run "
                        "them to FILE.meta.json) or FILE.json (all three)")
    add_trace_arguments(p)
    return p


def summarize(frames) -> object:
    """Mean of every summary column per policy (plus the 10th percentile of QoE)."""
    import pandas as pd

    df = pd.concat(frames, ignore_index=True)
    cols = list(SUMMARY_COLUMNS)
    table = df.groupby("policy", sort=False)[cols].mean()
    table.insert(1, "qoe_p10", df.groupby("policy", sort=False)["qoe_mean"].quantile(0.1))
    return table


def _write(out: Path, sessions, chunks, meta: dict) -> None:
    """Results, with what it takes to re-run them (:mod:`sim.provenance`): inside JSON, beside CSV."""
    import json

    if out.suffix == ".json":
        doc = {"meta": meta, "sessions": sessions.to_dict(orient="records"), "chunks": chunks.to_dict(orient="records")}
        payloads = {out: json.dumps(doc)}
    elif out.suffix == ".csv":
        payloads = {out: sessions.to_csv(index=False), out.with_suffix(".chunks.csv"): chunks.to_csv(index=False),
                    out.with_suffix(".meta.json"): json.dumps(meta, indent=1)}  # fmt: skip
    else:
        raise InputError("--out must end in .csv or .json", path=out)
    for path, text in payloads.items():
        write_text_atomic(path, text)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    if args.sessions is not None and args.sessions < 1:
        raise InputError(f"--sessions must be >= 1, got {args.sessions}")
    if args.sim not in SIM_PRESETS:
        raise InputError(f"unknown simulator preset {args.sim!r}; valid: {', '.join(SIM_PRESETS)}")
    runners = [resolve_runner(s) for s in (args.policy or ["bola"])]
    ladder = get_ladder(args.ladder)
    device = get_device(args.device)
    qoe = get_qoe(args.qoe)
    traces = traces_from_args(args, seed=args.seed)
    config = SIM_PRESETS[args.sim]
    device.decode_s(ladder)  # fail early if the device cannot decode a rung

    kind = "SYNTHETIC model (not measured)" if ladder.is_synthetic else ladder.metadata.get("source", "measured")
    print(f"ladder  {ladder.name}: {ladder.n_rungs} rungs x {ladder.n_chunks} chunks "
          f"({ladder.total_duration_s:.0f} s) - {kind}")
    if "derivation" in ladder.metadata:
        print(f"        {ladder.metadata['derivation']}")
    print(f"traces  {args.trace}: {len(traces)} trace(s); sim {args.sim}; device {device.name}; qoe {qoe.name}")
    sessions, chunks = [], []
    for runner in runners:
        res = runner(traces, ladder, device, qoe, config=config, sessions=args.sessions, seed=args.seed)
        sessions.append(res.sessions_frame())
        if args.out is not None:
            chunks.append(res.chunks_frame())
    table = summarize(sessions)
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format", "{:.4g}".format):
        print(table.to_string())
    if args.out is not None:
        meta = run_metadata(args, ladder=ladder, traces=traces, device=device, qoe=qoe, config=config)
        _write(args.out, pd.concat(sessions, ignore_index=True), pd.concat(chunks, ignore_index=True), meta)
        print(f"wrote {args.out}")
    return 0


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

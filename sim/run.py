"""``python -m sim.run``: stream a video over traces with one or more ABR policies.

Example::

    python -m sim.run --policy bola --trace lte
    python -m sim.run --policy bba --policy bola:gamma=5,qmax=25 --trace PATH --device snapdragon-8gen3
    python -m sim.run --scenario lowband-mobile --policy bola --policy robustmpc --policy oracle
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from abr.errors import InputError, cli_main
from abr.flags import add_progress_flag, progress_bar
from abr.io import check_output, write_text_atomic
from abr.limits import check_request
from abr.lock import clean_stale_tmp_beside
from abr.options import split_spec, split_specs
from abr.qoe import QOE_PRESETS
from abr.registry import DEFAULT_LADDER, available_ladders
from policies.registry import describe_policies
from sim.core import DEFAULT_SIM, SIM_PRESETS, SimConfig
from sim.device import available_devices
from sim.provenance import run_metadata
from sim.resolve import DEFAULT_DEVICE, DEFAULT_QOE, resolve_run, sim_preset
from sim.runners import BOUNDS, resolve_runner
from sim.scenarios import binding_note, describe_scenarios, merge_transforms, parse_explicit, resolve
from sim.session import SUMMARY_COLUMNS, SessionResults, aggregate
from traces.cli import add_trace_arguments, traces_from_args

__all__ = ["add_sim_arguments", "main", "build_parser", "sim_config_from_args", "summarize"]


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
            f"qoe:      {', '.join(QOE_PRESETS)} (weights as NAME:mu=..,lambda=..)\n"
            f"sim:      {', '.join(SIM_PRESETS)}\n"
            "scenarios (--scenario NAME; explicit options override its parts):\n  "
            + describe_scenarios().replace("\n", "\n  ")
        ),
    )
    p.add_argument("--scenario", metavar="NAME",
                   help="a named scenario: traces (its test split), ladder, device, QoE, simulator, session length")
    p.add_argument("--policy", action="append", metavar="SPECS",
                   help="ABR policies, e.g. bola or bola:gamma=5,qmax=25,bba; repeat or separate by commas "
                        "to compare (default: bola)")
    p.add_argument("--ladder", default=DEFAULT_LADDER, help=f"ladder name or file (default: {DEFAULT_LADDER})")
    p.add_argument("--device", default=DEFAULT_DEVICE, help=f"device profile (default: {DEFAULT_DEVICE})")
    p.add_argument("--qoe", default=DEFAULT_QOE,
                   help="QoE preset, with weights as NAME:stall_penalty=..,switch_penalty=.. "
                        f"(aliases mu, lambda) (default: {DEFAULT_QOE})")
    p.add_argument("--sim", default=DEFAULT_SIM,
                   help=f"simulator preset: {', '.join(SIM_PRESETS)} (default: {DEFAULT_SIM}); "
                        "the knobs below override its parts")
    p.add_argument("--seed", type=int, default=0, help="seed of traces, start positions and noise (default: 0)")
    p.add_argument("--sessions", type=int, default=None, help="number of sessions (default: one per trace)")
    p.add_argument("--out", type=Path, default=None,
                   help="write results: FILE.csv (sessions; chunks go to FILE.chunks.csv, what it takes to re-run "
                        "them to FILE.meta.json) or FILE.json (all three)")
    p.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                   help="draw one session per policy over time (throughput, buffer, rung, decode); "
                   "with several policies FILE-<n>-<policy>.png")
    p.add_argument("--plot-session", type=int, default=None, metavar="ID",
                   help="the session id to draw with --plot (default: the first one)")
    add_progress_flag(p, help="no progress bar (shown for runs over 1000 sessions and for bounds)")
    add_sim_arguments(p)
    add_trace_arguments(p)
    return p


def add_sim_arguments(p: argparse.ArgumentParser) -> None:
    """The simulator knobs: each overrides one part of the ``--sim`` preset."""
    g = p.add_argument_group("simulator knobs (override the --sim preset's parts)")
    g.add_argument("--noise", metavar="LOW,HIGH", default=None,
                   help="delay noise: the delay is multiplied by U(LOW, HIGH) per chunk (pensieve network mode; "
                        "Pensieve: 0.9,1.1; 1,1 = none)")
    g.add_argument("--start", choices=("origin", "time", "sample"), default=None,
                   help="where a session starts in its trace: origin (the first sample), time (uniform over time), "
                        "sample (a sample index drawn uniformly, as Pensieve's env.py)")
    g.add_argument("--wrap", choices=("loop", "zero"), default=None,
                   help="trace loop: loop (repeat its span) or zero (Pensieve: later passes start at time 0)")
    g.add_argument("--buffer-cap", type=float, metavar="S", default=None,
                   help="most downloaded-but-unplayed video, seconds (Pensieve 60, Sabre 25)")
    g.add_argument("--buffer-rule", choices=("after", "before"), default=None,
                   help="after: wait after a download until buffer <= cap (Pensieve); "
                        "before: wait before a request until buffer + chunk <= cap (Sabre)")
    g.add_argument("--sleep-step", type=float, metavar="S", default=None,
                   help="the downloader waits in steps of this length, seconds (Pensieve 0.5; 0 = exact)")
    g.add_argument("--rtt", type=float, metavar="MS", default=None,
                   help="Pensieve's fixed RTT added to every delay; in latency mode the request latency of traces "
                        "without one, milliseconds (default 80)")
    g.add_argument("--payload-share", type=float, metavar="F", default=None,
                   help="share of the trace rate carrying payload, in (0, 1] (Pensieve 0.95)")


def sim_config_from_args(args: argparse.Namespace) -> SimConfig:
    """The ``--sim`` preset with the knobs given on the command line applied (validated)."""
    base = sim_preset(args.sim)
    net: dict = {}
    player: dict = {}
    if args.noise is not None:
        try:
            low, high = (float(x) for x in args.noise.split(","))
        except ValueError:
            raise InputError(f"--noise must be LOW,HIGH (two numbers), got {args.noise!r}") from None
        net.update(noise_low=low, noise_high=high)
    if args.start is not None:
        net.update(random_start=args.start != "origin")
        if args.start != "origin":
            net.update(start=args.start)
    if args.wrap is not None:
        net.update(wrap=args.wrap)
    for flag, value, target, key, scale in (
        ("--buffer-cap", args.buffer_cap, player, "buffer_cap_s", 1.0),
        ("--sleep-step", args.sleep_step, player, "sleep_quantum_s", 1.0),
        ("--rtt", args.rtt, net, "rtt_s", 1e-3),
        ("--payload-share", args.payload_share, net, "payload_fraction", 1.0),
    ):
        if value is not None:
            if not math.isfinite(value):
                raise InputError(f"{flag} must be a finite number, got {value}")
            target[key] = value * scale
    if args.buffer_rule is not None:
        player.update(buffer_rule=args.buffer_rule)
    try:
        return SimConfig(replace(base.network, **net), replace(base.player, **player))
    except ValueError as exc:
        raise InputError(f"simulator knobs: {exc}") from None


def summarize(frames) -> object:
    """Mean of every summary column per policy (plus the 10th percentile of QoE)."""
    import pandas as pd

    df = pd.concat(frames, ignore_index=True)
    first, *rest = SUMMARY_COLUMNS
    metrics = {first: (first, "mean"), "qoe_p10": ("qoe_mean", 0.1), **{c: (c, "mean") for c in rest}}
    return aggregate(df.groupby("policy", sort=False), metrics)


def _write(out: Path, sessions, chunks, meta: dict) -> None:
    """Results, with what it takes to re-run them (:mod:`sim.provenance`): inside JSON, beside CSV.
    Temporary files a killed earlier run left beside these outputs are removed first."""
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
        clean_stale_tmp_beside(path)  # temporaries of a run killed while writing this file
        write_text_atomic(path, text)


def _plot(res, args: argparse.Namespace, i: int, n: int) -> None:
    from sim.plots import plot_session

    path = args.plot
    if n > 1:
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in res.policy)
        path = path.with_name(f"{path.stem}-{i}-{safe}{path.suffix}")
    clean_stale_tmp_beside(path)
    plot_session(res, path, session=args.plot_session)  # run() checked --plot-session before the run
    print(f"wrote {path}")


_SCENARIO_FIELDS = ("trace", "ladder", "device", "qoe", "sim")


def apply_scenario(args: argparse.Namespace, explicit: set[str], split: str = "test") -> tuple[str, ...]:
    """Fill the options ``explicit`` lacks from ``args.scenario`` (:func:`sim.scenarios.resolve`);
    returns the scenario's notes."""
    if not getattr(args, "scenario", None):
        return ()
    params = resolve(args.scenario, split)
    for name in _SCENARIO_FIELDS:
        if name not in explicit:
            setattr(args, name, getattr(params, name))
    args.trace_transforms = list(merge_transforms(params.transforms, args.trace_transforms or []))
    return params.notes


#: Sessions per batch: a policy's (large batches vectorise best) and a bound's (its search is slow;
#: small blocks give the progress bar steps). Results do not depend on the batch size.
_BLOCK, _BOUND_BLOCK = 1000, 50


def _run_blocks(spec: str, runner, traces, setup, config, n: int, seed: int, progress: bool) -> SessionResults:
    """Sessions ``0..n-1`` of ``runner`` in blocks, with a progress bar over sessions when the run
    is long (more than one block, or a bound)."""
    bound = split_spec(spec)[0] in BOUNDS
    block = _BOUND_BLOCK if bound else _BLOCK
    ids = np.arange(n, dtype=np.int64)
    parts = []
    with progress_bar(n, desc=spec, unit="session", enabled=progress and (bound or n > block)) as bar:
        for start in range(0, n, block):
            part = runner(traces, setup.ladder, setup.device, setup.qoe, config=config, seed=seed,
                          session_ids=ids[start : start + block])  # fmt: skip
            parts.append(part)
            bar.update(part.n_sessions)
    return SessionResults.concat(parts)


def run(args: argparse.Namespace, notes: tuple[str, ...] = ()) -> int:
    import pandas as pd

    if args.sessions is not None and args.sessions < 1:
        raise InputError(f"--sessions must be >= 1, got {args.sessions}")
    if args.plot is not None:
        if args.plot.suffix.lower() != ".png":
            raise InputError("--plot must end in .png", path=args.plot)
        check_output(args.plot, option="--plot")
    if args.out is not None:
        if args.out.suffix not in (".csv", ".json"):
            raise InputError("--out must end in .csv or .json", path=args.out)
        check_output(args.out)
    config = sim_config_from_args(args)
    specs = [s for v in (args.policy or ["bola"]) for s in split_specs(v)]
    runners = [resolve_runner(s) for s in specs]
    setup = resolve_run(args.ladder, args.device, args.qoe, config)
    ladder, device, qoe = setup.ladder, setup.device, setup.qoe
    traces = traces_from_args(args, seed=args.seed)
    n_sessions = args.sessions or len(traces)
    if args.plot_session is not None and not 0 <= args.plot_session < n_sessions:
        raise InputError(f"--plot-session must be a session id in 0..{n_sessions - 1}, got {args.plot_session}")
    # a session holds about a dozen float64 per chunk (its chunk records) in memory
    check_request("--sessions", args.sessions or 0, 16 * 8 * ladder.n_chunks, force=args.force)

    kind = "SYNTHETIC model (not measured)" if ladder.is_synthetic else ladder.metadata.get("source", "measured")
    print(f"ladder  {ladder.name}: {ladder.n_rungs} rungs x {ladder.n_chunks} chunks "
          f"({ladder.total_duration_s:.0f} s) - {kind}")
    if "derivation" in ladder.metadata:
        print(f"        {ladder.metadata['derivation']}")
    trace_spec = args.trace if isinstance(args.trace, str) else " + ".join(args.trace)
    print(f"traces  {trace_spec}: {len(traces)} trace(s); sim {args.sim}; device {device.name}; qoe {qoe.name}")
    if args.scenario:
        print(f"scenario {args.scenario}")
    for line in notes:
        print(f"        {line}")
    note = binding_note(traces, ladder, device)
    if note:
        print(note)
    sessions, chunks = [], []
    for i, (spec, runner) in enumerate(zip(specs, runners)):
        res = _run_blocks(spec, runner, traces, setup, config, n_sessions, args.seed, not args.no_progress)
        sessions.append(res.sessions_frame())
        if args.out is not None:
            chunks.append(res.chunks_frame())
        if args.plot is not None:
            _plot(res, args, i, len(runners))
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
    args, explicit = parse_explicit(build_parser(), argv)
    notes = apply_scenario(args, explicit)
    return run(args, notes)


if __name__ == "__main__":
    sys.exit(main())

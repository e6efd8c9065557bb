"""The trace options every entry point shares: ``add_trace_arguments`` and ``traces_from_args``.

Transform flags apply in the order given on the command line, e.g.
``--trace lte --scale 0.5 --cap 3`` scales then caps; ``--cap 3 --scale 0.5`` caps then scales.
"""

from __future__ import annotations

import argparse

from abr.limits import FORCE_HELP, check_request
from traces.formats import FORMATS, RATE_UNITS
from traces.models import NETWORK_MODELS
from traces.sets import load_traces
from traces.trace import Trace
from traces.transforms import apply_transforms, build_transforms

__all__ = ["add_trace_arguments", "traces_from_args", "transform_pairs"]

_DEST = "trace_transforms"


class _Ordered(argparse.Action):
    """Append ``(key, value)`` to one shared list so transforms keep their command-line order."""

    def __init__(self, option_strings, dest, key: str, **kwargs):
        self.key = key
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        pairs = list(getattr(namespace, _DEST, None) or [])
        pairs.append((self.key, None if self.nargs == 0 else str(values)))
        setattr(namespace, _DEST, pairs)


class _Pooled(argparse.Action):
    """``--trace`` repeated pools its sets: one spec stays a string, several become a tuple
    (loaded in order by :func:`traces_from_args`, spec ``i`` seeded ``seed + i`` as in ``sim.train``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = [*getattr(namespace, "_trace_specs", ()), str(values)]
        namespace._trace_specs = given
        setattr(namespace, self.dest, given[0] if len(given) == 1 else tuple(given))


#: (flags, transform key, metavar, help); metavar None = a flag without value.
_TRANSFORM_FLAGS = (
    (("--scale",), "scale", "K", "multiply every rate by K"),
    (("--cap",), "cap", "MBPS", "cap every rate at MBPS Mbit/s"),
    (("--outages",), "outages", "N", "add N outages (rate 0) at random places of each trace"),
    (("--outage-s",), "outage_s", "S", "length of each added outage, seconds (default 5)"),
    (("--rtt-ms",), "rtt_ms", "MS", "set the request latency (RTT) of every segment to MS"),
    (("--add-rtt-ms",), "add_rtt_ms", "MS", "add MS to the latency (traces without one start from 0)"),
    (("--shift",), "shift_s", "S", "time-shift: start each looping trace S seconds later"),
    (("--random-start",), "random_start", None, "start each trace at a random point (seeded)"),
    (("--splice",), "splice", "SPEC", "continue trace i with trace i of SPEC (a file, folder or model)"),
    (("--splice-at",), "splice_at", "S", "splice after the first S seconds (default: the whole trace)"),
)


def add_trace_arguments(parser: argparse.ArgumentParser, *, default: str = "lte") -> None:
    """Add ``--trace``, ``--format``, ``--trace-count``, the split options and the what-if flags."""
    g = parser.add_argument_group(
        "traces",
        "SPEC: a model (" + ", ".join(NETWORK_MODELS) + "; e.g. lte:duration_s=300, "
        "genet:min_mbps=0.2/2,max_mbps=2/20,interval_s=2/20,rtt_ms=20/200), a file, a folder or a glob; "
        "append @train or @test for a deterministic split. What-if flags apply in command-line order.",
    )
    g.add_argument("--trace", action=_Pooled, default=default, metavar="SPEC",
                   help=f"network traces; repeat to pool several sets (default {default})")  # fmt: skip
    fmt_flags = ["--trace-format"] + ([] if "--format" in parser._option_string_actions else ["--format"])
    g.add_argument(
        *fmt_flags,
        dest="trace_format",
        choices=list(FORMATS),
        default=None,
        help="force the file format (default: detected from the content)",
    )
    g.add_argument(
        "--trace-unit",
        choices=list(RATE_UNITS),
        default=None,
        help="value unit of cooked files (default: what the data declares, i.e. a 'unit: NAME' line in a UNIT, "
        "PROVENANCE.md or README file beside them, a known set, or Puffer's file names; else Mbit/s)",
    )
    g.add_argument("--trace-count", type=int, default=16, metavar="N", help="traces drawn from a model (default 16)")
    g.add_argument(
        "--test-fraction", type=float, default=0.2, metavar="F", help="share of files in SPEC@test (default 0.2)"
    )
    g.add_argument("--split-seed", type=int, default=0, metavar="S", help="seed of the @train/@test split (default 0)")
    if "--force" not in parser._option_string_actions:
        g.add_argument("--force", action="store_true", help=FORCE_HELP)
    add_whatif_arguments(parser, g)


def add_whatif_arguments(parser: argparse.ArgumentParser, group=None) -> None:
    """Add the what-if flags (``--scale`` ... ``--splice-at``) to ``group`` (default ``parser``); they
    collect ``(key, value)`` pairs in command-line order (:func:`transform_pairs`)."""
    g = parser if group is None else group
    for flags, key, metavar, help_ in _TRANSFORM_FLAGS:
        if metavar is None:
            g.add_argument(*flags, action=_Ordered, key=key, nargs=0, dest=_DEST, help=help_)
        else:
            g.add_argument(*flags, action=_Ordered, key=key, metavar=metavar, dest=_DEST, help=help_)
    parser.set_defaults(**{_DEST: []})


def transform_pairs(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """The what-if flags of ``args`` as ``(key, value)`` pairs in command-line order."""
    return list(getattr(args, _DEST, None) or [])


def traces_from_args(args: argparse.Namespace, seed: int) -> list[Trace]:
    """Load ``args.trace`` (one spec, or several pooled) and apply the what-if flags (seeded by ``seed``).

    :raises abr.errors.InputError: a bad spec, file or flag value.
    """
    # a generated trace is about its duration in 1 s segments of three float64 (default 320 s)
    check_request("--trace-count", args.trace_count, 320 * 24, force=getattr(args, "force", False))
    transforms = build_transforms(transform_pairs(args))
    specs = (args.trace,) if isinstance(args.trace, str) else tuple(args.trace)
    traces = []
    for i, spec in enumerate(specs):
        traces += load_traces(
            spec,
            seed=seed + i,
            count=args.trace_count,
            fmt=args.trace_format,
            unit=args.trace_unit,
            test_fraction=args.test_fraction,
            split_seed=args.split_seed,
        )
    return apply_transforms(traces, transforms, seed)

"""What-if transforms of traces: scale, cap, outages, RTT, time shift, splice, random start.

Each transform is a small frozen dataclass with ``apply(trace, rng) -> Trace``; they compose
in order with :func:`apply_transforms`, seeded per trace (trace ``i`` gets its own generator,
so results do not depend on how many traces are transformed together). The same
transforms come from a string (:func:`parse_transforms`, for what-if sweeps) or from
command-line flags (:func:`traces.cli.add_trace_arguments`):

=====================  ==========================  =============================================
string key             flag                        effect
=====================  ==========================  =============================================
``scale=K``            ``--scale K``               every rate x K
``cap=MBPS``           ``--cap MBPS``              rates capped at MBPS
``outages=N``          ``--outages N``             N non-overlapping outages (rate 0) at random
``outage_s=S``         ``--outage-s S``            ... each S seconds long (default 5)
``rtt_ms=MS``          ``--rtt-ms MS``             latency set to MS on every segment
``add_rtt_ms=MS``      ``--add-rtt-ms MS``         MS added to the latency (none counts as 0)
``shift_s=S``          ``--shift S``               loop starts S seconds later (time shift)
``random_start``       ``--random-start``          loop starts at a random point
``splice=SPEC``        ``--splice SPEC``           trace i continues with trace i of SPEC
``splice_at=S``        ``--splice-at S``           ... after its first S seconds (default: its end)
=====================  ==========================  =============================================

Example: ``scale=0.5,cap=3,outages=2,outage_s=10`` halves the rate, caps it at 3 Mbit/s,
then blanks two 10-s stretches. ``splice`` takes a spec without commas.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from abr.errors import InputError
from abr.options import parse_value, split_options
from traces.trace import Trace

__all__ = [
    "TRANSFORMS",
    "AddRtt",
    "Cap",
    "Outages",
    "RandomStart",
    "Scale",
    "SetRtt",
    "Shift",
    "Splice",
    "Transform",
    "apply_transforms",
    "build_transforms",
    "format_transforms",
    "parse_transforms",
]


@dataclass(frozen=True, slots=True)
class Scale:
    """Multiply every rate by ``factor`` (> 0)."""

    factor: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.factor) and self.factor > 0):
            raise InputError(f"scale must be a positive number, got {self.factor}")

    def apply(self, trace: Trace, rng: np.random.Generator) -> Trace:
        return trace.with_(mbps=trace.mbps * self.factor)


@dataclass(frozen=True, slots=True)
class Cap:
    """Cap every rate at ``mbps`` (> 0)."""

    mbps: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.mbps) and self.mbps > 0):
            raise InputError(f"cap must be a positive rate in Mbit/s, got {self.mbps}")

    def apply(self, trace: Trace, rng: np.random.Generator) -> Trace:
        return trace.with_(mbps=np.minimum(trace.mbps, self.mbps))


def _overwrite(trace: Trace, starts: np.ndarray, ends: np.ndarray) -> Trace:
    """``trace`` with rate 0 on ``[starts[j], ends[j])`` (disjoint, within one loop)."""
    seg_end = trace.end_s
    cuts = np.unique(np.concatenate([[0.0], seg_end, starts, ends]))
    cuts = cuts[(cuts >= 0) & (cuts <= seg_end[-1])]
    mid = 0.5 * (cuts[:-1] + cuts[1:])
    seg = np.minimum(np.searchsorted(seg_end, mid, side="right"), seg_end.size - 1)
    inside = np.searchsorted(starts, mid, side="right") - 1
    blank = (inside >= 0) & (mid < ends[np.maximum(inside, 0)])
    lat = None if trace.latency_ms is None else trace.latency_ms[seg]
    return trace.with_(duration_s=np.diff(cuts), mbps=np.where(blank, 0.0, trace.mbps[seg]), latency_ms=lat)


@dataclass(frozen=True, slots=True)
class Outages:
    """``count`` non-overlapping outages of ``length_s`` at uniformly random places of the loop."""

    count: int
    length_s: float = 5.0

    def __post_init__(self) -> None:
        if self.count < 0 or int(self.count) != self.count:
            raise InputError(f"outages must be a whole number >= 0, got {self.count}")
        if not (np.isfinite(self.length_s) and self.length_s > 0):
            raise InputError(f"outage length must be > 0 s, got {self.length_s}")

    def apply(self, trace: Trace, rng: np.random.Generator) -> Trace:
        if self.count == 0:
            return trace
        free = trace.total_s - self.count * self.length_s
        if free <= 0:
            raise InputError(
                f"{self.count} outages of {self.length_s:g} s do not fit in a {trace.total_s:g}-s trace",
                path=trace.source or trace.name,
            )
        # uniform non-overlapping placement: sorted points in the free time, each pushed by the outages before it
        starts = np.sort(rng.uniform(0.0, free, self.count)) + np.arange(self.count) * self.length_s
        return _overwrite(trace, starts, starts + self.length_s)


@dataclass(frozen=True, slots=True)
class SetRtt:
    """Set the latency of every segment to ``ms``."""

    ms: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.ms) and self.ms >= 0):
            raise InputError(f"rtt must be >= 0 ms, got {self.ms}")

    def apply(self, trace: Trace, rng: np.random.Generator) -> Trace:
        return trace.with_(latency_ms=np.full(trace.mbps.size, float(self.ms)))


@dataclass(frozen=True, slots=True)
class AddRtt:
    """Add ``ms`` to the latency of every segment (a trace without latency starts from 0)."""

    ms: float

    def __post_init__(self) -> None:
        if not np.isfinite(self.ms):
            raise InputError(f"added rtt must be a number of ms, got {self.ms}")

    def apply(self, trace: Trace, rng: np.random.Generator) -> Trace:
        base = trace.latency_ms if trace.latency_ms is not None else np.zeros(trace.mbps.size)
        lat = base + self.ms
        if np.any(lat < 0):
            raise InputError(f"adding {self.ms:g} ms makes the latency negative", path=trace.source or trace.name)
        return trace.with_(latency_ms=lat)


@dataclass(frozen=True, slots=True)
class Shift:
    """Start the loop ``offset_s`` seconds later (the trace is circular)."""

    offset_s: float

    def __post_init__(self) -> None:
        if not np.isfinite(self.offset_s):
            raise InputError(f"shift must be a number of seconds, got {self.offset_s}")

    def apply(self, trace: Trace, rng: np.random.Generator) -> Trace:
        return trace.rotate(self.offset_s)


@dataclass(frozen=True, slots=True)
class RandomStart:
    """Start the loop at a uniformly random point."""

    def apply(self, trace: Trace, rng: np.random.Generator) -> Trace:
        return trace.rotate(rng.uniform(0.0, trace.total_s))


@dataclass(frozen=True, slots=True)
class Splice:
    """Continue trace ``i`` with trace ``i mod n`` of ``spec`` after its first ``at_s`` seconds.

    ``at_s`` None keeps the whole first trace; a value beyond its length loops it.
    The spliced-in traces are loaded with the seed given to :func:`apply_transforms`.
    """

    spec: str
    at_s: float | None = None

    def __post_init__(self) -> None:
        if not self.spec:
            raise InputError("splice needs a trace spec")
        if self.at_s is not None and not (np.isfinite(self.at_s) and self.at_s > 0):
            raise InputError(f"splice point must be > 0 s, got {self.at_s}")

    def apply(self, trace: Trace, rng: np.random.Generator) -> Trace:  # pragma: no cover - see apply_transforms
        raise RuntimeError("Splice is applied by apply_transforms (it needs the other traces)")

    def apply_all(self, traces: list[Trace], seed: int) -> list[Trace]:
        from traces.sets import load_traces  # sets -> models -> ... ; imported late to keep modules acyclic

        other = load_traces(self.spec, seed=seed, count=len(traces))
        out = []
        for i, t in enumerate(traces):
            head = t if self.at_s is None else t.cut(0.0, self.at_s)
            tail = other[i % len(other)]
            out.append(Trace.concat([head, tail], name=f"{t.name}+{tail.name}"))
        return out


Transform = Scale | Cap | Outages | SetRtt | AddRtt | Shift | RandomStart | Splice


def _rng(seed: int, index: int, step: int) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(b"traces.transforms"), int(seed) & 0xFFFFFFFF, index, step])


def apply_transforms(traces: Sequence[Trace], transforms: Sequence[Transform], seed: int = 0) -> list[Trace]:
    """Apply ``transforms`` in order to every trace; deterministic under ``seed``."""
    out = list(traces)
    for step, tf in enumerate(transforms):
        if isinstance(tf, Splice):
            out = tf.apply_all(out, seed)
        else:
            out = [tf.apply(t, _rng(seed, i, step)) for i, t in enumerate(out)]
    return out


def _num(key: str, text: str) -> float:
    try:
        return parse_value(text or "", float)
    except ValueError as exc:
        raise InputError(f"{key}={text!r}: expected {exc}") from None


def _int(key: str, text: str) -> int:
    v = _num(key, text)
    if v != int(v):
        raise InputError(f"{key}={text!r}: expected a whole number")
    return int(v)


#: key -> builder from the value text (None for flags).
TRANSFORMS: dict[str, Callable[[str | None], Transform]] = {
    "scale": lambda v: Scale(_num("scale", v)),
    "cap": lambda v: Cap(_num("cap", v)),
    "outages": lambda v: Outages(_int("outages", v)),
    "rtt_ms": lambda v: SetRtt(_num("rtt_ms", v)),
    "add_rtt_ms": lambda v: AddRtt(_num("add_rtt_ms", v)),
    "shift_s": lambda v: Shift(_num("shift_s", v)),
    "random_start": lambda v: RandomStart(),
    "splice": lambda v: Splice(v or ""),
}
#: Keys that modify another transform: modifier -> (class, field). A modifier applies to
#: the nearest transform of that class before it (else the next one after it).
_MODIFIERS: dict[str, tuple[type, str]] = {"outage_s": (Outages, "length_s"), "splice_at": (Splice, "at_s")}


def build_transforms(pairs: Sequence[tuple[str, str | None]]) -> list[Transform]:
    """Transforms from ``(key, value)`` pairs in order (``outage_s``/``splice_at`` modify theirs)."""
    items: list[Transform | tuple[str, float]] = []
    for key, value in pairs:
        if key in _MODIFIERS:
            items.append((key, _num(key, value)))
        elif key not in TRANSFORMS:
            raise InputError(f"unknown transform {key!r}; valid: {', '.join([*TRANSFORMS, *_MODIFIERS])}")
        elif key != "random_start" and value in (None, ""):
            raise InputError(f"transform {key!r} needs a value ({key}=...)")
        else:
            items.append(TRANSFORMS[key](value))
    for j, item in enumerate(items):
        if not isinstance(item, tuple):
            continue
        key, value = item
        cls, field = _MODIFIERS[key]
        before = [i for i in range(j - 1, -1, -1) if isinstance(items[i], cls)]
        after = [i for i in range(j + 1, len(items)) if isinstance(items[i], cls)]
        if not before and not after:
            raise InputError(f"{key} needs a {cls.__name__.lower()} transform as well")
        i = (before or after)[0]
        items[i] = replace(items[i], **{field: value})
    return [t for t in items if not isinstance(t, tuple)]


def parse_transforms(text: str) -> list[Transform]:
    """Transforms from ``'scale=0.5,cap=3,random_start'`` (see the module docstring)."""
    pairs = split_options(text, f"transform {text!r}", bare=True)
    return build_transforms([(key.replace("-", "_"), value) for key, value in pairs])


def format_pairs(pairs: Sequence[tuple[str, str | None]]) -> str:
    """``(key, value)`` pairs (value None for a flag) as the spec string :func:`parse_transforms` reads."""
    return ",".join(k if v is None else f"{k}={v}" for k, v in pairs)


def format_transforms(transforms: Sequence[Transform]) -> str:
    """The string :func:`parse_transforms` reads back into ``transforms``."""
    parts: list[str] = []
    for t in transforms:
        match t:
            case Scale(factor=k):
                parts.append(f"scale={k:g}")
            case Cap(mbps=c):
                parts.append(f"cap={c:g}")
            case Outages(count=n, length_s=s):
                parts.append(f"outages={n},outage_s={s:g}")
            case SetRtt(ms=m):
                parts.append(f"rtt_ms={m:g}")
            case AddRtt(ms=m):
                parts.append(f"add_rtt_ms={m:g}")
            case Shift(offset_s=s):
                parts.append(f"shift_s={s:g}")
            case RandomStart():
                parts.append("random_start")
            case Splice(spec=spec, at_s=at):
                parts.append(f"splice={spec}" + (f",splice_at={at:g}" if at is not None else ""))
    return ",".join(parts)

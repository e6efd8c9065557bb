"""Named scenarios: the regimes where choosing a rung against the link, the content and the phone matters.

A :class:`Scenario` bundles what a run needs besides the policy: real traces with their
train/test split, a ladder expression, a device (or device population), a QoE and a simulator
preset, and a session length (the content is looped to reach it: viewing sessions last
minutes, and buffer-based policies need minutes to climb). ``--scenario NAME`` in ``sim.run``,
``sim.train`` and ``sim.whatif`` fills those options; options given explicitly override its
parts (a what-if flag replaces the scenario's transform of the same key, keeps the others).
:func:`resolve` is the one place a scenario becomes run parameters.

Trace provenance: the named selections (``lowband-cellular`` ...) are files of the real sets in
``../shared/data/traces`` chosen by a rule on each file's own median throughput
(:mod:`traces.select`, counts in ``traces/data/SELECTIONS.md``). A scenario that rescales real
traces (``congested-cell``) is a what-if and says so in :attr:`Scenario.what_if`; it is never
presented as a measurement.

:func:`binding_note` is the check behind ``sim.run``'s "cannot bind" line: when the ladder's
top rung is below the links' 5th-percentile throughput and every rung decodes faster than real
time on the device, all policies that climb end on the top rung and tie.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from abr.errors import InputError, unknown_name

__all__ = [
    "SCENARIOS",
    "BINDING_SCENARIO",
    "RunParams",
    "Scenario",
    "binding_note",
    "describe_scenarios",
    "get_scenario",
    "merge_transforms",
    "parse_explicit",
    "resolve",
    "scenario_config",
]


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named bundle of run parameters.

    :param name: what ``--scenario`` takes.
    :param summary: one line: what it models and why it matters.
    :param traces: trace spec without a split; runs and what-ifs use ``@test``, training ``@train``.
    :param ladder: ladder expression of one pass through the content (looped to ``session_s``).
    :param device: device profile or device population.
    :param qoe: QoE preset.
    :param sim: simulator preset.
    :param session_s: target session length; the content is played ``ceil(session_s / length)`` times.
    :param transforms: trace what-if transforms as ``(key, value)`` pairs (``traces.transforms``).
    :param what_if: why the traces are not a measurement (empty: unscaled real traces).
    :param provenance: where the traces come from and how they were chosen.
    """

    name: str
    summary: str
    traces: str
    ladder: str
    device: str
    qoe: str = "perceptual-calibrated"
    sim: str = "promptabr"
    session_s: float = 300.0
    transforms: tuple[tuple[str, str | None], ...] = ()
    what_if: str = ""
    provenance: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.session_s) and self.session_s > 0):
            raise ValueError(f"scenario {self.name}: session_s must be > 0")


@dataclass(frozen=True, slots=True)
class RunParams:
    """What a scenario resolves to for one CLI.

    :param trace: trace spec, split included (``NAME@test``).
    :param transforms: what-if transforms as ``(key, value)`` pairs, in order.
    :param ladder: ladder expression, looped to the session length.
    :param device: the device profile or population that runs.
    :param qoe: QoE preset; ``sim``: simulator preset.
    :param notes: lines worth printing (the what-if label).
    """

    scenario: str
    trace: str
    transforms: tuple[tuple[str, str | None], ...]
    ladder: str
    device: str
    qoe: str
    sim: str
    notes: tuple[str, ...] = ()

    @property
    def transform_spec(self) -> str:
        """The transforms as one ``traces.transforms`` spec string (``scale=0.03``; empty if none)."""
        from traces.transforms import format_pairs

        return format_pairs(self.transforms)


_PROMPT = "promptmobile-wide-model"
_HYBRID = f"{_PROMPT}[0/2/3/4/5]+h265-measured[4/5/6]"
_BELGIUM = "belgium-4g-lte-sabre-json"
#: Users sharing one cell in ``congested-cell``.
CONGESTED_USERS = 32

#: The scenarios, by name.
SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "lowband-mobile",
            "PromptMobile on a phone over the slowest real cellular sessions (median < 1 Mbit/s): "
            "the regime prompt streaming is for",
            traces="lowband-cellular",
            ladder=_PROMPT,
            device="snapdragon-8gen3",
            provenance="traces.select 'lowband-cellular': Norway 3G (Riiser 2013) and mahimahi US cellular files "
            "whose time-weighted median is below 1 Mbit/s",
        ),
        Scenario(
            "hybrid",
            "prompt rungs below H.265 rungs on real 0.1-3 Mbit/s links, on a phone: switching codec family "
            "is a decision (PromptMobile decodes ~13x slower than H.265)",
            traces="sub3mbps-links",
            ladder=_HYBRID,
            device="snapdragon-8gen3",
            provenance="traces.select 'sub3mbps-links': Norway 3G, FCC 2016 and mahimahi cellular files with a "
            "median of 0.1-3 Mbit/s",
        ),
        Scenario(
            "generative-fallback",
            "classic rungs up to HD rates (4.5 Mbit/s, each clip at its native size) with prompt rungs below "
            "them on unscaled real LTE/5G/Wi-Fi: the prompt rungs carry fades and outages",
            traces="real-mobile-broadband",
            # 8 rungs like the others (RobustMPC plans over rungs^5 sequences): the prompt rungs that are not
            # dominated, the 750 kbit/s H.265 rung (the 280/370 ones sit above 210-kbit/s prompt quality), HD
            ladder=f"{_PROMPT}[0/2/4/5]+h265-measured[6]+h265-hd-measured[0/1/3]",
            device="snapdragon-8gen3",
            provenance="traces.select 'real-mobile-broadband': every Belgium LTE drive, UCC 5G download log "
            "and SBU Wi-Fi/cellular walk",
        ),
        Scenario(
            "congested-cell",
            f"real Belgium LTE drives shared by {CONGESTED_USERS} users (every rate / {CONGESTED_USERS}): "
            "a what-if of a busy cell",
            traces=f"@shared/{_BELGIUM}",
            ladder=_HYBRID,
            device="snapdragon-8gen3",
            transforms=(("scale", repr(1.0 / CONGESTED_USERS)),),
            what_if=f"WHAT-IF, not a measurement: real LTE rates divided by {CONGESTED_USERS} (an equal "
            f"share of a cell with {CONGESTED_USERS} active users)",
            provenance=f"{_BELGIUM} (van der Hooft et al. 2016, Sabre's JSON), all 40 drives, scaled",
        ),
        Scenario(
            "phone-population",
            "the hybrid links with the phone drawn per session from the Snapdragon 8 Gen 2/8 Gen 3/8 Elite "
            "profiles: one policy for many decoders",
            traces="sub3mbps-links",
            ladder=_HYBRID,
            device="snapdragon-population",
            provenance="as hybrid",
        ),
    )
}

#: The scenario ``sim.run`` names when a run cannot bind.
BINDING_SCENARIO = "lowband-mobile"


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name``; InputError listing the valid names otherwise."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise unknown_name("scenario", name, SCENARIOS) from None


def describe_scenarios() -> str:
    """One line per scenario, for ``--help``."""
    width = max(map(len, SCENARIOS))
    return "\n".join(f"{s.name:<{width}}  {s.summary}" for s in SCENARIOS.values())


def _trace_spec(spec: str) -> str:
    if spec.startswith("@shared/"):
        from traces.catalog import default_trace_root

        return str(default_trace_root() / spec[len("@shared/") :])
    return spec


def _looped(ladder: str, session_s: float) -> str:
    """``ladder`` played enough times to last ``session_s`` (every ``+`` part looped alike)."""
    from abr.registry import get_ladder

    length = get_ladder(ladder).total_duration_s
    loops = max(1, math.ceil(session_s / length - 1e-9))
    if loops == 1:
        return ladder
    from abr.registry import _split_top

    return "+".join(f"{part.strip()}*{loops}" for part in _split_top(ladder, "+"))


def merge_transforms(scenario: tuple, given: list | tuple) -> tuple[tuple[str, str | None], ...]:
    """The scenario's transforms, less any key given explicitly, followed by the given ones."""
    keys = {k for k, _ in given}
    return tuple((k, v) for k, v in scenario if k not in keys) + tuple(given)


def resolve(name: str, split: str = "test") -> RunParams:
    """Scenario ``name`` -> run parameters for its ``split`` (``test`` for runs and what-ifs, ``train``).

    The one resolution used by ``sim.run``, ``sim.train`` and ``sim.whatif``.
    """
    s = get_scenario(name)
    if split not in ("train", "test"):
        raise InputError(f"scenario split must be train or test, got {split!r}")
    notes = [s.what_if] if s.what_if else []
    return RunParams(
        scenario=name,
        trace=f"{_trace_spec(s.traces)}@{split}",
        transforms=s.transforms,
        ladder=_looped(s.ladder, s.session_s),
        device=s.device,
        qoe=s.qoe,
        sim=s.sim,
        notes=tuple(notes),
    )


def scenario_config(name: str | None) -> dict:
    """``sim.train``'s :class:`sim.train.TrainConfig` fields from scenario ``name`` (its train split,
    what-if transforms included; empty for None)."""
    if not name:
        return {}
    params = resolve(name, "train")
    for line in params.notes:
        print(f"scenario {name}: {line}")
    return {"traces": (params.trace,), "ladder": params.ladder, "device": params.device, "qoe": params.qoe,
            "sim": params.sim, "transform": params.transform_spec}  # fmt: skip


class _Unset(tuple):
    """Marks an option the command line did not give (falsy and iterable, like an empty list)."""

    __slots__ = ()


_UNSET = _Unset()


def parse_explicit(parser: argparse.ArgumentParser, argv: list[str] | None) -> tuple[argparse.Namespace, set[str]]:
    """Parse ``argv``; also return the destinations given on the command line (so a scenario
    fills only the others). Defaults are filled in afterwards as usual."""
    seed = {}
    for action in parser._actions:
        if action.dest not in (argparse.SUPPRESS, "help"):
            seed[action.dest] = None if action.default is None else _UNSET
    ns = parser.parse_args(argv, namespace=argparse.Namespace(**seed))
    explicit = set()
    for dest, initial in seed.items():
        value = getattr(ns, dest)
        if value is _UNSET or (initial is None and value is None):
            setattr(ns, dest, parser.get_default(dest))
        else:
            explicit.add(dest)
    return ns, explicit


def binding_note(traces, ladder, device, *, percentile: int = 5) -> str | None:
    """One line when this run cannot bind (else None): the ladder's top rung is below the links'
    ``percentile`` throughput and every rung decodes faster than real time on ``device``."""
    from traces.stats import summarize

    link = summarize(list(traces)).percentiles_mbps[percentile] * 1000.0
    top = float((ladder.size_bytes.sum(axis=0) * 8.0 / ladder.total_duration_s / 1000.0).max())
    realtime = getattr(device, "realtime_factor", None)
    if realtime is None or not top < link:
        return None
    factor = realtime(ladder)
    if not (factor < 1.0).all():
        return None
    return (
        f"note: this run cannot bind: the top rung ({top:.0f} kbit/s) is below the links' {percentile}th "
        f"percentile ({link:.0f} kbit/s) and every rung decodes faster than real time on {device.name} "
        f"(at most {factor.max():.2f}x), so policies differ only in how fast they climb; "
        f"for a run where the choice matters try --scenario {BINDING_SCENARIO}"
    )

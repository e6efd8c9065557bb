"""Ladders by name: embedded package data, synthetic models, or a file path."""

from __future__ import annotations

import re
from dataclasses import replace
from importlib import resources
from pathlib import Path

from abr.errors import InputError
from abr.importers import import_pensieve_sizes, import_sabre_movie, is_pensieve_sizes, is_sabre_movie
from abr.ladder import Ladder, combine_ladders, load_ladder
from abr.synthetic import SYNTHETIC_FAMILIES, parse_synthetic, synthetic_ladder

__all__ = ["DEFAULT_LADDER", "available_ladders", "embedded_ladder_file", "get_ladder"]

#: What ``sim.run`` uses when no ``--ladder`` is given.
DEFAULT_LADDER = "promptus-paper-model*4"


#: Measured ladders shipped with their streams in another package: name -> (package, path in it).
_PACKAGED = {
    # rank 1..8 prompt streams of the held-out clip through the tiny learned generator (bench/build_tiny_ladder.py);
    # labelled in its metadata: tiny generator, not Promptus quality
    "tiny-promptus-measured": ("codec", "data/tiny-ladder/ladder.json"),
}


def _embedded() -> dict[str, Path]:
    """Ladders shipped as package data (``abr/data/<name>.json``, and :data:`_PACKAGED` where present)."""
    root = resources.files("abr") / "data"
    out = {}
    for entry in root.iterdir():
        if entry.name.endswith(".json"):
            out[entry.name[: -len(".json")]] = Path(str(entry))
    for name, (package, rel) in _PACKAGED.items():
        path = Path(str(resources.files(package).joinpath(rel)))
        if path.is_file():
            out[name] = path
    return out


#: Ladders derived from an embedded one: name -> (source, decoder, family, note).
_DERIVED = {
    "promptmobile-paper-model": (
        "promptus-paper-model",
        "promptmobile",
        "promptmobile",
        "the promptus-paper-model rungs played by the PromptMobile receiver (its quality floor is PromptMobile's "
        "published 0.016 LPIPS gain over H.265 at 280 kbit/s; prompts are fitted through the receiver that plays them)",
    ),
    "promptmobile-wide-model": (
        "promptus-wide-model",
        "promptmobile",
        "promptmobile",
        "the promptus-wide-model rungs (rank and keyframe interval) played by the PromptMobile receiver",
    ),
}


def available_ladders() -> list[str]:
    """Names accepted by :func:`get_ladder` (besides file paths and synthetic options)."""
    return sorted([*_embedded(), *_DERIVED]) + [f"synthetic:{f}" for f in SYNTHETIC_FAMILIES]


def embedded_ladder_file(name: str) -> Path | None:
    """The package file an embedded (or derived) ladder name is read from, or None for other names."""
    embedded = _embedded()
    source = _DERIVED[name][0] if name in _DERIVED else name
    return embedded.get(source)


_SELECT = re.compile(r"^(?P<base>.+)\[(?P<sel>[^\[\]]*)\]$")


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [*parts, cur]


def _select(ladder: Ladder, selector: str, expr: str) -> Ladder:
    """Rungs by index (``0/2/4``) or by prompt rank (``r2/r4/r8``)."""
    idx: list[int] = []
    for item in filter(None, (s.strip() for s in re.split(r"[/,]", selector))):
        if item.startswith("r") and item[1:].isdigit():
            hits = [i for i, r in enumerate(ladder.rungs) if r.rank == int(item[1:])]
            if not hits:
                ranks = sorted({r.rank for r in ladder.rungs if r.rank is not None})
                raise InputError(f"ladder {expr!r}: no rung of rank {item[1:]}; ranks: {ranks or 'none'}")
            idx += hits
        elif item.isdigit():
            idx.append(int(item))
        else:
            raise InputError(f"ladder {expr!r}: bad rung selector {item!r} (use indices 0/2/4 or ranks r2/r8)")
    return ladder.select(idx, name=expr)


#: Most chunks a ``NAME*N`` ladder may have (a day of 2 s chunks).
MAX_CHUNKS = 43_200
_REPEAT = re.compile(r"^(?P<base>.+)\*(?P<times>\d+)$")


def get_ladder(spec: str) -> Ladder:
    """Resolve a ladder expression.

    * an embedded name (``promptus-paper-model``, ``h265-measured``...), a ladder ``.json``
      file (or a folder holding ``ladder.json``), or ``synthetic:FAMILY[:key=value,...]``;
    * a peer's video: a Pensieve ``video_size_*`` folder or a Sabre ``movie.json``
      (:mod:`abr.importers`; no LPIPS, so use a bitrate QoE);
    * ``NAME[0/2/4]`` keeps rungs 0, 2 and 4; ``NAME[r2/r8]`` the rungs of prompt rank 2 and 8;
    * ``NAME*4`` plays the video 4 times in a row (longer sessions from a short clip);
    * ``A+B`` merges the rungs of two ladders of the same chunks (:func:`combine_ladders`),
      so a policy can switch codec family.
    """
    spec = spec.strip()
    parts = [p.strip() for p in _split_top(spec, "+")]
    if not all(parts):
        raise InputError(f"bad ladder expression {spec!r}: empty part around '+'")
    if len(parts) > 1:
        return combine_ladders(*(get_ladder(p) for p in parts), name=spec)
    m = _REPEAT.match(spec)
    if m and not Path(spec).exists():
        base = get_ladder(m["base"])
        times = int(m["times"])
        if not 1 <= times * base.n_chunks <= MAX_CHUNKS:
            raise InputError(f"ladder {spec!r}: {times} x {base.n_chunks} chunks is outside 1..{MAX_CHUNKS} chunks")
        return base.repeat(times)
    m = _SELECT.match(spec)
    if m and not Path(spec).exists():
        return _select(get_ladder(m["base"]), m["sel"], spec)
    return _single(spec)


def _single(spec: str) -> Ladder:
    if spec.startswith("synthetic:"):
        return replace(synthetic_ladder(parse_synthetic(spec)), name=spec)
    embedded = _embedded()
    if spec in embedded:
        return load_ladder(embedded[spec])
    if spec in _DERIVED:
        source, decoder, family, note = _DERIVED[spec]
        ladder = load_ladder(embedded[source]).with_decoder(decoder, family, name=spec)
        return replace(ladder, metadata={**ladder.metadata, "derivation": f"{ladder.metadata.get('derivation', '')}; "
                                          f"{note}".lstrip("; ")})
    path = Path(spec)
    if is_pensieve_sizes(path):
        return import_pensieve_sizes(path)
    if is_sabre_movie(path):
        return import_sabre_movie(path)
    if path.suffix == ".json" or path.exists() or "/" in spec:
        if path.is_dir():
            path = path / "ladder.json"
        return load_ladder(path)
    raise InputError(
        f"unknown ladder {spec!r}; valid names: {', '.join(available_ladders())} "
        "(or a ladder .json file, synthetic:FAMILY:key=value,..., NAME[0/2], NAME[r2/r8], NAME*N, A+B)"
    )

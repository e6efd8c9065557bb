"""The real trace sets of ``../shared/data/traces``, and where a trace file's value unit comes from.

A file inside one of these folders (at any depth) is read with that set's format and value
unit unless the caller forces others; every other file is detected by content. The sets
themselves are never copied into the repository (see each set's PROVENANCE.md).

Formats whose files carry no unit (cooked) take it from what the data says
(:func:`declared_unit`), in this order: a ``unit: MBps`` line in a ``UNIT``, ``PROVENANCE.md`` or
``README`` file in the trace's folder or up to two folders above it; a known set of the catalog
below; Puffer's file names (``trace<44-character session id>_<stream>``: Puffer data in MB/s,
under any folder name). :func:`traces.formats.read_trace` then refuses rates no network has and
warns about implausible ones, naming the ``--trace-unit`` fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["REAL_SETS", "RealSet", "declared_unit", "default_trace_root", "real_set_of"]


@dataclass(frozen=True, slots=True)
class RealSet:
    """One measured trace set.

    :param folder: folder name under the traces root.
    :param fmt: file format (a :data:`traces.formats.FORMATS` name).
    :param network: what was measured, in a few words.
    :param unit: value unit where the format leaves it open (cooked files), else None.
    :param note: caveats worth printing (unverified units, not capacity, ...).
    """

    folder: str
    fmt: str
    network: str
    unit: str | None = None
    note: str = ""


REAL_SETS: dict[str, RealSet] = {
    s.folder: s
    for s in (
        RealSet("mahimahi-us-cellular", "mahimahi", "US LTE/3G/EV-DO Saturator link capacity (2013-2016)"),
        RealSet("fcc-broadband-2016-pensieve-cooked", "cooked", "US fixed broadband, FCC MBA 2016", "mbps"),
        RealSet("norway-hsdpa-3g-pensieve-cooked", "cooked", "Norway 3G/HSDPA commute (Riiser 2013)", "mbps"),
        RealSet("norway-hsdpa-3g-sabre-json", "sabre", "Norway 3G/HSDPA full logs", note="latency_ms=100 not measured"),
        RealSet(
            "belgium-4g-lte-sabre-json",
            "sabre",
            "Belgium 4G/LTE (van der Hooft 2016)",
            note="latency_ms=20 not measured",
        ),
        RealSet(
            "puffer-2021-10-17-merina-cooked",
            "cooked",
            "Puffer per-chunk TCP delivery rate",
            "MBps",
            note="values read as MB/s (x8 for Mbit/s) per the source's processing script; unverified; "
            "delivery rate, not link capacity",
        ),
        RealSet("oboe-merina-cooked", "cooked", "Oboe video-session throughput", "mbps", note="per-chunk samples"),
        RealSet(
            "ucc-5g-mmsys2020",
            "gnettrack",
            "Ireland 5G NSA (UCC, MMSys 2020)",
            note="video-app logs idle when the buffer is full",
        ),
        RealSet("sbu-fsc-wifi-cellular-pairs", "bytes-csv", "WiFi + cellular pairs while walking (SBU/FSC)"),
    )
}


def real_set_of(path: Path) -> RealSet | None:
    """The known set a file belongs to (by an ancestor folder's name), or None."""
    for part in reversed(path.parent.parts):
        if part in REAL_SETS:
            return REAL_SETS[part]
    return None


def default_trace_root() -> Path:
    """``../shared/data/traces`` beside the repository (may not exist)."""
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "traces"


#: Files that may declare the unit of the traces beside them (nearest folder first).
UNIT_FILES = ("UNIT", "PROVENANCE.md", "README.md", "README.txt", "README")
#: How many folders above a trace file are searched for a declaration (0 = its own folder).
UNIT_SEARCH_DEPTH = 2
_UNIT_LINE = re.compile(r"^[\s>*#-]*(?:trace[ _-]?)?units?\s*[:=]\s*`?([A-Za-z/]+)`?\s*\.?\s*$", re.I | re.M)
#: Unit spellings a declaration may use, to :data:`traces.formats.RATE_UNITS` names (bits vs bytes by case).
UNIT_ALIASES = {
    "Mbit/s": "mbps", "Mbps": "mbps", "kbit/s": "kbps", "Kbps": "kbps", "bit/s": "bps",
    "MB/s": "MBps", "kB/s": "kBps", "KB/s": "kBps", "KBps": "kBps", "B/s": "Bps",
}  # fmt: skip
#: Puffer streams as cooked by merina's converter: ``trace`` + base64 session id + ``_<stream index>``.
PUFFER_NAME = re.compile(r"^trace[A-Za-z0-9+/]{43}=_\d+$")


def declared_unit(path: Path) -> tuple[str, str] | None:
    """The value unit the data declares for the trace file ``path``, and where it says so; None if silent.

    The unit name is returned as written (after :data:`UNIT_ALIASES`); the reader validates it.
    """
    path = Path(path)
    for folder in list(path.parents)[: UNIT_SEARCH_DEPTH + 1]:
        for name in UNIT_FILES:
            f = folder / name
            if not f.is_file():
                continue
            try:
                text = f.read_text(encoding="utf-8", errors="replace")[:200_000]
            except OSError:
                continue
            if name == "UNIT" and "\n" not in text.strip():
                text = f"unit: {text.strip()}"  # a UNIT file may hold the bare name
            if m := _UNIT_LINE.search(text):
                return UNIT_ALIASES.get(m[1], m[1]), f"declared in {f}"
    known = real_set_of(path)
    if known is not None and known.unit:
        return known.unit, f"the {known.folder} set (traces/catalog.py)"
    if PUFFER_NAME.match(path.name):
        return "MBps", "a Puffer file name (Puffer's delivery rates are in MB/s)"
    return None

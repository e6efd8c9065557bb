"""The real trace sets of ``../shared/data/traces``: folder name -> format, unit and meaning.

A file inside one of these folders (at any depth) is read with that set's format and value
unit unless the caller forces others; every other file is detected by content. The sets
themselves are never copied into the repository (see each set's PROVENANCE.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["REAL_SETS", "RealSet", "default_trace_root", "real_set_of"]


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

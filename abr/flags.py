"""Command-line flags that mean one thing in every promptabr command.

- ``--no-progress``: no progress bar. ``--quiet`` is accepted as the same flag (older
  ``codec.*`` commands documented it) but only ``--no-progress`` is shown in ``--help``.
- ``--chunk-s S``: chunk duration in seconds. ``--chunk`` is accepted as the same flag (hidden).
- ``--device NAME`` is a device profile of the simulator (``sim.*``); the torch device of the
  ``codec.*`` commands is ``--torch-device`` (their ``--device`` is accepted as the same flag,
  hidden).
- ``--table-format parquet|csv`` is the format of a table written; ``--format`` is a trace format
  (``sim.whatif`` still accepts ``--format`` for its table format, hidden).

:func:`progress_bar` is the bar every long job shows (tqdm, on stderr, off with ``--no-progress``).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_chunk_flag", "add_progress_flag", "add_torch_device_flag", "progress_bar"]


def add_progress_flag(parser: Any, *, dest: str = "no_progress", help: str = "no progress bar") -> None:
    """Add ``--no-progress`` (and its undocumented alias ``--quiet``) to ``parser`` (a parser or a
    group), storing True in ``dest`` when given."""
    parser.add_argument("--no-progress", dest=dest, action="store_true", help=help)
    parser.add_argument("--quiet", dest=dest, action="store_true", help=argparse.SUPPRESS)


def add_chunk_flag(parser: Any, default: float, *, dest: str = "chunk_s", help: str = "chunk duration") -> None:
    """Add ``--chunk-s S`` (and its undocumented alias ``--chunk``) to ``parser``, a float stored in ``dest``."""
    parser.add_argument("--chunk-s", dest=dest, type=float, default=default, metavar="S",
                        help=f"{help}, seconds (default {default:g})")  # fmt: skip
    parser.add_argument("--chunk", dest=dest, type=float, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def add_torch_device_flag(parser: Any, *, help: str = "torch device (default: cuda if available, else cpu)") -> None:
    """Add ``--torch-device`` (and its undocumented alias ``--device``) to ``parser``, stored in
    ``device`` (None when not given)."""
    parser.add_argument("--torch-device", dest="device", default=None, metavar="DEVICE", help=help)
    parser.add_argument("--device", dest="device", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def progress_bar(total: int | None = None, *, desc: str, unit: str = "it", enabled: bool = True):
    """A tqdm bar on stderr (a no-op object when not ``enabled``); use as a context manager."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=False)

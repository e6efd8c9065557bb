"""Size limits on requests: refuse an oversized run up front, saying what it would need.

A typo such as ``--sessions 100000000`` or ``--trace-count 10000000`` would otherwise run for
hours or die of memory exhaustion half-way. :func:`check_request` refuses a count above its
limit with one line stating the memory the request needs and how to insist (``--force``).
"""

from __future__ import annotations

from abr.errors import InputError

__all__ = ["FORCE_HELP", "LIMITS", "check_request"]

#: Largest counts accepted without ``--force``.
LIMITS = {"--sessions": 1_000_000, "--trace-count": 100_000}
FORCE_HELP = "run requests above the size limits (--sessions, --trace-count) anyway"


def check_request(option: str, value: int, bytes_each: float, *, force: bool = False) -> None:
    """Refuse ``option value`` above :data:`LIMITS` unless ``force``; ``bytes_each`` is the memory
    one unit needs (stated in the message)."""
    limit = LIMITS[option]
    if value > limit and not force:
        need = value * bytes_each / 2**30
        raise InputError(
            f"{option} {value} needs about {need:,.1f} GiB of memory and exceeds the limit of {limit:,}; "
            "pass --force to run it anyway"
        )

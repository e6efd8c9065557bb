"""The one error family of promptabr.

Every problem with user input (a malformed trace, ladder, video or bitstream, an unknown
name) raises :class:`InputError`; command-line entry points catch it, print its message on
one line and exit with status 2.
"""

from __future__ import annotations

__all__ = ["InputError", "PromptabrError", "unknown_name"]


class PromptabrError(Exception):
    """Base class of every error promptabr raises on purpose."""


class InputError(PromptabrError, ValueError):
    """Bad user input: the message names the file (or option) and what is wrong with it."""

    def __init__(self, message: str, *, path: object | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f":{line}"
            where += ": "
        super().__init__(where + message)
        self.path = path
        self.line = line


def unknown_name(kind: str, name: str, valid: object) -> InputError:
    """The error for an unknown registry name, listing the valid ones."""
    names = ", ".join(sorted(str(v) for v in valid))
    return InputError(f"unknown {kind} {name!r}; valid names: {names}")

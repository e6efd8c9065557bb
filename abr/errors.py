"""The one error family of promptabr.

Every problem with user input (a malformed trace, ladder, video or bitstream, an unknown
name) raises :class:`InputError`; command-line entry points, decorated with
:func:`cli_main`, print its message on one line and exit with status 2.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

__all__ = ["InputError", "PromptabrError", "cli_main", "unknown_name"]


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


def cli_main(main: Callable[..., int]) -> Callable[..., int]:
    """Decorate a command's ``main``: an :class:`InputError` becomes one ``error:`` line on
    stderr and exit status 2 instead of a traceback; a closed output pipe (``| head``) ends
    the command quietly with status 141."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except BrokenPipeError:
            # the reader went away (`... | head`): stop quietly, as Unix tools do; point stdout at
            # /dev/null so the interpreter's final flush does not raise again
            import os

            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            return 141  # 128 + SIGPIPE, what a shell reports

    return wrapper

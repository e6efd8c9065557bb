"""Receiver variants by name: the one table every codec package registers into.

A receiver variant (:class:`codec.promptus.receiver.Receiver` subclass) lives in its own module
and registers with ``@register_receiver(name)``. :data:`RECEIVER_MODULES` names, for every
variant, the module that defines it (entry-point style), so a lookup imports only that module:
``codec.promptus`` never imports ``codec.promptmobile`` and nothing here imports torch.

Adding a variant: its class in one module with ``@register_receiver("name")``, plus one line
``"name": "package.module"`` below. ``tests/test_receivers.py`` checks that the table and the
registrations agree and that every device profile has a decode time for every variant.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import TypeVar

from abr.errors import unknown_name

__all__ = ["RECEIVERS", "RECEIVER_MODULES", "available_receivers", "receiver_class", "register_receiver"]

#: Variant name -> the module whose import registers it (table order = listing order).
RECEIVER_MODULES: dict[str, str] = {
    "promptus": "codec.promptus.receiver",
    "promptmobile-lowres": "codec.promptmobile.receivers",
    "promptmobile-lossless": "codec.promptmobile.receivers",
    "promptmobile-lossy": "codec.promptmobile.receivers",
    "promptmobile": "codec.promptmobile.receivers",
}

#: Variant name -> class, filled as the modules of :data:`RECEIVER_MODULES` are imported.
RECEIVERS: dict[str, type] = {}

T = TypeVar("T", bound=type)


def register_receiver(name: str) -> Callable[[T], T]:
    """Class decorator adding a receiver class to :data:`RECEIVERS` under ``name``."""

    def deco(cls: T) -> T:
        if name in RECEIVERS and RECEIVERS[name] is not cls:
            raise ValueError(f"receiver {name!r} is already registered")
        cls.name = name
        RECEIVERS[name] = cls
        return cls

    return deco


def available_receivers() -> list[str]:
    """Every variant name, registered or not yet imported."""
    return list(dict.fromkeys([*RECEIVER_MODULES, *RECEIVERS]))


def receiver_class(name: str) -> type:
    """The class of variant ``name``, importing its module on first use.

    :raises InputError: unknown name (listing the valid ones).
    """
    if name not in RECEIVERS and name in RECEIVER_MODULES:
        import_module(RECEIVER_MODULES[name])
    if name not in RECEIVERS:
        raise unknown_name("receiver", name, available_receivers())
    return RECEIVERS[name]

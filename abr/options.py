"""The ``NAME:key=value,key=value`` option syntax shared by every spec string.

Policies (``bola:gamma=5``), the oracle, receivers (``promptmobile:depth=2``), synthetic ladders
(``synthetic:promptus:ranks=2/4/8``), network models (``genet:min_mbps=1/2``), QoE weights
(``perceptual:mu=8``) and trace transforms (``scale=0.5,cap=3,random_start``) all read their
options here, so one spelling, one typing and one set of error messages hold everywhere.

Values are typed from the target's declared types: the fields of a dataclass or the keyword
parameters of a class's ``__init__``. ``bool`` takes ``true/false/1/0/yes/no``; ``int`` a
whole number; ``float`` a finite number (NaN and inf are refused: they slip through every
``x <= 0`` check); tuples take ``/``-separated items (``ranks=2/4/8``; a fixed-length tuple
given one item repeats it, so a range ``interval_s=3`` is ``3/3``); ``X | None`` reads as ``X``.
Every error is an :class:`~abr.errors.InputError` whose message starts with ``where`` (the
caller names the spec there, e.g. ``policy 'bola:gamma=x'``).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
from typing import Any

from abr.errors import InputError

__all__ = [
    "build_options",
    "option_types",
    "parse_options",
    "parse_value",
    "split_options",
    "split_spec",
    "split_specs",
]

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


def split_spec(spec: str) -> tuple[str, str]:
    """``"name:k=v,..."`` -> ``("name", "k=v,...")`` (both stripped; options "" when absent)."""
    name, _, options = spec.partition(":")
    return name.strip(), options.strip()


def split_specs(text: str) -> list[str]:
    """Split a comma-separated list of specs whose options also use commas.

    A piece ``key=value`` without ``:`` continues the spec before it, and commas inside
    ``[...]`` do not split: ``bola:gamma=5,qmax=25,bba`` -> ``["bola:gamma=5,qmax=25", "bba"]``;
    ``synthetic:promptus:efficiency=2,ranks=2/4,h265[0,2]`` -> two specs.
    """
    pieces, depth, cur = [], 0, ""
    for ch in text:
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            pieces.append(cur)
            cur = ""
        else:
            cur += ch
    pieces.append(cur)
    out: list[str] = []
    for piece in (p.strip() for p in pieces):
        if not piece:
            continue
        if out and "=" in piece and ":" not in piece.split("=", 1)[0] and ":" in out[-1]:
            out[-1] += "," + piece
        else:
            out.append(piece)
    return out


def split_options(text: str, where: str, *, bare: bool = False) -> list[tuple[str, str | None]]:
    """``"k=v,flag,k2=v2"`` -> ``[("k", "v"), ("flag", None), ("k2", "v2")]`` in order.

    Items are stripped and empty ones skipped. An item without ``=`` is a bare flag (value None)
    when ``bare`` is true, else an error; so is an empty key.
    """
    out: list[tuple[str, str | None]] = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not key or not (eq or bare):
            raise InputError(f"{where}: expected key=value, got {item!r}")
        out.append((key, value.strip() if eq else None))
    return out


def option_types(cls: type) -> dict[str, Any]:
    """Settable option name -> declared type: a dataclass's init fields, else the keyword
    parameters (with defaults) of ``cls.__init__``."""
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}
    init = cls.__init__
    hints = typing.get_type_hints(init)
    return {
        p.name: hints.get(p.name, Any)
        for p in inspect.signature(init).parameters.values()
        if p.default is not inspect.Parameter.empty and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }


def _strip_none(kind: Any) -> Any:
    """``X | None`` -> ``X``."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return kind


def _expected(kind: Any) -> str:
    if kind is bool:
        return "true/false/1/0"
    if kind is int:
        return "a whole number"
    if kind is float:
        return "a finite number"
    if typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        item = _expected(_strip_none(args[0])).removeprefix("a ") + "s" if args else "values"
        if len(args) == 2 and args[1] is Ellipsis:
            return f"{item} separated by '/', e.g. 2/4/8"
        return f"{len(args)} {item} separated by '/' (or one for all)"
    return "a value"


def parse_value(text: str, kind: Any) -> Any:
    """``text`` as a value of type ``kind``; ValueError saying what was expected when it is not one."""
    kind = _strip_none(kind)
    try:
        return _convert(text.strip(), kind)
    except ValueError:
        raise ValueError(_expected(kind)) from None


def _convert(text: str, kind: Any) -> Any:
    if kind is bool:
        low = text.lower()
        if low in _TRUE or low in _FALSE:
            return low in _TRUE
    elif kind is int:
        return int(text)
    elif kind is float:
        x = float(text)
        if math.isfinite(x):
            return x
    elif typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        items = [s.strip() for s in text.split("/") if s.strip()]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(s, _strip_none(args[0])) for s in items)
        if args and len(items) == 1:
            items = items * len(args)
        if len(items) == len(args):
            return tuple(_convert(s, _strip_none(a)) for s, a in zip(items, args))
    else:
        return text
    raise ValueError(text)


def parse_options(
    cls: type,
    text: str,
    where: str,
    *,
    skip: tuple[str, ...] = (),
    aliases: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``"k=v,..."`` -> ``{k: typed value}`` for the options of ``cls`` (see :func:`option_types`).

    :param where: names the spec in messages, e.g. ``policy 'bola:gamma=x'``.
    :param skip: options of ``cls`` not settable from a spec.
    :param aliases: other accepted spellings, alias -> option name.
    :raises InputError: an item that is not ``key=value``, an unknown key (listing the valid
        ones), a key given twice, or a value not of the option's type.
    """
    kinds = {k: v for k, v in option_types(cls).items() if k not in skip}
    aliases = aliases or {}
    out: dict[str, Any] = {}
    for key, value in split_options(text, where):
        name = aliases.get(key, key)
        if name not in kinds:
            valid = ", ".join([*kinds, *aliases]) or "none"
            raise InputError(f"{where}: unknown option {key!r}; valid keys: {valid}")
        if name in out:
            raise InputError(f"{where}: option {name!r} given twice")
        try:
            out[name] = parse_value(value or "", kinds[name])
        except ValueError as exc:
            raise InputError(f"{where}: bad value {value!r} for option {key!r} (expected {exc})") from None
    return out


def build_options(cls: type, text: str, where: str, *, skip: tuple[str, ...] = (), **fixed: Any) -> Any:
    """``cls(**fixed, **parse_options(cls, text, where))``; the constructor's own ValueError or
    TypeError (a range check) becomes an :class:`InputError` naming ``where``."""
    kwargs = {**fixed, **parse_options(cls, text, where, skip=skip)}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {exc}") from None

"""The one ``name:key=value`` option parser (abr.options) and every caller's messages."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from abr.errors import InputError
from abr.options import option_types, parse_options, parse_value, split_options, split_spec


@dataclass(frozen=True)
class _Opts:
    n: int = 1
    x: float = 0.5
    on: bool = False
    name: str = "a"
    ranks: tuple[int, ...] = (1, 2)
    span: tuple[float, float] = (0.0, 1.0)
    maybe: float | None = None


class _Kw:
    def __init__(self, first, *, depth: int = 1, tag: str | None = None):
        pass


def test_split():
    assert split_spec(" bola : gamma=5 ") == ("bola", "gamma=5")
    assert split_spec("bba") == ("bba", "")
    assert split_options(" a=1, ,b = 2,flag", "w", bare=True) == [("a", "1"), ("b", "2"), ("flag", None)]
    with pytest.raises(InputError, match="^w: expected key=value, got 'flag'$"):
        split_options("a=1,flag", "w")
    with pytest.raises(InputError, match="expected key=value, got '=3'"):
        split_options("=3", "w", bare=True)


def test_types_come_from_the_declaration():
    assert option_types(_Kw) == {"depth": int, "tag": str | None}
    got = parse_options(_Opts, "n=3,x=-2.5e1,on=1,name=b,ranks=2/4/8,span=3,maybe=0.25", "t")
    assert got == {"n": 3, "x": -25.0, "on": True, "name": "b", "ranks": (2, 4, 8), "span": (3.0, 3.0), "maybe": 0.25}
    assert parse_options(_Opts, "span=1/2,on=FALSE", "t") == {"span": (1.0, 2.0), "on": False}
    for text, value in (("true", True), ("1", True), ("yes", True), ("false", False), ("0", False), ("no", False)):
        assert parse_value(text, bool) is value


@pytest.mark.parametrize(
    "text, kind, expected",
    [
        ("nan", float, "a finite number"),
        ("inf", float, "a finite number"),
        ("-inf", float, "a finite number"),
        ("x", float, "a finite number"),
        ("1.5", int, "a whole number"),
        ("maybe", bool, "true/false/1/0"),
        ("2/x", tuple[int, ...], "whole numbers separated by '/'"),
        ("1/2/3", tuple[float, float], "2 finite numbers separated by '/'"),
        ("1/nan", tuple[float, float], "2 finite numbers"),
    ],
)
def test_bad_values(text, kind, expected):
    with pytest.raises(ValueError, match=expected):
        parse_value(text, kind)


def test_unknown_repeated_and_aliased_keys():
    with pytest.raises(InputError, match="^t: unknown option 'z'; valid keys: n, x, on, name, ranks, span, maybe$"):
        parse_options(_Opts, "z=1", "t")
    with pytest.raises(InputError, match="^t: unknown option 'name'; valid keys: n, x$"):
        parse_options(_Opts, "name=b", "t", skip=("on", "name", "ranks", "span", "maybe"))
    with pytest.raises(InputError, match="option 'n' given twice"):
        parse_options(_Opts, "n=1,count=2", "t", aliases={"count": "n"})
    with pytest.raises(InputError, match=r"^t: bad value 'nan' for option 'x' \(expected a finite number\)$"):
        parse_options(_Opts, "x=nan", "t")


# ------------------------------------------------------------------ every caller, one dialect


def _policy(spec):
    from policies.registry import get_policy

    return get_policy(spec)


def _oracle(spec):
    from sim.runners import resolve_runner

    return resolve_runner(spec)


def _synthetic(spec):
    from abr.registry import get_ladder

    return get_ladder(spec)


def _qoe(spec):
    from abr.qoe import get_qoe

    return get_qoe(spec)


def _model(spec):
    from traces.models import get_model

    return get_model(spec)


def _receiver(spec):
    pytest.importorskip("torch")
    from codec.promptus.receiver import parse_receiver_spec

    return parse_receiver_spec(spec)


# (caller, spec with an unknown key, spec with a bad value, the key and value in the second)
CALLERS = [
    (_policy, "bola:colour=3", "bola:gamma=nan", "policy 'bola:", "gamma"),
    (_policy, "mpc:colour=3", "mpc:horizon=2.5", "policy 'mpc:", "horizon"),
    (_policy, "throughput:colour=3", "throughput:abandon=maybe", "policy 'throughput:", "abandon"),
    (_oracle, "oracle:colour=3", "oracle:max_states=x", "oracle 'oracle:", "max_states"),
    (_synthetic, "synthetic:promptus:colour=3", "synthetic:promptus:ranks=2/x", "synthetic ladder 'syn", "ranks"),
    (_synthetic, "synthetic:h265:colour=3", "synthetic:h265:efficiency=inf", "synthetic ladder 'syn", "efficiency"),
    (_qoe, "perceptual:colour=3", "perceptual:mu=nan", "QoE 'perceptual:", "mu"),
    (_model, "genet:colour=3", "genet:min_mbps=1/2/3", "network model 'genet:", "min_mbps"),
    (_receiver, "promptus:colour=3", "promptus:max_batch=1.5", "receiver 'promptus:", "max_batch"),
]


@pytest.mark.parametrize(("call", "unknown", "bad", "where", "key"), CALLERS, ids=[c[1] for c in CALLERS])
def test_every_caller_says_the_same(call, unknown, bad, where, key):
    with pytest.raises(InputError) as exc:
        call(unknown)
    msg = str(exc.value)
    assert msg.startswith(f"{where}") and unknown in msg and "unknown option 'colour'; valid keys: " in msg
    assert "\n" not in msg
    with pytest.raises(InputError) as exc:
        call(bad)
    msg = str(exc.value)
    value = bad.rsplit("=", 1)[1]
    assert msg.startswith(f"{where}") and f"bad value {value!r} for option {key!r} (expected " in msg
    with pytest.raises(InputError, match="expected key=value"):
        call(unknown.replace("=3", ""))


def test_transforms_share_the_splitter_and_the_finite_check():
    from traces.transforms import parse_transforms

    assert len(parse_transforms(" scale = 0.5 , random_start ")) == 2
    for text in ("scale=nan", "cap=inf", "rtt_ms=-inf"):
        with pytest.raises(InputError, match="expected a finite number"):
            parse_transforms(text)

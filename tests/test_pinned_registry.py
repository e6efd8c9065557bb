"""policies.registry and policies.fixed pinned: names, ``name:key=value`` options, loaded
policies, the ``--help`` lines and the errors, written out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_ladder

from abr.errors import InputError
from abr.qoe import get_qoe
from policies.base import Observation, Policy, PolicyContext
from policies.fixed import Fixed
from policies.registry import LOADED_POLICIES, POLICIES, describe_policies, get_policy

LOG = get_qoe("pensieve-log")
LOADED_WITH = []


def _load_probe(options):
    """A stand-in for a loaded policy (``module:function(options) -> Policy``)."""
    LOADED_WITH.append(options)
    return Fixed(Fixed.Params(rung=1))


class _NoParams(Policy):
    """A probe for policy X

    (a first paragraph without a full stop). The second paragraph is left out of --help."""

    name = "noparams"

    def act(self, obs):
        return np.zeros(obs.n_sessions, dtype=np.int64)


def test_every_builtin_policy_by_name():
    assert list(POLICIES) == ["fixed", "bba", "rate", "throughput", "bola", "bola-e", "dynamic", "mpc", "robustmpc"]
    for name, cls in POLICIES.items():
        assert cls.name == name
        p = get_policy(name)
        assert type(p) is cls and p.label == name and p.params == cls.Params()
    assert LOADED_POLICIES == {"rl": "policies.rl:load_rl_policy"}


def test_options_and_spaces_around_the_name():
    p = get_policy(" bba : reservoir_s=3 ")
    assert type(p).name == "bba" and p.params.reservoir_s == 3.0 and p.params.cushion_s == 10.0
    assert p.label == " bba : reservoir_s=3 "


def test_a_loaded_policy_gets_its_options_and_label(monkeypatch):
    monkeypatch.setitem(LOADED_POLICIES, "probe", f"{__name__}:_load_probe")
    LOADED_WITH.clear()
    p = get_policy("probe:model=x,seed=2")
    assert LOADED_WITH == ["model=x,seed=2"]
    assert type(p) is Fixed and p.params.rung == 1 and p.label == "probe:model=x,seed=2"


def test_bad_options_name_the_spec():
    with pytest.raises(InputError) as e:
        get_policy("bola:gamma=x")
    assert str(e.value) == "policy 'bola:gamma=x': bad value 'x' for option 'gamma' (expected a finite number)"


def test_unknown_names_list_the_loaded_policies_too():
    with pytest.raises(InputError) as e:
        get_policy("nosuch")
    assert str(e.value) == (
        "unknown policy 'nosuch'; valid names: bba, bola, bola-e, dynamic, fixed, mpc, rate, rl, robustmpc, throughput"
    )


def test_a_policy_without_params(monkeypatch):
    monkeypatch.setitem(POLICIES, "noparams", _NoParams)
    p = get_policy("noparams")
    assert type(p) is _NoParams and p.params is None and p.label == "noparams"
    with pytest.raises(InputError, match=r"unknown option for policy 'noparams' \(it takes none\): 'x=1'"):
        get_policy("noparams:x=1")
    line = [x for x in describe_policies().splitlines() if x.startswith("noparams")]
    assert line == ["noparams: A probe for policy X."]  # the first sentence, no options


def test_help_lines_by_hand():
    lines = describe_policies().splitlines()
    assert len(lines) == len(POLICIES)
    assert lines[0] == "fixed: Always the same rung (negative counts from the top: -1 is the highest). [rung=0]"
    assert lines[1] == "bba: BBA-0 with a quality map instead of a rate map. [reservoir_s=5.0,cushion_s=10.0]"
    # the first sentence of a multi-line first paragraph, joined onto one line
    assert lines[2].startswith("rate: Rate-based (as in Pensieve): the best rung whose chunk fits the harmonic mean")
    assert lines[2].endswith("recent throughput. [window=5,safety=1.0]")
    assert lines[6].startswith("dynamic: Switches between BOLA-U and the throughput rule with hysteresis")
    assert "\n" not in lines[2] and "  " not in lines[2]


def _ctx(n_rungs=4):
    lad = make_ladder([[1e3 * (r + 1) for r in range(n_rungs)]] * 3)
    return PolicyContext(lad, LOG, LOG.chunk_quality(lad), np.zeros(lad.size_bytes.shape), 25.0)


def _obs(n):
    z = np.zeros(n)
    h = np.full((n, 2), np.nan)
    return Observation(0, z, np.full(n, -1), h, h, z, z, z)


@pytest.mark.parametrize("rung, want", [(0, 0), (3, 3), (-1, 3), (-4, 0)])
def test_fixed_rung_and_its_range(rung, want):
    p = Fixed(Fixed.Params(rung=rung))
    p.reset(_ctx(), 3)
    assert p.act(_obs(3)).tolist() == [want] * 3
    assert p.ctx is not None


@pytest.mark.parametrize("rung", [4, -5, 100])
def test_fixed_refuses_a_rung_the_ladder_lacks(rung):
    with pytest.raises(InputError) as e:
        Fixed(Fixed.Params(rung=rung)).reset(_ctx(), 1)
    assert str(e.value) == (f"policy 'fixed': rung {rung} is not a rung of ladder test (0..3, or -4..-1 from the top)")


def test_policy_base_defaults():
    from policies.base import DownloadProgress

    p = _NoParams()
    assert p.params is None and p.ctx is None
    assert Fixed().params == Fixed.Params() and Fixed().ctx is None
    prog = DownloadProgress(
        chunk=1, active=np.ones(3, bool), rung=np.array([2, 1, 0]), size_bytes=np.ones(3), downloaded_bytes=np.ones(3),
        elapsed_s=np.ones(3), latency_s=np.zeros(3), buffer_s=np.ones(3),
    )  # fmt: skip
    never = p.abandon(prog)
    assert never.tolist() == [-1, -1, -1] and never.dtype == np.int64
    assert not p.can_abandon and not p.has_abandon_rule
    with pytest.raises(NotImplementedError, match="^_NoParams has no vectorised abandonment rule$"):
        p.abandon_rule(prog)

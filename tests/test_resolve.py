"""The one resolver from names to a run (sim.resolve) and its callers."""

from __future__ import annotations

import pytest

from abr.errors import InputError
from abr.qoe import get_qoe
from abr.registry import get_ladder
from sim.core import SIM_PRESETS
from sim.device import DeviceProfile, get_device
from sim.resolve import DEFAULT_DEVICE, resolve_run, sim_preset


def test_names_and_objects_resolve_alike():
    by_name = resolve_run("synthetic:promptus:chunks=4", "snapdragon-8gen3", "perceptual:mu=3", "sabre")
    lad = get_ladder("synthetic:promptus:chunks=4")
    by_obj = resolve_run(lad, get_device("snapdragon-8gen3"), get_qoe("perceptual:mu=3"), SIM_PRESETS["sabre"])
    assert by_obj.ladder is lad and by_obj.config is SIM_PRESETS["sabre"] and by_name.config is SIM_PRESETS["sabre"]
    assert by_name.ladder.to_dict() == lad.to_dict() and by_name.device == by_obj.device
    assert by_name.qoe == by_obj.qoe and by_name.qoe.stall_penalty == 3.0


def test_default_device_is_the_envs():
    import sim.env

    assert sim.env.DEFAULT_DEVICE == DEFAULT_DEVICE  # until sim.env imports it from sim.resolve


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(sim="ns3"), "unknown simulator preset 'ns3'; valid: "),
        (dict(device="toaster"), "unknown device 'toaster'"),
        (dict(qoe="happiness"), "unknown QoE preset 'happiness'"),
        (dict(ladder="nope"), "unknown ladder 'nope'"),
    ],
)
def test_unknown_names(kwargs, message):
    with pytest.raises(InputError, match=message):
        resolve_run(**{"ladder": "synthetic:promptus:chunks=4", **kwargs})


def test_a_device_that_cannot_decode_a_rung_is_refused_before_the_run():
    mute = DeviceProfile("mute", {"h265": 1.0})
    with pytest.raises(InputError, match="device 'mute' has no decode time for decoder 'promptus'"):
        resolve_run("synthetic:promptus:chunks=4", mute)
    with pytest.raises(InputError, match="unknown simulator preset 'x'"):
        sim_preset("x")


def test_sweep_cells_resolve_through_it():
    from sim.sweep._cell import resolve_point
    from sim.sweep._grid import CellParams

    p = CellParams(policy="bba", ladder="synthetic:promptus:chunks=4", device="snapdragon-8gen3",
                   qoe="perceptual", traces="lte", transform="", sim="pensieve")  # fmt: skip
    _, traces, ladder, device, qoe, config = resolve_point(p, seed=0, trace_count=2)
    want = resolve_run(p.ladder, p.device, p.qoe, p.sim)
    assert ladder.to_dict() == want.ladder.to_dict() and device == want.device and qoe == want.qoe
    assert config is SIM_PRESETS["pensieve"] and len(traces) == 2

"""Names to a run: the one resolver from a ladder, device, QoE and simulator preset, each given
by name (as on the command line) or as an object, to the objects a run needs.

Used by ``sim.run``, the what-if cells (:mod:`sim.sweep`) and usable as is by the Gymnasium
env and ``sim.train``. It validates before any work starts: an unknown name raises
:class:`~abr.errors.InputError` listing the valid ones, and a device that cannot decode a rung of
the ladder is refused here rather than half-way through a run.
"""

from __future__ import annotations

from dataclasses import dataclass

from abr.errors import InputError
from abr.ladder import Ladder
from abr.qoe import QoE, get_qoe
from abr.registry import DEFAULT_LADDER, get_ladder
from sim.core import DEFAULT_SIM, SIM_PRESETS, SimConfig
from sim.device import Device, get_device

__all__ = ["DEFAULT_DEVICE", "DEFAULT_LADDER", "DEFAULT_QOE", "DEFAULT_SIM", "RunSetup", "resolve_run", "sim_preset"]

#: The device profile of a run that names none.
DEFAULT_DEVICE = "h200"
#: The QoE preset of a run that names none.
DEFAULT_QOE = "perceptual"


@dataclass(frozen=True, eq=False)
class RunSetup:
    """What a run needs besides traces and a policy."""

    ladder: Ladder
    device: Device
    qoe: QoE
    config: SimConfig


def sim_preset(name: str) -> SimConfig:
    """The simulator preset called ``name`` (:data:`sim.core.SIM_PRESETS`)."""
    if name not in SIM_PRESETS:
        raise InputError(f"unknown simulator preset {name!r}; valid: {', '.join(SIM_PRESETS)}")
    return SIM_PRESETS[name]


def resolve_run(
    ladder: Ladder | str = DEFAULT_LADDER,
    device: Device | str = DEFAULT_DEVICE,
    qoe: QoE | str = DEFAULT_QOE,
    sim: SimConfig | str = DEFAULT_SIM,
) -> RunSetup:
    """Each part from its name (objects pass through), in this order; then check that the device
    has a decode time for every decoder of the ladder.

    :raises InputError: the first unknown name or bad option, or a decoder the device lacks.
    """
    ladder = get_ladder(ladder) if isinstance(ladder, str) else ladder
    device = get_device(device) if isinstance(device, str) else device
    qoe = get_qoe(qoe) if isinstance(qoe, str) else qoe
    config = sim_preset(sim) if isinstance(sim, str) else sim
    device.decode_s(ladder)  # fail early if the device cannot decode a rung
    return RunSetup(ladder, device, qoe, config)

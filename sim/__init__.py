"""sim: the trace-driven streaming simulator (network, player, device) and its entry points.

Units: seconds, bytes, Mbit/s (network), ms per frame (device). Importing ``sim`` never
imports torch or diffusers.
"""

from sim.core import SIM_PRESETS, BatchSimulator, PlayerConfig, SimConfig, StepInfo
from sim.device import DeviceProfile, available_devices, get_device
from sim.network import NetworkConfig, TraceBank
from sim.session import SUMMARY_COLUMNS, SessionResults, run_sessions

__all__ = [
    "SIM_PRESETS",
    "SUMMARY_COLUMNS",
    "BatchSimulator",
    "DeviceProfile",
    "NetworkConfig",
    "PlayerConfig",
    "SessionResults",
    "SimConfig",
    "StepInfo",
    "TraceBank",
    "available_devices",
    "get_device",
    "run_sessions",
]

import gymnasium as _gym

# gymnasium.make("sim:promptabr/Streaming-v0") imports this module first (no prior import needed);
# make_vec steps all sessions in one call of the batched core (sim.env.StreamingVectorEnv).
if "promptabr/Streaming-v0" not in _gym.registry:
    _gym.register(
        id="promptabr/Streaming-v0",
        entry_point="sim.env:StreamingEnv",
        vector_entry_point="sim.env:StreamingVectorEnv",
    )

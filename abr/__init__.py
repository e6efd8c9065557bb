"""abr: ladders (what can be sent) and QoE (how a session is scored).

Units: seconds, bytes, kbit/s; LPIPS is dimensionless. Imports numpy only.
"""

from abr.errors import InputError, PromptabrError
from abr.ladder import (
    DEFAULT_SEVERE_LPIPS,
    Ladder,
    RungInfo,
    combine_ladders,
    concat_ladders,
    load_ladder,
    save_ladder,
)
from abr.qoe import QOE_PRESETS, QoE, get_qoe
from abr.registry import DEFAULT_LADDER, available_ladders, get_ladder
from abr.synthetic import SyntheticConfig, promptus_kbps, synthetic_ladder

__all__ = [
    "DEFAULT_LADDER",
    "DEFAULT_SEVERE_LPIPS",
    "InputError",
    "Ladder",
    "PromptabrError",
    "QOE_PRESETS",
    "QoE",
    "RungInfo",
    "SyntheticConfig",
    "available_ladders",
    "combine_ladders",
    "concat_ladders",
    "get_ladder",
    "get_qoe",
    "load_ladder",
    "promptus_kbps",
    "save_ladder",
    "synthetic_ladder",
]

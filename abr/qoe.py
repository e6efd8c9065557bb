"""Quality of experience: one definition used by the simulator, the policies and RL.

Per chunk k:  QoE_k = q_k - stall_penalty * stall_k - switch_penalty * |q_k - q_{k-1}|
(no switch term for the first chunk; ``stall_0`` is the startup delay, penalised like a
stall as in Pensieve). ``q`` depends on the preset:

========================  =====================================  ========  ========
preset                    q (unit)                               mu (1/s)  lambda
========================  =====================================  ========  ========
``perceptual``            1 - mean LPIPS of the chunk (quality)  1.0       1.0
``pensieve-linear``       nominal bitrate, Mbit/s                4.3       1.0
``pensieve-log``          ln(R / R_lowest) (Pensieve's log)      2.66      1.0
``perceptual-calibrated`` 1 - mean LPIPS of the chunk (quality)  0.15      1.0
========================  =====================================  ========  ========

The perceptual preset makes one second of stall cost as much as a perfect chunk is worth.
That is about 12 times the quality span of the default ladder, so under it every policy's best
move is never to risk a stall. ``perceptual-calibrated`` (:data:`CALIBRATED_STALL_PENALTY`)
applies Pensieve's convention to the perceptual quality range instead; see there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from abr.errors import unknown_name
from abr.ladder import Ladder

__all__ = ["CALIBRATED_STALL_PENALTY", "QoE", "QOE_PRESETS", "get_qoe"]


@dataclass(frozen=True, slots=True)
class QoE:
    """A linear QoE: chunk quality minus stall and switch penalties.

    :param name: preset name.
    :param quality: ``lpips`` (q = 1 - LPIPS), ``mbps`` (q = nominal Mbit/s) or
        ``log-rate`` (q = ln(kbps / lowest kbps)).
    :param stall_penalty: mu, quality units per second of stall.
    :param switch_penalty: lambda, per unit of |q_k - q_{k-1}|.
    """

    name: str
    quality: Literal["lpips", "mbps", "log-rate"]
    stall_penalty: float
    switch_penalty: float

    def __post_init__(self) -> None:
        if self.quality not in ("lpips", "mbps", "log-rate"):
            raise ValueError(f"QoE.quality must be lpips, mbps or log-rate, got {self.quality!r}")
        if self.stall_penalty < 0 or self.switch_penalty < 0:
            raise ValueError("QoE penalties must be non-negative")

    def chunk_quality(self, ladder: Ladder) -> np.ndarray:
        """q for every chunk and rung, shape ``(chunks, rungs)``."""
        if self.quality == "lpips":
            return 1.0 - ladder.lpips_mean
        kbps = np.broadcast_to(ladder.kbps, (ladder.n_chunks, ladder.n_rungs))
        if self.quality == "mbps":
            return kbps / 1000.0
        return np.log(kbps / ladder.kbps.min())

    def reward(self, q: np.ndarray, stall_s: np.ndarray, prev_q: np.ndarray) -> np.ndarray:
        """QoE of chunks with quality ``q`` after a chunk of quality ``prev_q``.

        ``prev_q`` is NaN where there is no previous chunk (no switch penalty). Broadcasts.
        """
        switch = np.abs(q - prev_q)
        switch = np.where(np.isnan(switch), 0.0, switch)
        return q - self.stall_penalty * stall_s - self.switch_penalty * switch


QOE_PRESETS: dict[str, QoE] = {
    q.name: q
    for q in (
        QoE("perceptual", "lpips", stall_penalty=1.0, switch_penalty=1.0),
        QoE("pensieve-linear", "mbps", stall_penalty=4.3, switch_penalty=1.0),
        QoE("pensieve-log", "log-rate", stall_penalty=2.66, switch_penalty=1.0),
    )
}


# ---- perceptual-calibrated: Pensieve's stall convention carried over to the LPIPS quality range ----
#: Stall weight of ``perceptual-calibrated``, per second, in units of q = 1 - LPIPS.
#: Basis: Pensieve's linear QoE (Mao et al., SIGCOMM 2017) scores q in Mbit/s over its ladder
#: 0.3-4.3 Mbit/s (a 14.3x rate range) with 4.3 per second of stall: one second of stall costs
#: 4.3 / 4.0 = 1.075 times the ladder's quality span. Our reference for the span is the measured
#: H.265 ladder (``h265-measured``: 50-750 kbit/s, a 15x range, 512x512, LPIPS(alex)), whose
#: chunks span 0.139 in mean LPIPS between its lowest and highest rung. So mu = 1.075 x 0.139 =
#: 0.150 per second (rounded). One second of stall then costs about as much as dropping from the
#: best to the worst rung for one chunk, as in Pensieve, instead of 12 ladder spans.
CALIBRATED_STALL_PENALTY = 0.15
QOE_PRESETS["perceptual-calibrated"] = QoE(
    "perceptual-calibrated", "lpips", stall_penalty=CALIBRATED_STALL_PENALTY, switch_penalty=1.0
)


def get_qoe(name: str) -> QoE:
    """The QoE preset called ``name``."""
    try:
        return QOE_PRESETS[name]
    except KeyError:
        raise unknown_name("QoE preset", name, QOE_PRESETS) from None

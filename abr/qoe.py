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
``pensieve-hd``           Pensieve's HD score of the bitrate     8.0       1.0
========================  =====================================  ========  ========

The perceptual preset makes one second of stall cost as much as a perfect chunk is worth.
That is about 12 times the quality span of the default ladder, so under it every policy's best
move is never to risk a stall. ``perceptual-calibrated`` (:data:`CALIBRATED_STALL_PENALTY`)
applies Pensieve's convention to the perceptual quality range instead; see there.

Pensieve's HD score maps 300, 750, 1200, 1850, 2850, 4300 kbit/s to 1, 2, 3, 12, 15, 20
(``sim/rl_test.py``'s ``BITRATE_REWARD``); other bitrates are interpolated linearly between
those points (clamped at the ends).

``get_qoe("NAME:key=value,...")`` overrides a preset's weights: ``stall_penalty`` (alias
``mu``) and ``switch_penalty`` (alias ``lambda``), e.g. ``pensieve-linear:mu=2.66``.

A ladder imported without perceptual quality (NaN LPIPS, e.g. from Pensieve or Sabre) cannot
be scored by the ``lpips`` quality; :meth:`QoE.chunk_quality` then refuses with a message
naming the bitrate presets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from abr.errors import InputError, unknown_name
from abr.ladder import Ladder
from abr.options import parse_options

__all__ = ["CALIBRATED_STALL_PENALTY", "QoE", "QOE_PRESETS", "get_qoe"]


@dataclass(frozen=True, slots=True)
class QoE:
    """A linear QoE: chunk quality minus stall and switch penalties.

    :param name: preset name.
    :param quality: ``lpips`` (q = 1 - LPIPS), ``mbps`` (q = nominal Mbit/s) or
        ``log-rate`` (q = ln(kbps / lowest kbps)) or ``hd`` (Pensieve's HD score of the bitrate).
    :param stall_penalty: mu, quality units per second of stall.
    :param switch_penalty: lambda, per unit of |q_k - q_{k-1}|.
    """

    name: str
    quality: Literal["lpips", "mbps", "log-rate", "hd"]
    stall_penalty: float
    switch_penalty: float

    def __post_init__(self) -> None:
        if self.quality not in ("lpips", "mbps", "log-rate", "hd"):
            raise ValueError(f"QoE.quality must be lpips, mbps, log-rate or hd, got {self.quality!r}")
        if not (math.isfinite(self.stall_penalty) and math.isfinite(self.switch_penalty)):
            raise ValueError("QoE penalties must be finite")
        if self.stall_penalty < 0 or self.switch_penalty < 0:
            raise ValueError("QoE penalties must be non-negative")

    def chunk_quality(self, ladder: Ladder) -> np.ndarray:
        """q for every chunk and rung, shape ``(chunks, rungs)``."""
        if self.quality == "lpips":
            if not np.all(np.isfinite(ladder.lpips_mean)):
                bitrate = ", ".join(n for n, q in QOE_PRESETS.items() if q.quality != "lpips")
                raise InputError(
                    f"ladder {ladder.name!r} has no perceptual quality (LPIPS), so QoE {self.name!r} cannot score it; "
                    f"use a bitrate QoE: {bitrate}"
                )
            return 1.0 - ladder.lpips_mean
        kbps = np.broadcast_to(ladder.kbps, (ladder.n_chunks, ladder.n_rungs))
        if self.quality == "mbps":
            return kbps / 1000.0
        if self.quality == "hd":
            return np.interp(kbps, _HD_KBPS, _HD_SCORE)
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
#: H.265 ladder (``h265-measured``: 50-750 kbit/s, a 15x range, 512x512, LPIPS(alex), two-pass
#: ABR), whose chunks span 0.093 in mean LPIPS between its lowest and highest rung. So mu =
#: 1.075 x 0.093 = 0.100 per second (rounded). One second of stall then costs about as much as
#: dropping from the best to the worst rung for one chunk, as in Pensieve, instead of the 11
#: ladder spans that ``perceptual`` charges. (Before the two-pass rebuild the ladder spanned 0.139
#: and this weight was 0.15.)
CALIBRATED_STALL_PENALTY = 0.10
QOE_PRESETS["perceptual-calibrated"] = QoE(
    "perceptual-calibrated", "lpips", stall_penalty=CALIBRATED_STALL_PENALTY, switch_penalty=1.0
)


# ---- peer presets (issue 15): Pensieve's HD QoE ----------------------------------------
#: Pensieve's HD score (``BITRATE_REWARD``) at its six bitrates (kbit/s).
_HD_KBPS = (300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0)
_HD_SCORE = (1.0, 2.0, 3.0, 12.0, 15.0, 20.0)
QOE_PRESETS["pensieve-hd"] = QoE("pensieve-hd", "hd", stall_penalty=8.0, switch_penalty=1.0)


@dataclass(frozen=True)
class _Weights:
    """The QoE weights a ``NAME:key=value`` spec may override (aliases ``mu``, ``lambda``)."""

    stall_penalty: float = 0.0
    switch_penalty: float = 0.0


_WEIGHT_ALIASES = {"mu": "stall_penalty", "lambda": "switch_penalty"}


def get_qoe(name: str) -> QoE:
    """The QoE preset called ``name``, or ``NAME:key=value,...`` with its weights overridden
    (keys ``stall_penalty``/``mu``, ``switch_penalty``/``lambda``)."""
    base, sep, options = name.partition(":")
    try:
        qoe = QOE_PRESETS[base]
    except KeyError:
        raise unknown_name("QoE preset", base, QOE_PRESETS) from None
    if not sep:
        return qoe
    changes = parse_options(_Weights, options, f"QoE {name!r}", aliases=_WEIGHT_ALIASES)
    for key, x in changes.items():
        if x < 0:
            raise InputError(f"QoE {name!r}: option {key!r} must be >= 0, got {x:g}")
    return replace(qoe, name=name, **changes)

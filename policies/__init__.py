"""policies: ABR controllers behind one small interface (:class:`Policy`).

========================  ==========================================================
name                      policy
========================  ==========================================================
``fixed``                 always one rung
``bba``                   BBA-0 buffer map (reservoir / cushion)
``rate``                  harmonic mean of recent throughput (Pensieve's rate-based)
``throughput``            Sabre's throughput rule (EWMA, insufficient-buffer rule, abandonment)
``bola``                  BOLA-BASIC, BOLA-O or BOLA-U (``variant=basic|o|u``)
``bola-e``                BOLA-E (placeholder buffer, insufficient-buffer rule, abandonment)
``dynamic``               BOLA / throughput switch with hysteresis
``mpc``, ``robustmpc``    model predictive control over 5 chunks, decode time included
========================  ==========================================================

``decode_aware=true`` on ``mpc``, ``robustmpc`` and ``bola`` plans with the decode times the
session's past chunks predict and prices the start-up decode (:mod:`policies.decode`); the
default plans with the device profile's nominal figures only.

The oracle bound (future trace known) is :func:`sim.oracle.oracle_sessions`.
"""

from policies.base import DownloadProgress, Observation, Policy, PolicyContext
from policies.bba import BBA
from policies.bola import BOLA, BOLAE
from policies.dynamic import Dynamic
from policies.fixed import Fixed
from policies.mpc import MPC, RobustMPC
from policies.rate import RateBased, Throughput
from policies.registry import POLICIES, describe_policies, get_policy

__all__ = [
    "BBA",
    "BOLA",
    "BOLAE",
    "MPC",
    "POLICIES",
    "DownloadProgress",
    "Dynamic",
    "Fixed",
    "Observation",
    "Policy",
    "PolicyContext",
    "RateBased",
    "RobustMPC",
    "Throughput",
    "describe_policies",
    "get_policy",
]

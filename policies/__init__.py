"""policies: ABR controllers behind one small interface (:class:`Policy`)."""

from policies.base import Observation, Policy, PolicyContext
from policies.heuristics import BBA, BOLA, Fixed, RateBased
from policies.registry import POLICIES, get_policy

__all__ = ["BBA", "BOLA", "Fixed", "Observation", "POLICIES", "Policy", "PolicyContext", "RateBased", "get_policy"]

"""The classic heuristic policies in one import (each lives in its own module).

Kept for existing imports: ``from policies.heuristics import BBA, BOLA, Fixed, RateBased``.
"""

from policies.bba import BBA
from policies.bola import BOLA, BOLAE
from policies.dynamic import Dynamic
from policies.fixed import Fixed
from policies.rate import RateBased, Throughput
from policies.rules import best_within, cheapest_at_least

__all__ = ["BBA", "BOLA", "BOLAE", "Dynamic", "Fixed", "RateBased", "Throughput", "best_within", "cheapest_at_least"]

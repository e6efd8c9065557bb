"""Policies by name, with ``name:key=value,...`` overrides from the command line."""

from __future__ import annotations

from abr.errors import unknown_name
from policies.base import Policy, parse_params
from policies.heuristics import BBA, BOLA, Fixed, RateBased

__all__ = ["POLICIES", "get_policy"]

POLICIES: dict[str, type[Policy]] = {cls.name: cls for cls in (Fixed, BBA, RateBased, BOLA)}


def get_policy(spec: str) -> Policy:
    """``bola`` or ``bola:gamma=5,qmax=25`` -> a policy instance."""
    name, _, options = spec.partition(":")
    if name not in POLICIES:
        raise unknown_name("policy", name, POLICIES)
    cls = POLICIES[name]
    params = parse_params(cls.Params, options, f"policy {name!r}") if cls.Params is not None else None
    if cls.Params is None and options:
        raise unknown_name(f"option for policy {name!r} (it takes none):", options, [])
    policy = cls(params)
    policy.label = spec
    return policy

"""Policies by name, with ``name:key=value,...`` overrides from the command line.

The oracle is not a policy (it needs the future trace): it is :func:`sim.oracle.oracle_sessions`.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from importlib import import_module

from abr.errors import unknown_name
from abr.options import build_options, split_spec
from policies.base import Policy
from policies.bba import BBA
from policies.bola import BOLA, BOLAE
from policies.dynamic import Dynamic
from policies.fixed import Fixed
from policies.mpc import MPC, RobustMPC
from policies.rate import RateBased, Throughput

__all__ = ["LOADED_POLICIES", "POLICIES", "describe_policies", "get_policy"]

POLICIES: dict[str, type[Policy]] = {
    cls.name: cls for cls in (Fixed, BBA, RateBased, Throughput, BOLA, BOLAE, Dynamic, MPC, RobustMPC)
}

#: Policies loaded from a path (``rl:DIR``, a model trained by ``python -m sim.train``): name ->
#: ``module:function(options) -> Policy``, imported on first use so ``import policies`` never imports torch.
LOADED_POLICIES: dict[str, str] = {"rl": "policies.rl:load_rl_policy"}


def get_policy(spec: str) -> Policy:
    """``bola`` or ``bola:gamma=5,qmax=25`` -> a policy instance."""
    name, options = split_spec(spec)
    if name in LOADED_POLICIES:
        module, _, func = LOADED_POLICIES[name].partition(":")
        policy = getattr(import_module(module), func)(options)
        policy.label = spec
        return policy
    if name not in POLICIES:
        raise unknown_name("policy", name, {**POLICIES, **LOADED_POLICIES})
    cls = POLICIES[name]
    params = build_options(cls.Params, options, f"policy {spec!r}") if cls.Params is not None else None
    if cls.Params is None and options:
        raise unknown_name(f"option for policy {name!r} (it takes none):", options, [])
    policy = cls(params)
    policy.label = spec
    return policy


def describe_policies() -> str:
    """One line per policy: name, first docstring line and options with defaults (for ``--help``)."""
    lines = []
    for name, cls in POLICIES.items():
        para = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        doc = para.split(". ")[0].rstrip(".") + "."
        opts = ""
        if cls.Params is not None:
            opts = ",".join(f"{f.name}={f.default}" for f in fields(cls.Params) if f.default is not MISSING)
        lines.append(f"{name}: {doc}" + (f" [{opts}]" if opts else ""))
    return "\n".join(lines)

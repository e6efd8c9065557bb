"""Runners: a ``--policy`` spec turned into a function that runs sessions. A registered policy runs
through :func:`sim.session.run_sessions`; a bound (the oracle, which sees the future trace and is
not a policy) through its own search. Kept apart from :mod:`sim.session` so that the oracle, which
replays its schedules through ``run_sessions``, is imported by this module and never by that one.
"""

from __future__ import annotations

import functools

from abr.options import build_options, split_spec
from policies.registry import get_policy
from sim.oracle import ORACLE_LABEL, OracleGrid, oracle_sessions
from sim.session import run_sessions

__all__ = ["BOUNDS", "resolve_runner"]


def _oracle(options: str):
    label = f"oracle:{options} (bound)" if options else ORACLE_LABEL  # distinct options: distinct rows
    grid = build_options(OracleGrid, options, f"oracle {'oracle:' + options!r}")
    return functools.partial(oracle_sessions, grid=grid, label=label)


#: Bounds that run like policies but are not policies (they see the future trace): name ->
#: builder, from the option string, of a function with :func:`run_sessions`'s signature minus
#: the policy. ``oracle`` or ``oracle:position_s=0.2,max_states=1000`` (:mod:`sim.oracle`).
BOUNDS = {"oracle": _oracle}


def resolve_runner(spec: str):
    """``spec`` -> ``run(traces, ladder, device, qoe, *, config, sessions, seed, session_ids)``:
    a registered policy run by :func:`run_sessions`, or a bound of :data:`BOUNDS`."""
    name, options = split_spec(spec)
    if name in BOUNDS:
        return BOUNDS[name](options)
    return functools.partial(run_sessions, get_policy(spec))

"""``python -m sim.train``: train a learned ABR policy with stable-baselines3.

Example::

    python -m sim.train --algo ppo --trace lte --steps 200000 --out runs/ppo-lte
    python -m sim.run --policy rl:runs/ppo-lte --policy bola --trace lte --seed 7

A thin entry point: the options are :class:`sim.train_config.TrainConfig` (``--config`` starts
from a saved ``config.json``, a scenario fills its parts, flags override), the work is
:func:`sim.trainer.train` (see there for the files written, checkpoints and ``--resume``).
``train``, ``evaluate`` and ``TrainResult`` are re-exported from :mod:`sim.trainer` on first use,
so importing this module (and ``--help``) needs no torch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from abr.errors import InputError, cli_main
from policies.algorithms import ALGORITHMS, algorithm_class
from sim.scenarios import describe_scenarios, scenario_config
from sim.train_config import SELECT, TrainConfig, load_config

__all__ = ["ALGORITHMS", "TrainConfig", "algorithm_class", "build_parser", "load_config", "main"]

_LAZY = ("train", "evaluate", "TrainResult")


def __getattr__(name: str) -> Any:
    """``train``, ``evaluate`` and ``TrainResult`` from :mod:`sim.trainer`, imported on first use."""
    if name in _LAZY:
        from sim import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    S = argparse.SUPPRESS
    p = argparse.ArgumentParser(
        prog="python -m sim.train",
        description="Train a learned ABR policy (stable-baselines3) on the batched simulator.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Then: python -m sim.run --policy rl:DIR --trace ...   (DIR = the --out folder)\n"
        "scenarios (--scenario NAME: its train split, ladder, device, QoE, simulator; flags override):\n  "
        + describe_scenarios().replace("\n", "\n  "),
        argument_default=S,
    )
    p.add_argument("--scenario", metavar="NAME", help="train on a named scenario (see below)")
    p.add_argument("--algo", choices=list(ALGORITHMS), help=f"RL algorithm (default: {d.algo})")
    p.add_argument(
        "--trace",
        dest="traces",
        action="append",
        metavar="SPEC",
        help="training traces: model name, file, folder or glob; repeat to pool (default: lte)",
    )
    p.add_argument(
        "--eval-trace",
        dest="eval_traces",
        action="append",
        metavar="SPEC",
        help="validation traces (default: hold out --val-fraction of the training traces)",
    )
    p.add_argument("--val-fraction", type=float, help=f"held-out share of training traces (default: {d.val_fraction})")
    p.add_argument("--test-fraction", type=float, help=f"share of files in SPEC@test (default: {d.test_fraction})")
    p.add_argument("--split-seed", type=int, help=f"seed of the @train/@test split (default: {d.split_seed})")
    p.add_argument("--trace-count", type=int, help=f"traces drawn from a network model (default: {d.trace_count})")
    p.add_argument("--format", dest="trace_format", help="force the trace file format")
    p.add_argument("--trace-unit", dest="trace_unit", help="value unit of cooked files (default: from the data)")
    p.add_argument("--transform", metavar="K=V,...",
                   help="what-if transforms of the training and validation traces as one spec, e.g. "
                        "scale=0.03125,cap=3 (the flags below say the same, as in sim.run)")
    from traces.cli import add_whatif_arguments

    add_whatif_arguments(p, p.add_argument_group("what-if (training and validation traces, in order)"))
    p.add_argument("--ladder", help=f"ladder name or file (default: {d.ladder})")
    p.add_argument("--device", help=f"device profile (default: {d.device})")
    p.add_argument("--qoe", help=f"QoE preset, the reward (default: {d.qoe})")
    p.add_argument("--sim", help=f"simulator preset (default: {d.sim})")
    p.add_argument("--steps", type=int, help=f"environment steps (default: {d.steps})")
    p.add_argument("--n-envs", type=int, help=f"sessions stepped together (default: {d.n_envs})")
    p.add_argument("--seed", type=int, help=f"seed (default: {d.seed})")
    p.add_argument("--eval-every", type=int, help=f"steps between validation runs (default: {d.eval_every})")
    p.add_argument("--eval-sessions", type=int, help="validation sessions (default: one per validation trace)")
    p.add_argument(
        "--select-by", choices=list(SELECT), help=f"validation score of the best model (default: {d.select_by})"
    )
    p.add_argument("--frame-stack", type=int, help="stack this many past observations (default: 1)")
    p.add_argument("--imitate", metavar="POLICY", help="clone this policy (e.g. mpc) before RL (PPO/A2C)")
    p.add_argument("--imitate-episodes", type=int, help=f"expert episodes per env (default: {d.imitate_episodes})")
    p.add_argument("--imitate-epochs", type=int, help=f"passes over the expert samples (default: {d.imitate_epochs})")
    p.add_argument("--lookahead", type=int, help="upcoming chunks whose qualities the agent sees (default: 1)")
    p.add_argument(
        "--start-rung",
        type=int,
        metavar="R",
        help="fetch the first chunk at rung R before the agent acts (default: the agent picks it)",
    )
    p.add_argument(
        "--no-normalize-obs", dest="normalize_obs", action="store_false", help="no observation normalisation"
    )
    p.add_argument(
        "--no-normalize-reward", dest="normalize_reward", action="store_false", help="no running reward normalisation"
    )
    p.add_argument("--reward-scale", type=float, help="multiply rewards (default: 1)")
    p.add_argument("--reward-center", action="store_true",
                   help="subtract a running mean of the per-chunk reward across sessions (reward centering)")
    p.add_argument("--curriculum", metavar="POLICY",
                   help="Genet-style trace selection: draw more often the training traces where the policy "
                        "trails this baseline (e.g. robustmpc:decode_aware=1)")
    p.add_argument("--curriculum-mix", type=float, help=f"share of the draw that follows the gap "
                   f"(default: {d.curriculum_mix})")  # fmt: skip
    p.add_argument(
        "--net",
        dest="net_arch",
        metavar="N,N",
        type=lambda v: tuple(int(x) for x in v.split(",")),
        help="hidden layer sizes (default: 64,64)",
    )
    p.add_argument("--lr", dest="learning_rate", type=float, help="learning rate (default: per algorithm)")
    p.add_argument("--n-steps", type=int, help="rollout length per env, PPO/A2C (default: per algorithm)")
    p.add_argument("--batch-size", type=int, help="minibatch size, PPO/DQN (default: per algorithm)")
    p.add_argument("--epochs", dest="n_epochs", type=int, help="epochs per rollout, PPO (default: 4)")
    p.add_argument("--gamma", type=float, help="discount (default: 0.99)")
    p.add_argument("--ent-coef", type=float, help="entropy bonus, PPO/A2C (default: 0.01)")
    p.add_argument("--threads", dest="torch_threads", type=int, help="torch CPU threads (default: 1)")
    p.add_argument("--config", type=Path, help="start from a saved config.json (flags override it)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--time-limit-min", type=float, help="stop after this many minutes of training")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--quiet", dest="progress", action="store_false", help=S)  # the --no-progress alias (abr.flags)
    p.add_argument("--tensorboard", metavar="DIR", type=Path,
                   help="also log to TensorBoard in DIR (needs: pip install tensorboard)")
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    out, resume, progress = args.pop("out"), args.pop("resume", False), args.pop("progress", True)
    limit_min = args.pop("time_limit_min", None)
    tensorboard = args.pop("tensorboard", None)
    base = load_config(args.pop("config")).to_dict() if "config" in args else {}
    if resume and not base and (out / "config.json").is_file():
        base = load_config(out / "config.json").to_dict()
    flags = args.pop("trace_transforms", [])
    base.update(scenario_config(args.pop("scenario", None)))
    base.update(args)
    if flags:  # a what-if flag replaces the transform of the same key (of --transform or the scenario)
        from abr.options import split_options
        from sim.scenarios import merge_transforms
        from traces.transforms import format_pairs

        given = split_options(base.get("transform", ""), "--transform", bare=True)
        base["transform"] = format_pairs(merge_transforms(tuple(given), flags))
    try:
        cfg = TrainConfig.from_dict(base, where="command line")
    except InputError as exc:  # name the flag, not the field: "TrainConfig.learning_rate" -> "--lr"
        msg = str(exc)
        for action in parser._actions:
            if action.option_strings and f"TrainConfig.{action.dest} " in msg:
                msg = msg.replace(f"command line: TrainConfig.{action.dest}", action.option_strings[0])
        raise InputError(msg) from None
    if limit_min is not None and not limit_min > 0:
        raise InputError(f"--time-limit-min must be > 0, got {limit_min}")
    limit_s = None if limit_min is None else 60.0 * limit_min
    from sim.trainer import train

    res = train(cfg, out, resume=resume, progress=progress, time_limit_s=limit_s, tensorboard=tensorboard)
    best = res.best
    print(
        f"trained {res.timesteps} steps in {res.wall_s:.1f} s ({res.steps_per_s:.0f} steps/s); best validation "
        f"QoE {best.get('qoe_mean', float('nan')):.4f} (p10 {best.get('qoe_p10', float('nan')):.4f}) "
        f"at {best.get('timesteps')} steps -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

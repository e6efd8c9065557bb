"""The examples run: CleanRL-style PPO on the Gymnasium vector env, a few hundred steps."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_cleanrl_ppo_trains_on_make_vec(one_torch_thread, capsys):
    ppo = _load("cleanrl_ppo")
    ppo.main(["--num-envs", "8", "--num-steps", "16", "--total-steps", "384", "--update-epochs", "2",
              "--ladder", "synthetic:promptus:chunks=10", "--trace", "lte"])  # fmt: skip
    out = dict(kv.split("=") for kv in capsys.readouterr().out.split())
    assert int(out["steps"]) == 384
    assert int(out["episodes"]) >= 8 * 3  # 48 steps per env over 11-step episodes (10 chunks + autoreset)
    assert math.isfinite(float(out["qoe_mean_recent"])) and float(out["steps_per_s"]) > 0
    with pytest.raises(SystemExit):
        ppo.main(["--num-envs", "0"])

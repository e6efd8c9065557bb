"""policies.algorithms pinned: the RL algorithm names and their stable-baselines3 classes."""

from __future__ import annotations

import pytest

from abr.errors import InputError
from policies.algorithms import ALGORITHMS, algorithm_class

sb3 = pytest.importorskip("stable_baselines3", reason="stable-baselines3 is not installed")


def test_algorithm_names_are_the_stable_baselines3_classes():
    assert ALGORITHMS == {"ppo": "PPO", "a2c": "A2C", "dqn": "DQN"}
    assert algorithm_class("ppo") is sb3.PPO
    assert algorithm_class("a2c") is sb3.A2C
    assert algorithm_class("dqn") is sb3.DQN


@pytest.mark.parametrize("name", ["sac", "PPO", ""])
def test_unknown_algorithm_is_one_clear_error(name):
    with pytest.raises(InputError) as e:
        algorithm_class(name)
    assert str(e.value) == f"unknown RL algorithm {name!r}; valid names: a2c, dqn, ppo"

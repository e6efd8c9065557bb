"""The RL algorithms a learned policy can come from, by name (stable-baselines3 classes, imported
only when asked for, so that importing the policies does not import torch)."""

from __future__ import annotations

from abr.errors import unknown_name

__all__ = ["ALGORITHMS", "algorithm_class"]

#: RL algorithms by name: their stable-baselines3 class names.
ALGORITHMS: dict[str, str] = {"ppo": "PPO", "a2c": "A2C", "dqn": "DQN"}


def algorithm_class(name: str):
    """The stable-baselines3 class of algorithm ``name`` (imports torch)."""
    import stable_baselines3

    if name not in ALGORITHMS:
        raise unknown_name("RL algorithm", name, ALGORITHMS)
    return getattr(stable_baselines3, ALGORITHMS[name])

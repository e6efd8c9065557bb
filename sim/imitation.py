"""Behaviour cloning: start an actor-critic model from an expert policy's decisions.

RL from scratch has to find, by trial, what a planner like MPC computes outright (on the
default ladder MPC's rung path under ample bandwidth is the exact optimum, which 15 minutes of
PPO do not find); starting from the expert's behaviour leaves RL the part the expert gets wrong.
:func:`clone_expert` rolls the expert through the training environment, then fits the
model's actor to its decisions (cross-entropy) and the critic to the discounted returns of
those rollouts (mean squared error), on the observations and rewards the model itself will
see (frame stacking and ``VecNormalize`` included, normalised with the statistics reached at
the end of the collection). Used by ``python -m sim.train --imitate SPEC``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CloneResult", "clone_expert", "collect_expert", "discounted_returns"]


@dataclass(frozen=True, slots=True)
class CloneResult:
    """What cloning did: samples seen, final losses, and how often the actor agrees with the expert."""

    samples: int
    policy_loss: float
    value_loss: float
    agreement: float


def collect_expert(
    expert, env, venv, episodes: int, *, progress: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run ``expert`` for ``episodes`` episodes of every environment of ``venv``.

    :param expert: a :class:`policies.base.Policy` (acts on raw observations).
    :param env: the :class:`sim.vecenv.BatchVecEnv` at the bottom of ``venv``.
    :param venv: the (wrapped) env the model trains on; a ``VecNormalize`` in it updates its
        statistics as in training.
    :param progress: show a progress bar (chunks of every environment played).
    :returns: shaped ``(episode, step, env, ...)``: the model's inputs before normalisation,
        the expert's actions and the rewards before normalisation.
    """
    from abr.flags import progress_bar

    obs_out, act_out, rew_out = [], [], []
    obs = venv.reset()
    bar = progress_bar(episodes * env.sim.ladder.n_chunks, desc=f"expert {getattr(expert, 'label', expert.name)}",
                       unit="chunk", enabled=progress)  # fmt: skip
    for _ in range(episodes):
        expert.reset(env.sim.context, env.num_envs)
        ep_obs, ep_act, ep_rew = [], [], []
        done = False
        while not done:
            actions = np.asarray(expert.act(env.observation), dtype=np.int64)
            ep_obs.append(_unnormalized(venv, obs))
            ep_act.append(actions)
            obs, rewards, dones, _ = venv.step(actions)
            ep_rew.append(venv.get_original_reward() if _is_normalizer(venv) else rewards)
            done = bool(dones.all())
            bar.update(1)
        obs_out.append(ep_obs)
        act_out.append(ep_act)
        rew_out.append(ep_rew)
    bar.close()
    return np.array(obs_out, dtype=np.float32), np.array(act_out, dtype=np.int64), np.array(rew_out, dtype=np.float64)


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """Return from every step to its episode's end; ``rewards`` shaped ``(episode, step, ...)``."""
    out = np.empty_like(rewards, dtype=np.float64)
    acc = np.zeros(rewards.shape[:1] + rewards.shape[2:])
    for t in range(rewards.shape[1] - 1, -1, -1):
        acc = rewards[:, t] + gamma * acc
        out[:, t] = acc
    return out


def _is_normalizer(venv) -> bool:
    from stable_baselines3.common.vec_env import VecNormalize

    return isinstance(venv, VecNormalize)


def _unnormalized(venv, obs: np.ndarray) -> np.ndarray:
    """``obs`` as it was before ``VecNormalize`` (after any frame stacking)."""
    return venv.get_original_obs() if _is_normalizer(venv) else obs


def clone_expert(
    model,
    expert,
    env,
    venv,
    *,
    episodes: int,
    epochs: int,
    batch_size: int = 1024,
    learning_rate: float = 1e-3,
    seed: int = 0,
    progress: bool = False,
) -> CloneResult:
    """Fit ``model``'s actor to ``expert``'s decisions and its critic to their returns.

    :param model: an SB3 actor-critic model (PPO, A2C) built on ``venv``.
    :param episodes: expert episodes of every environment to learn from.
    :param epochs: passes over the collected samples.
    """
    import torch

    obs, actions, rewards = collect_expert(expert, env, venv, episodes, progress=progress)
    if _is_normalizer(venv):  # with the statistics as they stand after the whole collection
        obs, rewards = venv.normalize_obs(obs), venv.normalize_reward(rewards)
    returns = discounted_returns(rewards, float(getattr(model, "gamma", 0.99)))
    x = torch.as_tensor(obs.reshape(-1, obs.shape[-1]), dtype=torch.float32)
    a = torch.as_tensor(actions.reshape(-1), dtype=torch.int64)
    g = torch.as_tensor(returns.reshape(-1), dtype=torch.float32)
    policy = model.policy
    policy.set_training_mode(True)
    opt = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    rng = np.random.default_rng(seed)
    n = len(a)
    pl = vl = float("nan")
    for _ in range(epochs):
        order = torch.as_tensor(rng.permutation(n))
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            values, log_prob, _ = policy.evaluate_actions(x[idx], a[idx])
            p_loss = -log_prob.mean()
            v_loss = torch.nn.functional.mse_loss(values.flatten(), g[idx])
            opt.zero_grad()
            (p_loss + 0.5 * v_loss).backward()
            opt.step()
            pl, vl = float(p_loss.detach()), float(v_loss.detach())
    policy.set_training_mode(False)
    with torch.no_grad():
        chosen = policy.get_distribution(x).distribution.probs.argmax(dim=1)
    return CloneResult(n, pl, vl, float((chosen == a).float().mean()))

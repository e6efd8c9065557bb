"""CleanRL-style PPO in plain PyTorch on ``gymnasium.make_vec("sim:promptabr/Streaming-v0")``.

A single-file PPO (clipped objective, GAE, minibatch epochs), as CleanRL's ``ppo.py`` writes
it, driving the Gymnasium vector env that steps all sessions in one call of the batched core.
It shows the env works with a plain Gymnasium training loop, with ``NEXT_STEP`` autoreset:
the step after an episode's last chunk starts the next episode, so that transition (reward
0, actions ignored) is masked out of the update.

    python examples/cleanrl_ppo.py --num-envs 64 --total-steps 200000 --trace lte
    python examples/cleanrl_ppo.py --help

Prints steps per second and the mean episode QoE of the last episodes.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


@dataclass(frozen=True)
class Args:
    """PPO settings (CleanRL's names and defaults where they apply)."""

    num_envs: int = 64
    num_steps: int = 64  # rollout length per env
    total_steps: int = 100_000
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 4
    clip_coef: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    seed: int = 0
    torch_threads: int = 1  # more threads only contend on a small batch
    trace: str = "lte"
    ladder: str = "promptus-paper-model*4"
    device: str = "h200"
    qoe: str = "perceptual"


class Agent(nn.Module):
    def __init__(self, n_obs: int, n_actions: int, hidden: int = 64):
        super().__init__()
        self.critic = nn.Sequential(nn.Linear(n_obs, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                    nn.Linear(hidden, 1))  # fmt: skip
        self.actor = nn.Sequential(nn.Linear(n_obs, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                   nn.Linear(hidden, n_actions))  # fmt: skip

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x).squeeze(-1)

    def act(self, x: torch.Tensor, action: torch.Tensor | None = None):
        dist = torch.distributions.Categorical(logits=self.actor(x))
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), self.value(x)


def train(args: Args, **env_kwargs) -> dict[str, float]:
    """Run PPO; returns steps/s (env steps, updates included) and the mean QoE of recent episodes.

    ``env_kwargs`` override the env's arguments (e.g. ``trace=`` a list of Trace objects).
    """
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.torch_threads)
    world = {"trace": args.trace, "ladder": args.ladder, "device": args.device, "qoe": args.qoe, **env_kwargs}
    envs = gym.make_vec("sim:promptabr/Streaming-v0", num_envs=args.num_envs, **world)
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    n, t_len = args.num_envs, args.num_steps
    n_obs, n_act = envs.single_observation_space.shape[0], int(envs.single_action_space.n)
    agent = Agent(n_obs, n_act)
    opt = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)
    obs_buf = torch.zeros((t_len, n, n_obs))
    act_buf = torch.zeros((t_len, n), dtype=torch.long)
    logp_buf, rew_buf, val_buf = torch.zeros((t_len, n)), torch.zeros((t_len, n)), torch.zeros((t_len, n))
    done_buf, valid_buf = torch.zeros((t_len, n)), torch.zeros((t_len, n))

    obs_np, _ = envs.reset(seed=args.seed)
    obs = torch.as_tensor(obs_np)
    next_done = torch.zeros(n)  # the last step ended an episode: the next step is an autoreset
    returns_seen: list[float] = []
    steps, t0 = 0, time.perf_counter()
    while steps < args.total_steps:
        for t in range(t_len):
            obs_buf[t] = obs
            valid_buf[t] = 1.0 - next_done  # an autoreset step is not a transition of the policy
            with torch.no_grad():
                action, logp, _, value = agent.act(obs)
            act_buf[t], logp_buf[t], val_buf[t] = action, logp, value
            obs_np, reward, term, trunc, info = envs.step(action.numpy())
            rew_buf[t] = torch.as_tensor(reward, dtype=torch.float32)
            next_done = torch.as_tensor(np.logical_or(term, trunc), dtype=torch.float32)
            done_buf[t] = next_done
            obs = torch.as_tensor(obs_np)
            if "episode" in info:
                returns_seen.extend((info["episode"]["r"] / info["episode"]["l"])[info["_episode"]].tolist())
            steps += n
        # GAE over the rollout; an episode's last step bootstraps nothing
        with torch.no_grad():
            next_value = agent.value(obs)
            adv = torch.zeros((t_len, n))
            last = torch.zeros(n)
            for t in reversed(range(t_len)):
                nv = next_value if t == t_len - 1 else val_buf[t + 1]
                nonterminal = 1.0 - done_buf[t]
                delta = rew_buf[t] + args.gamma * nv * nonterminal - val_buf[t]
                last = delta + args.gamma * args.gae_lambda * nonterminal * last
                adv[t] = last
            ret = adv + val_buf
        keep = valid_buf.reshape(-1) > 0
        b_obs, b_act = obs_buf.reshape(-1, n_obs)[keep], act_buf.reshape(-1)[keep]
        b_logp, b_adv, b_ret = logp_buf.reshape(-1)[keep], adv.reshape(-1)[keep], ret.reshape(-1)[keep]
        size = len(b_act)
        mb = max(1, size // args.num_minibatches)
        for _ in range(args.update_epochs):
            order = torch.randperm(size)
            for start in range(0, size, mb):
                idx = order[start : start + mb]
                _, logp, entropy, value = agent.act(b_obs[idx], b_act[idx])
                ratio = (logp - b_logp[idx]).exp()
                a = b_adv[idx]
                a = (a - a.mean()) / (a.std() + 1e-8) if len(idx) > 1 else a
                pg = torch.max(-a * ratio, -a * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)).mean()
                v_loss = 0.5 * ((value - b_ret[idx]) ** 2).mean()
                loss = pg - args.ent_coef * entropy.mean() + args.vf_coef * v_loss
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                opt.step()
    elapsed = time.perf_counter() - t0
    envs.close()
    recent = returns_seen[-4 * n :]
    return {"steps": steps, "steps_per_s": steps / elapsed, "episodes": len(returns_seen),
            "qoe_mean_recent": float(np.mean(recent)) if recent else float("nan")}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=fmt)
    for name, default in Args.__dataclass_fields__.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(default.default), default=default.default)
    ns = p.parse_args(argv)
    if ns.num_envs < 1 or ns.num_steps < 1 or ns.total_steps < 1:
        p.error("--num-envs, --num-steps and --total-steps must be >= 1")
    result = train(Args(**vars(ns)))
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()

"""Train the tiny learned generator: a prompt-to-frame model that has seen real frames.

The random tiny generators of :mod:`codec.promptus.testing` cannot represent real frames (a prompt
fitted through one does worse than flat grey at every rank), so they cannot show that rank buys
quality. This script trains a small model of the same diffusers classes as SD-Turbo + TAESD on real
clips, at 32x32: a ``UNet2DConditionModel`` (cross-attending to a 77 x 32 prompt, one call at
t = 400 as in :func:`~codec.promptus.testing.tiny_generator`) followed by an ``AutoencoderTiny``
decoder. It is trained as an autoencoder whose code is the prompt: a small encoder (discarded
afterwards) maps each frame to a 77 x 32 prompt (one token per 4x4 patch), and the generator maps the
prompt back to the frame from the fixed start latent ``0.95 n + 0.05 z'`` (``n``: NumPy
``RandomState(88)`` noise; ``z'`` random, so the 0.05 anchor of the codec does not matter).
Loss: pixel MSE. The encoder is not shipped: at encode time prompts are fitted by inversion,
exactly as for SD-Turbo.

Training data: frames of ``bigbuckbunny.mp4``, ``bikes.mp4`` and ``video_with_failing_audio.mp4``
from ``../shared/data/videos`` (centre square, bicubic to 32x32; ``openpose_video.avi`` is left out
for its non-commercial licence). ``carphone_pristine.mp4`` is held out for evaluation
(``bench/bench_tiny_generator.py``).

The result is package data (``codec/data/tiny-generator/``, fp16 weights, under 2 MB) with its
training configuration; load it with :func:`load_tiny_learned`. It is a test instrument for the
codec's machinery (rank, interpolation, receivers), not a model of SD-Turbo's quality.

    nice -n 10 python -m codec.promptus.train_tiny --minutes 8 --out codec/data/tiny-generator
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from abr.errors import InputError, cli_main
from abr.flags import add_progress_flag
from abr.io import sha256_file
from codec.promptus.generator import CONFIG_NAME, SD_TURBO, PromptusGenerator

__all__ = ["TrainConfig", "TINY_LEARNED", "SCHEDULES", "load_tiny_learned", "load_clip", "train", "rank_sweep",
           "interpolation_vs_independent"]

#: Where the shipped model lives.
TINY_LEARNED = Path(__file__).resolve().parents[1] / "data" / "tiny-generator"
VIDEOS = Path(__file__).resolve().parents[3] / "shared" / "data" / "videos"
TRAIN_CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "video_with_failing_audio.mp4")
HELD_OUT = "carphone_pristine.mp4"


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Training settings (written next to the weights as ``train_config.json``).

    :param side: frame side in pixels (latent side = side / 8).
    :param prompt_len: prompt tokens; ``prompt_dim``: token width (cross-attention dim).
    :param unet_channels: UNet block widths; ``taesd_width``: decoder width.
    :param timestep: the single UNet timestep.
    :param minutes: wall-clock training budget; ``batch``: frames per step; ``lr``: AdamW rate.
    :param seed: torch seed of weights and batches; ``noise_seed``: NumPy seed of the start noise.
    :param rank_dropout: 0, or R: the encoder's prompt is a rank-R product ``A B`` (``A``: R coefficients
        per token, ``B``: a learned R x D basis), and each step keeps only the first r ~ U{1..R} coefficients
        (nested dropout), so the generator learns prompts whose first components matter most: rank buys
        detail by construction of the training.
    :param init_from: model folder to start the UNet and decoder from (None: random weights).
    """

    side: int = 32
    prompt_len: int = 77
    prompt_dim: int = 32
    unet_channels: tuple[int, int] = (32, 64)
    taesd_width: int = 16
    timestep: int = 400
    minutes: float = 8.0
    batch: int = 8
    lr: float = 2e-3
    seed: int = 0
    noise_seed: int = 88
    clips: tuple[str, ...] = TRAIN_CLIPS
    rank_dropout: int = 0
    init_from: str | None = None


def load_clip(name: str, side: int = 64, max_frames: int | None = None, folder: Path = VIDEOS) -> np.ndarray:
    """uint8 ``(T, side, side, 3)`` frames of a shared clip (centre square, bicubic)."""
    from codec.video import iter_frames

    path = folder / name
    if not path.is_file():
        raise InputError("shared clip not found (the training data lives in ../shared/data/videos)", path=path)
    return np.stack(list(iter_frames(path, crop_square=True, resize=side, max_frames=max_frames)))


def _build(cfg: TrainConfig) -> PromptusGenerator:
    from diffusers import AutoencoderTiny, UNet2DConditionModel

    from codec.promptus.testing import tiny_taesd_config, tiny_unet_config

    torch.manual_seed(cfg.seed)
    ucfg = {**tiny_unet_config(cfg.side // 8, cfg.prompt_dim), "block_out_channels": tuple(cfg.unet_channels)}
    unet = UNet2DConditionModel(**ucfg)
    vae = AutoencoderTiny(**tiny_taesd_config(cfg.taesd_width))
    gcfg = replace(SD_TURBO, name="tiny-learned", prompt_len=cfg.prompt_len, prompt_dim=cfg.prompt_dim,
                   sample_size=cfg.side // 8, timestep=cfg.timestep)
    return PromptusGenerator(unet, vae, gcfg)


class _PatchTokens(torch.nn.Module):
    """Frame -> ``(B, L, width)`` tokens: one per 4x4 patch (a linear map of its pixels plus a learned position),
    the remaining ``L - n`` tokens learned constants. The base of both training-only prompt encoders."""

    def __init__(self, side: int, L: int, width: int, patch: int = 4):
        super().__init__()
        self.patch = patch
        n = (side // patch) ** 2
        if n > L:
            raise ValueError(f"{n} patches do not fit in {L} prompt tokens")
        self.embed = torch.nn.Linear(3 * patch * patch, width)
        self.pos = torch.nn.Parameter(torch.randn(n, width) * 0.1)
        self.rest = torch.nn.Parameter(torch.randn(L - n, width) * 0.1)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.nn.functional.unfold(x, self.patch, stride=self.patch).transpose(1, 2)  # (B, n, 3 p^2)
        return torch.cat([self.embed(p) + self.pos, self.rest.expand(x.shape[0], -1, -1)], dim=1)


class _RankedPromptEncoder(_PatchTokens):
    """Frame -> rank-R prompt ``A B / sqrt(R)`` (training only): per 4x4 patch token R coefficients (a linear map
    of its pixels plus a learned position), the other tokens learned coefficients; ``B`` a learned R x D basis.
    ``forward(x, r)`` zeroes coefficients r+1..R (nested dropout): the prompt has rank <= r."""

    def __init__(self, side: int, L: int, D: int, R: int, patch: int = 4):
        super().__init__(side, L, R, patch)
        self.R = R
        self.basis = torch.nn.Parameter(torch.randn(R, D))

    def forward(self, x: torch.Tensor, r: int | None = None) -> torch.Tensor:
        a = self.tokens(x)  # (B, L, R)
        if r is not None and r < self.R:
            a = torch.cat([a[..., :r], torch.zeros_like(a[..., r:])], dim=-1)
        return a @ self.basis / self.R**0.5


class _PromptEncoder(_PatchTokens):
    """Frame -> prompt (training only): one token per 4x4 patch (a linear map of its pixels plus a learned
    position), the remaining tokens learned constants. The generator thus learns to route token content to
    image regions, and a rank-r prompt is a rank-r description of the patches: rank buys detail."""

    def __init__(self, side: int, L: int, D: int, patch: int = 4):
        super().__init__(side, L, D, patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens(x)


def train(cfg: TrainConfig, out: Path, *, progress: bool = True) -> dict:
    """Train for ``cfg.minutes`` and write the model folder ``out``; returns the training record."""
    from tqdm.auto import tqdm

    frames = np.concatenate([load_clip(c, cfg.side) for c in cfg.clips])
    x_all = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    gen = _build(cfg)
    if cfg.init_from:
        start = load_tiny_learned(cfg.init_from)
        gen.unet.load_state_dict(start.unet.state_dict())
        gen.vae.load_state_dict(start.vae.state_dict())
    gen.unet.requires_grad_(True)
    gen.vae.decoder.requires_grad_(True)
    gen.train()
    R = cfg.rank_dropout
    enc = (_RankedPromptEncoder(cfg.side, cfg.prompt_len, cfg.prompt_dim, R) if R
           else _PromptEncoder(cfg.side, cfg.prompt_len, cfg.prompt_dim))
    params = [*gen.unet.parameters(), *gen.vae.decoder.parameters(), *enc.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-4)
    noise = gen.noise(cfg.noise_seed, kind="numpy")
    g = torch.Generator().manual_seed(cfg.seed)
    t_end = time.monotonic() + 60.0 * cfg.minutes
    step, losses = 0, []
    bar = tqdm(desc="train tiny generator", unit="step", disable=not progress)
    while time.monotonic() < t_end:
        idx = torch.randint(0, len(x_all), (cfg.batch,), generator=g)
        x = x_all[idx]
        if torch.rand((), generator=g) < 0.5:
            x = x.flip(-1)
        z = 0.95 * noise + 0.05 * torch.randn((cfg.batch, *noise.shape[1:]), generator=g)
        c = enc(x, int(torch.randint(1, R + 1, (), generator=g))) if R else enc(x)
        frames_hat, _ = gen(c, z, clamp=False)
        loss = (frames_hat - x).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        losses.append(float(loss.detach()))
        bar.update(1)
        if step % 20 == 0:
            bar.set_postfix(mse=f"{np.mean(losses[-20:]):.4f}")
    bar.close()
    gen.eval()
    gen.requires_grad_(False)
    out.mkdir(parents=True, exist_ok=True)
    gen.unet.to(torch.float16).save_pretrained(out / "unet")
    gen.vae.to(torch.float16).save_pretrained(out / "taesd")
    (out / CONFIG_NAME).write_text(json.dumps(gen.config.to_dict(), indent=1) + "\n")
    record = {
        "config": asdict(cfg), "steps": step, "train_frames": int(len(x_all)),
        "final_train_mse": float(np.mean(losses[-50:])), "final_train_psnr_db": float(
            10 * np.log10(4.0 / np.mean(losses[-50:]))),
        "clips_sha256": {c: sha256_file(VIDEOS / c) for c in cfg.clips},
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "note": "tiny generator trained on real frames for codec tests; not a model of SD-Turbo quality",
    }  # fmt: skip
    (out / "train_config.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def load_tiny_learned(folder: str | Path = TINY_LEARNED, device: str = "cpu") -> PromptusGenerator:
    """The shipped tiny learned generator (float32 on ``device``)."""
    return PromptusGenerator.from_pretrained(folder, device=device, dtype=torch.float32)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Per-frame PSNR (dB) of frames in [-1, 1] (peak-to-peak 2)."""
    mse = (a.float().clamp(-1, 1) - b.float()).square().mean(dim=(1, 2, 3)).clamp_min(1e-12)
    return (10 * torch.log10(4.0 / mse)).double().cpu().numpy()


class _ScorerNet(torch.nn.Module):
    """A :class:`~codec.promptus.pipeline.FrameScorer` as a perceptual network for :class:`PromptLoss`."""

    def __init__(self, scorer):
        super().__init__()
        self.scorer = scorer
        self.lpips = scorer.model

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.scorer.distance(x, y)


def _fit(receiver, targets, prev, z_start, rank: int, iters: int, key: int, init=None, lpips_loss=None,
         mse_weight: float = 1.0):
    """``iters`` steps of ``mse_weight`` x MSE plus, with ``lpips_loss = (weight, scorer)``, that weight times
    the scorer's LPIPS."""
    from codec.promptus.fit import FitConfig, LossConfig, PromptLoss, _init_factors, fit_segment

    w, scorer = lpips_loss if lpips_loss is not None else (0.0, None)
    loss = LossConfig(mse=mse_weight, perceptual=w, perceptual_kind="lpips-alex", l1_prompt=0.0)
    cfg = FitConfig(rank=rank, interval=len(targets), iters=iters, patience=20, loss=loss)
    if init is None:
        init = _init_factors(cfg, receiver.generator.config.prompt_shape, key, receiver.generator.device)
    net = _ScorerNet(scorer) if scorer is not None else None
    q, _, _ = fit_segment(receiver, targets, prev, z_start, cfg, init=init, iters=iters, patience=20,
                          loss_fn=PromptLoss(cfg.loss, perceptual_net=net))
    return q.factors()


@torch.no_grad()
def _play(receiver, prev, nxt, length: int, z_start) -> torch.Tensor:
    from codec.promptus.receiver import Segment

    return receiver(Segment(prev, nxt, length, z_start))[0]


#: Rank schedules of :func:`rank_sweep`.
SCHEDULES = ("independent", "nested", "control")


def rank_sweep(gen: PromptusGenerator, frames: torch.Tensor, ranks=(1, 2, 4, 8), iters: int = 150,
               schedule: str = "independent", scorer=None, lpips_weight: float = 0.0,
               mse_weight: float = 1.0) -> dict:
    """Quality of each frame fitted alone (a frame-0 segment, MSE loss, ``iters`` steps per rank) at each rank.

    ``schedule``: ``independent`` fits every rank from the reference's uniform initialisation; ``nested``
    starts rank ``ranks[k]`` from rank ``ranks[k-1]``'s solution (:func:`~codec.promptus.fit.grow_rank`),
    so rank ``ranks[k]`` has had ``(k + 1) iters`` steps in all; ``control`` is the nested chain with the
    rank held at ``ranks[0]`` (same steps, same restarts): the difference nested - control is what rank
    buys beyond the extra steps. Frames ``(n, 3, H, W)`` in [-1, 1]. Returns ``{"psnr_db": {rank: [per
    frame]}, "lpips": {...}}`` (LPIPS with ``scorer``, a :class:`~codec.promptus.pipeline.FrameScorer`, if given).
    The fitting loss is ``mse_weight`` x MSE plus ``lpips_weight`` x the scorer's LPIPS.
    """
    from codec.promptus.fit import grow_rank
    from codec.promptus.receiver import get_receiver

    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if lpips_weight > 0 and scorer is None:
        raise ValueError("lpips_weight > 0 needs a scorer")
    if not (mse_weight > 0 or lpips_weight > 0):
        raise ValueError("the fitting loss needs a positive MSE or LPIPS weight")
    rec = get_receiver("promptus:noise=numpy", gen)
    noise = rec.noise(88)
    psnr: dict[int, list[float]] = {r: [] for r in ranks}
    lp: dict[int, list[float]] = {r: [] for r in ranks}
    for i in range(len(frames)):
        x = frames[i : i + 1]
        z = rec.start_latent(rec.initial_latent(x), noise)
        fac = None
        for r in ranks:
            fit_rank = ranks[0] if schedule == "control" else r
            init = None if fac is None or schedule == "independent" else grow_rank(fac, fit_rank, seed=i)
            fac = _fit(rec, x, None, z, fit_rank, iters, key=i, init=init, mse_weight=mse_weight,
                       lpips_loss=(lpips_weight, scorer) if lpips_weight > 0 else None)
            y = _play(rec, None, fac, 1, z)
            psnr[r].append(float(_psnr(y, x)[0]))
            if scorer is not None:
                lp[r].append(float(scorer.tensors(y.clamp(-1, 1), x)[0]))
    return {"psnr_db": psnr, "lpips": lp if scorer is not None else {}}


def interpolation_vs_independent(gen: PromptusGenerator, frames: torch.Tensor, rank: int = 4,
                                 iters: int = 150, scorer=None, lpips_weight: float = 0.0,
                                 mse_weight: float = 1.0) -> dict:
    """One segment ``frames[0..N]``: keyframe N fitted over the whole interpolated segment (the codec's
    interpolation-aware fit) vs fitted to frame N alone; same keyframes, same bytes. PSNR (and LPIPS with
    ``scorer``) of frames 1..N as played. Fitting loss as in :func:`rank_sweep`."""
    from codec.promptus.receiver import Segment, get_receiver

    rec = get_receiver("promptus:noise=numpy", gen)
    noise = rec.noise(88)
    n = len(frames) - 1
    x0 = frames[:1]
    z0 = rec.start_latent(rec.initial_latent(x0), noise)
    lp = (lpips_weight, scorer) if lpips_weight > 0 else None
    k0 = _fit(rec, x0, None, z0, rank, iters, key=0, lpips_loss=lp, mse_weight=mse_weight)
    with torch.no_grad():
        _, lat = rec(Segment(None, k0, 1, z0))
    z1 = rec.start_latent(lat[-1:].detach(), noise)
    seg = frames[1:]
    aware = _fit(rec, seg, k0, z1, rank, iters, key=1, lpips_loss=lp, mse_weight=mse_weight)
    alone = _fit(rec, seg[-1:], None, z1, rank, iters, key=1, lpips_loss=lp, mse_weight=mse_weight)
    out = {"segment_frames": n, "rank": rank}
    for name, fac in (("interpolation_aware", aware), ("independent", alone)):
        y = _play(rec, k0, fac, n, z1)
        out[f"psnr_{name}"] = _psnr(y, seg).tolist()
        if scorer is not None:
            out[f"lpips_{name}"] = scorer.tensors(y.clamp(-1, 1), seg).tolist()
    return out


@cli_main
def main(argv: list[str] | None = None) -> int:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m codec.promptus.train_tiny", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=d.minutes, help=f"training budget (default {d.minutes})")
    p.add_argument("--batch", type=int, default=d.batch, help=f"frames per step (default {d.batch})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"AdamW learning rate (default {d.lr})")
    p.add_argument("--seed", type=int, default=d.seed, help="torch seed")
    p.add_argument("--rank-dropout", type=int, default=0, metavar="R",
                   help="train on rank-R prompts with nested dropout over their components (0: off, default)")
    p.add_argument("--init-from", type=Path, help="model folder to start the UNet and decoder from")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--out", type=Path, default=TINY_LEARNED, help="model folder to write")
    add_progress_flag(p, dest="quiet")
    args = p.parse_args(argv)
    if not (args.minutes > 0 and args.batch >= 1 and args.lr > 0 and 0 <= args.rank_dropout <= 32):
        raise InputError("--minutes and --lr must be > 0, --batch >= 1 and --rank-dropout in 0..32")
    torch.set_num_threads(args.threads)
    rec = train(replace(d, minutes=args.minutes, batch=args.batch, lr=args.lr, seed=args.seed,
                        rank_dropout=args.rank_dropout, init_from=str(args.init_from) if args.init_from else None),
                args.out, progress=not args.quiet)
    print(json.dumps({k: rec[k] for k in ("steps", "train_frames", "final_train_psnr_db")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""PromptMobile's inter-frame caches: a segment-aware runner of the diffusers UNet.

All frames of a Promptus segment share the start latent ``z`` and the timestep; they differ only
in the prompt ``c(w) = u(w) v(w) / sqrt(r)``, ``u(w) = (1-w) U0 + w U1``, ``v(w) = (1-w) V0 + w V1``,
``w = s / N``. :class:`SegmentUNet` evaluates the UNet of a
:class:`~codec.promptus.generator.PromptusGenerator` for every frame of a segment by running
diffusers' submodules itself, which lets it share work between frames:

Lossless (exact up to floating-point rounding):

- *Prompt projections* (:class:`FactorKV`): cross-attention keys and values are linear in the
  prompt, ``K(w) = c(w) W_K = u(w) [(1-w) (V0 W_K) + w (V1 W_K)] / sqrt(r)``. The products
  ``Vj W_K`` (``r x inner``) are computed once per keyframe, so a frame costs ``L r inner`` MACs per
  projection instead of ``L D inner`` (8 vs 1024 per output element at r = 8). :class:`DenseKV`
  is the plain ``c W_K`` for comparison.
- *Shared head* (:meth:`SegmentUNet.head`): everything before the first prompt-dependent operation
  is run once per segment at batch 1: the time embedding, ``conv_in``, the first resnet of the
  first down block and, in its first transformer block, the input norm and projection, the whole
  self-attention and the query of the first cross-attention.

Lossy (:class:`ReusePlan`, DeepCache-style across frames instead of across denoising steps):

- a frame whose prompt is within ``threshold`` (relative Frobenius distance) of a *reference*
  frame of the same segment skips the deep part of the UNet: it runs only the shallowest
  ``depth`` down blocks and up blocks and takes the input of its up path (the output of
  ``up_blocks[-depth-1]``) from the reference. References are chosen by :func:`plan_reuse`:
  fewest references under the threshold, or a fixed number of references per segment placed
  to minimise the prompt distance (a fixed compute budget).

Supported UNets: the SD layout (``CrossAttnDownBlock2D`` / ``DownBlock2D``, the cross-attention
mid block, ``CrossAttnUpBlock2D`` / ``UpBlock2D``, layer-norm transformer blocks with self- and
cross-attention, no class/added embeddings); :meth:`SegmentUNet.check` says what is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = [
    "KV",
    "DenseKV",
    "FactorKV",
    "ReusePlan",
    "plan_reuse",
    "prompt_distances",
    "Head",
    "SegmentUNet",
]


# ----------------------------------------------------------------------------- keys and values
class KV(Protocol):
    """Cross-attention keys/values of a batch of frames, per cross-attention layer."""

    batch: int

    def __call__(self, index: int, attn: torch.nn.Module) -> tuple[Tensor, Tensor]: ...

    def select(self, rows: Tensor) -> KV: ...


class DenseKV:
    """``K = c W_K``, ``V = c W_V`` from full prompts ``(B, L, D)`` (no caching; the reference)."""

    def __init__(self, prompts: Tensor):
        self.prompts = prompts
        self.batch = prompts.shape[0]

    def __call__(self, index: int, attn: torch.nn.Module) -> tuple[Tensor, Tensor]:
        return attn.to_k(self.prompts), attn.to_v(self.prompts)

    def select(self, rows: Tensor) -> DenseKV:
        return DenseKV(self.prompts[rows])


class FactorKV:
    """Keys/values of interpolated low-rank prompts from cached projections of the keyframe factors.

    ``K(w) = u(w) [(1-w) (V0 W_K) + w (V1 W_K)] * norm (+ bias)``: exact because ``c(w) W_K`` is
    ``u(w) (v(w) W_K) * norm`` and ``v(w) W_K`` is linear in ``w``.

    :param u0: ``(L, r)`` factor of the opening keyframe, or None (every frame uses keyframe 1).
    :param v0: ``(r, D)`` factor of the opening keyframe, or None.
    :param u1: ``(L, r)`` factor of the closing keyframe.
    :param v1: ``(r, D)`` factor of the closing keyframe.
    :param norm: scale of the product (``1 / sqrt(r)``).
    :param w: ``(B,)`` interpolation weights ``s / N`` of the frames.
    """

    def __init__(
        self, u0: Tensor | None, v0: Tensor | None, u1: Tensor, v1: Tensor, norm: float, w: Tensor,
        _memo: dict | None = None,
    ):
        if (u0 is None) != (v0 is None):
            raise ValueError("u0 and v0 must both be given or both be None")
        self.u0, self.v0, self.u1, self.v1, self.norm = u0, v0, u1, v1, float(norm)
        self.w = w.reshape(-1)
        self.batch = self.w.shape[0]
        self._memo = {} if _memo is None else _memo  # per layer: projections of the keyframe factors

    def _projections(self, index: int, attn: torch.nn.Module) -> tuple[Tensor, ...]:
        if index not in self._memo:
            wk, wv = attn.to_k.weight, attn.to_v.weight
            vs = [self.v1] if self.v0 is None else [self.v0, self.v1]
            self._memo[index] = tuple(F.linear(v.to(wk.dtype), w) for w in (wk, wv) for v in vs)
        return self._memo[index]

    def _u(self, dtype: torch.dtype) -> Tensor:
        if self.u0 is None:
            return self.u1.to(dtype).unsqueeze(0)
        w = self.w.to(dtype).reshape(-1, 1, 1)
        return (1.0 - w) * self.u0.to(dtype) + w * self.u1.to(dtype)

    def __call__(self, index: int, attn: torch.nn.Module) -> tuple[Tensor, Tensor]:
        proj = self._projections(index, attn)
        u = self._u(proj[0].dtype)
        out = []
        for which, lin in ((0, attn.to_k), (1, attn.to_v)):
            if self.v0 is None:
                vw = proj[which].unsqueeze(0)
            else:
                w = self.w.to(u.dtype).reshape(-1, 1, 1)
                vw = (1.0 - w) * proj[2 * which] + w * proj[2 * which + 1]
            t = torch.matmul(u, vw) * self.norm
            if lin.bias is not None:
                t = t + lin.bias
            out.append(t.expand(self.batch, -1, -1) if t.shape[0] != self.batch else t)
        return out[0], out[1]

    def select(self, rows: Tensor) -> FactorKV:
        return FactorKV(self.u0, self.v0, self.u1, self.v1, self.norm, self.w[rows], _memo=self._memo)


# ----------------------------------------------------------------------------- lossy reuse plan
@dataclass(frozen=True, slots=True)
class ReusePlan:
    """Which frames of a batch run the full UNet and which reuse a reference frame's deep features.

    :param source: ``(B,)``; ``source[i] == i`` for a full frame, else the index of its reference
        (a full frame).
    :param depth: shallow levels a reusing frame recomputes (1 = only the outermost down and up block).
    """

    source: tuple[int, ...]
    depth: int = 1

    def __post_init__(self) -> None:
        for i, j in enumerate(self.source):
            if not (0 <= j < len(self.source)) or self.source[j] != j:
                raise ValueError(f"frame {i} reuses frame {j}, which is not a full frame of the plan")
        if self.depth < 1:
            raise ValueError(f"reuse depth must be >= 1, got {self.depth}")

    @classmethod
    def all_full(cls, n: int, depth: int = 1) -> ReusePlan:
        return cls(tuple(range(n)), depth)

    @property
    def full(self) -> tuple[int, ...]:
        return tuple(i for i, j in enumerate(self.source) if i == j)

    @property
    def reused(self) -> tuple[int, ...]:
        return tuple(i for i, j in enumerate(self.source) if i != j)

    @property
    def reuse_fraction(self) -> float:
        return len(self.reused) / max(1, len(self.source))


def prompt_distances(prompts: Tensor) -> Tensor:
    """``d[i, j] = ||c_i - c_j||_F / ||c_j||_F`` for prompts ``(B, L, D)`` (float64, no gradient)."""
    flat = prompts.detach().reshape(prompts.shape[0], -1).to(torch.float64)
    diff = torch.cdist(flat, flat)
    return diff / flat.norm(dim=1).clamp_min(1e-30)[None, :]


def plan_reuse(prompts: Tensor, threshold: float, depth: int = 1, full_every: int | None = None) -> ReusePlan:
    """Choose reference frames for deep-feature reuse in a segment of prompts ``(B, L, D)``.

    Every reused frame is within ``threshold`` (relative Frobenius distance, :func:`prompt_distances`)
    of its reference; ``threshold <= 0`` reuses only identical prompts.

    - ``full_every=None`` (threshold mode): as few full frames as possible. Greedy cover in frame
      order: from the first uncovered frame ``i`` the reference is the latest frame ``j`` such that
      frames ``i..j`` are all within ``threshold`` of ``j``; later frames within ``threshold`` of
      ``j`` reuse it too.
    - ``full_every=F`` (budget mode): ``ceil(B / F)`` references, placed by an optimal split of the
      segment into contiguous groups that minimises the largest frame-to-reference distance
      (1-D k-centre); frames still farther than ``threshold`` from their reference run in full.
      With a large ``threshold`` the compute per segment is fixed, which a player can budget for.
    """
    n = prompts.shape[0]
    d = prompt_distances(prompts).cpu().numpy()
    tau = max(float(threshold), 0.0)
    if full_every is None:
        close = d <= tau
        source = list(range(n))
        i = 0
        while i < n:
            j = i
            while j + 1 < n and bool(close[i : j + 2, j + 1].all()):
                j += 1
            for k in range(i, j):
                source[k] = j
            k = j + 1
            while k < n and bool(close[k, j]):
                source[k] = j
                k += 1
            i = k
        return ReusePlan(tuple(source), depth)
    if full_every < 1:
        raise ValueError(f"full_every must be >= 1, got {full_every}")
    groups = _k_centre(d, -(-n // int(full_every)))
    source = list(range(n))
    for lo, hi, ref in groups:
        for k in range(lo, hi + 1):
            source[k] = ref if d[k, ref] <= tau else k
    return ReusePlan(tuple(source), depth)


def _k_centre(d, k: int) -> list[tuple[int, int, int]]:
    """Optimal split of frames ``0..n-1`` into ``k`` contiguous groups ``(lo, hi, reference)``.

    Minimises the largest ``d[frame, reference]``; ties go to fewer distance overall, then earlier splits.
    """
    import numpy as np

    n = d.shape[0]
    k = min(k, n)
    cost = np.full((n, n), np.inf)
    best_ref = np.zeros((n, n), dtype=int)
    for lo in range(n):
        worst = np.zeros(n)  # worst[r]: max_{lo <= f <= hi} d[f, r]
        total = np.zeros(n)
        for hi in range(lo, n):
            worst = np.maximum(worst, d[hi])
            total = total + d[hi]
            cand = np.arange(lo, hi + 1)
            key = worst[cand] + 1e-9 * total[cand]
            r = int(cand[np.argmin(key)])
            cost[lo, hi], best_ref[lo, hi] = worst[r], r
    # dp[g][hi]: best max-cost of covering 0..hi with g + 1 groups
    dp = np.full((k, n), np.inf)
    cut = np.zeros((k, n), dtype=int)
    dp[0] = cost[0]
    for g in range(1, k):
        for hi in range(g, n):
            options = np.maximum(dp[g - 1, g - 1 : hi], cost[g : hi + 1, hi])
            a = int(np.argmin(options))
            dp[g, hi], cut[g, hi] = options[a], g + a
    groups = []
    hi = n - 1
    for g in range(k - 1, -1, -1):
        lo = cut[g, hi] if g else 0
        groups.append((lo, hi, int(best_ref[lo, hi])))
        hi = lo - 1
    return groups[::-1]


# ----------------------------------------------------------------------------- the runner
@dataclass(eq=False)
class Head:
    """The prompt-independent head of the UNet for one start latent (batch 1).

    :param temb: time embedding ``(1, E)``.
    :param h0: ``conv_in`` output (the first skip connection).
    :param h1: output of the first resnet (the residual of the first transformer).
    :param x: tokens after the first self-attention ``(1, HW, inner)``, or None when the first down
        block has no attention.
    :param q: query of the first cross-attention ``(1, HW, inner)``, or None.
    :param upsample_sizes: the latent side is not a multiple of the UNet's total upsampling, so up
        blocks are told their output sizes (as diffusers does).
    """

    temb: Tensor
    h0: Tensor
    h1: Tensor
    x: Tensor | None = None
    q: Tensor | None = None
    upsample_sizes: bool = False


def _expand(t: Tensor, batch: int) -> Tensor:
    return t.expand(batch, *t.shape[1:]) if t.shape[0] != batch else t


class SegmentUNet:
    """Evaluates a diffusers ``UNet2DConditionModel`` for all frames of a segment (see the module docstring).

    The UNet's weights are used as they are (dtype, device, memory format); nothing is copied.
    """

    def __init__(self, unet: torch.nn.Module):
        self.unet = unet
        self.check(unet)
        self.cross_index: dict[int, int] = {}
        for m in unet.modules():
            if type(m).__name__ == "BasicTransformerBlock":
                self.cross_index[id(m.attn2)] = len(self.cross_index)

    # ------------------------------------------------------------------ validation
    @staticmethod
    def check(unet: torch.nn.Module) -> None:
        """Raise ValueError naming the first feature of ``unet`` this runner does not reproduce."""
        cfg = unet.config
        problems = []
        for key, ok in (
            ("class_embed_type", cfg.class_embed_type is None and getattr(unet, "class_embedding", None) is None),
            ("addition_embed_type", cfg.addition_embed_type is None),
            ("encoder_hid_dim", getattr(unet, "encoder_hid_proj", None) is None),
            ("time_embedding_act_fn", getattr(unet, "time_embed_act", None) is None),
            ("center_input_sample", not cfg.center_input_sample),
            ("conv_norm_out", unet.conv_norm_out is not None),
        ):
            if not ok:
                problems.append(key)
        down_ok = {"CrossAttnDownBlock2D", "DownBlock2D"}
        up_ok = {"CrossAttnUpBlock2D", "UpBlock2D"}
        problems += [f"down block {type(b).__name__}" for b in unet.down_blocks if type(b).__name__ not in down_ok]
        problems += [f"up block {type(b).__name__}" for b in unet.up_blocks if type(b).__name__ not in up_ok]
        if type(unet.mid_block).__name__ not in ("UNetMidBlock2DCrossAttn",):
            problems.append(f"mid block {type(unet.mid_block).__name__}")
        for m in unet.modules():
            name = type(m).__name__
            if name == "Transformer2DModel" and not getattr(m, "is_input_continuous", True):
                problems.append("non-continuous Transformer2DModel input")
            if name == "BasicTransformerBlock":
                if m.norm_type != "layer_norm" or m.only_cross_attention or m.attn2 is None or m.pos_embed is not None:
                    problems.append("transformer block other than layer-norm self+cross attention")
            if name in ("CrossAttnUpBlock2D", "UpBlock2D") and getattr(m, "s1", None):
                problems.append("FreeU")
        if problems:
            raise ValueError("SegmentUNet cannot run this UNet: " + "; ".join(dict.fromkeys(problems)))

    # ------------------------------------------------------------------ pieces
    def time_embedding(self, timestep: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        unet = self.unet
        t = torch.full((1,), timestep, dtype=torch.long, device=device)
        t_emb = unet.time_proj(t).to(dtype)
        return unet.time_embedding(t_emb)

    @staticmethod
    def _tokens_in(tm: torch.nn.Module, h: Tensor) -> Tensor:
        b, _, hh, ww = h.shape
        x = tm.norm(h)
        if not tm.use_linear_projection:
            x = tm.proj_in(x)
            return x.permute(0, 2, 3, 1).reshape(b, hh * ww, x.shape[1])
        x = x.permute(0, 2, 3, 1).reshape(b, hh * ww, x.shape[1])
        return tm.proj_in(x)

    @staticmethod
    def _tokens_out(tm: torch.nn.Module, x: Tensor, residual: Tensor) -> Tensor:
        b = x.shape[0]
        _, _, hh, ww = residual.shape
        if tm.use_linear_projection:
            x = tm.proj_out(x)
            x = x.reshape(b, hh, ww, x.shape[-1]).permute(0, 3, 1, 2).contiguous()
        else:
            x = x.reshape(b, hh, ww, x.shape[-1]).permute(0, 3, 1, 2).contiguous()
            x = tm.proj_out(x)
        return x + residual

    @staticmethod
    def _cross(attn: torch.nn.Module, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        b, lq, _ = q.shape
        heads = attn.heads
        d = k.shape[-1] // heads
        qh = q.reshape(b, lq, heads, d).transpose(1, 2)
        kh = k.reshape(k.shape[0], -1, heads, d).transpose(1, 2)
        vh = v.reshape(v.shape[0], -1, heads, v.shape[-1] // heads).transpose(1, 2)
        o = F.scaled_dot_product_attention(qh, kh, vh, scale=attn.scale)
        o = o.transpose(1, 2).reshape(b, lq, heads * vh.shape[-1]).to(q.dtype)
        return attn.to_out[1](attn.to_out[0](o))

    def _block_rest(self, blk: torch.nn.Module, x: Tensor, kv: KV, q: Tensor | None = None) -> Tensor:
        """A BasicTransformerBlock from its cross-attention on (``x`` after self-attention)."""
        attn = blk.attn2
        k, v = kv(self.cross_index[id(attn)], attn)
        if q is None:
            q = attn.to_q(blk.norm2(x))
        b = k.shape[0]
        x = _expand(x, b)
        x = self._cross(attn, _expand(q, b), k, v) + x
        return blk.ff(blk.norm3(x)) + x

    def _block(self, blk: torch.nn.Module, x: Tensor, kv: KV) -> Tensor:
        x = blk.attn1(blk.norm1(x)) + x
        return self._block_rest(blk, x, kv)

    def _transformer(self, tm: torch.nn.Module, h: Tensor, kv: KV) -> Tensor:
        x = self._tokens_in(tm, h)
        for blk in tm.transformer_blocks:
            x = self._block(blk, x, kv)
        return self._tokens_out(tm, x, h)

    # ------------------------------------------------------------------ the head
    def head(self, latent_in: Tensor, timestep: int) -> Head:
        """The prompt-independent part for one UNet input ``(1, C, h, w)`` (already c_in-scaled)."""
        if latent_in.shape[0] != 1:
            raise ValueError(f"the shared head takes one start latent, got batch {latent_in.shape[0]}")
        unet = self.unet
        temb = self.time_embedding(timestep, latent_in.dtype, latent_in.device)
        h0 = unet.conv_in(latent_in)
        blk = unet.down_blocks[0]
        h1 = blk.resnets[0](h0, temb)
        factor = 2 ** sum(1 for b in unet.up_blocks[:-1] if b.upsamplers is not None)
        upsizes = any(s % factor for s in latent_in.shape[-2:])
        out = Head(temb=temb, h0=h0, h1=h1, upsample_sizes=upsizes)
        if getattr(blk, "attentions", None):
            tm = blk.attentions[0]
            tb = tm.transformer_blocks[0]
            x = self._tokens_in(tm, h1)
            x = tb.attn1(tb.norm1(x)) + x
            out.x, out.q = x, tb.attn2.to_q(tb.norm2(x))
        return out

    # ------------------------------------------------------------------ paths
    def _down(self, head: Head, kv: KV, levels: int, last_downsample: bool) -> tuple[Tensor, list[Tensor]]:
        unet, temb = self.unet, head.temb
        skips: list[Tensor] = [head.h0]
        h = head.h1
        for li, blk in enumerate(unet.down_blocks[:levels]):
            attns = getattr(blk, "attentions", None)
            for ri, resnet in enumerate(blk.resnets):
                if li or ri:
                    h = resnet(h, temb)
                if attns:
                    tm = attns[ri]
                    if li == 0 and ri == 0:
                        x = self._block_rest(tm.transformer_blocks[0], head.x, kv, q=head.q)
                        for tb in tm.transformer_blocks[1:]:
                            x = self._block(tb, x, kv)
                        h = self._tokens_out(tm, x, head.h1)
                    else:
                        h = self._transformer(tm, h, kv)
                skips.append(h)
            if blk.downsamplers is not None and (li < levels - 1 or last_downsample):
                for ds in blk.downsamplers:
                    h = ds(h)
                skips.append(h)
        return h, skips

    def _up(self, head: Head, h: Tensor, skips: list[Tensor], kv: KV, blocks: list[torch.nn.Module]) -> Tensor:
        temb = head.temb
        for blk in blocks:
            attns = getattr(blk, "attentions", None)
            for ri, resnet in enumerate(blk.resnets):
                res = skips.pop()
                h = torch.cat([h, _expand(res, h.shape[0])], dim=1)
                h = resnet(h, temb)
                if attns:
                    h = self._transformer(attns[ri], h, kv)
            if blk.upsamplers is not None:
                size = skips[-1].shape[2:] if head.upsample_sizes and skips else None
                for us in blk.upsamplers:
                    h = us(h, size)
        return h

    def _mid(self, head: Head, h: Tensor, kv: KV) -> Tensor:
        mid = self.unet.mid_block
        h = mid.resnets[0](h, head.temb)
        for attn, resnet in zip(mid.attentions, mid.resnets[1:]):
            h = self._transformer(attn, h, kv)
            h = resnet(h, head.temb)
        return h

    def _out(self, h: Tensor) -> Tensor:
        unet = self.unet
        return unet.conv_out(unet.conv_act(unet.conv_norm_out(h)))

    def full(self, head: Head, kv: KV, capture_depth: int = 0) -> tuple[Tensor, Tensor | None]:
        """eps of every frame of ``kv`` and, with ``capture_depth``, the deep features for reuse."""
        unet = self.unet
        h, skips = self._down(head, kv, len(unet.down_blocks), last_downsample=True)
        h = _expand(h, kv.batch)
        h = self._mid(head, h, kv)
        ups = list(unet.up_blocks)
        split = len(ups) - capture_depth if capture_depth else len(ups)
        h = self._up(head, h, skips, kv, ups[:split])
        deep = h if capture_depth else None
        h = self._up(head, h, skips, kv, ups[split:])
        return self._out(h), deep

    def shallow(self, head: Head, kv: KV, deep: Tensor, depth: int) -> Tensor:
        """eps of frames that recompute only the outer ``depth`` levels around reused ``deep`` features."""
        unet = self.unet
        _, skips = self._down(head, kv, depth, last_downsample=False)
        h = self._up(head, deep, skips, kv, list(unet.up_blocks)[-depth:])
        return self._out(h)

    def eps(self, latent_in: Tensor, timestep: int, kv: KV, plan: ReusePlan | None = None) -> Tensor:
        """Noise prediction ``(B, C, h, w)`` of all frames of ``kv`` for one shared UNet input ``(1, C, h, w)``."""
        head = self.head(latent_in, timestep)
        if plan is None or not plan.reused:
            return _expand(self.full(head, kv)[0], kv.batch)
        if len(plan.source) != kv.batch:
            raise ValueError(f"reuse plan covers {len(plan.source)} frames, the batch has {kv.batch}")
        if not 1 <= plan.depth < len(self.unet.up_blocks):
            raise ValueError(f"reuse depth must be in 1..{len(self.unet.up_blocks) - 1}, got {plan.depth}")
        device = latent_in.device
        full_idx = torch.tensor(plan.full, device=device)
        reuse_idx = torch.tensor(plan.reused, device=device)
        pos = {j: p for p, j in enumerate(plan.full)}
        src = torch.tensor([pos[plan.source[i]] for i in plan.reused], device=device)
        eps_full, deep = self.full(head, kv.select(full_idx), capture_depth=plan.depth)
        eps_full = _expand(eps_full, len(plan.full))
        eps_reuse = self.shallow(head, kv.select(reuse_idx), _expand(deep, len(plan.full))[src], plan.depth)
        out = eps_full.new_empty((kv.batch, *eps_full.shape[1:]))
        out[full_idx] = eps_full
        out[reuse_idx] = _expand(eps_reuse, len(plan.reused))
        return out

"""LPIPS (Zhang et al., CVPR 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric"), version 0.1, in plain PyTorch.

Images are ``(N, 3, H, W)`` tensors in [-1, 1] (RGB). Both images of a pair pass through the
same frozen backbone (AlexNet or VGG16, torchvision layout) after the fixed input scaling
``(x - shift) / scale``; at five ReLU outputs the activations are normalised to unit length
along channels, the squared difference is weighted per channel by the learned linear head (a
1x1 conv with non-negative weights) and averaged over space; the five layer scores add up to
the distance. 0 means identical. Weights: :mod:`codec.metrics.weights`.

Example::

    >>> lp = LPIPS("alex")                        # doctest: +SKIP
    >>> d = lp(x, y)                              # (N,), differentiable w.r.t. x and y
    >>> d = lp.distance_frames(ref_u8, dist_u8)   # numpy uint8 (N, H, W, 3) -> numpy (N,)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from codec.metrics.weights import NETS, load_lpips_state, lpips_weights_path

__all__ = ["LPIPS", "to_lpips_input"]

_EPS = 1e-10
#: Input scaling of LPIPS v0.1 (maps [-1, 1] RGB to roughly ImageNet-normalised values).
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
#: Backbone wiring per net: (stride, padding) of each conv, convs preceded by a max-pool, the
#: pool's (kernel, stride), and the convs whose ReLU output is a tapped layer.
_PLAN = {
    "alex": {"conv": ((4, 2), (1, 2), (1, 1), (1, 1), (1, 1)), "pool_before": {1, 2}, "pool": (3, 2),
             "taps": {0, 1, 2, 3, 4}},
    "vgg": {"conv": ((1, 1),) * 13, "pool_before": {2, 4, 7, 10}, "pool": (2, 2), "taps": {1, 3, 6, 9, 12}},
}  # fmt: skip


def to_lpips_input(frames: np.ndarray | Tensor, device: torch.device | str | None = None) -> Tensor:
    """uint8 RGB frames ``(N, H, W, 3)`` (or one ``(H, W, 3)``) -> float32 ``(N, 3, H, W)`` in [-1, 1]."""
    t = torch.as_tensor(np.asarray(frames) if not isinstance(frames, Tensor) else frames)
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or t.shape[-1] != 3 or t.dtype != torch.uint8:
        raise ValueError(f"expected uint8 frames of shape (N, H, W, 3), got {tuple(t.shape)} {t.dtype}")
    return t.to(device=device).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


class LPIPS(nn.Module):
    """LPIPS v0.1 distance with frozen weights.

    :param net: backbone, ``alex`` (the usual choice for evaluation) or ``vgg`` (Promptus's released
        evaluation and a common perceptual training loss).
    :param weights: weight file or directory; default: ``PROMPTABR_LPIPS_WEIGHTS``, then the user cache,
        then a download (see :func:`codec.metrics.weights.lpips_weights_path`).
    :raises InputError: the weights are missing or corrupt (the message says how to fix it).
    """

    def __init__(self, net: Literal["alex", "vgg"] = "alex", weights: str | os.PathLike[str] | None = None):
        super().__init__()
        path = lpips_weights_path(net, weights)  # validates ``net``
        spec, plan = NETS[net], _PLAN[net]
        self.net = net
        self.convs = nn.ModuleList(
            nn.Conv2d(cin, cout, k, stride=s, padding=p) for (cin, cout, k), (s, p) in zip(spec["convs"], plan["conv"])
        )
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in spec["taps"])
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self._pool_before = frozenset(plan["pool_before"])
        self._taps = frozenset(plan["taps"])
        self._pool = plan["pool"]
        self.load_state_dict(load_lpips_state(net, path))
        self.weights_path = path
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> LPIPS:
        """LPIPS has no training-time behaviour (no dropout or batch norm); kept in eval mode always."""
        return super().train(False)

    # ------------------------------------------------------------------ parts
    def _check(self, x: Tensor, name: str) -> None:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS expects {name} of shape (N, 3, H, W) in [-1, 1], got {tuple(x.shape)}")

    def features(self, x: Tensor) -> list[Tensor]:
        """The five tapped backbone activations of ``x`` (N, 3, H, W in [-1, 1]), unit-normalised along channels."""
        self._check(x, "x")
        h = (x - self.shift) / self.scale
        out = []
        for i, conv in enumerate(self.convs):
            if i in self._pool_before:
                h = F.max_pool2d(h, self._pool[0], self._pool[1])
            h = F.relu(conv(h))
            if i in self._taps:
                out.append(h / (torch.sqrt(torch.sum(h * h, dim=1, keepdim=True)) + _EPS))
        return out

    def distance_from_features(self, fx: list[Tensor], fy: list[Tensor]) -> Tensor:
        """LPIPS ``(N,)`` from precomputed :meth:`features` (e.g. of a fixed target reused many times)."""
        return sum(lin((a - b) ** 2).mean(dim=(2, 3)) for lin, a, b in zip(self.lins, fx, fy))[:, 0]

    def _layer_maps(self, x: Tensor, y: Tensor) -> list[Tensor]:
        self._check_pair(x, y)
        n = x.shape[0]
        feats = self.features(torch.cat([x, y], dim=0))  # one backbone pass for both images
        return [lin((f[:n] - f[n:]) ** 2) for lin, f in zip(self.lins, feats)]

    def _check_pair(self, x: Tensor, y: Tensor) -> None:
        self._check(x, "x")
        self._check(y, "y")
        if x.shape != y.shape:
            raise ValueError(f"LPIPS inputs differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")

    # ---------------------------------------------------------------- outputs
    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """LPIPS distance of each pair, shape ``(N,)``; differentiable w.r.t. ``x`` and ``y``."""
        return sum(m.mean(dim=(2, 3)) for m in self._layer_maps(x, y))[:, 0]

    def distance_map(self, x: Tensor, y: Tensor) -> Tensor:
        """Per-pixel distance ``(N, 1, H, W)``: each layer's map upsampled (bilinear) to the input size and summed.

        Its spatial mean is what the reference ``test_network.py`` prints (close to, not equal to, ``forward``).
        """
        size = x.shape[-2:]
        maps = self._layer_maps(x, y)
        return sum(F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in maps)

    @torch.no_grad()
    def distance_frames(self, ref: np.ndarray, dist: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """LPIPS of uint8 RGB frame pairs ``(N, H, W, 3)``, computed in batches; returns float64 ``(N,)``."""
        return self.distance_frames_many(ref, [dist], batch_size)[0]

    @torch.no_grad()
    def distance_frames_many(self, ref: np.ndarray, dists: Sequence[np.ndarray], batch_size: int = 8) -> np.ndarray:
        """LPIPS of one reference stack against several distorted versions, float64 ``(len(dists), N)``.

        The reference features are computed once per batch and reused for every version, which saves
        almost half the work when measuring many rungs of the same chunk.
        """
        ref = np.asarray(ref)
        for d in dists:
            if np.shape(d) != ref.shape:
                raise ValueError(f"frame stacks differ in shape: {ref.shape} vs {np.shape(d)}")
        device = self.shift.device
        out = np.zeros((len(dists), len(ref)))
        for i in range(0, len(ref), batch_size):
            fr = self.features(to_lpips_input(ref[i : i + batch_size], device))
            for k, d in enumerate(dists):
                fd = self.features(to_lpips_input(d[i : i + batch_size], device))
                out[k, i : i + batch_size] = self.distance_from_features(fr, fd).double().cpu().numpy()
        return out

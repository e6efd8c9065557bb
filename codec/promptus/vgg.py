"""The official Promptus perceptual term: a VGG content loss over every pre-ReLU conv output.

``../shared/PROMPTUS_OFFICIAL.md`` section 4 (official ``lossbuilder.py`` / ``inversion.py``):

- network: torchvision VGG19 ``features`` with ImageNet weights, truncated after conv5_4 (16 convs);
- the input is normalised by ImageNet's mean/std *as if it were in [0, 1]*, although it is in
  [-1, 1] (an upstream quirk we keep, since the prompts are fitted against it);
- one tap after every conv, before its ReLU, weight 1: ``mse_loss(feat(gt), feat(pred))`` (mean);
- no resize (VGG sees the full frame); the term is ``sum of the taps / (n_taps + 1e-9)``.

This is not LPIPS (no channel normalisation, no learned heads) and its values are large: on
512x512 frames 0.2 x this term is of order 1-3, while 0.8 x MSE is of order 0.01, so it dominates
the official loss. :class:`codec.promptus.fit.PromptLoss` uses it for ``perceptual_kind`` ``vgg19``
(the official network) and ``vgg16`` (an offline substitute, see below).

Weights (never downloaded here, never unpickled: ``torch.load(weights_only=True)`` only):

- ``vgg19``: a torchvision state dict (``vgg19-dcbb9e9d.pth``, keys ``features.N.weight``/``bias``),
  from the ``weights`` argument or ``PROMPTABR_VGG19_WEIGHTS``. torchvision is not a dependency.
- ``vgg16``: the ImageNet VGG16 backbone inside the LPIPS-VGG weights we already fetch
  (:mod:`codec.metrics.weights`; LPIPS v0.1 does not retrain its backbone). 13 taps instead of 16
  and a different network, so values differ from the official ones: a substitute, labelled so.
- :meth:`VGGContentLoss.random` for tests (seeded random weights; same arithmetic).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from abr.errors import InputError

__all__ = ["VGG_CFG", "VGG19_ENV", "VGGContentLoss", "conv_indices"]

Arch = Literal["vgg19", "vgg16"]
VGG19_ENV = "PROMPTABR_VGG19_WEIGHTS"
#: torchvision's ``features`` layouts (channel counts, "M" = 2x2 max pool) up to the last conv.
VGG_CFG: dict[str, tuple[int | str, ...]] = {
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512),
}
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def conv_indices(arch: str) -> list[int]:
    """Indices of the convs in torchvision's ``features`` Sequential (conv, ReLU pairs and pools)."""
    out, idx = [], 0
    for item in VGG_CFG[arch]:
        if item == "M":
            idx += 1
        else:
            out.append(idx)
            idx += 2
    return out


class VGGContentLoss(nn.Module):
    """Per-frame official VGG content loss ``(n,)`` between ``pred`` and ``target`` (both in [-1, 1]).

    :param arch: ``vgg19`` (official) or ``vgg16`` (LPIPS's ImageNet backbone, offline substitute).
    :param weights: ``vgg19``: a torchvision state dict file (default ``$PROMPTABR_VGG19_WEIGHTS``);
        ``vgg16``: an LPIPS-VGG weight file (default: the LPIPS lookup of :mod:`codec.metrics.weights`).
    :param load: False leaves zero weights; see :meth:`random`.
    """

    def __init__(self, arch: Arch = "vgg19", weights: str | os.PathLike[str] | None = None, *, load: bool = True):
        super().__init__()
        if arch not in VGG_CFG:
            raise InputError(f"VGG arch must be one of {sorted(VGG_CFG)}, got {arch!r}")
        self.arch = arch
        self.convs = nn.ModuleList()
        self._pool_before: set[int] = set()
        cin = 3
        for item in VGG_CFG[arch]:
            if item == "M":
                self._pool_before.add(len(self.convs))
                continue
            self.convs.append(nn.Conv2d(cin, int(item), 3, padding=1, device="meta"))  # filled below
            cin = int(item)
        self.convs.to_empty(device="cpu")
        with torch.no_grad():
            for conv in self.convs:
                conv.weight.zero_()
                conv.bias.zero_()
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        if load:
            self._load(weights)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def random(cls, arch: Arch = "vgg19", seed: int = 0) -> VGGContentLoss:
        """Seeded random weights (He init, as torchvision's VGG): tests and CPU demos only."""
        net = cls(arch, load=False)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for conv in net.convs:
                fan_out = conv.out_channels * 9
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * (2.0 / fan_out) ** 0.5)
                conv.bias.zero_()
        return net

    def _load(self, weights: str | os.PathLike[str] | None) -> None:
        if self.arch == "vgg16":
            from codec.metrics.weights import load_lpips_state, lpips_weights_path

            state = load_lpips_state("vgg", lpips_weights_path("vgg", weights))
            keys = [f"convs.{i}.{p}" for i in range(len(self.convs)) for p in ("weight", "bias")]
            mine = {k: state[k] for k in keys}
            self.load_state_dict(mine)
            return
        src = weights if weights is not None else os.environ.get(VGG19_ENV)
        if not src:
            raise InputError(
                f"the official perceptual loss needs torchvision's ImageNet VGG19 weights (vgg19-dcbb9e9d.pth): "
                f"pass a path or set {VGG19_ENV}; or use perceptual kind 'vgg16' (LPIPS's VGG16, offline)")
        path = Path(src)
        try:
            doc = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure means an unusable file
            raise InputError(f"cannot read VGG19 weights ({type(exc).__name__}: {exc})", path=path) from None
        if not isinstance(doc, dict):
            raise InputError("VGG19 weights must be a torchvision state dict", path=path)
        mine = {}
        for i, idx in enumerate(conv_indices(self.arch)):
            for p in ("weight", "bias"):
                key = f"features.{idx}.{p}"
                t = doc.get(key)
                want = getattr(self.convs[i], p).shape
                if not isinstance(t, Tensor) or t.shape != want or not torch.isfinite(t).all():
                    raise InputError(f"VGG19 weights lack a finite {key} of shape {tuple(want)}", path=path)
                mine[f"convs.{i}.{p}"] = t.float()
        self.load_state_dict(mine)

    def train(self, mode: bool = True) -> VGGContentLoss:
        return super().train(False)

    def features(self, x: Tensor) -> list[Tensor]:
        """Pre-ReLU outputs of every conv for ``x`` in [-1, 1] (normalised as if in [0, 1], like upstream)."""
        h = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out = []
        for i, conv in enumerate(self.convs):
            if i in self._pool_before:
                h = F.max_pool2d(h, 2, 2)
            h = conv(h)
            out.append(h)
            h = F.relu(h)
        return out

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """``sum_l mean((f_l(target) - f_l(pred))^2) / (n_taps + 1e-9)`` per frame, shape ``(n,)``."""
        n = pred.shape[0]
        feats = self.features(torch.cat([target.to(pred.dtype), pred]))
        total = sum((f[:n] - f[n:]).float().square().mean(dim=(1, 2, 3)) for f in feats)
        return total / (len(feats) + 1e-9)

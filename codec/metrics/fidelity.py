"""PSNR and SSIM, batched, for torch tensors or numpy arrays (to compare with classic codec papers).

Layouts: torch tensors are channels-first, ``(N, C, H, W)`` or ``(C, H, W)`` (like LPIPS inputs);
numpy arrays are channels-last, ``(N, H, W, C)`` or ``(H, W, C)`` (like decoded video frames from
:func:`codec.video.iter_frames`). A batch gives one value per image, a single image one value.

Value range: ``data_range`` is the peak-to-peak range of the pixel values. By default it is
255 for integer inputs (uint8 frames) and 2.0 for floating-point inputs, i.e. images in [-1, 1]
as LPIPS takes them; pass ``data_range=1.0`` for [0, 1] images.

SSIM (Wang et al., IEEE TIP 2004): Gaussian window of size 11 and sigma 1.5, K1 = 0.01,
K2 = 0.03, statistics over the valid region only (no padding), computed per channel and
averaged over channels and positions. PSNR: ``10 log10(data_range^2 / MSE)`` in dB with the MSE
over all channels and pixels of an image (``inf`` for identical images).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["psnr", "ssim"]

_ArrayLike = Tensor | np.ndarray


def _prepare(x: _ArrayLike, y: _ArrayLike, data_range: float | None) -> tuple[Tensor, Tensor, float, bool, bool]:
    """Both inputs as float ``(N, C, H, W)`` tensors; returns (x, y, range, was_numpy, was_batched)."""
    is_numpy = not isinstance(x, Tensor)
    if is_numpy != (not isinstance(y, Tensor)):
        raise TypeError("psnr/ssim need two torch tensors or two numpy arrays, not a mix")
    if x.shape != y.shape:
        raise ValueError(f"image shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if len(x.shape) not in (3, 4):
        raise ValueError(f"expected one image (3-D) or a batch (4-D), got shape {tuple(x.shape)}")
    batched = len(x.shape) == 4
    tx, ty = (torch.from_numpy(np.asarray(x)), torch.from_numpy(np.asarray(y))) if is_numpy else (x, y)
    if not batched:
        tx, ty = tx[None], ty[None]
    if is_numpy:  # channels-last -> channels-first
        tx, ty = tx.permute(0, 3, 1, 2), ty.permute(0, 3, 1, 2)
    integer = not (tx.dtype.is_floating_point or tx.dtype.is_complex)
    if data_range is None:
        data_range = 255.0 if integer else 2.0
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    # float64 throughout: SSIM's variances are small differences of large numbers
    return tx.to(torch.float64), ty.to(torch.float64), float(data_range), is_numpy, batched


def _finish(like: _ArrayLike, values: Tensor, is_numpy: bool, batched: bool) -> Tensor | np.ndarray | float:
    if not is_numpy and like.dtype.is_floating_point:
        values = values.to(like.dtype)
    if is_numpy:
        out = values.detach().double().cpu().numpy()
        return out if batched else float(out[0])
    return values if batched else values[0]


def psnr(x: _ArrayLike, y: _ArrayLike, data_range: float | None = None) -> Tensor | np.ndarray | float:
    """Peak signal-to-noise ratio in dB per image (see module docstring for layouts and ranges)."""
    tx, ty, rng, is_numpy, batched = _prepare(x, y, data_range)
    mse = ((tx - ty) ** 2).flatten(1).mean(dim=1)
    return _finish(x, 10.0 * torch.log10(rng * rng / mse), is_numpy, batched)


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    w = np.exp(-(r * r) / (2.0 * sigma * sigma))
    return w / w.sum()


def _blur_numpy(t: Tensor, g: np.ndarray) -> Tensor:
    """Separable filter over the valid region with scipy (fast on CPU; no autograd)."""
    from scipy.ndimage import correlate1d

    a = t.detach().cpu().numpy()
    a = correlate1d(correlate1d(a, g, axis=2, mode="nearest"), g, axis=3, mode="nearest")
    r = len(g) // 2
    return torch.from_numpy(a[:, :, r : a.shape[2] - r, r : a.shape[3] - r])


def _blur_torch(t: Tensor, g: np.ndarray) -> Tensor:
    """The same filter as depthwise convolutions (differentiable, any device)."""
    c, k = t.shape[1], len(g)
    w = torch.as_tensor(g, dtype=t.dtype, device=t.device)
    t = F.conv2d(t, w.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return F.conv2d(t, w.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)


def ssim(
    x: _ArrayLike,
    y: _ArrayLike,
    data_range: float | None = None,
    *,
    window: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Tensor | np.ndarray | float:
    """Structural similarity per image, in [-1, 1] (1 = identical); see the module docstring.

    Differentiable for tensors that require grad (or live on a GPU); otherwise computed with scipy's
    separable filters, which is several times faster on a CPU.
    """
    tx, ty, rng, is_numpy, batched = _prepare(x, y, data_range)
    h, w = tx.shape[-2:]
    if h < window or w < window:
        raise ValueError(f"SSIM needs images of at least {window}x{window} pixels, got {h}x{w}")
    g = _gaussian_window(window, sigma)
    use_torch = tx.requires_grad or ty.requires_grad or tx.device.type != "cpu"

    def blur(t: Tensor) -> Tensor:
        return _blur_torch(t, g) if use_torch else _blur_numpy(t, g)

    mu_x, mu_y = blur(tx), blur(ty)
    var_x = blur(tx * tx) - mu_x * mu_x
    var_y = blur(ty * ty) - mu_y * mu_y
    cov = blur(tx * ty) - mu_x * mu_y
    c1, c2 = (k1 * rng) ** 2, (k2 * rng) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return _finish(x, (num / den).flatten(1).mean(dim=1).to(tx.device), is_numpy, batched)

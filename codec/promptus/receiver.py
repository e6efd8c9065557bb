"""Receivers: how the frames of one segment are produced from its two keyframes.

A *receiver* turns one :class:`Segment` (the low-rank factors of the keyframes bounding the
segment, its length N, the start latent and which frames to produce) into frames and latents.
The base receiver, ``promptus``, is SPEC section 1 literally: interpolate the factors
(:func:`codec.promptus.prompt.interpolate_prompts`), one batched SD-Turbo UNet call for all
frames of the segment, TAESD decoding.

Variants (e.g. PromptMobile's ``promptmobile-*``: cached cross-attention projections, a
low-resolution UNet plus an upsampler) subclass :class:`Receiver`, register themselves in the
table of :mod:`codec.receivers` (one line there names their module) and are imported on first use::

    @register_receiver("promptmobile-lowres")
    class LowResReceiver(Receiver):
        def __init__(self, generator, *, upsampler=None, size=256): ...
        def forward(self, seg, clamp=True) -> ReceiverOutput: ...

Contract of ``forward(seg, clamp=True) -> ReceiverOutput(frames, latents)``:

- ``frames``: ``(n, 3, H, W)`` in [-1, 1] at the generator's full resolution, one per entry of
  ``seg.steps`` (in that order). With ``clamp=False`` out-of-range values are kept (fitting).
- ``latents``: ``(n, C, h, w)``, the latent the receiver will anchor the next segment on; the
  encoder stores the one of ``s = N`` as ``z_prev``. Its shape is the receiver's
  :meth:`~Receiver.latent_shape` (a low-resolution receiver may use a smaller latent).
- Differentiable with respect to ``seg.next.u`` / ``seg.next.v``: the encoder fits the prompts
  *through* the receiver (``codec.promptus.fit``), so the prompts compensate for its errors.
  Work that does not depend on the prompts (e.g. everything before the first cross-attention,
  which depends only on the shared start latent) may be cached per segment.
- Deterministic: sender and receiver must compute the same latents.

The hooks :meth:`~Receiver.noise`, :meth:`~Receiver.start_latent` and
:meth:`~Receiver.initial_latent` default to the generator's and may be overridden together with
:meth:`~Receiver.latent_shape`. Receivers are looked up by spec string ``name`` or
``name:key=value,key=value`` (:func:`get_receiver`); the bitstream records the spec, so the
decoder plays a stream with the receiver it was fitted through.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from abr.errors import InputError
from abr.options import parse_options, split_spec
from codec.promptus.generator import PromptusGenerator
from codec.promptus.prompt import Factors, interpolate_prompts
from codec.receivers import RECEIVERS, receiver_class, register_receiver

__all__ = [
    "Segment",
    "ReceiverOutput",
    "Receiver",
    "PromptusReceiver",
    "RECEIVERS",
    "register_receiver",
    "get_receiver",
    "parse_receiver_spec",
]


@dataclass(frozen=True, eq=False)
class Segment:
    """Inputs of one segment.

    :param prev: factors of the opening keyframe (None for frame 0, which is its own segment of length 1).
    :param next: factors of the closing keyframe (frame ``s = length``).
    :param length: segment length N in frames.
    :param z_start: start latent ``(1, C, h, w)`` shared by every frame of the segment.
    :param steps: frames to produce, values in 1..length; empty means all, ``(1, ..., length)``.
    """

    prev: Factors | None
    next: Factors
    length: int
    z_start: torch.Tensor
    steps: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError(f"segment length must be >= 1, got {self.length}")
        steps = tuple(int(s) for s in self.steps) or tuple(range(1, self.length + 1))
        if min(steps) < 1 or max(steps) > self.length:
            raise ValueError(f"segment steps must lie in 1..{self.length}, got {steps}")
        object.__setattr__(self, "steps", steps)

    def prompts(self) -> torch.Tensor:
        """Interpolated prompts ``(len(steps), L, D)``."""
        return interpolate_prompts(self.prev, self.next, self.length, self.steps)


class ReceiverOutput(NamedTuple):
    frames: torch.Tensor
    latents: torch.Tensor


class Receiver(torch.nn.Module):
    """Base class of receivers; subclasses implement :meth:`forward` (see the module docstring)."""

    #: registry name, set by :func:`register_receiver`
    name: str = ""
    #: how the shared noise is drawn (:meth:`PromptusGenerator.noise`); ``numpy`` is the official code's
    noise_kind: str = "torch"

    def __init__(self, generator: PromptusGenerator):
        super().__init__()
        self.generator = generator
        self.spec = self.name

    def latent_shape(self, batch: int = 1) -> tuple[int, ...]:
        """Shape of this receiver's start latents."""
        return self.generator.config.latent_shape(batch)

    def noise(self, seed: int) -> torch.Tensor:
        """The fixed noise shared by sender and receiver."""
        return self.generator.noise(seed, self.latent_shape(1), self.noise_kind)

    def start_latent(self, z_prev: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.generator.start_latent(z_prev, noise)

    def initial_latent(self, frame0: torch.Tensor) -> torch.Tensor:
        """``z_prev`` of frame 0 from the first frame ``(1, 3, H, W)`` in [-1, 1] (sent as side information)."""
        return self.generator.encode_image(frame0)

    def forward(self, seg: Segment, clamp: bool = True) -> ReceiverOutput:  # pragma: no cover - abstract
        raise NotImplementedError


def parse_receiver_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"name:k=v,..."`` -> ``("name", {"k": v, ...})``, each value typed from the receiver's
    keyword parameter (:mod:`abr.options`).

    :raises InputError: unknown receiver (listing the valid ones), unknown option or bad value.
    """
    name, options = split_spec(spec)
    return name, parse_options(receiver_class(name), options, f"receiver {spec!r}")


def get_receiver(spec: str, generator: PromptusGenerator, **opts: Any) -> Receiver:
    """Build the receiver named by ``spec`` (``name`` or ``name:key=value,...``) on ``generator``.

    :raises InputError: unknown name (listing the valid ones) or options the receiver does not take.
    """
    name, spec_opts = parse_receiver_spec(spec)
    kwargs = {**spec_opts, **opts}
    try:
        rec = receiver_class(name)(generator, **kwargs)
    except (TypeError, ValueError) as exc:
        raise InputError(f"receiver {spec!r}: {exc}") from None
    rec.spec = spec if not opts else name + ":" + ",".join(f"{k}={v}" for k, v in sorted(kwargs.items()))
    return rec


@register_receiver("promptus")
class PromptusReceiver(Receiver):
    """SPEC section 1: interpolated prompts, one batched UNet call, TAESD.

    :param max_batch: frames per UNet call (memory bound); 0 = the whole segment at once.
    :param noise: ``torch`` (ours) or ``numpy`` (the official ``RandomState(seed)`` noise; spec
        ``promptus:noise=numpy``, recorded in the stream so the decoder draws the same noise).
    """

    def __init__(self, generator: PromptusGenerator, *, max_batch: int = 0, noise: str = "torch"):
        super().__init__(generator)
        if max_batch < 0:
            raise ValueError(f"max_batch must be >= 0, got {max_batch}")
        if noise not in ("torch", "numpy"):
            raise ValueError(f"noise must be 'torch' or 'numpy', got {noise!r}")
        self.max_batch = int(max_batch)
        self.noise_kind = noise

    def forward(self, seg: Segment, clamp: bool = True) -> ReceiverOutput:
        prompts = seg.prompts()
        chunks: Sequence[torch.Tensor] = (
            prompts.split(self.max_batch) if self.max_batch and prompts.shape[0] > self.max_batch else (prompts,)
        )
        frames, latents = [], []
        for c in chunks:
            f, z = self.generator(c, seg.z_start, clamp=clamp)
            frames.append(f)
            latents.append(z)
        if len(chunks) == 1:
            return ReceiverOutput(frames[0], latents[0])
        return ReceiverOutput(torch.cat(frames), torch.cat(latents))

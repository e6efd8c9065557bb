"""PromptMobile: the accelerated Promptus receiver (SPEC section 2; Liu et al., arXiv 2503.16112).

Receiver variants of the Promptus codec, each registered by name in
:data:`codec.receivers.RECEIVERS` when :mod:`codec.promptmobile.receivers` is imported (which
:func:`codec.receivers.receiver_class` does on first use of one of their names):

- two-stage generation (:mod:`.lowres`, :mod:`.upsampler`): the UNet runs at half latent
  resolution and a small learned upsampler lifts the frames to full size;
- lossless caching (:mod:`.caching`): cross-attention keys/values of a whole segment from cached
  projections of the keyframe factors, and the prompt-independent head of the UNet once per segment;
- lossy caching (:mod:`.caching`): deep UNet features of a neighbouring frame reused when the
  prompt changed by less than a threshold;
- image stitching (:mod:`.stitching`, receiver option ``stitch=k``): k x k low-resolution frames
  generated as one full-size canvas with per-tile cross-attention;
- system level: bf16/fp16, channels-last, fused attention, ``torch.compile``.

Around the receivers: :mod:`.residual` (an optional residual stream the sender adds),
:mod:`.joint` (the upsampler trained on the generator's own low-resolution frames),
:mod:`.tradeoff` (deep-feature reuse measured by threshold: quality, reuse share, MACs).
:mod:`.cost` counts multiply-accumulates of every variant on the real SD-Turbo architecture and
splits PromptMobile's ratio into its two-stage and caching parts (:class:`.cost.MacSplit`).
torch and diffusers are imported only by the submodules.
"""

# Importing the package registers the receivers (codec.receivers imports .receivers on demand),
# so this package, unlike codec.promptus, loads torch when imported.
from codec.promptmobile import receivers as _receivers  # noqa: E402, F401

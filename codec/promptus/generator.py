"""The Promptus generator: one SD-Turbo UNet call at t = 999 followed by TAESD decoding.

SPEC section 1. A frame is regenerated from a prompt tensor ``c`` (``prompt_len x prompt_dim``,
77 x 1024 for SD-Turbo) that goes straight into the UNet's cross-attention (no text encoder),
and a start latent ``z`` shared by every frame of a segment::

    z      = anchor * z_prev + (1 - anchor) * n          n ~ N(0, I) from a fixed seed, anchor = 0.05
    x_in   = sqrt(1 + sigma^2) * z                        the sampler's initial noise scaling
    x0     = x_in - sigma * eps(x_in * c_in, t = 999, c)  c_in = 1 / sqrt(1 + sigma^2)
           = sqrt(1 + sigma^2) * z - sigma * eps(z, 999, c)
    frame  = TAESD_decoder(x0)                            in [-1, 1]

``sigma = 14.6146`` is the noise level of t = 999 under SD's beta schedule: betas linear in
``sqrt(beta)`` from 0.00085 to 0.012 over 1000 steps (diffusers' ``scaled_linear``; the plain
``linear`` schedule would give 25.15). It is computed from the schedule, see :func:`ddpm_sigma`.
The reference sampler (sgm's Euler-ancestral sampler with one step) multiplies the unit-variance
start latent by ``sqrt(1 + sigma^2)`` before the denoiser; we do the same, so ``z`` stays
unit-variance and the 0.05 anchor mixes like-scaled tensors.

Latent scaling: SD latents are VAE latents times 0.18215 (``latent_scale``). TAESD is trained
directly on these scaled latents, so diffusers' ``AutoencoderTiny`` has ``scaling_factor = 1.0``
and the UNet's x0 goes into its decoder unchanged. :meth:`PromptusGenerator.decode` and
:meth:`~PromptusGenerator.encode_image` divide / multiply by the autoencoder's own
``config.scaling_factor`` so the same code is right for either convention.

Units: pixels and latent cells; frames are ``(B, 3, H, W)`` floats in [-1, 1].
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from abr.errors import InputError
from abr.io import read_json

__all__ = [
    "GeneratorConfig",
    "SD_TURBO",
    "PromptusGenerator",
    "ddpm_sigma",
    "CONFIG_NAME",
]

#: File written next to the model weights (by :func:`codec.promptus.testing.save_tiny` or by the user)
#: that overrides :class:`GeneratorConfig` fields; optional for real SD-Turbo folders.
CONFIG_NAME = "promptus_config.json"


def ddpm_sigma(
    timestep: int,
    beta_start: float = 0.00085,
    beta_end: float = 0.012,
    num_train_timesteps: int = 1000,
    beta_schedule: str = "scaled_linear",
) -> float:
    """Noise level ``sigma_t = sqrt((1 - abar_t) / abar_t)`` of a DDPM beta schedule.

    :param beta_schedule: ``scaled_linear`` (SD: betas linear in sqrt(beta)) or ``linear``.
    """
    if beta_schedule == "scaled_linear":
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64) ** 2
    elif beta_schedule == "linear":
        betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
    else:
        raise ValueError(f"beta_schedule must be 'scaled_linear' or 'linear', got {beta_schedule!r}")
    if not 0 <= timestep < num_train_timesteps:
        raise ValueError(f"timestep must be in 0..{num_train_timesteps - 1}, got {timestep}")
    abar = torch.cumprod(1.0 - betas, dim=0)[timestep]
    return float(((1.0 - abar) / abar).sqrt())


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    """Constants of a one-step prompt-to-frame generator.

    :param name: generator family name written into bitstreams (``sd-turbo`` or ``tiny``).
    :param prompt_len: tokens of the prompt tensor (77 for SD).
    :param prompt_dim: width of a token, the UNet's cross-attention dim (1024 for SD 2.x).
    :param latent_channels: channels of the latent (4).
    :param sample_size: latent side in cells (64 for 512x512 frames).
    :param vae_scale_factor: pixels per latent cell (8).
    :param timestep: the single UNet timestep (999).
    :param beta_start: first beta of the training schedule.
    :param beta_end: last beta of the training schedule.
    :param num_train_timesteps: length of the training schedule.
    :param beta_schedule: ``scaled_linear`` (SD) or ``linear``.
    :param latent_scale: SD VAE latent scaling (0.18215); TAESD already works in the scaled space.
    :param anchor: weight of the previous keyframe's latent in the start latent (0.05).
    """

    name: str = "sd-turbo"
    prompt_len: int = 77
    prompt_dim: int = 1024
    latent_channels: int = 4
    sample_size: int = 64
    vae_scale_factor: int = 8
    timestep: int = 999
    beta_start: float = 0.00085
    beta_end: float = 0.012
    num_train_timesteps: int = 1000
    beta_schedule: str = "scaled_linear"
    latent_scale: float = 0.18215
    anchor: float = 0.05

    def __post_init__(self) -> None:
        for name in ("prompt_len", "prompt_dim", "latent_channels", "sample_size", "vae_scale_factor"):
            if getattr(self, name) < 1:
                raise ValueError(f"GeneratorConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.anchor < 1.0:
            raise ValueError(f"GeneratorConfig.anchor must be in [0, 1), got {self.anchor}")
        ddpm_sigma(self.timestep, self.beta_start, self.beta_end, self.num_train_timesteps, self.beta_schedule)

    # ----------------------------------------------------------- derived values
    @property
    def sigma(self) -> float:
        """Noise level of :attr:`timestep` (14.6146 for SD-Turbo at t = 999)."""
        return ddpm_sigma(self.timestep, self.beta_start, self.beta_end, self.num_train_timesteps, self.beta_schedule)

    @property
    def c_in(self) -> float:
        """UNet input scaling ``1 / sqrt(1 + sigma^2)``."""
        return 1.0 / math.sqrt(1.0 + self.sigma**2)

    @property
    def resolution(self) -> int:
        """Frame side in pixels."""
        return self.sample_size * self.vae_scale_factor

    @property
    def prompt_shape(self) -> tuple[int, int]:
        return (self.prompt_len, self.prompt_dim)

    def latent_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        return (batch, self.latent_channels, self.sample_size, self.sample_size)

    # --------------------------------------------------------------- dict I/O
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], source: object = "<generator config>") -> GeneratorConfig:
        if not isinstance(doc, dict):
            raise InputError("a generator config must be a JSON object", path=source)
        known = {f.name for f in fields(cls)}
        bad = sorted(set(doc) - known)
        if bad:
            raise InputError(f"unknown generator config key(s) {bad}; valid: {sorted(known)}", path=source)
        try:
            return cls(**doc)
        except (TypeError, ValueError) as exc:
            raise InputError(str(exc), path=source) from None


#: SD-Turbo (SD 2.1 distilled by ADD) at 512x512 with TAESD: sigma(999) = 14.6146, latent 4x64x64.
SD_TURBO = GeneratorConfig()

_DEFAULT_MODEL = "stabilityai/sd-turbo"
_DEFAULT_TAESD = "madebyollin/taesd"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_WEIGHTS_HELP = (
    "put a diffusers SD-Turbo folder there (with a 'unet' subfolder; `huggingface-cli download "
    "stabilityai/sd-turbo --local-dir DIR` on a machine with internet) and TAESD ('madebyollin/taesd') "
    "either as DIR/taesd or via --taesd; hub ids work only where the hub or its cache is reachable"
)


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _load_component(cls: type, source: str | Path, subfolder: str | None, dtype: torch.dtype, what: str) -> Any:
    """Load a diffusers model from a local folder or hub id; cache first, then the network."""
    kwargs: dict[str, Any] = {"torch_dtype": dtype}
    if subfolder:
        kwargs["subfolder"] = subfolder
    local = Path(source).expanduser()
    if not local.exists() and not _HUB_ID.fullmatch(str(source)):
        raise InputError(f"{what} weights not found (no such folder); {_WEIGHTS_HELP}", path=local)
    if local.exists():
        if not local.is_dir():
            raise InputError(f"{what} weights must be a diffusers folder, got a file; {_WEIGHTS_HELP}", path=local)
        try:
            with _quiet_diffusers():
                return cls.from_pretrained(str(local), **kwargs)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot load {what} ({_first_line(exc)}); {_WEIGHTS_HELP}", path=local) from None
    errors = []
    modes = (True,) if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0") else (True, False)
    for offline in modes:  # the local hub cache first: no network wait when it is there
        try:
            with _quiet_diffusers():
                return cls.from_pretrained(str(source), local_files_only=offline, **kwargs)
        except Exception as exc:  # noqa: BLE001 - hub errors come in many classes; all mean "not available"
            errors.append(_first_line(exc))
    raise InputError(
        f"{what} weights {str(source)!r} are neither a local folder nor in the hub cache, and the hub is not "
        f"reachable ({errors[-1]}); {_WEIGHTS_HELP}",
        path=source,
    )


@contextlib.contextmanager
def _quiet_diffusers() -> Iterator[None]:
    """Silence diffusers' load-time chatter (missing ``accelerate``, TAESD's ignored config key)."""
    from diffusers.utils import logging as dlog

    level = dlog.get_verbosity()
    dlog.set_verbosity_error()
    try:
        yield
    finally:
        dlog.set_verbosity(level)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


class PromptusGenerator(torch.nn.Module):
    """SD-Turbo UNet + TAESD as a prompt-to-frame function (see the module docstring).

    :param unet: a diffusers ``UNet2DConditionModel`` (eps prediction).
    :param vae: a diffusers ``AutoencoderTiny``.
    :param config: the generator constants; ``prompt_dim``, ``latent_channels`` and ``sample_size``
        must agree with the UNet's config.
    """

    def __init__(self, unet: torch.nn.Module, vae: torch.nn.Module, config: GeneratorConfig = SD_TURBO):
        super().__init__()
        ucfg = unet.config
        mismatches = [
            (name, getattr(config, name), value)
            for name, value in (
                ("prompt_dim", ucfg.cross_attention_dim),
                ("latent_channels", ucfg.in_channels),
                ("sample_size", ucfg.sample_size),
            )
            if getattr(config, name) != value
        ]
        if mismatches:
            text = ", ".join(f"{n}: config {a} vs unet {b}" for n, a, b in mismatches)
            raise ValueError(f"GeneratorConfig does not match the UNet ({text})")
        if vae.config.latent_channels != config.latent_channels:
            raise ValueError(
                f"TAESD has {vae.config.latent_channels} latent channels, the UNet {config.latent_channels}"
            )
        self.unet = unet
        self.vae = vae
        self.config = config
        self.unet.requires_grad_(False)
        self.vae.requires_grad_(False)
        self.eval()
        self._fingerprint: str | None = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        model: str | Path = _DEFAULT_MODEL,
        taesd: str | Path | None = _DEFAULT_TAESD,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        config: GeneratorConfig | None = None,
    ) -> PromptusGenerator:
        """Load the UNet (``unet`` subfolder of an SD-Turbo folder or hub id) and TAESD.

        A local ``model`` folder may hold the UNet directly (``config.json`` at its top) or in
        ``unet/``; a ``taesd/`` subfolder is used when ``taesd`` is left at its default (or None).
        ``promptus_config.json`` in ``model`` overrides :class:`GeneratorConfig` fields; otherwise
        they are SD-Turbo's with the dims read from the UNet config. Defaults: CUDA and float16
        when a GPU is present, else CPU and float32.

        :raises InputError: weights missing or unreadable; the message says where to put them.
        """
        from diffusers import AutoencoderTiny, UNet2DConditionModel

        device = torch.device(device) if device is not None else _default_device()
        if dtype is None:
            dtype = torch.float16 if device.type == "cuda" else torch.float32
        local = Path(model).expanduser()
        subfolder: str | None = "unet"
        if local.is_dir() and (local / "config.json").is_file() and not (local / "unet").is_dir():
            subfolder = None
        unet = _load_component(UNet2DConditionModel, model, subfolder, dtype, "UNet")
        if taesd is None or (str(taesd) == _DEFAULT_TAESD and (local / "taesd").is_dir()):
            taesd = local / "taesd"
        vae = _load_component(AutoencoderTiny, taesd, None, dtype, "TAESD")
        if config is None:
            config = _config_for(local, unet)
        try:
            gen = cls(unet, vae, config)
        except ValueError as exc:
            raise InputError(str(exc), path=model) from None
        return gen.to(device)

    # ------------------------------------------------------------------ helpers
    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def identity(self) -> str:
        """``name`` of the config, written into bitstreams."""
        return self.config.name

    def fingerprint(self) -> str:
        """16 hex digits identifying config and weights (hash of configs and a strided weight sample).

        Cheap (no pass over all 1.7 GB), but any retrained or different model changes it. Weights are
        compared at float16 precision, so a stream fitted in fp16 decodes with float32 weights and vice
        versa (bfloat16 weights are coarser and fingerprint differently).
        """
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(json.dumps(self.config.to_dict(), sort_keys=True).encode())
            for part in (self.unet, self.vae):
                arch = {k: v for k, v in dict(part.config).items() if not k.startswith("_")}  # no paths, versions
                h.update(json.dumps(arch, sort_keys=True, default=str).encode())
                for name, p in sorted(part.state_dict().items()):
                    flat = p.detach().reshape(-1)
                    step = max(1, flat.numel() // 64)
                    # in float16: the same weights loaded in float32 or float16 give the same fingerprint
                    sample = flat[::step][:64].to("cpu", torch.float32).to(torch.float16)
                    h.update(name.encode())
                    h.update(sample.numpy().tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    # ----------------------------------------------------------- the pipeline
    def noise(self, seed: int, shape: tuple[int, ...] | None = None, kind: str = "torch") -> torch.Tensor:
        """Fixed N(0, I) noise from ``seed`` (drawn on the CPU, so identical on every device).

        :param kind: ``torch`` (a seeded CPU ``torch.Generator``) or ``numpy`` (the official code:
            NumPy legacy ``RandomState(seed).randn(*shape)``, float64 cast to float32).
        """
        shape = tuple(shape) if shape is not None else self.config.latent_shape(1)
        if kind == "numpy":
            import numpy as np

            n = torch.from_numpy(np.random.RandomState(int(seed)).randn(*shape).astype(np.float32))
        elif kind == "torch":
            g = torch.Generator(device="cpu").manual_seed(int(seed))
            n = torch.randn(shape, generator=g, dtype=torch.float32)
        else:
            raise InputError(f"noise kind must be 'torch' or 'numpy', got {kind!r}")
        return n.to(self.device, self.dtype)

    def start_latent(self, z_prev: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``anchor * z_prev + (1 - anchor) * noise`` (anchor 0.05)."""
        a = self.config.anchor
        return a * z_prev.to(noise.dtype) + (1.0 - a) * noise

    def eps(self, latent_in: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        """One UNet call at t = ``config.timestep``: noise prediction for ``latent_in`` (already c_in-scaled)."""
        t = torch.full((latent_in.shape[0],), self.config.timestep, device=latent_in.device, dtype=torch.long)
        return self.unet(latent_in, t, encoder_hidden_states=prompts.to(latent_in.dtype), return_dict=False)[0]

    def generate_latents(self, prompts: torch.Tensor, z_start: torch.Tensor) -> torch.Tensor:
        """x0 latents ``(B, C, h, w)`` of prompts ``(B, L, D)`` from start latents ``(B|1, C, h, w)``.

        ``x0 = x_in - sigma * eps(x_in * c_in)`` with ``x_in = sqrt(1 + sigma^2) * z_start``.
        """
        if prompts.ndim != 3 or tuple(prompts.shape[1:]) != self.config.prompt_shape:
            raise ValueError(f"prompts must be (B, {self.config.prompt_len}, {self.config.prompt_dim}), "
                             f"got {tuple(prompts.shape)}")
        b = prompts.shape[0]
        z = z_start.to(self.device, self.dtype)
        if z.ndim == 3:
            z = z.unsqueeze(0)
        if z.shape[0] == 1 and b > 1:
            z = z.expand(b, -1, -1, -1)
        sigma = self.config.sigma
        x_in = z * math.sqrt(1.0 + sigma**2)
        eps = self.eps(x_in * self.config.c_in, prompts.to(self.device, self.dtype))
        return x_in - sigma * eps

    def decode(self, latents: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """TAESD decoding of UNet-space latents to frames ``(B, 3, H, W)`` in [-1, 1].

        ``clamp=False`` keeps gradients for pixels outside [-1, 1] (used while fitting).
        """
        scale = float(getattr(self.vae.config, "scaling_factor", 1.0) or 1.0)
        frames = self.vae.decode(latents.to(self.dtype) / scale, return_dict=False)[0]
        return frames.clamp(-1.0, 1.0) if clamp else frames

    def encode_image(self, frames: torch.Tensor) -> torch.Tensor:
        """TAESD encoding of frames in [-1, 1] to UNet-space latents (frame 0's side information)."""
        scale = float(getattr(self.vae.config, "scaling_factor", 1.0) or 1.0)
        return self.vae.encode(frames.to(self.device, self.dtype), return_dict=False)[0] * scale

    def forward(
        self, prompts: torch.Tensor, z_start: torch.Tensor, clamp: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(frames, latents)`` for prompts ``(B, L, D)`` and start latents ``(B|1, C, h, w)``."""
        latents = self.generate_latents(prompts, z_start)
        return self.decode(latents, clamp=clamp), latents


def _config_for(folder: Path, unet: Any) -> GeneratorConfig:
    """GeneratorConfig from ``promptus_config.json`` if present, else SD-Turbo's with the UNet's dims."""
    path = folder / CONFIG_NAME
    if folder.is_dir() and path.is_file():
        return GeneratorConfig.from_dict(read_json(path, "generator config"), source=path)
    overrides: dict[str, Any] = {
        "prompt_dim": int(unet.config.cross_attention_dim),
        "latent_channels": int(unet.config.in_channels),
        "sample_size": int(unet.config.sample_size),
    }
    sched = folder / "scheduler" / "scheduler_config.json"
    if folder.is_dir() and sched.is_file():
        doc = read_json(sched, "scheduler config")
        if not isinstance(doc, dict):
            raise InputError("a scheduler config must be a JSON object", path=sched)
        for key in ("beta_start", "beta_end", "num_train_timesteps", "beta_schedule"):
            if key in doc:
                overrides[key] = doc[key]
    try:
        return replace(SD_TURBO, **overrides)
    except ValueError as exc:
        raise InputError(str(exc), path=folder) from None

"""Promptus generator, loading and receiver registry on a tiny diffusers model."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from abr.errors import InputError  # noqa: E402
from codec.promptus.generator import SD_TURBO, GeneratorConfig, PromptusGenerator, ddpm_sigma  # noqa: E402
from codec.promptus.prompt import Factors  # noqa: E402
from codec.promptus.receiver import RECEIVERS, Segment, get_receiver, parse_receiver_spec  # noqa: E402
from codec.promptus.testing import save_tiny, tiny_generator  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def gen():
    return tiny_generator(sample_size=8, prompt_len=8)


def test_sigma_of_t999_is_sd_turbo_value():
    # SPEC: sigma(999) = 14.6146 under SD's scaled-linear schedule; the plain linear one differs.
    assert SD_TURBO.sigma == pytest.approx(14.6146, abs=1e-4)
    assert ddpm_sigma(999, beta_schedule="linear") == pytest.approx(25.1461, abs=1e-3)
    assert SD_TURBO.c_in == pytest.approx(1 / math.sqrt(1 + 14.614641**2), rel=1e-6)
    assert SD_TURBO.resolution == 512 and SD_TURBO.prompt_shape == (77, 1024)


def test_config_round_trip_and_validation():
    cfg = GeneratorConfig(name="x", prompt_len=5)
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(InputError, match="unknown generator config key"):
        GeneratorConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="anchor"):
        GeneratorConfig(anchor=1.5)


def test_x0_formula_matches_manual_unet_call(gen):
    cfg = gen.config
    n = gen.noise(3)
    z_prev = torch.randn(n.shape, generator=torch.Generator().manual_seed(1))
    z = gen.start_latent(z_prev, n)
    assert torch.allclose(z, 0.05 * z_prev + 0.95 * n)
    c = torch.randn(2, cfg.prompt_len, cfg.prompt_dim, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = gen.generate_latents(c, z)
        t = torch.full((2,), cfg.timestep)
        x_in = z.expand(2, -1, -1, -1) * math.sqrt(1 + cfg.sigma**2)
        eps = gen.unet(x_in * cfg.c_in, t, encoder_hidden_states=c).sample
        want = x_in - cfg.sigma * eps
    assert torch.allclose(got, want, atol=1e-5)


def test_noise_is_deterministic_and_seed_dependent(gen):
    assert torch.equal(gen.noise(7), gen.noise(7))
    assert not torch.equal(gen.noise(7), gen.noise(8))
    assert tuple(gen.noise(7).shape) == gen.config.latent_shape(1)


def test_decode_range_and_encode_shape(gen):
    with torch.no_grad():
        frames = gen.decode(torch.randn(2, 4, 8, 8) * 3)
        assert frames.shape == (2, 3, 64, 64)
        assert frames.min() >= -1 and frames.max() <= 1
        assert gen.encode_image(frames).shape == (2, 4, 8, 8)


def test_from_pretrained_loads_saved_tiny_model(tmp_path, gen):
    folder = save_tiny(tmp_path / "tiny", sample_size=8, prompt_len=8)
    loaded = PromptusGenerator.from_pretrained(folder, device="cpu")
    assert loaded.config == gen.config
    assert loaded.fingerprint() == gen.fingerprint()
    c = torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(0))
    z = gen.noise(0)
    for mine, theirs in zip(loaded.state_dict().values(), gen.state_dict().values(), strict=True):
        assert torch.equal(mine, theirs)  # the very same weights...
    with torch.no_grad():
        # ...but safetensors hands them out at its file offsets (not 64-byte aligned), and the CPU BLAS
        # takes another kernel path for unaligned operands, summing in another order: about 1e-7 apart.
        assert torch.allclose(loaded(c, z)[0], gen(c, z)[0], rtol=0, atol=1e-5)
        for param in loaded.parameters():
            param.data = param.data.clone()  # fresh storage: torch's CPU allocator aligns to 64 bytes
        assert torch.equal(loaded(c, z)[0], gen(c, z)[0])  # same weights in aligned memory: bit-identical
    # the UNet folder itself (no unet/ subfolder) with an explicit TAESD folder also loads
    alone = PromptusGenerator.from_pretrained(folder / "unet", folder / "taesd", device="cpu")
    assert alone.config.prompt_dim == 32


def test_missing_weights_say_where_to_put_them(tmp_path):
    with pytest.raises(InputError, match="put a diffusers SD-Turbo folder there"):
        PromptusGenerator.from_pretrained(tmp_path / "nothing", device="cpu")
    (tmp_path / "empty" / "unet").mkdir(parents=True)
    with pytest.raises(InputError, match="cannot load UNet"):
        PromptusGenerator.from_pretrained(tmp_path / "empty", device="cpu")


def test_fingerprint_changes_with_weights(gen):
    other = tiny_generator(seed=1, sample_size=8, prompt_len=8)
    assert other.fingerprint() != gen.fingerprint()


def test_receiver_registry_and_specs(gen):
    assert "promptus" in RECEIVERS
    # values are typed from the receiver's keyword parameters, not guessed from their text
    assert parse_receiver_spec("promptus:max_batch=2,noise=numpy") == ("promptus", {"max_batch": 2, "noise": "numpy"})
    with pytest.raises(InputError, match="unknown option 'flag'; valid keys: max_batch, noise"):
        parse_receiver_spec("promptus:flag=true")
    with pytest.raises(InputError, match="unknown receiver 'nope'; valid names: .*promptus"):
        get_receiver("nope", gen)
    with pytest.raises(InputError, match="receiver 'promptus:bogus=1'"):
        get_receiver("promptus:bogus=1", gen)
    with pytest.raises(InputError, match="receiver 'promptus:max_batch=-1': max_batch must be >= 0"):
        get_receiver("promptus:max_batch=-1", gen)
    with pytest.raises(InputError, match="key=value"):
        get_receiver("promptus:max_batch", gen)


def test_receiver_batches_agree_and_last_step_is_keyframe(gen):
    g = torch.Generator().manual_seed(0)
    prev = Factors(torch.randn(8, 2, generator=g), torch.randn(2, 32, generator=g))
    nxt = Factors(torch.randn(8, 2, generator=g), torch.randn(2, 32, generator=g))
    z = gen.noise(1)
    whole = get_receiver("promptus", gen)
    split = get_receiver("promptus:max_batch=2", gen)
    with torch.no_grad():
        a = whole(Segment(prev, nxt, 5, z))
        b = split(Segment(prev, nxt, 5, z))
        key, key_lat = gen(nxt.prompt()[None], z)
    assert a.frames.shape == (5, 3, 64, 64) and a.latents.shape == (5, 4, 8, 8)
    assert torch.allclose(a.frames, b.frames, atol=1e-5)
    assert torch.allclose(a.frames[-1:], key, atol=1e-5) and torch.allclose(a.latents[-1:], key_lat, atol=1e-4)

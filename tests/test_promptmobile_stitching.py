"""Image stitching: exact tile round trips, per-tile cross-attention, the stitched receiver and its compute."""

from __future__ import annotations

import pytest
import torch

from codec.promptmobile.stitching import stitch, stitched_eps, tiled_cross_attention, unstitch
from codec.promptus.testing import tiny_generator


@pytest.fixture(scope="module")
def gen():
    return tiny_generator(seed=0, sample_size=8, prompt_len=77)


def test_stitch_hand_case_and_round_trip():
    x = torch.arange(8.0).reshape(8, 1, 1, 1)  # two canvases of four 1x1 images
    c = stitch(x, 2)
    assert c.shape == (2, 1, 2, 2)
    assert c[0, 0].tolist() == [[0.0, 1.0], [2.0, 3.0]] and c[1, 0].tolist() == [[4.0, 5.0], [6.0, 7.0]]
    y = torch.randn(9, 4, 3, 5)
    assert torch.equal(unstitch(stitch(y, 3), 3), y)
    assert torch.equal(stitch(unstitch(c, 2), 2), c)
    with pytest.raises(ValueError):
        stitch(torch.zeros(3, 1, 2, 2), 2)
    with pytest.raises(ValueError):
        unstitch(torch.zeros(1, 1, 3, 3), 2)


def _attn(gen):
    return next(m.attn2 for m in gen.unet.modules() if type(m).__name__ == "BasicTransformerBlock")


def test_tiled_cross_attention_is_each_tile_with_its_own_prompt(gen):
    """Cross-attention is per query, so a 2x2 canvas equals each 3x3 tile run alone with its own prompt."""
    attn = _attn(gen)
    inner = attn.to_q.in_features
    g = torch.Generator().manual_seed(0)
    tiles = torch.randn(4, inner, 3, 3, generator=g)  # feature maps of four tiles
    prompts = torch.randn(4, 77, 32, generator=g)
    canvas = stitch(tiles, 2)  # (1, inner, 6, 6)
    tokens = canvas.flatten(2).transpose(1, 2)
    with torch.no_grad():
        out = tiled_cross_attention(attn, tokens, prompts.reshape(1, 4 * 77, 32), 2)
        ref = attn(tiles.flatten(2).transpose(1, 2), encoder_hidden_states=prompts)  # (4, 9, inner)
    out_tiles = unstitch(out.transpose(1, 2).reshape(1, -1, 6, 6), 2).flatten(2).transpose(1, 2)
    assert torch.allclose(out_tiles, ref, atol=1e-5)
    with torch.no_grad():  # k = 1 is plain cross-attention
        one = tiled_cross_attention(attn, tokens, prompts[:1], 1)
        plain = attn(tokens, encoder_hidden_states=prompts[:1])
    assert torch.allclose(one, plain, atol=1e-5)


def test_stitched_eps_with_k1_is_the_unet(gen):
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    c = torch.randn(3, 77, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(stitched_eps(gen, z, c, 1), gen.eps(z.expand(3, -1, -1, -1), c), atol=1e-5)


def test_stitched_receiver_shapes_padding_gradients_and_compute(gen, tmp_path):
    from codec.promptmobile.cost import count_macs
    from codec.promptmobile.upsampler import Upsampler, UpsamplerConfig, save_upsampler
    from codec.promptus.prompt import Factors
    from codec.promptus.receiver import Segment, get_receiver

    ups = tmp_path / "u.pt"
    save_upsampler(Upsampler(UpsamplerConfig(width=4, body_layers=0)), ups)
    plain = get_receiver("promptmobile-lowres", gen, upsampler=str(ups))
    st = get_receiver("promptmobile-lowres:stitch=2", gen, upsampler=str(ups))
    assert st.latent_shape(1) == plain.latent_shape(1) == (1, 4, 4, 4)
    g = torch.Generator().manual_seed(3)
    f0 = Factors(torch.rand(77, 4, generator=g), torch.rand(4, 32, generator=g))
    f1 = Factors(torch.rand(77, 4, generator=g, requires_grad=False), torch.rand(4, 32, generator=g))
    z = torch.randn(1, 4, 4, 4, generator=g)
    for n in (4, 5):  # a multiple of k^2 and one that is padded
        frames, lat = st(Segment(f0, f1, n, z))
        assert frames.shape == (n, 3, 64, 64) and lat.shape == (n, 4, 4, 4)
    u = f1.u.clone().requires_grad_(True)
    frames, _ = st(Segment(f0, Factors(u, f1.v), 4, z))
    frames.square().mean().backward()
    assert u.grad is not None and float(u.grad.abs().sum()) > 0
    # compute: the same convolutions as four separate low-resolution calls, more attention
    seg = Segment(f0, f1, 4, z)
    with torch.no_grad():
        m_plain = count_macs(lambda: plain.latents(seg))
        m_st = count_macs(lambda: st.latents(seg))
    assert m_st.by_op["convolution"] == m_plain.by_op["convolution"]
    assert m_st.total > m_plain.total


def test_stitch_option_validation(gen):
    from abr.errors import InputError
    from codec.promptus.receiver import get_receiver

    for spec in ("promptmobile-lowres:stitch=0", "promptmobile:stitch=2", "promptmobile-lossless:stitch=2"):
        with pytest.raises(InputError):
            get_receiver(spec, gen)

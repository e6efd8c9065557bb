"""The ``official`` fitting preset against an independent re-statement of the official loop.

The reference below is written from ``../shared/PROMPTUS_OFFICIAL.md`` (sections 3-5) in the
simplest form: plain Python floats for the quantizer range, a hand-written VGG19 stack from its
channel list, one forward/backward/Adam step per entry of the step list. It shares only the
generator (a tiny random diffusers UNet + TAESD) and the VGG weights with the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

import torch.nn.functional as F  # noqa: E402

from codec.promptus.fit import OFFICIAL, FitConfig, LossConfig, Precision, PromptLoss, fit_segment_official  # noqa: E402
from codec.promptus.prompt import Factors  # noqa: E402
from codec.promptus.receiver import get_receiver  # noqa: E402
from codec.promptus.testing import tiny_generator  # noqa: E402
from codec.promptus.vgg import VGGContentLoss, conv_indices  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]


@pytest.fixture(scope="module")
def gen():
    return tiny_generator(sample_size=2, prompt_len=6, prompt_dim=32)  # 16x16 frames, prompts 6 x 32


@pytest.fixture(scope="module")
def vgg():
    return VGGContentLoss.random("vgg19", seed=3)


# ------------------------------------------------------------------ the reference, from the fact sheet
def ref_vgg(net, gt, pred):
    """Section 4: (x - mean)/std on [-1, 1] inputs, a tap before every ReLU, mse each, sum / (16 + 1e-9)."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    h = (torch.cat([gt, pred]) - mean) / std
    total, i = 0.0, 0
    for item in VGG19:
        if item == "M":
            h = F.max_pool2d(h, 2)
            continue
        h = F.conv2d(h, net.convs[i].weight, net.convs[i].bias, padding=1)
        total = total + F.mse_loss(h[1:], h[:1])
        h = F.relu(h)
        i += 1
    assert i == 16
    return total / (16 + 1e-9)


class RefQ:
    """Section 3: running min/max (max >= 0, min <= 0), zp = round(clamp(255 - max/scale)), clamp then round."""

    def __init__(self):
        self.mx, self.mn = 0.0, 0.0

    def __call__(self, x):
        self.mx = max(self.mx, float(x.detach().max()))
        self.mn = min(self.mn, float(x.detach().min()))
        scale = (self.mx - self.mn) / 255
        zp = round(min(max(255 - self.mx / scale, 0), 255))
        q = torch.round(torch.clamp(zp + x.detach() / scale, 0, 255))
        return x + (scale * (q - zp) - x).detach()


def ref_official(gen, net, gt, prev, z, u0, v0, iters, P, r):
    """Sections 5 and 6 for one keyframe (prev=None: frame 0). Returns (steps, best loss, best factors, losses)."""
    u = u0.clone().requires_grad_(True)
    v = v0.clone().requires_grad_(True)
    lr = 0.1
    opt = torch.optim.Adam([u, v], lr=lr)
    qu, qv = RefQ(), RefQ()
    N = gt.shape[0]
    min_loss, latest_min_loss, counter = 1e9, 1e9, P
    best, worst, steps, history = None, None, 0, []
    for it in range(iters):
        if prev is None:
            step_list = [N]
        elif it == 0:
            step_list = list(range(1, N + 1))
        else:
            step_list = sorted(list(range(1, N + 1)) + [worst, worst])
        loss_list = {}
        for s in step_list:
            QU, QV = qu(u), qv(v)
            if prev is None:
                c = QU @ QV / np.sqrt(r)
            else:
                uu = (1 - s / N) * prev[0] + (s / N) * QU
                vv = (1 - s / N) * prev[1] + (s / N) * QV
                c = uu @ vv / np.sqrt(r)
            x, _ = gen(c.unsqueeze(0), z, clamp=False)
            y = gt[s - 1 : s]
            loss = 0.8 * F.mse_loss(x, y) + 0.2 * ref_vgg(net, y, x) + 0.1 * torch.mean(torch.abs(c))
            loss.backward()
            opt.step()
            opt.zero_grad()
            steps += 1
            loss_list.setdefault(s, loss.item())
            saved = (QU.detach().clone(), QV.detach().clone())
        mean_loss = float(np.mean([loss_list[s] for s in range(1, N + 1)]))
        history.append(mean_loss)
        if mean_loss < min_loss:
            min_loss, best = mean_loss, saved
        worst = 1 + int(np.argmax([loss_list[s] for s in range(1, N + 1)]))
        counter -= 1
        if counter == 0:
            if min_loss == latest_min_loss:
                lr = max(lr * 0.5, 0.001)
                opt = torch.optim.Adam([u, v], lr=lr)
            latest_min_loss = min_loss
            counter = P
    return steps, min_loss, best, history


# ------------------------------------------------------------------ tests
def _case(gen, n, seed):
    g = torch.Generator().manual_seed(seed)
    side = gen.config.resolution
    gt = torch.rand(n, 3, side, side, generator=g) * 2 - 1
    z = torch.randn(1, 4, gen.config.sample_size, gen.config.sample_size, generator=g)
    L, D = gen.config.prompt_shape
    u0, v0 = torch.rand(L, 4, generator=g), torch.rand(4, D, generator=g)
    prev = (torch.rand(L, 4, generator=g) * 2 - 1, torch.rand(4, D, generator=g) * 2 - 1)
    return gt, z, u0, v0, prev


@pytest.mark.parametrize(("n", "with_prev", "patience"), [(3, True, 1), (1, False, 2)])
def test_official_loop_equals_hand_written_reference(gen, vgg, n, with_prev, patience):
    """3 iterations: same optimizer step count (N + 2 (N + 2) = 13 for N = 3), same losses, same saved factors.

    patience 1 checks the plateau rule after every iteration (the first check never lowers the rate);
    frame 0 (no previous keyframe) takes one step per iteration.
    """
    gt, z, u0, v0, prev = _case(gen, n, seed=n * 10 + patience)
    prev = prev if with_prev else None
    ref_steps, ref_loss, ref_best, ref_hist = ref_official(gen, vgg, gt, prev, z, u0, v0, 3, patience, 4)

    cfg = OFFICIAL
    loss_fn = PromptLoss(cfg.loss, perceptual_net=vgg)
    hist = []
    q, best, iters, steps = fit_segment_official(
        get_receiver("promptus", gen), gt, Factors(*prev) if prev else None, z, cfg, init=(u0, v0), iters=3,
        patience=patience, loss_fn=loss_fn, progress=lambda it, b: hist.append(b),
    )
    expected_steps = n + 2 * (n + 2) if with_prev else 3
    assert steps == ref_steps == expected_steps
    assert iters == 3
    assert best == pytest.approx(ref_loss, rel=1e-5)
    assert hist == pytest.approx(list(np.minimum.accumulate(ref_hist)), rel=1e-5)
    fac = q.factors()
    torch.testing.assert_close(fac.u, ref_best[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fac.v, ref_best[1], atol=1e-5, rtol=1e-5)


def test_official_preset_is_the_fact_sheet():
    o = OFFICIAL
    assert (o.iters_first, o.iters, o.patience_first, o.patience) == (10_000, 1_500, 300, 20)
    assert (OFFICIAL.lr, OFFICIAL.lr_min, OFFICIAL.worst_extra, OFFICIAL.noise_seed) == (0.1, 0.001, 2, 88)
    assert OFFICIAL.loss == LossConfig(0.8, 0.2, "vgg19", 0.1, clamp=False)
    # per keyframe with N = 10: 10 + 1499 * 12 = 17,998 optimizer steps (fact sheet section 0)
    assert 10 + (OFFICIAL.iters - 1) * (10 + OFFICIAL.worst_extra) == 17_998


def test_numpy_noise_matches_the_check_vector(gen):
    """Section 1: RandomState(88).randn(1, 4, 64, 64); first six values, mean and std."""
    rec = get_receiver("promptus:noise=numpy", tiny_generator(sample_size=64, prompt_len=4))
    n = rec.noise(88)
    assert n.shape == (1, 4, 64, 64) and n.dtype == torch.float32
    np.testing.assert_allclose(n.flatten()[:6].numpy(),
                               [0.1068843, 2.2058153, 0.9565627, 0.0684111, 1.0685139, 0.9971827], atol=1e-6)
    assert float(n.mean()) == pytest.approx(0.017996, abs=1e-6)
    assert float(n.std(correction=0)) == pytest.approx(1.005268, abs=1e-5)  # numpy: population std


def test_vgg19_reads_a_torchvision_state_dict(tmp_path, vgg, monkeypatch):
    """torchvision's features indices; weights loaded only with weights_only=True; wrong files are InputError."""
    from abr.errors import InputError

    assert conv_indices("vgg19") == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    state = {}
    for i, idx in enumerate(conv_indices("vgg19")):
        state[f"features.{idx}.weight"] = vgg.convs[i].weight.clone()
        state[f"features.{idx}.bias"] = vgg.convs[i].bias.clone() + 0.01 * i
    state["classifier.0.weight"] = torch.zeros(2, 2)
    torch.save(state, tmp_path / "vgg19.pth")
    net = VGGContentLoss("vgg19", tmp_path / "vgg19.pth")
    torch.testing.assert_close(net.convs[5].bias, vgg.convs[5].bias + 0.05)
    del state["features.34.bias"]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(InputError, match="features.34.bias"):
        VGGContentLoss("vgg19", tmp_path / "bad.pth")
    monkeypatch.delenv("PROMPTABR_VGG19_WEIGHTS", raising=False)
    with pytest.raises(InputError, match="PROMPTABR_VGG19_WEIGHTS"):
        VGGContentLoss("vgg19")


def test_fp16_loss_scaling_keeps_gradients_that_plain_fp16_loses(gen):
    """Plain fp16 backprop (the official code) underflows every prompt gradient to 0 on a case where they
    are ~1e-8 (the scale of 0.8 x MSE over 10 x 512 x 512 pixels: here a 0.001 weight on 32 x 32 frames);
    loss scaling with fp32 master factors recovers them within 20% of the float32 gradients."""
    g = torch.Generator().manual_seed(0)
    L, D = gen.config.prompt_shape
    u0, v0 = torch.rand(L, 2, generator=g), torch.rand(2, D, generator=g)
    z = torch.randn(1, 4, gen.config.sample_size, gen.config.sample_size, generator=g)
    with torch.no_grad():
        target = gen((u0 @ v0 / math.sqrt(2)).unsqueeze(0), z, clamp=False)[0]
    target = target + 3e-2 * torch.randn(target.shape, generator=g)
    loss_cfg = LossConfig(mse=1e-3, perceptual=0.0, l1_prompt=0.0)

    def grads(mode: str, model) -> torch.Tensor:
        u, v = u0.clone().requires_grad_(True), v0.clone().requires_grad_(True)
        opt = torch.optim.Adam([u, v])
        prec = Precision(mode, torch.device("cpu"))
        with prec.autocast():
            frames, _ = model((u @ v / math.sqrt(2)).unsqueeze(0), z, clamp=False)
            loss = PromptLoss(loss_cfg)(frames, target, (u @ v).unsqueeze(0)).mean()
        prec.backward(loss, opt)
        return torch.cat([u.grad.flatten(), v.grad.flatten()])

    ref = grads("fp32", gen)
    half = tiny_generator(sample_size=gen.config.sample_size, prompt_len=L, prompt_dim=D).half()  # pure fp16
    plain = grads("fp16-noscale", half)
    scaled = grads("fp16", half)
    assert (ref != 0).float().mean() > 0.99 and float(ref.abs().max()) < 1e-6
    assert (plain == 0).float().mean() > 0.9, "expected plain fp16 to underflow here"
    assert (scaled == 0).float().mean() < 0.02
    assert float((scaled - ref).norm() / ref.norm()) < 0.2


def test_official_cfg_validation():
    with pytest.raises(ValueError, match="steps"):
        FitConfig(steps="batch")
    with pytest.raises(ValueError, match="precision"):
        FitConfig(precision="fp8")


def test_fit_video_official_counts_steps_and_anchors_on_float_latent(gen):
    """5 frames, N = 2: keyframes 0, 2, 4; frame 0 takes 1 step per iteration, later keyframes N + (iters-1)(N+2)."""
    from codec.promptus.fit import fit_video

    g = torch.Generator().manual_seed(5)
    frames = torch.rand(5, 3, gen.config.resolution, gen.config.resolution, generator=g) * 2 - 1
    cfg = FitConfig(rank=2, interval=2, iters_first=2, iters=2, steps="per-frame", quantizer="running",
                    first_latent="float32", loss=LossConfig(mse=0.8, perceptual=0.0, l1_prompt=0.1, clamp=False))
    fit = fit_video(get_receiver("promptus:noise=numpy", gen), frames, cfg, progress=False)
    assert [k.frame for k in fit.keyframes] == [0, 2, 4]
    assert [k.steps for k in fit.keyframes] == [2, 2 + 4, 2 + 4]
    assert [k.iterations for k in fit.keyframes] == [2, 2, 2]
    assert all(np.isfinite(k.loss) for k in fit.keyframes)


def test_encode_cli_official_preset_in_fp16_with_loss_scaling(tmp_path):
    """codec.encode --preset official --dtype fp16 on CPU: the stream records the numpy-noise receiver and decodes."""
    pytest.importorskip("av")
    from codec import decode as decode_cli
    from codec import encode as encode_cli
    from codec.promptus.bitstream import read_stream
    from codec.promptus.pipeline import write_video
    from codec.promptus.testing import save_tiny

    model = save_tiny(tmp_path / "model", sample_size=4, prompt_len=6)
    side = 40
    yy, xx = np.mgrid[0:side, 0:side]
    clip = np.asarray([np.stack([(xx * 6 + 9 * t) % 256, (yy * 6) % 256, (xx + yy + 5 * t) % 256], -1)
                       for t in range(4)], dtype=np.uint8)
    write_video(clip, tmp_path / "clip.mp4", fps=4.0, crf=0)
    out = tmp_path / "enc"
    rc = encode_cli.main([str(tmp_path / "clip.mp4"), "--ranks", "2", "--interval", "2", "--model", str(model),
                          "--out", str(out), "--preset", "official", "--dtype", "fp16", "--iters-first", "2",
                          "--iters", "1", "--perceptual", "off", "--lpips", "none", "--chunk-s", "1", "--device",
                          "cpu", "--quiet"])
    assert rc == 0
    stream = read_stream(out / "promptus_r2_n2.prmt")
    assert stream.header.receiver == "promptus:noise=numpy" and stream.header.seed == 88
    rc = decode_cli.main([str(out / "promptus_r2_n2.prmt"), "--out", str(tmp_path / "d.avi"), "--model", str(model),
                          "--device", "cpu", "--quiet"])
    assert rc == 0

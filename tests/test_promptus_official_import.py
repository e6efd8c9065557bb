"""Importing the official release's prompt files (torch-saved factors) into our bitstream."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from abr.errors import InputError  # noqa: E402
from codec.promptus import official  # noqa: E402
from codec.promptus.bitstream import read_stream  # noqa: E402
from codec.promptus.pipeline import decode_frames  # noqa: E402
from codec.promptus.testing import tiny_generator  # noqa: E402


def _official_folder(tmp_path, frames=(0, 2, 4), L=6, r=3, D=32, side=2, seed=0):
    """A results folder laid out like upstream's: frame_XXXXX.prompt dicts and init.pth, all torch.save'd."""
    g = torch.Generator().manual_seed(seed)
    folder = tmp_path / f"rank{r}_interval2"
    folder.mkdir()
    for k in frames:
        doc = {
            "U": torch.randint(0, 256, (L, r), generator=g, dtype=torch.uint8),
            "V": torch.randint(0, 256, (r, D), generator=g, dtype=torch.uint8),
            "U_scale": torch.tensor(0.02 + 0.001 * k), "U_zero_point": torch.tensor(127.0),
            "V_scale": torch.tensor(0.1), "V_zero_point": torch.tensor(120.0 + k),
        }  # fmt: skip
        torch.save(doc, folder / f"frame_{k:05d}.prompt")
    torch.save(torch.randn(1, 4, side, side, generator=g), folder / "init.pth")
    return folder


def test_import_keeps_codes_and_decodes_like_the_official_receiver(tmp_path):
    folder = _official_folder(tmp_path)
    clip, size = official.import_official(folder, tmp_path / "s.prmt", fps=30.0)
    s = read_stream(tmp_path / "s.prmt")
    assert s.header.receiver == "promptus:noise=numpy" and s.header.seed == 88
    assert (s.header.rank, s.header.interval, s.header.n_frames, s.header.prompt_shape) == (3, 2, 5, (6, 32))
    assert [(k.frame, k.length) for k in s.keyframes] == [(0, 1), (2, 2), (4, 2)]
    for k, ref in zip(s.keyframes, clip.keyframes):
        assert np.array_equal(k.u, ref.u) and np.array_equal(k.v, ref.v) and k.u_q == ref.u_q and k.v_q == ref.v_q
    assert clip.keyframes[1].u_q.scale == pytest.approx(0.022) and clip.keyframes[2].v_q.zero_point == 124.0
    assert clip.payload_bytes == (6 * 3 + 3 * 32 + 16,) * 3 and size == (tmp_path / "s.prmt").stat().st_size

    # frame 2 (keyframe 2, s = N) by the official formulas, straight from the torch files
    gen = tiny_generator(sample_size=2, prompt_len=6, prompt_dim=32)
    docs = [torch.load(folder / f"frame_{k:05d}.prompt", weights_only=True) for k in (0, 2)]
    deq = [(d["U_scale"] * (d["U"].float() - d["U_zero_point"]), d["V_scale"] * (d["V"].float() - d["V_zero_point"]))
           for d in docs]
    noise = torch.from_numpy(np.random.RandomState(88).randn(1, 4, 2, 2).astype(np.float32))
    z_prev = torch.load(folder / "init.pth", weights_only=True)
    with torch.no_grad():
        _, z0 = gen((deq[0][0] @ deq[0][1] / math.sqrt(3)).unsqueeze(0), 0.05 * z_prev + 0.95 * noise)
        f2, _ = gen((deq[1][0] @ deq[1][1] / math.sqrt(3)).unsqueeze(0), 0.05 * z0 + 0.95 * noise)
    out = dict(decode_frames(s, gen, strict=False))
    want = ((f2[0].clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).numpy()
    # the latent record is float32 (init.pth bit-exact): the frames agree up to float rounding
    assert np.abs(out[1][1].astype(float) - want).max() <= 1


def test_import_refuses_bad_files_with_one_line(tmp_path):
    folder = _official_folder(tmp_path)
    doc = torch.load(folder / "frame_00002.prompt", weights_only=True)
    torch.save({**doc, "extra": torch.zeros(1)}, folder / "frame_00002.prompt")
    with pytest.raises(InputError, match="exactly"):
        official.import_official(folder, tmp_path / "s.prmt")
    torch.save({**doc, "V_scale": torch.tensor(float("nan"))}, folder / "frame_00002.prompt")
    with pytest.raises(InputError, match="V_scale is not finite"):
        official.import_official(folder, tmp_path / "s.prmt")

    class Boom:
        def __reduce__(self):
            return (print, ("code ran",))

    (folder / "frame_00002.prompt").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(InputError, match="not a readable official prompt file"):
        official.import_official(folder, tmp_path / "s.prmt")
    (folder / "init.pth").unlink()
    (folder / "frame_00002.prompt").unlink()
    with pytest.raises(InputError, match="init.pth"):
        official.load_official_folder(folder)
    assert not (tmp_path / "s.prmt").exists()


def test_cli(tmp_path, capsys):
    folder = _official_folder(tmp_path)
    assert official.main([str(folder), "--out", str(tmp_path / "c.prmt"), "--fps", "25"]) == 0
    assert "3 keyframes, rank 3" in capsys.readouterr().out
    assert read_stream(tmp_path / "c.prmt").header.fps == 25.0
    assert official.main([str(tmp_path / "nope"), "--out", str(tmp_path / "d.prmt")]) == 2

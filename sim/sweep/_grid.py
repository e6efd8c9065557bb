"""The sweep grid: axes of parameter values, and its expansion into cells.

A grid is the Cartesian product of its axes (policies, ladders, devices, QoE presets, trace
sets, trace transforms, simulator presets). Each point of the product is a :class:`CellParams`;
its ``sessions`` sessions are cut into blocks of ``block`` session ids, and one (point, block)
pair is a :class:`Cell`, the unit of work an executor runs and the store saves. Because a
session's result depends only on the seed and its id (:mod:`sim.rng`), any split into blocks
and any executor give the same rows.

Spec strings are those of the rest of promptabr: ``get_policy`` (``bola:gamma=5``), ladder
expressions (:func:`sim.sweep.resolve_ladder`), device names or files, QoE presets, trace
specs (``load_traces``), transform specs (``traces.transforms``, e.g. ``scale=0.5,cap=3``;
``""`` = unchanged) and ``SIM_PRESETS`` names.

A cell's key hashes its spec strings and the contents of every file they read
(:func:`spec_inputs`: named files, folders, globs, embedded ladders), so editing a ladder or
trace file makes its cells run again instead of reusing stale results.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from abr.errors import InputError
from abr.io import read_json, read_text, sha256_file
from abr.options import split_specs
from abr.registry import DEFAULT_LADDER, embedded_ladder_file
from sim.resolve import DEFAULT_DEVICE

__all__ = [
    "Cell",
    "CellParams",
    "Grid",
    "PARAM_COLUMNS",
    "load_grid",
    "referenced_files",
    "spec_inputs",
    "split_specs",
    "transform_product",
]

#: Bump when a change of this package changes what a cell file holds (old cells are then not reused).
CELL_FORMAT = 1

#: Table columns that identify a grid point, in table order.
PARAM_COLUMNS = ("policy", "ladder", "device", "qoe", "traces", "transform", "sim")


@dataclass(frozen=True, slots=True)
class CellParams:
    """One point of the grid (every field a spec string)."""

    policy: str
    ladder: str
    device: str
    qoe: str
    traces: str
    transform: str
    sim: str


@dataclass(frozen=True, slots=True)
class Cell:
    """Sessions ``[start, stop)`` of one grid point: the unit of work and of storage.

    :param params: the grid point.
    :param start: first session id.
    :param stop: one past the last session id.
    :param seed: the run's seed (traces of models, start positions, delay noise, random transforms).
    :param trace_count: traces drawn from a network model.
    :param inputs: :func:`spec_inputs` of each parameter (in :data:`PARAM_COLUMNS` order): the
        contents of the files the specs read, taken when the grid was expanded.
    """

    params: CellParams
    start: int
    stop: int
    seed: int
    trace_count: int
    inputs: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Stable hash of specs, file contents and sessions: names the cell's result file, so a restart
        finds finished cells, and an edited input file does not."""
        doc = {c: getattr(self.params, c) for c in PARAM_COLUMNS}
        doc |= {"format": CELL_FORMAT, "start": self.start, "stop": self.stop, "seed": self.seed,
                "trace_count": self.trace_count, "inputs": list(self.inputs)}  # fmt: skip
        return hashlib.sha1(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:20]

    @property
    def n_sessions(self) -> int:
        return self.stop - self.start


def _tuple(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    try:
        out = tuple(str(v) for v in value)
    except TypeError:
        raise InputError(f"grid axis {name!r} must be a list of strings, got {value!r}") from None
    if not out:
        raise InputError(f"grid axis {name!r} is empty")
    if len(set(out)) != len(out):
        raise InputError(f"grid axis {name!r} repeats a value: {list(out)}")
    return out


@dataclass(frozen=True, slots=True)
class Grid:
    """What to sweep. Every axis is a tuple of spec strings; the grid is their product.

    :param policies: policy specs (``bola``, ``bola:gamma=5``, ``mpc``...) or ``oracle`` (the bound).
    :param ladders: ladder expressions (names, files, ``synthetic:...``, ``A+B``, ``A[0/2/4]``).
    :param devices: device profile names or files.
    :param qoes: QoE preset names.
    :param traces: trace specs (model name, file, folder or glob).
    :param transforms: trace transform specs (``""`` = unchanged).
    :param sims: simulator presets.
    :param sessions: sessions per grid point; session ``i`` plays trace ``i mod len(traces)``.
    :param block: sessions per cell (the unit of work and of restart); 0 = all in one cell.
    :param seed: seed of every random draw.
    :param trace_count: traces drawn from a network model.
    """

    policies: tuple[str, ...] = ("bola",)
    ladders: tuple[str, ...] = (DEFAULT_LADDER,)
    devices: tuple[str, ...] = (DEFAULT_DEVICE,)
    qoes: tuple[str, ...] = ("perceptual",)
    traces: tuple[str, ...] = ("lte",)
    transforms: tuple[str, ...] = ("",)
    sims: tuple[str, ...] = ("promptabr",)
    sessions: int = 64
    block: int = 1000
    seed: int = 0
    trace_count: int = 16

    def __post_init__(self) -> None:
        for name in _AXES:
            object.__setattr__(self, name, _tuple(getattr(self, name), name))
        for name, low in (("sessions", 1), ("block", 0), ("trace_count", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InputError(f"grid: {name} must be an integer >= {low}, got {value!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise InputError(f"grid: seed must be an integer, got {self.seed!r}")

    @property
    def points(self) -> list[CellParams]:
        """Every grid point, in table order (policy varies slowest)."""
        axes = [getattr(self, name) for name in _AXES]
        return [CellParams(*combo) for combo in itertools.product(*axes)]

    def cells(self) -> list[Cell]:
        """Every cell: each grid point cut into blocks of ``block`` sessions, keyed by its inputs' contents."""
        step = self.block or self.sessions
        bounds = [(a, min(a + step, self.sessions)) for a in range(0, self.sessions, step)]
        digests = {spec: spec_inputs(spec) for name in _AXES for spec in getattr(self, name)}
        cells = []
        for p in self.points:
            inputs = tuple(digests[getattr(p, c)] for c in PARAM_COLUMNS)
            cells += [Cell(p, a, b, self.seed, self.trace_count, inputs) for a, b in bounds]
        return cells

    @property
    def n_sessions(self) -> int:
        return len(self.points) * self.sessions

    def varying(self) -> list[str]:
        """Parameter columns with more than one value in this grid."""
        return [col for col, name in zip(PARAM_COLUMNS, _AXES) if len(getattr(self, name)) > 1]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready mapping :meth:`from_dict` reads back."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, doc: Any, source: object = "<grid>") -> Grid:
        """A grid from a mapping; see :func:`load_grid` for the accepted keys."""
        if not isinstance(doc, dict):
            raise InputError("a grid file must hold a mapping of axis -> values", path=source)
        doc = dict(doc)
        key_axes = doc.pop("transform_axes", None) or {}
        if not isinstance(key_axes, dict):
            raise InputError("'transform_axes' must map a transform key to a list of values", path=source)
        names = {f.name for f in fields(cls)}
        aliases = {"policy": "policies", "ladder": "ladders", "device": "devices", "qoe": "qoes",
                   "trace": "traces", "transform": "transforms", "sim": "sims"}  # fmt: skip
        kwargs: dict[str, Any] = {}
        for key, value in doc.items():
            name = aliases.get(key, key)
            if name not in names:
                valid = sorted(names | set(aliases) | {"transform_axes"})
                raise InputError(f"unknown grid key {key!r}; valid keys: {', '.join(valid)}", path=source)
            if name in kwargs:
                raise InputError(f"grid key {key!r} given twice (as {name!r})", path=source)
            kwargs[name] = value
        if key_axes:
            base = _tuple(kwargs.get("transforms", ("",)), "transforms")
            kwargs["transforms"] = transform_product(base, {str(k): _tuple(v, k) for k, v in key_axes.items()})
        try:
            return cls(**kwargs)
        except InputError as exc:
            raise InputError(str(exc), path=source) from None


_AXES = ("policies", "ladders", "devices", "qoes", "traces", "transforms", "sims")


#: Where a spec string may name a file: the whole spec and its pieces between these separators.
_SPEC_SEPARATORS = re.compile(r"[+,=:@]")
_SUFFIX = re.compile(r"(\[[^\[\]]*\]|\*\d+)$")  # a rung selector [0/2] or a repeat *4 after a ladder


def referenced_files(spec: str) -> list[Path]:
    """Files a spec string may read: pieces naming a file, a folder (its files, at any depth), a glob
    or an embedded ladder. Pieces that name nothing on disk (model names, options) add nothing."""
    pieces = {spec, *_SPEC_SEPARATORS.split(spec)}
    for piece in list(pieces):
        while (stripped := _SUFFIX.sub("", piece)) != piece:
            piece = stripped
            pieces.add(piece)
    files: set[Path] = set()
    for piece in filter(None, (p.strip() for p in pieces)):
        path = Path(piece)
        if path.is_file():
            files.add(path)
        elif path.is_dir():
            files.update(f for f in path.rglob("*") if f.is_file() and not f.name.startswith("."))
        elif any(c in piece for c in "*?[") and (hits := glob.glob(piece, recursive=True)):
            files.update(Path(f) for f in hits if Path(f).is_file())
        elif (embedded := embedded_ladder_file(piece)) is not None:
            files.add(embedded)
    return sorted(files)


@functools.lru_cache(maxsize=4096)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    return sha256_file(path)


def spec_inputs(spec: str) -> str:
    """Digest of the contents of the files ``spec`` reads (``""`` when it reads none).

    Each file is hashed once per (path, modification time, size) in a process.
    """
    files = referenced_files(spec)
    if not files:
        return ""
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f}\0{_file_digest(str(f), st.st_mtime_ns, st.st_size)}\0".encode())
    return h.hexdigest()[:20]


def transform_product(base: tuple[str, ...], axes: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Transform specs from a product of per-key values, e.g. ``{"scale": ("0.5", "1")}``.

    Each result is ``key=value,...`` for every key (in the order given) followed by a base spec.
    """
    out = []
    for b in base:
        for combo in itertools.product(*axes.values()):
            parts = [f"{k}={v}" for k, v in zip(axes, combo)] + ([b] if b else [])
            out.append(",".join(parts))
    return tuple(dict.fromkeys(out))


def load_grid(path: str | Path) -> Grid:
    """Read a grid from YAML (``.yaml``/``.yml``) or JSON.

    Keys: ``policies``, ``ladders``, ``devices``, ``qoes``, ``traces``, ``transforms``,
    ``sims`` (lists, or one string; singular aliases accepted), ``transform_axes`` (a mapping
    ``{scale: [0.25, 0.5, 1], cap: [3]}`` whose product is combined with ``transforms``),
    ``sessions``, ``block``, ``seed``, ``trace_count``.
    """
    path = Path(path)
    if path.suffix in (".yaml", ".yml"):
        text = read_text(path, "grid")
        try:
            import yaml
        except ImportError:  # pragma: no cover - PyYAML ships with most environments
            raise InputError("reading a YAML grid needs PyYAML (pip install pyyaml); or use JSON", path=path) from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            raise InputError(
                f"not valid YAML ({getattr(exc, 'problem', exc)})", path=path, line=None if line is None else line + 1
            ) from None
        except RecursionError:
            raise InputError("YAML nested too deeply", path=path) from None
    else:
        doc = read_json(path, "grid")
    return Grid.from_dict(doc, source=path)

"""The package structure drawn in the README ("Structure"), checked against the code: every import
of a first-party module, at module level or inside a function, points down the layers (abr at
the bottom; codec, traces and policies beside each other, none importing another; sim on top),
and no two modules import each other, directly or round a longer circle."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Layer of each package: a package may import its own layer's package and lower layers only.
LAYERS = {"abr": 0, "codec": 1, "traces": 1, "policies": 1, "sim": 2}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in LAYERS:
        for path in (ROOT / pkg).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the first-party modules it imports (anywhere in its body)."""

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = defaultdict(set)
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                target = owner(name)
                if target is not None and target != mod:
                    edges[mod].add(target)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def test_the_checks_find_what_they_look_for():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    edges = _imports(_modules())
    assert "abr.errors" in edges["sim.core"] or any(t.startswith("abr") for t in edges["sim.core"])
    assert "traces.trace" in edges["traces.sets"]  # relative and absolute imports both resolve


def test_imports_point_down_the_layers():
    edges = _imports(_modules())
    wrong = [f"{m} -> {t}" for m, ts in sorted(edges.items()) for t in sorted(ts)
             if m.split(".")[0] != t.split(".")[0] and LAYERS[t.split(".")[0]] >= LAYERS[m.split(".")[0]]]  # fmt: skip
    assert not wrong, "imports across or up the layers:\n" + "\n".join(wrong)


def test_no_import_cycles():
    assert _cycles(_imports(_modules())) == []

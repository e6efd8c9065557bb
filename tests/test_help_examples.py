"""Every example a CLI prints in ``--help`` runs as written (from a folder with ../shared beside it)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLIS = ("sim.run", "sim.train", "sim.whatif", "traces", "traces.fit", "codec.encode", "codec.decode", "codec.ladder",
        "codec.promptmobile.train_upsampler")  # fmt: skip


def _help(module: str) -> str:
    return subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True).stdout  # fmt: skip


def _examples() -> list[tuple[str, str]]:
    found = []
    for module in CLIS:
        for line in _help(module).splitlines():
            m = re.match(r"\s+(python -m \S+ .*)$", line)
            if m:
                found.append((module, m.group(1).split("  #")[0].strip()))
    return found


EXAMPLES = _examples()


def test_help_has_examples():
    assert any(mod == "traces" for mod, _ in EXAMPLES)


@pytest.mark.parametrize("module, example", EXAMPLES, ids=[e for _, e in EXAMPLES])
def test_help_example_runs(module, example, tmp_path, shared_data):
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared").symlink_to(shared_data.parent)  # ../shared as in a checkout
    argv = shlex.split(example)
    assert argv[:3] == ["python", "-m", module]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, *argv[1:]], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{example}\n{done.stderr[-2000:]}"

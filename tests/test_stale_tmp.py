"""Temporary files of a killed writer beside a single output file (``sim.run --out FILE``) are
removed by the next run; those of a live writer, and anything that is not our temporary of that
name, are left alone (``abr.lock.clean_stale_tmp_beside``, ``abr.io.write_atomic``)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

from abr.io import write_atomic
from abr.lock import clean_stale_tmp_beside
from sim.run import main

ROOT = Path(__file__).resolve().parents[1]
# a writer that makes its temporary file, then hangs inside write() until killed
_HANGING_WRITER = (
    "import sys, time\n"
    "from abr.io import write_atomic\n"
    "def write(p):\n"
    "    p.write_text('partial')\n"
    "    print(p, flush=True)\n"
    "    time.sleep(600)\n"
    "write_atomic(sys.argv[1], write, suffix=sys.argv[2])\n"
)


def _start_writer(target: Path, suffix: str = ".tmp") -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([sys.executable, "-c", _HANGING_WRITER, str(target), suffix], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    tmp = Path(proc.stdout.readline().strip())  # printed once the temporary file exists
    return proc, tmp


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stdout.close()


def test_a_live_writers_temporary_stays_and_a_killed_ones_goes(tmp_path):
    target = tmp_path / "out.csv"
    proc, tmp = _start_writer(target)
    try:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.csv.") and tmp.name.endswith(".tmp")
        assert tmp.read_text() == "partial"
        assert clean_stale_tmp_beside(target) == [] and tmp.exists()  # its writer holds the lock
    finally:
        _kill(proc)
    assert tmp.exists() and not target.exists()  # kill -9 while writing: a temporary, no output
    assert clean_stale_tmp_beside(target) == [tmp] and not tmp.exists()


def test_a_suffixed_temporary_of_a_killed_writer_goes(tmp_path):
    target = tmp_path / "plot.png"
    proc, tmp = _start_writer(target, ".png")
    _kill(proc)
    assert tmp.name.endswith(".tmp.png")
    assert clean_stale_tmp_beside(target) == [tmp]


def test_only_our_temporaries_of_that_name_are_swept(tmp_path):
    target = tmp_path / "out.csv"
    stale = [tmp_path / ".out.csv.ab_12xyz.tmp", tmp_path / ".out.csv.k9k9k9k9.tmp.csv"]
    kept = [
        tmp_path / ".out.chunks.csv.ab12xyz9.tmp",  # another output's (swept when that one is written)
        tmp_path / ".other.csv.ab12xyz9.tmp",
        tmp_path / ".out.csv.short.tmp",  # not tempfile's 8 characters
        tmp_path / ".out.csv.ab12xyz9.txt",
        tmp_path / "out.csv.ab12xyz9.tmp",  # not hidden
        tmp_path / "out.csv",
    ]
    for p in stale + kept:
        p.write_text("x")
    (tmp_path / ".out.csv.dir12345.tmp").mkdir()  # a folder of that name is no temporary file
    kept.append(tmp_path / ".out.csv.dir12345.tmp")
    assert sorted(clean_stale_tmp_beside(target)) == sorted(stale)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)
    assert clean_stale_tmp_beside(tmp_path / "missing" / "out.csv") == []


def test_a_locked_temporary_is_left_until_its_lock_goes(tmp_path):
    target = tmp_path / "out.json"
    tmp = tmp_path / ".out.json.q1w2e3r4.tmp"
    tmp.write_text("partial")
    fd = os.open(tmp, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert clean_stale_tmp_beside(target) == [] and tmp.exists()
    finally:
        os.close(fd)
    assert clean_stale_tmp_beside(target) == [tmp]


def test_write_atomic_holds_the_lock_while_writing_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a.txt"
    seen = []

    def write(p):
        p.write_text("done")
        seen.append(clean_stale_tmp_beside(target))  # our own temporary: alive, so kept
        seen.append(p.exists())

    write_atomic(target, write)
    assert seen == [[], True]
    assert target.read_text() == "done" and sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_sim_run_sweeps_stale_temporaries_beside_its_outputs(tmp_path, capsys):
    out = tmp_path / "res.csv"
    stale = [tmp_path / f".{name}.{tag}.tmp" for name, tag in
             (("res.csv", "aaaa1111"), ("res.chunks.csv", "bbbb2222"), ("res.meta.json", "cccc3333"))]  # fmt: skip
    for p in stale:
        p.write_text("partial")
    assert main(["--policy", "bba", "--trace-count", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    assert not any(p.exists() for p in stale)
    assert sorted(os.listdir(tmp_path)) == ["res.chunks.csv", "res.csv", "res.meta.json"]

"""Mutation testing of the core modules with mutmut: does the suite fail when behaviour changes?

    python bench/mutation.py                  # every module in [tool.mutation.modules], in order
    python bench/mutation.py abr/qoe.py       # one module (or several)
    python bench/mutation.py --list           # the modules and their test files

Each module runs in its own work folder (``.mutation/<module>/``, git-ignored) with a
generated ``[tool.mutmut]`` that mutates only that file and selects only its test files
(``[tool.mutation.modules]`` in pyproject.toml), so one module takes minutes, not hours.
mutmut keeps its results there, so a rerun resumes: it first retests the mutants that
survived last time (the tests may have changed), then runs any not yet checked.
``--fresh`` starts the module from scratch. ``--only PATTERN`` runs the mutants whose names match
a glob (``'codec.promptus.quant.xǁRunningQuantǁ*'``: one function or class of a large module).

mutmut forks one child per mutant from a process that has already run the tests; a forked
child that touches an OpenMP/BLAS thread pool the parent started can hang (torch does:
equivalent mutants of codec/promptus/quant.py all "timed out"), so mutmut runs here with
one thread per process (``OMP_NUM_THREADS=1`` and friends). ``--retest-timeouts`` reruns the
mutants recorded as timed out (runs before this setting may hold such false catches).

Score = caught / (mutants run - equivalent), where caught = killed or timed out, and
equivalent = listed in ``tests/mutation_equivalent.txt`` (``name | reason``, one a line:
mutants that change no behaviour). Surviving non-equivalent mutants are written with
their diffs to ``.mutation/<module>/survivors.txt``: each is a missing test (or a new
equivalent to list, with its reason). Slow (the whole list: about an hour on 2 cores),
so run it before merging changes to these modules, not on every CI run.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENT = ROOT / "tests" / "mutation_equivalent.txt"
PACKAGES = ("abr", "codec", "policies", "sim", "traces")
CAUGHT = {"killed", "timeout", "segfault", "caught by type check"}
#: one thread per process: forked mutant processes must not inherit a started thread pool
SINGLE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")}


def load_modules() -> dict[str, list[str]]:
    """``{module path: [test files]}`` from ``[tool.mutation.modules]``."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return dict(data["tool"]["mutation"]["modules"])


def load_equivalent(path: Path = EQUIVALENT) -> dict[str, str]:
    """``{mutant name: reason}``; ``#`` starts a comment line."""
    out: dict[str, str] = {}
    if not path.is_file():
        return out
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, reason = line.partition("|")
        if not sep or not reason.strip():
            sys.exit(f"{path}:{n}: expected 'mutant-name | reason', got {line!r}")
        out[name.strip()] = reason.strip()
    return out


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{x}"' for x in items) + "]"


def prepare(module: str, tests: list[str], workdir: Path) -> Path:
    """A work folder holding a copy of the packages and tests and a one-module mutmut config."""
    wd = workdir / module.replace("/", "__").removesuffix(".py")
    wd.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in (*PACKAGES, "tests", "bench"):
        shutil.copytree(ROOT / name, wd / name, dirs_exist_ok=True, ignore=ignore)
    shutil.copy2(ROOT / "README.md", wd / "README.md")
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    (wd / "pyproject.toml").write_text(
        "[tool.mutmut]\n"
        f"source_paths = {_toml_list(list(PACKAGES))}\n"
        f"only_mutate = {_toml_list([module])}\n"
        f"also_copy = {_toml_list(['bench/', 'README.md'])}\n"
        f"pytest_add_cli_args = {_toml_list(cfg.get('pytest_add_cli_args', []))}\n"
        f"pytest_add_cli_args_test_selection = {_toml_list(tests)}\n"
        f"timeout_multiplier = {float(cfg.get('timeout_multiplier', 15.0))}\n"
        '\n[tool.pytest.ini_options]\naddopts = "-q"\n'
        'markers = ["slow: longer tests (still part of the default suite)"]\n'
    )
    # tests find ../shared from the repo root; mutmut runs them from <wd>/mutants
    shared = ROOT.parent / "shared"
    link = wd / "shared"
    if shared.is_dir() and not link.exists():
        link.symlink_to(shared)
    return wd


def results(wd: Path) -> dict[str, str]:
    """``{mutant name: status}`` as mutmut recorded them."""
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=wd, text=True, capture_output=True, check=True
    ).stdout
    res = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep:
            res[name] = status
    return res


_DIFFS = """
import sys
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.utils.file_utils import walk_mutatable_files
where = {}
for path in walk_mutatable_files():
    m = SourceFileMutationData(path=path)
    m.load()
    where.update(dict.fromkeys(m.exit_code_by_key, path))
for line in sys.stdin.read().split("\\n"):
    name, _, status = line.partition(" ")
    if name:
        print(f"## {name}: {status}\\n{get_diff_for_mutant(name, path=where[name])}\\n")
"""


def diffs(wd: Path, names: list[str], res: dict[str, str]) -> list[str]:
    """The diff of every mutant in ``names`` (one process: ``mutmut show`` per mutant is slow)."""
    if not names:
        return []
    out = subprocess.run(
        [sys.executable, "-c", _DIFFS], cwd=wd, text=True, capture_output=True,
        input="\n".join(f"{n} {res[n]}" for n in names),
    )  # fmt: skip
    if out.returncode:
        print(f"  warning: mutant diffs failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
    return [out.stdout]


def report(module: str, wd: Path, equivalent: dict[str, str], with_diffs: bool = True) -> dict[str, int | float]:
    """Score one module and write its non-equivalent survivors with diffs."""
    res = results(wd)
    unchecked = [n for n, s in res.items() if s == "not checked"]
    res = {n: s for n, s in res.items() if s != "not checked"}
    caught = sum(s in CAUGHT for s in res.values())
    equiv = [n for n, s in res.items() if n in equivalent and s not in CAUGHT]
    stale = [n for n, s in res.items() if n in equivalent and s in CAUGHT]
    surv = [n for n, s in res.items() if s not in CAUGHT and n not in equivalent]
    lines = diffs(wd, surv, res) if with_diffs else [f"## {n}: {res[n]}\n" for n in surv]
    (wd / "survivors.txt").write_text("".join(lines), encoding="utf-8")
    for n in stale:
        print(f"  note: {n} is listed as equivalent but a test now catches it; remove it from {EQUIVALENT.name}")
    denom = len(res) - len(equiv)
    return {
        "mutants": len(res) + len(unchecked),
        "unchecked": len(unchecked),
        "equivalent": len(equiv),
        "caught": caught,
        "survived": len(surv),
        "score": caught / denom if denom else 1.0,
    }


def main(argv: list[str] | None = None) -> int:
    modules = load_modules()
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("modules", nargs="*", metavar="MODULE", help="module paths (default: all configured)")
    ap.add_argument("--workdir", type=Path, default=ROOT / ".mutation", help="work folders (default .mutation/)")
    ap.add_argument("--max-children", type=int, default=os.cpu_count() or 1, help="parallel mutants")
    ap.add_argument("--report-only", action="store_true", help="score the last run without running mutmut")
    ap.add_argument("--no-diffs", action="store_true", help="list survivors without their diffs (faster)")
    ap.add_argument("--fresh", action="store_true", help="discard earlier results of the modules run")
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help="run only mutants whose names match this glob (repeatable), e.g. 'sim.oracle.x_solve*'",
    )
    ap.add_argument("--retest-timeouts", action="store_true", help="also rerun mutants recorded as timed out")
    ap.add_argument("--list", action="store_true", help="list the modules and their test files")
    args = ap.parse_args(argv)
    if args.list:
        for m, t in modules.items():
            print(f"{m}: {' '.join(t)}")
        return 0
    todo = args.modules or list(modules)
    unknown = [m for m in todo if m not in modules]
    if unknown:
        print(f"bench/mutation.py: unknown module {unknown[0]!r}; configured: {', '.join(modules)}", file=sys.stderr)
        return 2
    equivalent = load_equivalent()
    rows = []
    for m in todo:
        wd = args.workdir / m.replace("/", "__").removesuffix(".py")
        if args.fresh and not args.report_only:
            shutil.rmtree(wd, ignore_errors=True)
        wd = prepare(m, modules[m], args.workdir)
        if not args.report_only:
            run = [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children)]
            env = {**os.environ, **SINGLE_THREAD}
            again = []
            if (wd / "mutants").is_dir():
                retest = {"timeout"} if args.retest_timeouts else set()
                again = [
                    n for n, s in results(wd).items()
                    if (s not in CAUGHT or s in retest) and s != "not checked"
                    and (not args.only or any(fnmatch.fnmatchcase(n, p) for p in args.only))
                ]  # fmt: skip
            if again:
                print(f"== {m}: retesting {len(again)} earlier survivors in {wd}", flush=True)
                subprocess.run(run + again, cwd=wd, check=False, env=env)
            print(f"== {m}: mutmut run in {wd}" + (f" (only {' '.join(args.only)})" if args.only else ""), flush=True)
            subprocess.run(run + args.only, cwd=wd, check=False, env=env)
        rows.append((m, report(m, wd, equivalent, with_diffs=not args.no_diffs)))
    print(
        "\n| module | mutants | not yet run | equivalent | caught | survived | score |\n|---|---|---|---|---|---|---|"
    )
    for m, r in rows:
        print(
            f"| `{m}` | {r['mutants']} | {r['unchecked']} | {r['equivalent']} | {r['caught']} | {r['survived']} "
            f"| {r['score']:.0%} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

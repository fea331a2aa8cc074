"""Every code block in README.md runs.

- ```python blocks run in document order, each in a fresh namespace, from a scratch folder whose
  ``../shared`` is the real shared data folder, so the README's relative paths work as written;
- in ```bash blocks, every line calling ``gridvit ...`` or ``python -m gridvit ...`` runs (same folder,
  this interpreter); ``make`` lines are the two commands themselves (``make test`` is this suite);
- a block preceded by ``<!-- mirrored by tests/<file>.py::<test> -->`` is not run here; the named test must
  exist (use it for commands that need hardware CI lacks, e.g. several GPUs);
- any other bash line (not ``make``/``pip`` setup) in an unmarked block fails the test, so no command
  escapes being run or mirrored.

The only change made to the code is the training budget: every ``time_budget=N`` / ``--time-budget N``
runs with 3 s, so the test stays under a minute; everything else (data, steps, files) is as written.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHARED = ROOT.parent / "shared"
BUDGET_S = 3
SETUP = ("make", "pip", "pip3")  # the two commands and installation: not run here
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
MIRROR = re.compile(r"<!--\s*mirrored by (tests/[\w/]+\.py)::(\w+)\s*-->\s*$")


def blocks() -> list[tuple[str, str, int, str | None]]:
    """(language, code, line number, mirror marker or None) for every fenced block of README.md."""
    text = README.read_text()
    out = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mirror = MIRROR.search(before)
        out.append((m.group(1), m.group(2), line, None if mirror is None else f"{mirror[1]}::{mirror[2]}"))
    return out


def shrink_budget(code: str) -> str:
    code = re.sub(r"time_budget=\d+(\.\d+)?", f"time_budget={BUDGET_S}", code)
    return re.sub(r"--time-budget[ =]\d+(\.\d+)?", f"--time-budget {BUDGET_S}", code)


def gridvit_commands(code: str) -> list[list[str]]:
    """The lines of a bash block that call gridvit, as argv for this interpreter (comments dropped)."""
    cmds = []
    for line in code.splitlines():
        argv = shlex.split(line, comments=True)
        if argv[:1] == ["gridvit"]:
            cmds.append([sys.executable, "-m", "gridvit", *argv[1:]])
        elif argv[:3] in (["python", "-m", "gridvit"], ["python3", "-m", "gridvit"]):
            cmds.append([sys.executable, *argv[1:]])
    return cmds


def test_every_bash_line_is_run_or_mirrored():
    for lang, code, line, mirror in blocks():
        if lang != "bash" or mirror:
            continue
        for text in code.splitlines():
            argv = shlex.split(text, comments=True)
            if argv and argv[0] not in SETUP and not gridvit_commands(text):
                pytest.fail(f"README.md:{line}: {text.strip()!r} is neither run by this test (gridvit ...) nor in a "
                            "block marked <!-- mirrored by tests/<file>.py::<test> -->")


def test_readme_has_the_blocks_it_promises():
    langs = [lang for lang, *_ in blocks()]
    assert "python" in langs and "bash" in langs
    assert any(gridvit_commands(code) for lang, code, *_ in blocks() if lang == "bash")


def test_mirrored_blocks_name_existing_tests():
    for _, _, line, mirror in blocks():
        if mirror:
            path, name = mirror.split("::")
            assert re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M), f"README line {line}: {mirror} not found"


def test_every_code_block_runs(tmp_path, monkeypatch):
    if not (SHARED / "data").is_dir():
        pytest.skip(f"real data not found at {SHARED / 'data'} (the README's examples read ../shared/data)")
    work = tmp_path / "repo"
    work.mkdir()
    (tmp_path / "shared").symlink_to(SHARED, target_is_directory=True)
    monkeypatch.chdir(work)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ran = 0
    for lang, code, line, mirror in blocks():
        if mirror:
            continue
        if lang == "python":
            exec(compile(shrink_budget(code), f"README.md:{line}", "exec"), {"__name__": "__readme__"})
            ran += 1
        elif lang == "bash":
            for argv in gridvit_commands(shrink_budget(code)):
                proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=300)
                assert proc.returncode == 0, f"README.md:{line}: {shlex.join(argv[2:])}\n{proc.stderr[-3000:]}"
                ran += 1
    assert ran >= 2

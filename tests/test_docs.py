"""The Python blocks of README.md and docs/*.md run as written, so the documentation never goes stale: each
document's blocks in order, in one namespace (as in a notebook), in a fresh folder beside the job files."""
import contextlib
import logging
import os
import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, code) of every ```python block of a Markdown file."""
    text = path.read_text()
    return [(text[:m.start()].count("\n") + 1, m.group(1)) for m in BLOCK.finditer(text)]


def test_the_documents_have_python_blocks():
    counts = {p.name: len(python_blocks(p)) for p in DOCS}
    assert counts["README.md"] >= 2 and counts["your-model.md"] >= 6 and sum(counts.values()) >= 12, counts


@pytest.mark.slow
@pytest.mark.parametrize("doc", [p for p in DOCS if python_blocks(p)], ids=lambda p: p.name)
def test_python_blocks_run_as_written(doc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs").symlink_to(ROOT / "jobs")
    monkeypatch.syspath_prepend(str(tmp_path))
    logging.getLogger("lightning").setLevel(logging.ERROR)
    namespace: dict = {"__name__": "__docs__"}
    for line, code in python_blocks(doc):
        first = code.splitlines()[0].strip()
        if first.startswith("# ") and first.endswith(".py") and "/" in first:  # a module file of the reader's
            target = tmp_path / first[2:]
            target.parent.mkdir(parents=True, exist_ok=True)
            (target.parent / "__init__.py").touch()
            target.write_text(code)
        with warnings.catch_warnings(), contextlib.redirect_stdout(open(os.devnull, "w")):
            warnings.simplefilter("ignore")
            try:
                exec(compile(code, f"{doc.name}:{line}", "exec"), namespace)
            except Exception as exc:  # noqa: BLE001 - name the block that failed
                raise AssertionError(f"{doc.name}, the block at line {line} failed: {type(exc).__name__}: "
                                     f"{exc}") from exc


@pytest.mark.slow
def test_readme_training_example_learns_the_spiral(tmp_path):
    """The README's `landscape train` line, run as written: the spiral is learned (an example stuck at chance
    accuracy would teach nothing)."""
    import shlex
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import run_cli

    from landscape.io.trajectory import TrajectoryStore

    line = next(x for x in (ROOT / "README.md").read_text().splitlines() if x.startswith("landscape train "))
    r = run_cli(*shlex.split(line)[1:], "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = shlex.split(line)[shlex.split(line).index("--out") + 1]
    assert TrajectoryStore(tmp_path / out).metrics()["test_accuracy"][-1] > 0.9

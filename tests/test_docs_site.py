"""The documentation site builds with mkdocs in strict mode: every page in the navigation, every link between
pages resolves, and the API reference renders from the docstrings (a broken reference is a warning, and strict
mode makes it an error)."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_docs_site_builds_strictly(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "tools" / "mkdocs.yml"),
                        "-d", str(tmp_path / "site")], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
    assert r.returncode == 0, r.stderr[-5000:]
    nav = ["your-model", "command-line", "surfaces", "paths", "curvature", "topology", "cluster", "api", "schema",
           "performance"]
    for page in nav:
        assert (tmp_path / "site" / page / "index.html").is_file(), page
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("surface", "Recorder", "run_sweep", "TrajectoryStore"):  # rendered from the docstrings
        assert 'id="landscape.' in api and name in api, name
    assert "Example" in api
    # the README's picture is in the site, and no page links outside it
    assert (tmp_path / "site" / "img" / "demo-pca-surface.png").is_file()


def test_readme_is_short_and_links_the_site():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    for page in ("your-model", "command-line", "cluster", "api", "performance"):
        assert f"(docs/{page}.md)" in text, page
    assert "![" in text and (ROOT / "docs" / "img" / "demo-pca-surface.png").is_file()

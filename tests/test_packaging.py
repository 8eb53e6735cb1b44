"""What installing the package brings in."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_extra_installs_torchvision(monkeypatch):
    """torchvision pulls its own torch: pip would replace the torch installed first (the README's order)."""
    import runpy

    import setuptools

    captured = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: captured.update(kw))
    monkeypatch.chdir(ROOT)
    runpy.run_path(str(ROOT / "setup.py"))
    extras = captured["extras_require"]
    assert extras["all"] and extras["test"]
    leaking = {k: d for k, deps in extras.items() for d in deps if d.split("[")[0].split("=")[0] == "torchvision"}
    assert not leaking, leaking

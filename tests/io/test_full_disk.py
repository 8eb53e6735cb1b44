"""Writers on a file system that fills up or is read-only (a real tmpfs, mounted for the test): a clear error
naming the file and what to do, every committed result readable, and the rerun resuming once space is freed."""
import os
import subprocess

import pytest
import torch

from conftest import run_cli
from landscape.io.surface_file import read_surface
from landscape.io.trajectory import TrajectoryStore

pytestmark = pytest.mark.skipif(os.geteuid() != 0 and not os.environ.get("LANDSCAPE_CI"),
                                reason="mounting a small tmpfs needs root")


@pytest.fixture
def small_fs(tmp_path):
    """A 4 MiB tmpfs and a helper that fills it until only ``free`` bytes are left."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True)

    def fill(free):
        filler = mnt / "filler"
        filler.unlink(missing_ok=True)
        left = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
        filler.write_bytes(b"\0" * max(0, left - free))
        return filler

    try:
        yield mnt, fill
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


TRAIN = ["--model", "lenet5", "--data", "digits", "--epochs", "5", "--no-progress", "data.train_subset=200",
         "data.test_subset=60"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A trajectory of TRAIN written on a roomy disk: the centre and path ends of the tests (trained once)."""
    out = tmp_path_factory.mktemp("trained") / "trajectory.h5"
    r = run_cli("train", *TRAIN, "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


def clear_failure(r, name):
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "cannot write" in r.stderr and name in r.stderr, r.stderr


def test_training_survives_a_full_disk_and_resumes(small_fs, trained):
    mnt, fill = small_fs
    filler = fill(1_900_000)  # room for the first checkpoints (325 KB each with their resume records), not for all
    r = run_cli("train", *TRAIN, "--out", str(mnt / "t.h5"))
    clear_failure(r, "t.h5")
    assert "free space and run the same command again" in r.stderr
    kept = TrajectoryStore(mnt / "t.h5")  # every committed checkpoint is readable
    assert 1 <= len(kept) < 6 and kept.load_resume() is not None
    filler.unlink()
    r = run_cli("train", *TRAIN, "--out", str(mnt / "t.h5"))
    assert r.returncode == 0 and "resuming" in r.stderr, r.stderr
    assert torch.equal(TrajectoryStore(mnt / "t.h5").vector("final"), TrajectoryStore(trained).vector("final"))


def test_surface_paths_and_exports_on_a_full_disk(small_fs, trained):
    mnt, fill = small_fs
    surface = ["surface", "--model", "lenet5", "--data", "digits", "--center", f"{trained}:final",
               "--alpha", "-1:1:5", "--beta", "-1:1:5", "--out", str(mnt / "s.h5"), "--no-progress",
               "data.test_subset=60"]
    filler = fill(600_000)  # less than the file's directions (3 x 325 KB)
    clear_failure(run_cli(*surface), "s.h5")
    assert not (mnt / "s.h5").exists() and not list(mnt.glob("s.h5*"))  # nothing half-written left behind
    filler.unlink()
    r = run_cli(*surface)
    assert r.returncode == 0, r.stderr
    filler = fill(0)
    clear_failure(run_cli("export", str(mnt / "s.h5")), "s.vtp")
    clear_failure(run_cli("export", str(mnt / "s.h5"), "--format", "vts"), "s.vts")
    clear_failure(run_cli("plot", str(mnt / "s.h5"), "--formats", "png"), "s_")
    clear_failure(run_cli("report", str(mnt)), "report.html")
    left = sorted(p.name for p in mnt.iterdir())
    assert left == ["filler", "s.h5"], left  # no empty .vts, partial figure or .report.html.<pid>.tmp
    filler.unlink()
    (mnt / ".s.vtp.999999999.tmp").write_bytes(b"x" * 1000)  # of a run killed mid-write
    r = run_cli("export", str(mnt / "s.h5"))
    assert r.returncode == 0 and (mnt / "s.vtp").stat().st_size > 0, r.stderr
    assert not list(mnt.glob(".*.tmp"))  # a later successful write removes what dead runs left
    filler = fill(0)
    r = run_cli("path", "--model", "lenet5", "--data", "digits", "--output", str(mnt), "--start",
                f"{trained}:init", "--mid", f"{trained}:mid", "--end",
                f"{trained}:final", "--kind", "linear", "--alpha", "0:1:3", "--no-plots",
                "--no-progress", "data.test_subset=60")
    clear_failure(r, "path_linear.h5")
    assert read_surface(mnt / "s.h5").done.all()  # what was stored is intact


def test_read_only_file_system_is_named_not_called_corruption(small_fs, trained):
    mnt, _ = small_fs
    def surface(out):
        return ["surface", "--model", "lenet5", "--data", "digits", "--center", f"{trained}:final",
                "--alpha", "-1:1:3", "--beta", "-1:1:3", "--out", str(mnt / out), "--no-progress", "data.test_subset=60"]

    assert run_cli(*surface("s.h5")).returncode == 0
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    for args, name in ((surface("s.h5"), "s.h5"), (surface("new.h5"), "new.h5"),
                       (["train", *TRAIN, "--out", str(mnt / "t.h5")], "t.h5"),
                       (["plot", str(mnt / "s.h5"), "--formats", "png"], "s_")):
        r = run_cli(*args)
        clear_failure(r, name)
        assert "read-only" in r.stderr and "corrupted" not in r.stderr, r.stderr
    assert read_surface(mnt / "s.h5").done.all()

import h5py
import numpy as np
import pytest
import torch

from landscape.run.config import TrainConfig
from landscape.run.jobfile import load_job
from landscape.core.data import load_data
from landscape.core.errors import CheckpointError, ConfigError, StoreError
from landscape.engine.evaluator import Evaluator
from landscape.core.models import build_model
from landscape.core.params import flatten_state
from landscape.run.training import train
from landscape.io.trajectory import TrajectoryStore


@pytest.fixture(scope="module")
def spiral():
    return load_data("spiral", n_per_class=60)


def fresh(spiral, seed=0):
    torch.manual_seed(seed)
    return build_model("mlp", spiral[0].info(), depth=2, width=16)


def run(spiral, path, cfg, seed=0):
    return train(fresh(spiral, seed), *spiral, cfg, path, device="cpu", progress=False)


def test_records_init_epochs_and_metrics(spiral, tmp_path):
    m0 = fresh(spiral)
    init = flatten_state(m0.state_dict())
    model = fresh(spiral)
    store = train(model, *spiral, TrainConfig(epochs=3, batch_size=32, lr=0.1), tmp_path / "t.h5", "cpu",
                  progress=False)
    t = store.table()
    assert t["kind"].tolist() == ["init", "epoch", "epoch", "epoch"] and t["epoch"].tolist() == [0, 1, 2, 3]
    spe = -(-len(spiral[0]) // 32)  # steps per epoch: 135 samples / 32 -> 5
    assert spe == 5 and t["step"].tolist() == [0, spe, 2 * spe, 3 * spe]
    assert torch.equal(store.vector("init"), init)
    assert torch.equal(store.vector("final"), flatten_state(model.state_dict()))
    m = store.metrics()
    assert m["epoch"].tolist() == [0, 1, 2, 3] and np.isfinite(m["test_loss"]).all()
    assert m["train_loss"][-1] < m["train_loss"][0]
    # the recorded test metrics are those of the stored checkpoints
    ev = Evaluator(fresh(spiral), spiral[1], "cpu")
    for e in (0, 2):
        r = ev.evaluate(store.state(f"epoch {e}"))
        assert r.loss == pytest.approx(m["test_loss"][e], rel=1e-6) and r.accuracy == m["test_accuracy"][e]
    assert bool(store.attrs["complete"]) and store.attrs["schema_version"] == 1


def test_step_checkpoints_and_names(spiral, tmp_path):
    assert len(spiral[0]) == 135  # batch 23 -> 6 steps per epoch
    store = run(spiral, tmp_path / "s.h5", TrainConfig(epochs=2, batch_size=23, checkpoint_every_steps=4))
    t = store.table()  # 6 steps per epoch: step checkpoints at 4 (epoch 1) and 8 (epoch 2; 12 is the epoch end)
    assert t["kind"].tolist() == ["init", "step", "epoch", "step", "epoch"]
    assert t["step"].tolist() == [0, 4, 6, 8, 12]
    assert t["epoch"][1] == pytest.approx(4 / 6) and t["epoch"][3] == pytest.approx(1 + 2 / 6)
    assert store.resolve("init") == 0 and store.resolve("final") == 4 and store.resolve("epoch 1") == 2
    assert store.resolve("step 8") == 3 and store.resolve("#-1") == 4 and store.resolve("epoch:2") == 4
    assert store.resolve("mid") == 2  # epoch 1 of 2
    with pytest.raises(CheckpointError, match="available epochs"):
        store.resolve("epoch 7")
    with pytest.raises(CheckpointError, match="not understood"):
        store.resolve("best")
    with pytest.raises(CheckpointError, match="out of range"):
        store.resolve("#9")


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_resume_equals_uninterrupted(spiral, tmp_path, optimizer):
    cfg = dict(optimizer=optimizer, lr=0.01 if optimizer == "adam" else 0.1, batch_size=32, seed=5,
               lr_milestones=[3], lr_gamma=0.5)  # the step lands after the resumption point
    full = run(spiral, tmp_path / "full.h5", TrainConfig(epochs=4, **cfg))
    part = tmp_path / "part.h5"
    run(spiral, part, TrainConfig(epochs=2, **cfg))
    # simulate a kill after a checkpoint was written but before its epoch was committed
    TrajectoryStore(part).append_checkpoint(torch.zeros(TrajectoryStore(part).spec.numel), 3, 99, "epoch")
    resumed = run(spiral, part, TrainConfig(epochs=4, **cfg), seed=123)  # init is read from the store
    assert len(resumed) == len(full) == 5
    assert torch.equal(resumed.vector("final"), full.vector("final"))
    np.testing.assert_allclose(resumed.metrics()["test_loss"], full.metrics()["test_loss"], rtol=1e-6)


def test_resume_refuses_changed_settings_and_keeps_data(spiral, tmp_path):
    p = tmp_path / "r.h5"
    run(spiral, p, TrainConfig(epochs=2, batch_size=32))
    before = TrajectoryStore(p).vector("final")
    with pytest.raises(StoreError, match="train.lr: stored 0.05, now 0.2"):
        run(spiral, p, TrainConfig(epochs=3, batch_size=32, lr=0.2))
    store = TrajectoryStore(p)
    assert len(store) == 3 and torch.equal(store.vector("final"), before)
    # a complete run asked for the same epochs again trains nothing
    assert len(run(spiral, p, TrainConfig(epochs=2, batch_size=32))) == 3


def test_corrupted_or_foreign_files(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(StoreError, match="corrupted"):
        TrajectoryStore(bad)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["schema"] = "something.else"
    with pytest.raises(StoreError, match="not a landscape trajectory"):
        TrajectoryStore(other)
    with pytest.raises(StoreError, match="does not exist"):
        TrajectoryStore(tmp_path / "missing.h5")


def test_truncated_file_gives_clear_error(spiral, tmp_path):
    p = tmp_path / "t.h5"
    run(spiral, p, TrainConfig(epochs=1))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match="truncated or corrupted"):
        TrajectoryStore(p).vector("final")


def test_lr_milestones_step_the_learning_rate(spiral, tmp_path):
    store = run(spiral, tmp_path / "s.h5", TrainConfig(epochs=3, lr=0.1, batch_size=32, lr_milestones=[1, 2],
                                                        lr_gamma=0.0))
    assert not torch.equal(store.vector("epoch 1"), store.vector("init"))  # epoch 0 trains at lr 0.1
    assert torch.equal(store.vector("epoch 2"), store.vector("epoch 1"))  # then lr 0: nothing moves
    assert torch.equal(store.vector("epoch 3"), store.vector("epoch 1"))


def test_lr_milestones_are_validated():
    with pytest.raises(ConfigError, match="lr_milestones"):
        load_job({"train": {"lr_milestones": [5, 2]}})


def test_crop_flip_augmentation_is_seeded_and_resumable(tmp_path):
    from landscape.core.data import subset

    tr, te = load_data("digits")
    tr, te = subset(tr, 128), subset(te, 64)

    def go(path, epochs, augment="crop_flip"):
        torch.manual_seed(0)
        return train(build_model("lenet5", tr.info()), tr, te, TrainConfig(epochs=epochs, batch_size=32, lr=0.05,
                                                                             augment=augment), path, "cpu",
                     progress=False)

    full = go(tmp_path / "full.h5", 2)
    go(tmp_path / "part.h5", 1)
    resumed = go(tmp_path / "part.h5", 2)
    assert torch.equal(resumed.vector("final"), full.vector("final"))
    plain = go(tmp_path / "plain.h5", 2, "none")
    assert not torch.equal(plain.vector("final"), full.vector("final"))  # the batches really were augmented
    with pytest.raises(ConfigError, match="image batches"):
        run(load_data("spiral", n_per_class=10), tmp_path / "sp.h5", TrainConfig(epochs=1, augment="crop_flip"))


def test_writer_waits_for_a_lock_held_by_another_process(tmp_path):
    """A reader that locks the file (an h5py session, a viewer) delays a training write instead of killing
    the run; a lock that is never released gives a clear error; our own readers never lock."""
    import subprocess
    import sys
    import time

    from landscape.core.params import StateSpec

    p = tmp_path / "t.h5"
    store = TrajectoryStore.create(p, StateSpec.from_state({"w": torch.zeros(3)}), {})
    hold = ("import h5py, sys, time\nf = h5py.File(sys.argv[1], 'r')\nprint('locked', flush=True)\n"
            "time.sleep(float(sys.argv[2]))\n")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(p), "1.5"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(StoreError, match="lock"):
        store._open("a", wait_seconds=0.2)
    assert len(TrajectoryStore(p)) == 0  # reading works while the other process holds its lock
    t = time.monotonic()
    store.append_checkpoint(torch.ones(3), 0, 0, "init")
    assert time.monotonic() - t > 0.5 and holder.wait(10) == 0
    assert len(TrajectoryStore(p)) == 1 and torch.equal(TrajectoryStore(p).vector(0), torch.ones(3))


def test_a_store_is_resumable_from_the_moment_it_exists(spiral, tmp_path, monkeypatch):
    """A run killed while it evaluates the initial model (before any epoch) leaves a store the rerun resumes,
    and the result equals an uninterrupted run."""
    cfg = TrainConfig(epochs=2, batch_size=32, seed=3)
    full = run(spiral, tmp_path / "full.h5", cfg)
    original = Evaluator.evaluate

    def killed(self, *args, **kwargs):
        raise KeyboardInterrupt  # as a SIGKILL/SIGTERM landing in the first evaluation

    monkeypatch.setattr(Evaluator, "evaluate", killed)
    with pytest.raises(KeyboardInterrupt):
        run(spiral, tmp_path / "part.h5", cfg)
    monkeypatch.setattr(Evaluator, "evaluate", original)
    part = TrajectoryStore(tmp_path / "part.h5")
    assert len(part) == 1 and part.load_resume()["epoch"] == 0  # the init checkpoint and its resume record
    resumed = run(spiral, tmp_path / "part.h5", cfg, seed=99)  # the init state comes from the store
    assert torch.equal(resumed.vector("final"), full.vector("final"))
    np.testing.assert_array_equal(resumed.metrics()["test_loss"], full.metrics()["test_loss"])


def test_a_second_run_on_the_same_store_is_refused_at_once(spiral, tmp_path):
    from landscape.io.locks import WriterLock

    with WriterLock(tmp_path / "t.h5"):  # another run holds the store
        with pytest.raises(StoreError, match="another landscape run is writing"):
            run(spiral, tmp_path / "t.h5", TrainConfig(epochs=1))
    assert not (tmp_path / "t.h5").exists()
    run(spiral, tmp_path / "t.h5", TrainConfig(epochs=1))  # once it has ended, the store is free


def test_a_resume_record_cut_short_leaves_the_one_before(spiral, tmp_path):
    import h5py

    cfg = TrainConfig(epochs=3, batch_size=32, seed=2)
    full = run(spiral, tmp_path / "full.h5", cfg)
    run(spiral, tmp_path / "part.h5", TrainConfig(epochs=2, batch_size=32, seed=2))
    with h5py.File(tmp_path / "part.h5", "r+") as f:  # a kill while the epoch-2 record was written
        raw = f["resume_records/000002"][:100]
        del f["resume_records/000002"]
        f["resume_records/000002"] = raw
    assert TrajectoryStore(tmp_path / "part.h5").load_resume()["epoch"] == 1
    resumed = run(spiral, tmp_path / "part.h5", cfg)
    assert torch.equal(resumed.vector("final"), full.vector("final"))


def _lenet_trajectory(tmp_path, name, launch_threads, threads):
    """The final weights of a short lenet5/digits run started under ``launch_threads`` torch threads."""
    from landscape.core.data import subset
    tr, te = load_data("digits")
    tr, te = subset(tr, 256), subset(te, 64)
    torch.manual_seed(0)
    model = build_model("lenet5", tr.info())
    before = torch.get_num_threads()
    torch.set_num_threads(launch_threads)  # what mpiexec -n 2 or Slurm's --cpus-per-task would leave
    try:
        store = train(model, tr, te, TrainConfig(epochs=1, batch_size=128, threads=threads), tmp_path / name,
                      "cpu", progress=False)
        assert torch.get_num_threads() == launch_threads  # the launch's count is given back
    finally:
        torch.set_num_threads(before)
    return store.state("final"), store


def test_training_is_the_same_at_any_launch_thread_count(tmp_path):
    one, _ = _lenet_trajectory(tmp_path, "t1.h5", 1, TrainConfig().threads)
    three, store = _lenet_trajectory(tmp_path, "t3.h5", 3, TrainConfig().threads)
    for k in one:
        assert torch.equal(one[k], three[k]), k
    assert '"threads": 2' in store.attrs["train"]  # recorded with the settings
    with pytest.raises(StoreError, match="train.threads"):  # a resume at another count would change the run
        train(build_model("lenet5", load_data("digits")[0].info()), *load_data("digits"),
              TrainConfig(epochs=2, batch_size=128, threads=1), tmp_path / "t3.h5", "cpu", progress=False)


def test_the_launch_count_changes_training_so_it_is_fixed(tmp_path):
    """Why train.threads exists: at the launch's count (0) the bits follow the launch."""
    one, _ = _lenet_trajectory(tmp_path, "a.h5", 1, 0)
    three, _ = _lenet_trajectory(tmp_path, "b.h5", 3, 0)
    assert any(not torch.equal(one[k], three[k]) for k in one)

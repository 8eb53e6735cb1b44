
import pytest

from landscape.run.jobfile import load_job, parse_override
from landscape.core.errors import ConfigError
from landscape.stages.job import demo_job_path

from conftest import ROOT


def test_demo_job_shipped_in_package_equals_jobs_folder():
    assert demo_job_path().read_text() == (ROOT / "jobs" / "demo.toml").read_text()
    job = load_job(demo_job_path())
    assert (job.model.name, job.data.name, job.train.epochs) == ("lenet5", "digits", 15)


@pytest.mark.parametrize("path", sorted((ROOT / "jobs").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_job_file_validates(path):
    job = load_job(path)
    assert job.name and job.output


def test_overrides_types_and_nesting():
    job = load_job(None, ["train.lr=1", "model.kwargs.depth=5", "data.root=/data/x y", "name=abc",
                          "data.train_subset=none", "train.nesterov=true"])
    assert job.train.lr == 1.0 and isinstance(job.train.lr, float)
    assert job.model.kwargs == {"depth": 5} and job.data.root == "/data/x y" and job.name == "abc"
    assert job.data.train_subset is None and job.train.nesterov is True
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])


def test_all_problems_reported_at_once(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[train]\nepochs = 0\noptimiser = "sgd"\nlr = "fast"\n[plots]\nx = 1\n[data]\nname = "mnist"\n'
                 '[evaluate]\nprecision = "fp16"\ndevice = "cpu"\n')
    with pytest.raises(ConfigError) as info:
        load_job(p, ["train.batch_size=-1", "bogus"])
    text = str(info.value)
    assert len(info.value.problems) == 1 and "key=value" in text  # override syntax is checked first
    with pytest.raises(ConfigError) as info:
        load_job(p, ["train.batch_size=-1"])
    probs = info.value.problems
    for needle in ("train.epochs: expected a value >= 1, got 0", "train.optimiser: unknown key",
                   "train.lr: expected float, got 'fast'", "[plots]: unknown section", "train.batch_size",
                   "data.root", "fp16 autocast needs CUDA"):
        assert any(needle in q for q in probs), (needle, probs)
    assert len(probs) == 7


def test_bad_files():
    with pytest.raises(ConfigError, match="does not exist"):
        load_job("/no/such/job.toml")
    with pytest.raises(ConfigError, match="choices|expected one of"):
        load_job(None, ["train.optimizer=lbfgs"])


def test_top_level_values_empty_override_keys_and_bad_mem_are_refused(tmp_path):
    from landscape.run.slurm import SlurmOptions

    p = tmp_path / "j.toml"
    p.write_text("job = 5\n")
    with pytest.raises(ConfigError, match=r"job = 5: a job file holds tables"):
        load_job(p)
    with pytest.raises(ConfigError, match="the key is empty"):
        parse_override("=5")
    assert any("--mem" in m for m in SlurmOptions(mem="abc").problems())
    assert not any("--mem" in m for m in SlurmOptions(mem="16G").problems())


def test_a_rejected_run_leaves_job_json_as_it_was(tmp_path):
    from conftest import run_cli

    out = tmp_path / "out"
    out.mkdir()
    (out / "job.json").write_text('{"earlier": true}')
    r = run_cli("run", str(ROOT / "jobs" / "mnist_lenet5.toml"), f"output={out}", f"data.root={tmp_path / 'none'}")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert (out / "job.json").read_text() == '{"earlier": true}'
    fresh = tmp_path / "fresh"
    r = run_cli("run", str(ROOT / "jobs" / "mnist_lenet5.toml"), f"output={fresh}", f"data.root={tmp_path / 'none'}")
    assert r.returncode == 2 and not (fresh / "job.json").exists()


def test_the_evaluation_batch_is_never_changed_by_default():
    """A batch size that gives the reference points' values can round other points differently (1 ulp at 10 of
    121 lenet5 points between 64 and 256): calibration keeps the configured size unless asked."""
    from landscape.core.data import load_data
    from landscape.core.models import build_model
    from landscape.run.inputs import job_evaluator

    job = load_job(None, ["data.name=spiral", "model.name=mlp"])
    assert job.evaluate.tune_batch is False
    te = load_data("spiral", n_per_class=10)[1]
    assert job_evaluator(job, build_model("mlp", te.info()), te, "cpu").tune_batch is False


def test_a_pca_plane_the_training_cannot_give_is_refused_before_it_trains(tmp_path):
    """Two checkpoints (init and one epoch) give one PCA axis: the job used to train and plot, then fail."""
    with pytest.raises(ConfigError, match=r"\[pca\] directions = 'pca': 2 axes need at least 3 checkpoints, the "
                                          r"job's training records 2"):
        load_job(None, ["train.epochs=1", "pca.alpha=\"auto:5\""])
    assert load_job(None, ["train.epochs=2", "pca.alpha=\"auto:5\""]).pca is not None
    assert load_job(None, ["train.epochs=1", "pca.alpha=\"auto:5\"", "pca.beta=none"]).pca is not None  # one axis
    with_steps = ["train.epochs=1", "train.checkpoint_every_steps=5", "pca.pca_checkpoints=\"all\""]
    assert load_job(None, with_steps + ["pca.alpha=\"auto:5\""]).pca is not None


def test_huge_nested_and_out_of_range_inputs_are_refused_quickly(tmp_path):
    deep = tmp_path / "deep.toml"
    deep.write_text("[model]\nkwargs = " + "{a = " * 5000 + "1" + "}" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_job(deep)
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_job(None, ["model.kwargs.a=" + "[" * 5000 + "]" * 5000])
    with pytest.raises(ConfigError, match=r"train.epochs: expected a value <= 100,000, got 9223372036854775808"):
        load_job(None, ["train.epochs=9223372036854775808"])
    with pytest.raises(ConfigError, match="curvature.top_k: expected a value <= 1,000"):
        load_job(None, ["curvature.top_k=1000000"])

"""sbatch scripts: golden files of the rendered text, option checks, the shipped examples in slurm/.
The integration tests on a real local Slurm are in test_slurm_cluster.py."""
import os
import shutil
import subprocess

import pytest

from landscape.run.jobfile import expand_sweep, load_job
from landscape.core.errors import ConfigError
from landscape.run.slurm import PRESETS, SlurmOptions, SubmitError, parse_time, render_script, submit

from conftest import ROOT, TESTS, run_cli

GOLDEN = TESTS / "golden"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("LANDSCAPE_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs; if the change is intended, rerun with LANDSCAPE_UPDATE_GOLDEN=1"


def test_submit_dry_run_quotes_paths_with_spaces(tmp_path):
    work = tmp_path / "my project"
    (work / "my jobs").mkdir(parents=True)
    shutil.copy(ROOT / "jobs" / "demo.toml", work / "my jobs" / "demo run.toml")
    r = run_cli("submit", "my jobs/demo run.toml", "--gpus-per-node", "2", "--time", "1:00:00", "--partition", "gpu",
                "--python", "/opt/my env/bin/python", "--setup", "module load cuda", "data.root=/data/my data",
                "train.epochs=3", "--dry-run", cwd=work)
    assert r.returncode == 0, r.stderr
    check_golden("demo_1node_2gpus.sbatch", r.stdout.replace(str(work), "@WORKDIR@"))
    assert not (work / "landscape-demo").exists()  # a dry run writes nothing
    # the shell reads the quoted arguments back as they were given
    line = next(x for x in r.stdout.splitlines() if x.startswith("srun ") and "landscape run" in x)
    words = subprocess.run(["bash", "-c", 'for a in "$@"; do echo "$a"; done', "_", *_shell_words(line)],
                           capture_output=True, text=True).stdout.splitlines()
    assert words[words.index("run") + 1:] == ["my jobs/demo run.toml", "data.root=/data/my data", "train.epochs=3",
                                              "--no-progress"]
    assert words[words.index("-m") - 1] == "/opt/my env/bin/python"


def _shell_words(line: str) -> list[str]:
    out = subprocess.run(["bash", "-c", f'set -- {line}; for a in "$@"; do printf "%s\\0" "$a"; done'],
                         capture_output=True, text=True)
    return out.stdout.split("\0")[:-1]


def test_multinode_sweep_array_golden():
    path = ROOT / "jobs" / "cifar10_resnet56.toml"
    job = load_job(path)
    opts = SlurmOptions(nodes=2, gpus_per_node=4, cpus_per_task=8, time="1-00:00:00", partition="gpu",
                        account="proj42", qos="long", mem="120G", gpu_bind="node", launcher="mpiexec",
                        python="python3", array_limit=1, sbatch=["--constraint=a100", "--exclusive"],
                        setup=["module load cuda/12.4", "source '/home/me/venvs/land scape/bin/activate'"])
    text = render_script("jobs/cifar10_resnet56.toml", opts, ["data.root=/scratch/cifar 10"],
                         "/home/me/work dir", job, len(expand_sweep(path)))
    check_golden("cifar_2nodes_4gpus_array.sbatch", text)


def test_cpu_job_without_requeue_golden():
    job = load_job(ROOT / "jobs" / "demo.toml")
    opts = SlurmOptions(tasks_per_node=2, cpus_per_task=1, time="0-06", requeue=False, signal_seconds=300,
                        python="python3", log="logs/demo-%j.log")
    check_golden("demo_cpu_norequeue.sbatch", render_script("jobs/demo.toml", opts, [], "/w", job))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_shipped_scripts_are_the_rendered_presets(name):
    shipped = (ROOT / "slurm" / name).read_text()
    assert shipped == render_script(None, PRESETS[name]), "run: python tools/update_slurm_scripts.py"
    assert os.access(ROOT / "slurm" / name, os.X_OK)
    assert "--signal=USR1@" in shipped and "#SBATCH --requeue" in shipped and "srun --mpi=pmi2" in shipped


@pytest.mark.parametrize("name", sorted(p.name for p in GOLDEN.glob("*.sbatch")) + sorted(PRESETS))
def test_scripts_are_valid_bash(name):
    path = GOLDEN / name if (GOLDEN / name).exists() else ROOT / "slurm" / name
    r = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_gpu_binding_variants():
    def directive(**kw):
        text = render_script(None, SlurmOptions(gpus_per_node=4, time="10", **kw))
        return [x for x in text.splitlines() if x.startswith("#SBATCH --g")]

    assert directive() == ["#SBATCH --gpus-per-task=1"]
    assert directive(gpu_bind="node") == ["#SBATCH --gpus-per-node=4"]
    assert directive(gpu_bind="gres") == ["#SBATCH --gres=gpu:4"]
    text = render_script(None, SlurmOptions(time="10"))
    assert "#SBATCH --ntasks-per-node=1" in text and "gpu" not in text.split("set -uo")[0].lower().replace("gpus", "")


def test_parse_time():
    assert [parse_time(t) for t in ("5", "5:30", "1:00:00", "2-0", "2-1:30", "0-0:0:45")] == \
        [300, 330, 3600, 172800, 178200, 45]
    with pytest.raises(ConfigError, match="HH:MM:SS"):
        parse_time("1h")


def test_options_report_every_problem_at_once():
    opts = SlurmOptions(nodes=0, gpus_per_node=2, tasks_per_node=3, time="10", signal_seconds=900,
                        launcher="mpirun", partition='a"b', sbatch=["constraint=a100"], max_restarts=-1)
    problems = opts.problems()
    assert any("--gpu-bind" in p for p in SlurmOptions(gpu_bind="x").problems())
    for text in ("--nodes", "--max-restarts", "--launcher", "--signal-seconds 900", "--partition", "--sbatch",
                 "--tasks-per-node 3"):
        assert any(text in p for p in problems), text
    with pytest.raises(ConfigError) as err:
        render_script(None, opts)
    assert len(err.value.problems) == len(problems) >= 7


def test_paths_with_double_quotes_are_refused():
    with pytest.raises(ConfigError, match="double quotes"):
        render_script("j.toml", SlurmOptions(time="10"), workdir='/a "b"')


def test_submit_without_sbatch_names_the_way_out(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SubmitError, match="--dry-run"):
        submit(ROOT / "jobs" / "demo.toml", SlurmOptions(time="10"), workdir=tmp_path)


def test_submit_reports_bad_jobs_and_options_together(tmp_path):
    r = run_cli("submit", str(ROOT / "jobs" / "demo.toml"), "train.epochs=0", "--time", "1", "--dry-run",
                cwd=tmp_path)
    assert r.returncode == 2 and "2 problems" in r.stderr and "train.epochs" in r.stderr
    assert "--signal-seconds 180" in r.stderr


def test_submit_calls_sbatch_and_saves_the_script(tmp_path):
    """A stand-in sbatch records what it was given (the real one is exercised in test_slurm_cluster.py)."""
    fake = tmp_path / "bin" / "sbatch"
    fake.parent.mkdir()
    fake.write_text('#!/bin/bash\necho "$@" > "$(dirname "$0")/args"\necho "4242;cluster"\n')
    fake.chmod(0o755)
    work = tmp_path / "w"
    work.mkdir()
    env = dict(os.environ, PATH=f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    r = run_cli("submit", str(ROOT / "jobs" / "demo.toml"), "--time", "20", "--output", "out dir", cwd=work, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "4242"  # stdout stays the job id alone (scripts capture it)
    log = work / "out dir" / "slurm-4242.out"
    assert f"log     {log}" in r.stderr and f"tail -f {log}" in r.stderr and "scancel 4242" in r.stderr, r.stderr
    script = work / "out dir" / "submit.sbatch"
    assert (fake.parent / "args").read_text().strip() == f"--parsable {script}"
    text = script.read_text()
    assert '#SBATCH --output="out dir/slurm-%j.out"' in text and "'output=\"out dir\"' --no-progress" in text


def test_waiting_follows_the_job_until_every_task_has_ended(tmp_path, monkeypatch):
    """Polled with scontrol: a requeue (PENDING again) is not an end, an array ends when its last task does, and a
    failed task is what is reported."""
    from landscape.run.slurm import wait_for_job

    states = tmp_path / "states"
    states.write_text("JobId=7 JobState=RUNNING ExitCode=0:0\n---\n"
                      "JobId=7 JobState=PENDING ExitCode=0:0\n---\n"  # requeued
                      "JobId=7_0 JobState=COMPLETED ExitCode=0:0\nJobId=7_1 JobState=RUNNING ExitCode=0:0\n---\n"
                      "JobId=7_0 JobState=COMPLETED ExitCode=0:0\nJobId=7_1 JobState=FAILED ExitCode=1:0\n")
    fake = tmp_path / "bin" / "scontrol"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/bash\nn=$(cat {tmp_path}/n 2>/dev/null || echo 0); echo $((n + 1)) > {tmp_path}/n\n'
                    f'awk -v k=$n \'BEGIN{{RS="---\\n"}} NR==k+1{{printf "%s", $0}}\' {states}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    assert wait_for_job("7", poll=0.01) == ("FAILED", "1:0")
    assert (tmp_path / "n").read_text().strip() == "4"  # it looked until the last record had ended

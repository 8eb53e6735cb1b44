"""Integration tests on a real Slurm of two nodes (slurmctld on this machine, a slurmd per node in its own network
namespace, started here, stopped at the end): a 2-task MPI surface job, a job requeued mid-grid (scontrol
requeue), the time-limit warning (USR1) that makes the job requeue itself, a cancelled job resumed by submitting
it again, and the multi-node sbatch script on both nodes. Each must end with every point done, nothing computed
twice and the values of an uninterrupted serial run.

Needs the Debian packages slurmctld, slurmd, slurm-client and iproute2 (.ci/run installs them), util-linux's
nsenter and unshare, and root (network namespaces; the minimal configuration in slurm.conf.in runs everything as
root with auth/none).
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from landscape.core.models import build_model
from landscape.io.surface_file import read_surface

from conftest import ROOT, TESTS, wait_for_points

pytestmark = [pytest.mark.slurm, pytest.mark.mpi]

GRID = ("-1:1:41", "-1:1:31")  # 1271 points: long enough to interrupt mid-grid on any machine here


def _need(condition: bool, why: str) -> None:
    if condition:
        return
    if os.environ.get("CI") or os.environ.get("LANDSCAPE_CI"):
        pytest.fail(f"{why}; CI must run the Slurm tests (.ci/run installs slurmctld, slurmd and slurm-client)")
    pytest.skip(why)


@dataclass
class Cluster:
    env: dict
    state: Path
    gpus: int

    def run(self, *cmd: str, check: bool = True) -> str:
        r = subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed: {r.stderr}")
        return r.stdout

    def job(self, job_id: str) -> dict:
        text = self.run("scontrol", "show", "job", "-o", job_id, check=False)
        return dict(re.findall(r"(\w+)=(\S*)", text))

    def wait_state(self, job_id: str, states: tuple[str, ...], timeout: float = 240) -> dict:
        t = time.time()
        while time.time() - t < timeout:
            info = self.job(job_id)
            if info.get("JobState") in states:
                return info
            time.sleep(0.3)
        raise AssertionError(f"job {job_id} not in {states} after {timeout} s: {self.job(job_id)}\n{self.logs()}")

    def points(self, job_id: str, path: Path, minimum: int) -> int:
        """Wait until the job has flushed ``minimum`` points to ``path``; fail at once if it ended before."""
        def ended() -> str | None:
            info = self.job(job_id)
            if info.get("JobState") in ("PENDING", "CONFIGURING", "RUNNING"):
                return None
            out = sorted(path.parent.glob(f"slurm-{job_id}.out"))
            return f"job {job_id} is {info.get('JobState')}:\n" + \
                (out[0].read_text()[-3000:] if out else "") + self.logs()
        return wait_for_points(path, minimum, timeout=180, ended=ended)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted((self.state / "log").glob("*"))
                         if p.is_file())


NODES = ("n1", "n2")


class Namespaces:
    """One network namespace per Slurm node, joined to a bridge on this machine (where slurmctld listens): each
    node has its own address and host name, so slurmd, srun's steps and MPI see two hosts."""

    def __init__(self, tag: str):
        self.tag, self.bridge, self.subnet = tag, f"lsb{tag}", f"10.77.{int(tag) % 250}"
        self.made: list[tuple[str, ...]] = []

    def ip(self, *args: str) -> None:
        r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
        if r.returncode:
            raise OSError(f"ip {' '.join(args)}: {r.stderr.strip()}")

    def make(self) -> dict[str, str]:
        self.ip("link", "add", self.bridge, "type", "bridge")
        self.made.append(("link", "del", self.bridge))
        self.ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        self.ip("link", "set", self.bridge, "up")
        addrs = {}
        for i, node in enumerate(NODES, 1):
            ns, veth = f"ls{self.tag}{node}", f"lv{self.tag}{i}"
            self.ip("netns", "add", ns)
            self.made.append(("netns", "del", ns))
            self.ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self.ip("link", "set", veth, "master", self.bridge)
            self.ip("link", "set", veth, "up")
            addrs[node] = f"{self.subnet}.{10 + i}"
            for args in (("addr", "add", f"{addrs[node]}/24", "dev", "eth0"), ("link", "set", "eth0", "up"),
                         ("link", "set", "lo", "up")):
                self.ip("-n", ns, *args)
        return addrs

    def remove(self) -> None:
        for args in reversed(self.made):
            try:
                self.ip(*args)
            except OSError:
                pass


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """slurmctld here and a slurmd per node in its own network namespace, with its own host name (UTS namespace)
    and /dev/shm (mount namespace): a two-node cluster on one machine."""
    for exe in ("slurmctld", "slurmd", "sbatch", "scontrol", "squeue", "scancel", "ip", "nsenter", "unshare"):
        _need(shutil.which(exe) is not None, f"{exe} is not installed")
    _need(os.geteuid() == 0, "the local Slurm of the tests runs as root")
    state = tmp_path_factory.mktemp("slurm")
    for d in ("state", "spool", "log"):
        (state / d).mkdir()
    tag = str(os.getpid() % 100000)
    nets = Namespaces(tag)
    try:
        addrs = nets.make()
    except OSError as exc:
        nets.remove()
        _need(False, f"cannot make the nodes' network namespaces ({exc})")
    gpus = 0
    try:  # fake GPUs (character devices) so that --gpus-per-task sets CUDA_VISIBLE_DEVICES per rank
        for node in NODES:
            for i in range(2):
                os.mknod(state / f"gpu-{node}-{i}", 0o666 | 0o020000, os.makedev(1, 3))
        (state / "gres.conf").write_text("".join(f"NodeName={node} Name=gpu File={state}/gpu-{node}-[0-1]\n"
                                                 for node in NODES))
        gpus = 2
    except OSError:
        pass
    nodes = "\n".join(f"NodeName={node}{' Gres=gpu:2' if gpus else ''} NodeHostname={node} NodeAddr={addr} "
                      "CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=4000 "
                      "State=UNKNOWN" for node, addr in addrs.items())
    conf = (TESTS / "slurm.conf.in").read_text().replace("@STATE@", str(state)).replace("@NODES@", nodes)
    conf = conf.replace("@CTLHOST@", f"{socket.gethostname().split('.')[0]}({nets.subnet}.1)")
    (state / "slurm.conf").write_text(conf)
    env = dict(os.environ, SLURM_CONF=str(state / "slurm.conf"),
               PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    for v in [k for k in env if k.startswith(("SLURM_", "PMI_", "PMIX_")) and k != "SLURM_CONF"]:
        env.pop(v)
    busy = subprocess.run(["sinfo", "-h"], env=env, capture_output=True, timeout=30)
    if busy.returncode == 0:
        nets.remove()
        _need(False, "a slurmctld already answers on port 6817; stop it first")
    # the nodes' names resolve on every node (MPICH's mpiexec connects to its proxies by host name), as a
    # cluster's DNS would make them: a hosts file of the cluster's own, mounted over /etc/hosts in each node
    (state / "hosts").write_text("127.0.0.1 localhost\n" + "".join(f"{a} {n}\n" for n, a in addrs.items()))
    daemons = [("ctld", ["slurmctld", "-D", "-f", env["SLURM_CONF"]])]
    for node in NODES:  # nsenter joins the namespace without remounting /sys (slurmd reads cgroups there)
        setup = (f"mount -t tmpfs tmpfs /dev/shm && mount --bind '{state}/hosts' /etc/hosts && hostname {node} && "
                 f"exec slurmd -D -N {node} -f \"$SLURM_CONF\"")
        daemons.append((f"d-{node}", ["nsenter", f"--net=/var/run/netns/ls{tag}{node}", "unshare", "--mount",
                                      "--uts", "sh", "-c", setup]))
    procs = [subprocess.Popen(cmd, env=env, stdout=open(state / "log" / f"{name}.out", "w"), stderr=subprocess.STDOUT)
             for name, cmd in daemons]
    cluster = Cluster(env, state, gpus)
    try:
        t = time.time()
        while cluster.run("sinfo", "-h", "-o", "%T %D", check=False).split() != ["idle", str(len(NODES))]:
            if time.time() - t > 60 or any(p.poll() is not None for p in procs):
                raise AssertionError(f"the local Slurm did not come up:\n{cluster.logs()}")
            time.sleep(0.5)
        yield cluster
    finally:
        subprocess.run(["scancel", "--user", "root"], env=env, capture_output=True, timeout=30)
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        nets.remove()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A centre model, a surface job around it, and the values of an uninterrupted serial run."""
    root = tmp_path_factory.mktemp("slurm work")  # a space in every path the jobs see
    torch.manual_seed(0)
    torch.save(build_model("lenet5").state_dict(), root / "center.pt")
    job = root / "surface job.toml"
    job.write_text(f"""
[job]
name = "slurm-surface"
output = "out"

[model]
name = "lenet5"
checkpoint = {json.dumps(str(root / "center.pt"))}

[data]
name = "digits"
test_subset = 200

[surface]
alpha = "{GRID[0]}"
beta = "{GRID[1]}"
flush_every = 1
chunk = 4
points_per_batch = 1
""")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT)]))
    r = subprocess.run([sys.executable, "-m", "landscape", "run", str(job), "--output", str(root / "reference"),
                        "--no-progress"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return root, job, read_surface(root / "reference" / "surface.h5")


def submit(cluster: Cluster, job: Path, output: Path, *extra: str, wait: bool = False) -> subprocess.CompletedProcess:
    size = ["--gpus-per-node", "2"] if cluster.gpus else ["--tasks-per-node", "2"]
    r = subprocess.run([sys.executable, "-m", "landscape", "submit", str(job), *size, "--time", "10",
                        "--signal-seconds", "60", "--output", str(output), *extra] + (["--wait"] if wait else []),
                       env=cluster.env, cwd=output.parent, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip().isdigit(), r.stderr + cluster.logs()
    return r


def assert_finished_like(path: Path, reference, resumed_from: int | None = None, ranks: int = 2) -> None:
    s = read_surface(path)
    assert s.done.all() and s.attrs["status"] == "complete"
    np.testing.assert_array_equal(s.loss, reference.loss)
    np.testing.assert_array_equal(s.accuracy, reference.accuracy)
    if resumed_from is not None:  # the last run computed exactly what was missing: nothing lost, nothing twice
        last = s.runs[-1]
        assert last["status"] == "complete" and last["points"] == s.done.size - resumed_from, s.runs
        assert last["ranks"] == ranks


def test_demo_surface_as_a_two_task_mpi_job(slurm, tmp_path):
    doc = tomllib.loads((ROOT / "jobs" / "demo.toml").read_text())
    lines = [f"[{k}]\n" + "\n".join(f"{kk} = {json.dumps(vv)}" for kk, vv in doc[k].items())
             for k in ("job", "model", "data", "train", "evaluate", "surface")]
    job = tmp_path / "demo surface.toml"
    job.write_text("\n\n".join(lines) + "\n")
    over = ["train.epochs=2", "surface.alpha=-1:1:9", "surface.beta=-1:1:7"]
    r = submit(slurm, job, tmp_path / "demo", *over, wait=True)
    job_id = r.stdout.strip()
    info = slurm.job(job_id)
    assert info["JobState"] == "COMPLETED" and info["NumTasks"] == "2", info
    log = (tmp_path / "demo" / f"slurm-{job_id}.out").read_text()
    for rank in range(2):
        assert f"rank {rank} (local {rank} of 2)" in log, log
        if slurm.gpus:  # --gpus-per-task=1: each rank sees its own (fake) GPU
            assert f"rank {rank} (local {rank} of 2) on" in log and f"CUDA_VISIBLE_DEVICES={rank})" in log, log
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT)]))
    ref = subprocess.run([sys.executable, "-m", "landscape", "run", str(job), *over, "--output",
                          str(tmp_path / "serial"), "--no-progress"], env=env, capture_output=True, text=True,
                         timeout=600)
    assert ref.returncode == 0, ref.stderr
    assert_finished_like(tmp_path / "demo" / "surface.h5", read_surface(tmp_path / "serial" / "surface.h5"))
    assert read_surface(tmp_path / "demo" / "surface.h5").runs[-1]["slurm_job_id"] == int(job_id)


def test_requeued_job_finishes_the_grid(slurm, work, tmp_path):
    root, job, reference = work
    out = tmp_path / "requeued"
    job_id = submit(slurm, job, out).stdout.strip()
    slurm.points(job_id, out / "surface.h5", 30)
    slurm.run("scontrol", "requeue", job_id)
    info = slurm.wait_state(job_id, ("PENDING",))
    assert info["Restarts"] == "1"
    time.sleep(1)
    part = read_surface(out / "surface.h5")  # readable, partial, with what the first run saved
    before = int(part.done.sum())
    assert 30 <= before < part.done.size and part.attrs["status"] == "partial"
    slurm.run("scontrol", "update", f"jobid={job_id}", "StartTime=now")
    slurm.wait_state(job_id, ("COMPLETED",))
    assert_finished_like(out / "surface.h5", reference, resumed_from=before)
    runs = read_surface(out / "surface.h5").runs
    assert runs[-1]["slurm_job_id"] == int(job_id) and runs[-1]["slurm_restart_count"] == 1
    log = (out / f"slurm-{job_id}.out").read_text()
    assert "restart 0" in log and "restart 1" in log


@pytest.mark.parametrize("launcher", ["srun", "mpiexec"])
def test_time_limit_warning_makes_the_job_requeue_itself(slurm, work, tmp_path, launcher):
    root, job, reference = work
    out = tmp_path / "warned"
    job_id = submit(slurm, job, out, "--launcher", launcher).stdout.strip()
    slurm.points(job_id, out / "surface.h5", 30)
    slurm.run("scancel", "--signal=USR1", job_id)  # what --signal=USR1@N delivers: to the job's steps
    info = slurm.wait_state(job_id, ("PENDING",))
    assert info["Restarts"] == "1"
    log = (out / f"slurm-{job_id}.out").read_text()
    assert "requeueing job" in log and "SIGUSR1" in log and "Killed" not in log, log  # every rank saved and exited 75
    time.sleep(1)
    part = read_surface(out / "surface.h5")
    before = int(part.done.sum())
    assert part.runs[-1]["status"] == "interrupted" and part.runs[-1]["points"] == before  # saved on the signal
    slurm.run("scontrol", "update", f"jobid={job_id}", "StartTime=now")
    slurm.wait_state(job_id, ("COMPLETED",))
    assert_finished_like(out / "surface.h5", reference, resumed_from=before)


def test_cancelled_job_resumes_when_submitted_again(slurm, work, tmp_path):
    root, job, reference = work
    out = tmp_path / "cancelled"
    job_id = submit(slurm, job, out).stdout.strip()
    slurm.points(job_id, out / "surface.h5", 30)
    slurm.run("scancel", job_id)
    slurm.wait_state(job_id, ("CANCELLED",))
    time.sleep(1)
    before = int(read_surface(out / "surface.h5").done.sum())
    assert 30 <= before < np.prod([int(g.split(":")[2]) for g in GRID])
    again = submit(slurm, job, out, wait=True).stdout.strip()
    assert again != job_id and slurm.job(again)["JobState"] == "COMPLETED"
    assert_finished_like(out / "surface.h5", reference, resumed_from=before)


def test_multinode_script_runs_across_two_nodes_requeues_and_resumes(slurm, work, tmp_path):
    """slurm/gpu_multinode.sbatch itself on both nodes (2 ranks each, srun --mpi=pmi2), warned before its time
    limit mid-grid: it saves, requeues itself and finishes with the serial run's values."""
    root, job, reference = work
    out = tmp_path / "multinode"
    out.mkdir()
    size = ["--gpus-per-task", "1"] if slurm.gpus else []
    r = subprocess.run(["sbatch", "--parsable", "--nodes", "2", "--ntasks-per-node", "2", *size, "--cpus-per-task",
                        "1", "--time", "10", "--output", str(out / "slurm-%j.out"),
                        str(ROOT / "slurm" / "gpu_multinode.sbatch"), str(job), "--output", str(out)],
                       env=slurm.env, cwd=out, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr + slurm.logs()
    job_id = r.stdout.strip().split(";")[0]
    slurm.points(job_id, out / "surface.h5", 30)
    info = slurm.job(job_id)
    assert info["NodeList"] == "n[1-2]" and info["NumNodes"] == "2" and info["NumTasks"] == "4", info
    slurm.run("scancel", "--signal=USR1", job_id)  # what #SBATCH --signal=USR1@180 delivers before the limit
    info = slurm.wait_state(job_id, ("PENDING",))
    assert info["Restarts"] == "1"
    time.sleep(1)
    part = read_surface(out / "surface.h5")
    before = int(part.done.sum())
    assert part.runs[-1]["status"] == "interrupted" and part.runs[-1]["points"] == before
    slurm.run("scontrol", "update", f"jobid={job_id}", "StartTime=now")
    slurm.wait_state(job_id, ("COMPLETED",))
    assert_finished_like(out / "surface.h5", reference, resumed_from=before, ranks=4)
    log = (out / f"slurm-{job_id}.out").read_text()
    assert "restart 0 on n[1-2]" in log and "restart 1 on n[1-2]" in log and "requeueing job" in log, log
    assert "mpi/pmi2" not in log, log  # Slurm's PMI server read every request (UCX's segmented addresses: not)
    for rank in range(4):  # ranks 0, 1 on n1 and 2, 3 on n2 (block distribution), each pinned to its local GPU
        node, local = NODES[rank // 2], rank % 2
        line = f"rank {rank} (local {local} of 2) on {node} -> cpu"
        assert line in log, log
        if slurm.gpus:
            assert f"{line} (CUDA_VISIBLE_DEVICES={local})" in log, log
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".h5") == ["surface.h5"]  # one writer, one file

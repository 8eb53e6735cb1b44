import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from conftest import mpi_env
from landscape.core.data import load_data, subset
from landscape.core.models import build_model
from landscape.core.threads import fixed_threads
from landscape.engine.evaluator import Evaluator
from landscape.io.surface_file import read_surface
from landscape.run.idle_cores import ThreadsHook, threads_for
from landscape.run.mpi import TAG_THREADS, matching_mpiexec, usable_cores


def test_finished_ranks_threads_go_to_the_ranks_of_their_node_still_computing():
    hosts = ["a", "a", "a", "b", "b"]
    assert threads_for(hosts, [2, 2, 2, 4, 4], set()) == {0: 2, 1: 2, 2: 2, 3: 4, 4: 4}
    assert threads_for(hosts, [2, 2, 2, 4, 4], {1}) == {0: 3, 2: 3, 3: 4, 4: 4}  # never to another node
    assert threads_for(hosts, [2, 2, 2, 4, 4], {0, 1, 3}) == {2: 6, 4: 8}
    assert threads_for(hosts, [1, 1, 1, 1, 1], {0}) == {1: 2, 2: 1, 3: 1, 4: 1}  # one thread cannot be split
    assert threads_for(hosts, [0, 2, 2, 4, 4], {0}) == {1: 2, 2: 2, 3: 4, 4: 4}  # a GPU rank gives nothing
    assert threads_for(hosts, [2, 2, 2, 4, 4], {0, 1, 2, 3, 4}) == {}
    # the cores are the ranks' affinities: 64 ranks of one thread on 2 cores gain nothing until one is left
    many = ["a"] * 64
    assert set(threads_for(many, [1] * 64, set(range(10)), [[0, 1]] * 64).values()) == {1}
    assert threads_for(many, [1] * 64, set(range(63)), [[0, 1]] * 64) == {63: 2}
    # ranks bound to their own cores (Slurm's --cpu-bind) cannot run on another's: they keep their counts
    assert threads_for(["a"] * 2, [2, 2], {0}, [[0, 1], [2, 3]]) == {1: 2}
    assert threads_for(["a"] * 2, [2, 2], {0}, [[0, 1, 2, 3]] * 2) == {1: 4}


class _Comm:
    """Messages from rank 0 with TAG_THREADS, as the master sends them."""

    def __init__(self, *counts):
        self.queue = list(counts)

    def Iprobe(self, source, tag):
        assert (source, tag) == (0, TAG_THREADS)
        return bool(self.queue)

    def recv(self, source, tag):
        return self.queue.pop(0)


def test_the_hook_takes_the_last_count_asked_in_its_own_thread_only_and_restores_it():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        hook = ThreadsHook(_Comm(3, 2))
        hook.bind()
        seen = []
        other = threading.Thread(target=lambda: (hook(), seen.append(hook.now)))
        other.start()
        other.join()
        assert seen == [1] and hook.comm.queue == [3, 2]  # another thread (a plane's point thread) takes nothing
        hook()
        assert torch.get_num_threads() == 2 and hook.comm.queue == []
        asked = {"n": 0}
        local = ThreadsHook(wanted=lambda: asked["n"])  # rank 0's own worker: the master's wish, 0 for none
        local.bind()
        local()
        assert torch.get_num_threads() == 2
        asked["n"] = 1
        local()
        assert torch.get_num_threads() == 1
        local.restore()
        assert torch.get_num_threads() == 2
        hook.comm.queue.append(3)
        with fixed_threads(2):  # a stage whose values depend on the count (curvature maps): left alone
            hook()
            assert torch.get_num_threads() == 2 and hook.comm.queue == [3]
        hook()
        assert torch.get_num_threads() == 3
        hook.comm.queue.append(5)  # asked after the last batch: dropped, and the count at bind() comes back
        hook.restore()
        assert torch.get_num_threads() == 1 and hook.comm.queue == []
    finally:
        torch.set_num_threads(before)


def test_a_point_whose_thread_count_changes_between_batches_has_the_same_values():
    _, te = load_data("digits")
    torch.manual_seed(0)
    ev = Evaluator(build_model("lenet5", te.info()), subset(te, 96), "cpu", batch_size=16)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        plain = ev.evaluate()
        counts = iter([2, 1] * 10)
        ev.between_batches = lambda: torch.set_num_threads(next(counts))
        changing = ev.evaluate()
    finally:
        torch.set_num_threads(before)
    assert (changing.loss, changing.accuracy) == (plain.loss, plain.accuracy)  # bitwise


@pytest.mark.mpi
def test_under_mpi_a_rank_without_work_hands_its_thread_to_the_rank_still_computing(tmp_path):
    """mpiexec -n 2 on one node, one thread per rank (the launch's count, no OMP_NUM_THREADS): at the end of the
    grid the rank that has no more work gives its thread to the other, which takes it between two batches of its
    last point; the values are a serial run's."""
    from userdefs import slow_tiny

    torch.manual_seed(0)
    torch.save(slow_tiny().state_dict(), tmp_path / "c.pt")
    args = ["-m", "landscape", "-vv", "surface", "--model", "userdefs:slow_tiny", "--data", "spiral", "--center",
            str(tmp_path / "c.pt"), "--alpha", "-1:1:5", "--beta", "0:0:1", "--no-progress", "--device", "cpu",
            "evaluate.batch_size=20", "surface.chunk=1", "surface.points_per_batch=1"]
    env = mpi_env(LANDSCAPE_TEST_FORWARD_SECONDS="0.05")
    env.pop("OMP_NUM_THREADS")
    serial = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "serial.h5")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert serial.returncode == 0, serial.stderr
    r = subprocess.run([matching_mpiexec(), "-n", "2", sys.executable, *args, "--out", str(tmp_path / "mpi.h5")],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "rank 1 (local 1 of 2)" in r.stderr
    both = 2 * max(1, usable_cores() // 2)  # each rank's count is cores / 2
    assert f"{both} threads from now on (rank" in r.stderr, r.stderr  # the master asked
    assert f"{both} threads from now on (cores a finished rank left)" in r.stderr, r.stderr  # and a batch took it
    a, b = read_surface(tmp_path / "serial.h5"), read_surface(tmp_path / "mpi.h5")
    assert b.done.all()
    np.testing.assert_array_equal(a.loss, b.loss)

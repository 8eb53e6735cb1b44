"""MPI master/worker throughput, measured side by side in one run (launches mpiexec itself).

1. Trivial evaluator (returns zeros at once): how many points/s the master dispatches and stores, with
   small fixed chunks (the bookkeeping limit) and with adaptive chunks. Target: >= 5,000 points/s.
2. Real evaluator (lenet5 on digits, default settings): points/s of 1 rank using every core (torch's default
   threads), of 1 rank on one thread (what a comparison "per core" would use), and of N ranks sharing the
   cores (cores / N threads each, as ``landscape`` sets them); the speed-up is over the 1 rank using every core.
   On one CPU node a compute-bound model gains nothing from more ranks: they share the same cores. Ranks pay
   where each has its own device (one rank per GPU) or node.
3. Many ranks (``--many 64``, oversubscribed on this machine): the trivial evaluator's points/s with 64 ranks
   (target >= 20,000), and a device-like evaluator (each point takes ``--point-ms`` of waiting, as a rank whose
   GPU computes while its CPU sleeps): points/s against the ideal (ranks / point time), and every rank's idle
   time between its chunks and at the end, against the length of its chunks (target: never more than a chunk).

    python tools/bench_mpi.py                    # 2 ranks on this machine's 2 cores
    python tools/bench_mpi.py --ranks 4 --grid 24
    python tools/bench_mpi.py --many 64 --only-many
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from landscape.run.mpi import matching_mpiexec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import write_markdown  # noqa: E402


def child_trivial(out: str, grid: int, chunk: int) -> None:
    import numpy as np
    from mpi4py import MPI

    from landscape.core.grid import Grid
    from landscape.run.distributed import run_distributed
    from landscape.io.surface_file import SurfaceStore

    class Trivial:
        auto, points_per_batch = False, 1

        def evaluate_points(self, a, b):
            return np.zeros(len(a)), np.zeros(len(a))

    comm = MPI.COMM_WORLD
    g = Grid(np.linspace(-1, 1, grid), np.linspace(-1, 1, grid))
    store = SurfaceStore.open(out, g, {"bench": "trivial"}, flush_every=4096) if comm.rank == 0 else None
    comm.Barrier()
    t = time.perf_counter()
    n = run_distributed(comm, Trivial(), store, progress=False, chunk=chunk)
    if comm.rank == 0:
        print(json.dumps({"points": n, "seconds": time.perf_counter() - t}))


def child_many(out: str, grid: int, point_ms: float) -> None:
    """Both evaluators in one launch (64 processes take a minute to start): one JSON line from rank 0."""
    import numpy as np
    from mpi4py import MPI

    from landscape.core.grid import Grid
    from landscape.io.surface_file import SurfaceStore
    from landscape.run.distributed import run_distributed

    class Timed:
        auto, points_per_batch = False, 1

        def __init__(self, seconds_per_point: float):
            self.cost, self.calls = seconds_per_point, []

        def evaluate_points(self, a, b):
            t = time.perf_counter()
            if self.cost:
                time.sleep(self.cost * len(a))
            self.calls.append((t, time.perf_counter(), len(a)))
            return np.zeros(len(a)), np.zeros(len(a))

    comm = MPI.COMM_WORLD
    res = {}
    for label, cost in (("trivial", 0.0), ("device", point_ms / 1e3)):
        g = Grid(np.linspace(-1, 1, grid), np.linspace(-1, 1, grid))
        store = (SurfaceStore.open(f"{out}.{label}.h5", g, {"bench": label}, flush_every=4096)
                 if comm.rank == 0 else None)
        ev = Timed(cost)
        comm.Barrier()
        t0 = time.perf_counter()
        n = run_distributed(comm, ev, store, progress=False)
        t1 = time.perf_counter() if comm.rank == 0 else 0.0
        if comm.rank == 0:  # ranks that are done wait for rank 0 without spinning (a blocking collective spins)
            for r in range(1, comm.size):
                comm.send(None, dest=r, tag=77)
        else:
            while not comm.Iprobe(source=0, tag=77):
                time.sleep(1e-3)
            comm.recv(source=0, tag=77)
        calls = comm.gather(ev.calls, root=0)  # perf_counter is one clock on one machine
        if comm.rank:
            continue
        first, between, tail, durations = [], [], [], []
        last = max(c[1] for cs in calls for c in cs)  # the grid's last evaluation ends (the file closes after)
        for rank, cs in enumerate(calls):
            if not cs or rank == 0:  # rank 0's own thread shares the master's process
                continue
            first.append(cs[0][0] - t0)
            between += [cs[i][0] - cs[i - 1][1] for i in range(1, len(cs))]
            tail.append(last - cs[-1][1])
            durations += [c[1] - c[0] for c in cs]
        res[label] = {"points": n, "seconds": t1 - t0, "ranks": comm.size, "chunks": sum(len(c) for c in calls),
                      "first": max(first), "between": max(between, default=0.0), "tail": max(tail),
                      "between_p99": float(np.quantile(between, 0.99)) if between else 0.0,
                      "chunk_median": float(np.median(durations)), "chunk_max": max(durations),
                      "busy": sum(durations) / ((comm.size - 1) * (t1 - t0))}
    if comm.rank == 0:
        print(json.dumps(res))


def run(cmd: list[str], env: dict) -> str:
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return r.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--grid", type=int, default=16, help="real-evaluator grid is GRID x GRID")
    ap.add_argument("--trivial-grid", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--many", type=int, default=0, help="also run the many-ranks case with this many ranks")
    ap.add_argument("--many-grid", type=int, default=300)
    ap.add_argument("--point-ms", type=float, default=2.0, help="the device-like evaluator's time per point")
    ap.add_argument("--only-many", action="store_true")
    ap.add_argument("--markdown", help="write the many-ranks table here (docs/bench/mpi.md is the documentation's)")
    ap.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child and args.child[0] == "many":
        child_many(args.child[1], int(args.child[2]), float(args.child[3]))
        return
    if args.child:
        child_trivial(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    mpiexec = matching_mpiexec()  # not Debian's Open MPI mpiexec, first on PATH, with the MPICH wheel's mpi4py
    if mpiexec is None:
        raise SystemExit("no mpiexec: pip install mpi4py mpich")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    tmp = Path(tempfile.mkdtemp())
    print(f"mpiexec {mpiexec}, {os.cpu_count()} cores, one torch thread per rank")
    if args.many:
        many(mpiexec, env, tmp, args)
        if args.only_many:
            return
    print(f"{'case':<44} {'ranks':>5} {'points':>7} {'seconds':>8} {'points/s':>10} {'vs 1 rank, every core':>9}")
    for label, chunk in (("trivial evaluator, chunks of 16", 16), ("trivial evaluator, adaptive chunks", 0)):
        for n in sorted({2, args.ranks}):
            out = tmp / f"t{n}_{chunk}.h5"
            res = json.loads(run([mpiexec, "-n", str(n), sys.executable, __file__, "--child", str(out),
                                  str(args.trivial_grid), str(chunk)], env).strip().splitlines()[-1])
            print(f"{label:<44} {n:>5} {res['points']:>7} {res['seconds']:>8.3f} "
                  f"{res['points'] / res['seconds']:>10.0f} {'':>9}")
    import torch

    from landscape.core.models import build_model
    from landscape.io.surface_file import read_surface

    torch.manual_seed(0)
    torch.save(build_model("lenet5").state_dict(), tmp / "c.pt")
    base = None
    every_core = {k: v for k, v in env.items() if k != "OMP_NUM_THREADS"}
    cases = [("lenet5 / digits, 1 rank, every core", 1, every_core),
             ("lenet5 / digits, 1 rank, 1 thread", 1, env),
             (f"lenet5 / digits, {args.ranks} ranks sharing the cores", args.ranks, every_core)]
    for label, n, case_env in cases:
        out = tmp / f"real{n}_{len(case_env)}.h5"
        cmd = [mpiexec, "-n", str(n), sys.executable, "-m", "landscape", "surface", "--model", "lenet5", "--data",
               "digits", "--center", str(tmp / "c.pt"), "--alpha", f"-1:1:{args.grid}", "--beta",
               f"-1:1:{args.grid}", "--out", str(out), "--device", args.device, "--no-progress", "-q"]
        run(cmd, case_env)
        lr = json.loads(read_surface(out).attrs["last_run"])
        rate = lr["points_per_second"]
        base = base or rate
        print(f"{label:<44} {n:>5} {lr['points']:>7} {lr['seconds']:>8.3f} {rate:>10.1f} {rate / base:>8.2f}x"
              f"  ({lr.get('batch_mode', 'one')}, {lr.get('points_per_batch', 1)} per batch)")


def many(mpiexec: str, env: dict, tmp: Path, args: argparse.Namespace) -> None:
    n, g = args.many, args.many_grid
    t = time.perf_counter()
    res = json.loads(run([mpiexec, "-n", str(n), sys.executable, __file__, "--child", "many", str(tmp / "many"),
                          str(g), str(args.point_ms)], env).strip().splitlines()[-1])
    print(f"{n} ranks on {os.cpu_count()} cores (launch and start {time.perf_counter() - t:.0f} s), "
          f"grid {g}x{g} = {g * g} points")
    tr, dv = res["trivial"], res["device"]
    print(f"  trivial evaluator: {tr['points'] / tr['seconds']:,.0f} points/s in {tr['chunks']} chunks "
          f"({tr['seconds']:.2f} s; target >= 20,000)")
    ideal = (n - 1) / (args.point_ms / 1e3)  # rank 0's own thread sleeps too, but shares the master's process
    print(f"  device-like evaluator ({args.point_ms:g} ms a point): {dv['points'] / dv['seconds']:,.0f} points/s "
          f"= {dv['points'] / dv['seconds'] / ideal:.2f} of the {n - 1} workers' ideal {ideal:,.0f}; workers busy "
          f"{dv['busy']:.0%} of the run; {dv['chunks']} chunks")
    med = dv["chunk_median"]
    print(f"  a chunk takes {med * 1e3:.0f} ms (median; longest {dv['chunk_max'] * 1e3:.0f} ms); longest idle time of a "
          f"rank: before its first chunk {dv['first'] * 1e3:.0f} ms, between chunks {dv['between'] * 1e3:.0f} ms "
          f"(99th percentile {dv['between_p99'] * 1e3:.1f} ms), after its last {dv['tail'] * 1e3:.0f} ms "
          f"-> {max(dv['first'], dv['between'], dv['tail']) / med:.2f} of a chunk (target <= 1)")
    if args.markdown:
        worst = max(dv["first"], dv["between"], dv["tail"])
        rows = [("trivial (returns at once)", f"{tr['points'] / tr['seconds']:,.0f}", "", "", ""),
                (f"device-like ({args.point_ms:g} ms a point)", f"{dv['points'] / dv['seconds']:,.0f}",
                 f"{dv['points'] / dv['seconds'] / ideal:.2f}", f"{dv['busy']:.0%}",
                 f"{worst * 1e3:.0f} ms / {med * 1e3:.0f} ms = {worst / med:.2f}")]
        write_markdown(args.markdown, "python tools/bench_mpi.py " + " ".join(sys.argv[1:]),
                       ("evaluator", "points/s", "of the ideal", "workers busy", "longest idle / median chunk"),
                       rows, f"{n} ranks of `mpiexec -n {n}` on {os.cpu_count()} cores, a {g}×{g} grid "
                       f"({dv['chunks']} chunks); idle: before a rank's first chunk, between its chunks and after "
                       "its last until the grid's last point is done. The master's messages are sent without "
                       "waiting for the rank to take them; ranks send their results the same way.")


if __name__ == "__main__":
    main()

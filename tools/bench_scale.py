"""Scale: mlp/spiral surfaces of growing grids, the MPI master's bookkeeping limit, and the file commands on the
largest file, measured in one run (every command a child process, its wall time and peak memory reported).

1. ``landscape surface`` (defaults, one rank) on mlp/spiral grids of 101², 301² and 1001² points: points/s of
   each and its ratio to the smallest grid's (target: flat, ratio ~1).
2. The master with a trivial evaluator (returns zeros at once) on the largest grid under ``mpiexec -n 2``:
   how many points/s it hands out and stores (target: >= 20,000).
3. ``status``, ``export`` and ``plot`` on the largest file: seconds and peak resident memory (target: seconds,
   bounded memory).

    python tools/bench_scale.py                      # 101, 301, 1001
    python tools/bench_scale.py --grids 101,301      # quicker
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_child(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """Wall seconds, peak resident MiB (the child's own, from wait4) and stdout of one child process."""
    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errors:  # a file, not a pipe: a chatty stderr cannot block stdout
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=errors, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        errors.seek(0)
        err = errors.read()
    seconds = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grids", default="101,301,1001")
    ap.add_argument("--ranks", type=int, default=2)
    args = ap.parse_args()
    grids = [int(g) for g in args.grids.split(",")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tools")]))
    tmp = Path(tempfile.mkdtemp())
    import torch

    from landscape.core.data import load_data
    from landscape.core.models import build_model
    from landscape.io.surface_file import read_surface

    torch.manual_seed(0)
    torch.save(build_model("mlp", load_data("spiral")[1].info()).state_dict(), tmp / "c.pt")
    print(f"{os.cpu_count()} cores, torch {torch.__version__}")
    print(f"{'mlp / spiral surface':<28} {'points':>9} {'seconds':>9} {'points/s':>10} {'vs smallest':>11}  mode")
    base, largest = None, None
    for n in grids:
        out = tmp / f"s{n}.h5"
        cmd = [sys.executable, "-m", "landscape", "surface", "--model", "mlp", "--data", "spiral", "--center",
               str(tmp / "c.pt"), "--alpha", f"-1:1:{n}", "--beta", f"-1:1:{n}", "--out", str(out), "--device",
               "cpu", "--no-progress", "-q"]
        wall, rss, _ = run_child(cmd, env)
        lr = json.loads(read_surface(out).attrs["last_run"])
        rate = lr["points_per_second"]
        base = base or rate
        largest = out
        print(f"{f'{n} x {n}':<28} {lr['points']:>9} {lr['seconds']:>9.2f} {rate:>10.0f} {rate / base:>10.2f}x"
              f"  {lr.get('batch_mode', 'one')} {lr.get('points_per_batch', 1)}; process {wall:.1f} s, "
              f"{rss:.0f} MiB peak")
    mpiexec = shutil.which("mpiexec") or str(Path(sys.executable).with_name("mpiexec"))
    n = grids[-1]
    for label, chunk in (("adaptive chunks", 0), ("chunks of 16", 16)):
        res = run_child([mpiexec, "-n", str(args.ranks), sys.executable, str(ROOT / "tools" / "bench_mpi.py"),
                         "--child", str(tmp / f"trivial{chunk}.h5"), str(n), str(chunk)],
                        dict(env, OMP_NUM_THREADS="1"))[2]
        r = json.loads(res.strip().splitlines()[-1])
        print(f"master, trivial evaluator, {args.ranks} ranks, {n} x {n}, {label}: {r['points']} points in "
              f"{r['seconds']:.2f} s = {r['points'] / r['seconds']:,.0f} points/s")
    print(f"\nfile commands on {n} x {n} ({largest.stat().st_size / 2**20:.1f} MiB)")
    for label, extra in (("status", ["status", str(largest)]),
                         ("export (vtp)", ["export", str(largest), "--out", str(tmp / "vtk")]),
                         ("plot (png, pdf; 4 figures)", ["plot", str(largest), "--out", str(tmp / "fig")])):
        wall, rss, _ = run_child([sys.executable, "-m", "landscape", *extra], env)
        print(f"  {label:<28} {wall:8.2f} s  {rss:8.0f} MiB peak")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""OpenMP wait policy on a shared machine: whole ``landscape`` processes with the OpenMP runtime's default waits
(threads spin a while before they sleep; ``OMP_WAIT_POLICY`` set empty, so the package chooses nothing) against
``OMP_WAIT_POLICY=PASSIVE``, beside ``--busy`` CPU-bound processes of someone else, in interleaved rounds; and what
the package chooses by itself (``auto``: passive when other processes run on half the cores or more).

Each round runs, per policy, a lenet5/digits surface and a short training run (each a fresh process, as a job
step is). Prints the median seconds and the ratios measured side by side.

    python tools/bench_wait_policy.py                 # 2 busy processes (a 2-core machine shared)
    python tools/bench_wait_policy.py --busy 0        # an idle machine: what spinning buys there
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUSY = "import time\nend = time.time() + 3600\nwhile time.time() < end:\n    pass\n"


def commands(tmp: Path, grid: int) -> dict[str, list[str]]:
    """The two steps of a round: a surface around a fixed centre, and two epochs of training."""
    py = [sys.executable, "-m", "landscape"]
    return {"surface": py + ["surface", "--model", "lenet5", "--data", "digits", "--center", str(tmp / "c.pt"),
                             "--alpha", f"-1:1:{grid}", "--beta", f"-1:1:{grid}", "--no-progress", "-q", "--out"],
            "train": py + ["train", "--model", "lenet5", "--data", "digits", "--epochs", "2", "--no-progress", "-q",
                           "--out"]}


def run(cmd: list[str], out: Path, policy: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("OMP_WAIT_POLICY", None)
    if policy == "default":
        env["OMP_WAIT_POLICY"] = ""  # set, so the package leaves it; empty, so the runtime keeps its default
    elif policy == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    t = time.perf_counter()
    r = subprocess.run(cmd + [str(out)], env=env, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--busy", type=int, default=2, help="CPU-bound processes running beside (default 2)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--grid", type=int, default=15)
    args = ap.parse_args()
    import torch

    from landscape.core.models import build_model

    policies = ("default", "passive", "auto")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        torch.manual_seed(0)
        torch.save(build_model("lenet5").state_dict(), tmp / "c.pt")
        busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.busy)]
        try:
            time.sleep(2 if busy else 0)  # the load average starts to show them
            times = {(s, p): [] for s in ("surface", "train") for p in policies}
            for r in range(args.rounds):
                for step, cmd in commands(tmp, args.grid).items():
                    for p in policies:
                        times[step, p].append(run(cmd, tmp / f"{step}-{p}-{r}.h5", p))
        finally:
            for b in busy:
                b.kill()
    print(f"{args.busy} busy process(es) on {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
          f"seconds of whole processes, median (min-max) of {args.rounds} interleaved rounds")
    for step in ("surface", "train"):
        med = {p: statistics.median(times[step, p]) for p in policies}
        cells = "  ".join(f"{p} {med[p]:.2f} ({min(times[step, p]):.2f}-{max(times[step, p]):.2f})"
                          for p in policies)
        print(f"{step:<8} {cells}   passive/default {med['passive'] / med['default']:.2f}, "
              f"auto/default {med['auto'] / med['default']:.2f}")


if __name__ == "__main__":
    main()

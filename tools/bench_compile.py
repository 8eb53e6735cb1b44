"""``evaluate.compile``: ``auto`` (the default) against never and always compiling, whole calls side by side.

Each case runs ``ls.surface(model, (x, y), ...)`` at defaults with ``compile="auto"``, ``False`` and ``True``, each
call in a fresh process with an empty inductor cache of its own (a first run on a machine: compiling is paid in
full), in interleaved rounds; prints the median (min-max) seconds of the whole call, ``auto``'s ratio to the
other two, what ``auto`` decided (its log line) and checks that its values are those of the way it took, bitwise.

    python tools/bench_compile.py                                     # both cases, 1 round
    python tools/bench_compile.py --cases resnet20 --grid 71 --repeats 3
    python tools/bench_compile.py --markdown docs/bench/compile.md

Cases: ``lenet5`` on the 360 digits at 101×101 (short points with input tables: compiling cannot repay itself,
``auto`` must not compile and cost next to nothing), and ``resnet20`` on ``--samples`` CIFAR-shaped images at
``--grid``² (long enough that compiling repays itself on this CPU).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from benchlib import machine_line, write_markdown  # noqa: E402

WAYS = ("auto", "false", "true")


def call(case: str, way: str, grid: int, samples: int, out: str) -> None:
    """One whole call in this (fresh) process; prints its seconds, and leaves the surface in ``out``."""
    import logging
    import time

    import torch

    import landscape as ls
    from benchlib import cifar_shaped
    from landscape.core.data import load_data
    from landscape.core.models import build_model

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    data = load_data("digits")[1] if case == "lenet5" else cifar_shaped(samples)
    torch.manual_seed(0)
    model = build_model(case, data.info()).eval()
    compile_ = {"auto": "auto", "false": False, "true": True}[way]
    t = time.perf_counter()
    ls.surface(model, (data.x, data.y), alpha=(-1, 1, grid), beta=(-1, 1, grid), compile=compile_, out=out,
               progress=False)
    print(f"seconds {time.perf_counter() - t:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=["lenet5", "resnet20"], choices=["lenet5", "resnet20"])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--grid", type=int, default=71, help="resnet20's grid side (lenet5: 101)")
    ap.add_argument("--samples", type=int, default=64, help="CIFAR-shaped images for resnet20")
    ap.add_argument("--markdown", help="also write the table to this Markdown file")
    ap.add_argument("--call", nargs=5, metavar=("CASE", "WAY", "GRID", "SAMPLES", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.call:
        case, way, grid, samples, out = args.call
        return call(case, way, int(grid), int(samples), out)
    import h5py
    import numpy as np

    print(machine_line())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases:
            grid = 101 if case == "lenet5" else args.grid
            times: dict[str, list[float]] = {w: [] for w in WAYS}
            decisions, values = [], {}
            for r in range(args.repeats):
                for way in WAYS:
                    out = Path(tmp) / f"{case}-{way}-{r}.h5"
                    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=tempfile.mkdtemp(dir=tmp),
                               PYTHONPYCACHEPREFIX=str(Path(tmp) / "pycache"))
                    p = subprocess.run([sys.executable, __file__, "--call", case, way, str(grid), str(args.samples),
                                        str(out)], env=env, capture_output=True, text=True)
                    if p.returncode:
                        raise SystemExit(f"{case} {way} failed:\n{p.stderr[-3000:]}")
                    times[way].append(float(p.stdout.split()[-1]))
                    with h5py.File(out, "r") as f:
                        values[way] = f["loss"][...]
                    if way == "auto":
                        said = [ln for ln in p.stderr.splitlines() if "compile:" in ln]
                        decisions.append(said[-1].split("compile: ", 1)[1] if said else "not estimated")
                took = "true" if "kept" in decisions[-1] and "not kept" not in decisions[-1] else "false"
                if not np.array_equal(values["auto"], values[took]):
                    raise SystemExit(f"{case}: auto's values differ from compile={took}'s")
            med = {w: statistics.median(v) for w, v in times.items()}
            spread = {w: f"{med[w]:.1f} ({min(times[w]):.1f}–{max(times[w]):.1f})" for w in WAYS}
            label = f"{case} {grid}×{grid}" + (f", {args.samples} images" if case == "resnet20" else ", 360 digits")
            print(f"{label}: auto {spread['auto']} s, never {spread['false']} s, always {spread['true']} s; "
                  f"auto / never {med['auto'] / med['false']:.2f}, auto / always {med['auto'] / med['true']:.2f}")
            print(f"  auto decided: {decisions[-1]}")
            rows.append((label, spread["auto"], spread["false"], spread["true"], f"{med['auto'] / med['false']:.2f}",
                         f"{med['auto'] / med['true']:.2f}", decisions[-1]))
    if args.markdown:
        write_markdown(args.markdown, "python tools/bench_compile.py" + (
            f" --repeats {args.repeats}" if args.repeats > 1 else ""), (
            "case", "auto, s", "never (false), s", "always (true), s", "auto / never", "auto / always",
            "what auto decided (its last log line)"), rows,
            f"Whole `ls.surface` calls at defaults, each in a fresh process with an empty inductor cache (compiling "
            f"paid in full, as on a first run); median (min–max) of {args.repeats} interleaved round(s). auto's "
            f"values are checked bitwise equal to those of the way it took.")


if __name__ == "__main__":
    main()

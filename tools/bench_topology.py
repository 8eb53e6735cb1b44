"""Topology of large grids: gudhi's cubical persistence alone (``CubicalComplex(vertices=...)`` and its pairs)
against ours (the same persistence, the basins with their grid positions, the merges of the most persistent ones
and the centre's basin), side by side on the same arrays, median of interleaved rounds.

    python tools/bench_topology.py                  # 1001 x 1001: a smooth landscape and white noise
    python tools/bench_topology.py --n 501 --rounds 5
    python tools/bench_topology.py --markdown docs/bench/topology.md   # the table the documentation shows
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from benchlib import write_markdown

from landscape.analysis.topology import persistence


def landscapes(n: int) -> dict[str, np.ndarray]:
    """A smooth landscape (four Gaussian wells on a bowl, with ripples) and white noise (a basin at almost every
    other point: the worst case)."""
    x = np.linspace(-1, 1, n)
    X, Y = np.meshgrid(x, x, indexing="ij")
    wells = [(-0.5, -0.4, 1.0), (0.45, -0.3, 0.8), (0.1, 0.55, 0.9), (-0.6, 0.6, 0.5)]
    smooth = 0.5 * (X ** 2 + Y ** 2) - sum(d * np.exp(-((X - a) ** 2 + (Y - b) ** 2) / 0.02) for a, b, d in wells)
    smooth += 0.01 * np.sin(25 * X) * np.cos(25 * Y)
    return {"smooth": smooth, "noise": np.random.default_rng(0).random((n, n))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1001)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--markdown", help="also write the table to this Markdown file")
    args = ap.parse_args()
    rows = []
    import gudhi

    def gudhi_alone(v: np.ndarray) -> None:
        cc = gudhi.CubicalComplex(vertices=v)
        cc.compute_persistence()
        cc.persistence()

    def ours(v: np.ndarray) -> None:
        t = persistence(v)
        t.basin_of(v, (args.n // 2, args.n // 2), threshold=0.01 * t.value_range)

    print(f"{args.n} x {args.n} grids; seconds, median (min-max) of {args.rounds} interleaved rounds")
    for name, v in landscapes(args.n).items():
        times: dict[str, list[float]] = {"gudhi": [], "ours": []}
        for _ in range(args.rounds):
            for key, fn in (("gudhi", gudhi_alone), ("ours", ours)):
                t = time.perf_counter()
                fn(v)
                times[key].append(time.perf_counter() - t)
        med = {k: statistics.median(t) for k, t in times.items()}
        basins = len(persistence(v).basins)
        cells = "  ".join(f"{k} {med[k]:.2f} ({min(times[k]):.2f}-{max(times[k]):.2f})" for k in times)
        print(f"{name:<7} {basins:>7} basins  {cells}  ours/gudhi {med['ours'] / med['gudhi']:.2f}")
        rows.append((f"{name}, {args.n}×{args.n}", basins, *(f"{med[k]:.2f} ({min(times[k]):.2f}–{max(times[k]):.2f})"
                                                            for k in ("gudhi", "ours")),
                     f"{med['ours'] / med['gudhi']:.2f}"))
    if args.markdown:
        write_markdown(args.markdown, "python tools/bench_topology.py", (
            "landscape", "basins", "gudhi's persistence alone, s", "landscape.topology, s", "ours / gudhi"), rows,
            f"Median (min–max) of {args.rounds} interleaved rounds. Ours includes gudhi's persistence, every basin "
            "with its grid position, the merges of the 64 most persistent basins and the centre's basin.")


if __name__ == "__main__":
    main()

"""Agreement with Landscaper (LBNL): its merge tree (topopy on an nglpy graph of the same points) counts the same
minima as our persistence on the same arrays. Landscaper is installed with --no-deps beside our torch (.ci/run);
in CI a missing Landscaper fails, elsewhere the test is skipped."""
import os

import numpy as np
import pytest

from landscape.analysis.topology import graph_persistence, persistence


def _landscaper_tda():
    try:
        from landscaper import tda
    except ImportError as exc:  # its topopy/nglpy/networkx too
        if os.environ.get("CI") or os.environ.get("LANDSCAPE_CI"):
            pytest.fail(f"Landscaper must be importable in CI ({exc}); .ci/run installs it with --no-deps")
        pytest.skip("Landscaper not installed (pip install --no-deps landscaper nglpy topopy networkx coloraide "
                    "drawsvg)")
    return tda


def _minima(tree) -> int:
    """Landscaper's merge tree (minima): its leaves other than the root, the highest node."""
    degree = {n: 0 for n in tree.nodes}
    for a, b in tree.edges:
        degree[a] += 1
        degree[b] += 1
    root = max(tree.nodes, key=lambda n: tree.nodes[n])
    return sum(1 for n, d in degree.items() if d == 1 and n != root) or 1


def _wells(seed, n=25, wells=4):
    """Four separated Gaussian wells on a gentle tilt (no plateau of equal values, whose ties the two codes break
    differently): the tilt adds one shallow minimum in the low corner, so 5 minima, 4 of them deep."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, n)
    X, Y = np.meshgrid(x, x, indexing="ij")
    centres = rng.uniform(0.15, 0.85, (wells, 2))
    while min(np.linalg.norm(a - b) for i, a in enumerate(centres) for b in centres[i + 1:]) < 0.3:
        centres = rng.uniform(0.15, 0.85, (wells, 2))
    depths = rng.uniform(0.5, 1.5, wells)
    f = 2.0 + 0.05 * X + 0.03 * Y - sum(d * np.exp(-((X - cx) ** 2 + (Y - cy) ** 2) / (2 * 0.07 ** 2))
                                        for d, (cx, cy) in zip(depths, centres))
    return f, np.stack([X.ravel(), Y.ravel()], axis=1)


@pytest.mark.parametrize("seed", [0, 1])
def test_landscapers_merge_tree_counts_our_basins(seed):
    tda = _landscaper_tda()
    f, coords = _wells(seed)
    ours = persistence(f)
    assert _minima(tda.merge_tree(f, coords)) == ours.count() == 5  # every minimum, none left out
    assert ours.count(relative=0.01) == 4  # the deep ones
    assert graph_persistence(f.ravel(), coords).count() == 5  # our scattered reading of the same points


def test_a_double_well_is_two_minima_for_both():
    tda = _landscaper_tda()
    x = np.linspace(-2, 2, 25)
    f = (x[:, None] ** 2 - 1) ** 2 + 0.5 * x[None, :] ** 2
    A, B = np.meshgrid(x, x, indexing="ij")
    assert _minima(tda.merge_tree(f, np.stack([A.ravel(), B.ravel()], 1))) == persistence(f).count() == 2


def test_our_smad_is_landscapers_on_the_same_arrays():
    _landscaper_tda()
    from landscaper import LossLandscape

    f, _ = _wells(0)  # 5 minima; every minimum's contour-tree edge ends at the saddle where its basin first merges
    x = np.linspace(0, 1, f.shape[0])
    theirs = LossLandscape(f, [x, x])
    ours = persistence(f)
    assert ours.smad() == pytest.approx(theirs.smad(), rel=1e-12)
    assert ours.smad(normalize=True) == pytest.approx(theirs.smad(normalize=True), rel=1e-12)
    y = np.linspace(-2, 2, 25)
    dw = (y[:, None] ** 2 - 1) ** 2 + 0.5 * y[None, :] ** 2  # both minima rise 1 to the saddle
    assert persistence(dw).smad() == pytest.approx(LossLandscape(dw, [y, y]).smad()) == pytest.approx(1.0)

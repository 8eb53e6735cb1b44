"""The merge tree and the topological profile of a landscape whose basins are known by hand."""
import math

import numpy as np

from landscape.analysis.merge_tree import merge_tree_segments, topological_profile, tree_order
from landscape.analysis.topology import persistence

# minima at 0 (index 0), 1 (index 2) and 0.5 (index 4): the basin of 1 joins the basin of 0.5 at the saddle 2
# (index 3), which joins the deepest at the saddle 3 (index 1)
F = np.array([0.0, 3.0, 1.0, 2.0, 0.5, 5.0])


def arrays(t):
    b = t.basins
    return ([x.minimum for x in b], [x.saddle for x in b], [-1 if x.merges_into is None else x.merges_into for x in b],
            [1.0 if not math.isfinite(x.saddle) else x.fraction for x in b])


def test_tree_of_a_known_line():
    t = persistence(F)
    minima, saddles, into, fractions = arrays(t)
    assert [(m, s) for m, s in zip(minima, saddles)] == [(0.0, math.inf), (0.5, 3.0), (1.0, 2.0)]
    assert into == [-1, 0, 1] and fractions[1:] == [3 / 6, 1 / 6]  # {F < 3} near 0.5: indices 2..4; {F < 2}: 2
    assert tree_order(minima, saddles, into) == [0, 1, 2]
    assert merge_tree_segments(minima, saddles, into, top=6.0) == [
        ((0.0, 0.0), (0.0, 6.0)),
        ((1.0, 0.5), (1.0, 3.0)), ((1.0, 3.0), (0.0, 3.0)),  # 0.5 rises to 3 and joins the deepest
        ((2.0, 1.0), (2.0, 2.0)), ((2.0, 2.0), (1.0, 2.0))]  # 1 rises to 2 and joins the basin of 0.5


def test_profile_of_a_known_line_has_a_valley_per_basin_as_deep_and_wide_as_it():
    t = persistence(F)
    minima, saddles, into, fractions = arrays(t)
    x, y = topological_profile(minima, saddles, into, fractions, top=6.0)
    expect = [(0, 6), (0, 3), (0, 2), (1 / 12, 1), (1 / 6, 2), (1 / 3, 0.5), (1 / 2, 3), (3 / 4, 0), (1, 6)]
    np.testing.assert_allclose(np.stack([x, y], 1), np.array(expect, dtype=float), atol=1e-12)
    assert np.all(np.diff(x) >= 0)  # a curve over [0, 1]


def test_kept_basins_only_and_orphans_start_their_own_tree():
    minima, saddles, into = [0.0, 0.5, 1.0], [math.inf, 3.0, 2.0], [-1, 0, 1]
    assert tree_order(minima, saddles, into, keep=[0, 2]) == [0, 2]  # 2's parent is not shown
    segs = merge_tree_segments(minima, saddles, into, top=6.0, keep=[0, 2])
    assert all(not (a[1] == b[1] and a[0] != b[0]) for a, b in segs)  # no join to a basin that is not drawn
    x, y = topological_profile(minima, saddles, into, [1.0, 0.5, float("nan")], top=6.0, keep=[0, 2])
    assert x[0] == 0 and x[-1] == 1 and sorted(y)[:2] == [0.0, 1.0]

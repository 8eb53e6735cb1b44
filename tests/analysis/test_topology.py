"""Sublevel-set persistence of sampled landscapes against exact answers: a double well, sums of Gaussians (each
barrier checked by a minimax-path search independent of gudhi), gudhi called directly, and diagram distances."""
import math

import gudhi
import numpy as np
import pytest
from scipy import ndimage

from landscape.analysis.topology import diagram_distance, graph_persistence, persistence


def double_well(barrier=1.0, n=41):
    x = np.linspace(-2, 2, n)  # holds -1, 0 and 1
    return barrier * (x[:, None] ** 2 - 1) ** 2 + 0.5 * x[None, :] ** 2


def test_double_well_has_two_basins_and_its_saddle_exactly():
    f = double_well()
    t = persistence(f)
    assert [(b.minimum, b.saddle) for b in t.basins] == [(0.0, math.inf), (0.0, 1.0)]
    assert {t.basins[0].at, t.basins[1].at} == {(10, 20), (30, 20)} and t.basins[1].saddle_at == (20, 20)
    assert t.basins[1].merges_into == 0 and t.count() == 2 and t.count(relative=0.5) == 1
    centre = t.basin_of(f, (30, 20))
    assert centre["barrier"] in (math.inf, 1.0) and 0 < centre["fraction"] <= 1


def test_the_centres_basin_recorded_while_tracing_equals_a_fresh_labelling():
    """persistence(point=...) records the point's basins in the same labellings that trace the merges;
    basin_of reads them, and equals basin_of for that point on a topology that labels again."""
    rng = np.random.default_rng(3)
    x = np.linspace(0, 1, 41)
    X, Y = np.meshgrid(x, x, indexing="ij")
    f = 2.0 - sum(rng.uniform(0.5, 1.5) * np.exp(-((X - cx) ** 2 + (Y - cy) ** 2) / 0.01)
                  for cx, cy in rng.uniform(0.1, 0.9, (6, 2))) + 0.01 * rng.random(X.shape)
    plain = persistence(f)
    seen = set()
    for point in [(20, 20), (3, 37), (40, 0), tuple(int(i) for i in plain.basins[2].at)]:
        recorded = persistence(f, point=point)
        assert recorded.point == point and all(b.holds_point is not None for b in recorded.basins[1:65])
        for threshold in (0.0, 0.05):
            got = recorded.basin_of(f, point, threshold)
            assert got == plain.basin_of(f, point, threshold)
            seen.add(got["basin"])
    assert len(seen) > 2  # the points lie in different basins


def minimax_level(f, a, b):
    """The lowest level t at which a and b are joined within {f <= t} (axis neighbours): by bisection over the
    sorted values, with connected-component labelling; independent of any persistence code."""
    levels = np.unique(f)
    lo, hi = 0, len(levels) - 1
    structure = ndimage.generate_binary_structure(f.ndim, 1)
    while lo < hi:
        mid = (lo + hi) // 2
        lab, _ = ndimage.label(f <= levels[mid], structure=structure)
        if lab[a] and lab[a] == lab[b]:
            hi = mid
        else:
            lo = mid + 1
    return levels[lo]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sums_of_gaussians_give_one_basin_per_well_with_exact_barriers(seed):
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, 61)
    X, Y = np.meshgrid(x, x, indexing="ij")
    centres = [(0.2, 0.25), (0.75, 0.3), (0.45, 0.8)]
    depths = rng.uniform(0.5, 1.5, 3)
    f = 2.0 - sum(d * np.exp(-((X - cx) ** 2 + (Y - cy) ** 2) / (2 * 0.08 ** 2)) for d, (cx, cy) in zip(depths, centres))
    t = persistence(f)
    assert t.count(relative=0.01) == 3
    deep = sorted(t.basins[:3], key=lambda b: b.minimum)
    for b, (cx, cy) in zip(deep, [centres[i] for i in np.argsort(-depths)]):  # deepest well first
        assert abs(x[b.at[0]] - cx) < 0.02 and abs(x[b.at[1]] - cy) < 0.02
        assert b.minimum == f[b.at]
    for b in deep[1:]:  # each dies where it first meets a deeper minimum
        lower = [c.at for c in deep if c.minimum < b.minimum]
        assert b.saddle == min(minimax_level(f, b.at, c) for c in lower)


def test_the_pairs_are_gudhis_own():
    f = np.random.default_rng(3).random((30, 40))
    t = persistence(f)
    cc = gudhi.CubicalComplex(vertices=f)
    cc.compute_persistence()
    for dim in (0, 1):
        ours = np.sort(t.pairs[t.dims == dim], axis=0)
        theirs = np.sort(cc.persistence_intervals_in_dimension(dim), axis=0)
        np.testing.assert_array_equal(ours, theirs)
    assert len(t.basins) == int((t.dims == 0).sum())


def test_lines_and_k_dimensions_and_unfinished_values():
    line = np.array([3.0, 1.0, 2.0, 0.0, 4.0])
    t = persistence(line)
    assert [(b.minimum, b.saddle, b.at) for b in t.basins] == [(0.0, math.inf, (3,)), (1.0, 2.0, (1,))]
    cube = np.random.default_rng(4).random((6, 7, 8))
    t3 = persistence(cube)
    assert t3.basins[0].at == np.unravel_index(np.argmin(cube), cube.shape)
    with pytest.raises(Exception, match="finite value at every grid point"):
        persistence(np.array([0.0, np.nan, 1.0]))


def test_distances_between_diagrams():
    a, b = persistence(double_well(1.0)), persistence(double_well(1.5))
    assert diagram_distance(a, b) == pytest.approx(0.5)
    assert diagram_distance(a, b, "wasserstein") == pytest.approx(0.5)
    assert diagram_distance(a, a) == pytest.approx(0.0, abs=1e-300)  # gudhi: the smallest normal float
    assert a.roughness() == pytest.approx(1.0 / np.ptp(double_well(1.0)))


def test_scattered_samples_of_a_double_well_give_its_two_basins_and_barrier():
    """The neighbourhood graph of 2048 Sobol points of the double well (x² − 1)² + y²/2 (minima 0 at (±1, 0),
    saddle 1 at the origin) has the grid's two persistent basins and a barrier within the sampling's reach."""
    from landscape.analysis.topology import graph_persistence, neighbour_edges
    from landscape.core.design import Design

    c = Design.low_discrepancy("sobol", 2, 2048, -2.0, 2.0, seed=0).coefficients()
    f = (c[:, 0] ** 2 - 1) ** 2 + 0.5 * c[:, 1] ** 2
    t = graph_persistence(f, c)
    x = np.linspace(-2, 2, 81)
    grid = persistence((x[:, None] ** 2 - 1) ** 2 + 0.5 * x[None, :] ** 2)
    assert t.count(0.3) == grid.count(0.3) == 2
    deep, second = t.basins[:2]
    assert deep.saddle == np.inf and abs(second.saddle - 1.0) < 0.1 and second.minimum < 0.05
    assert {np.sign(c[deep.at[0], 0]), np.sign(c[second.at[0], 0])} == {-1.0, 1.0}  # one minimum on each side
    assert t.pairs.shape == (len(t.basins), 2) and (t.dims == 0).all()
    e = neighbour_edges(c, 4)
    assert (e[:, 0] < e[:, 1]).all() and len(np.unique(e, axis=0)) == len(e)


def test_smad_is_the_mean_rise_to_each_basins_first_merge():
    # minima 0 (at 0), 1 (at 2), 1.5 (at 4): 1.5 joins 1 at 2, then 1's basin joins 0's at 3
    t = persistence(np.array([0.0, 3.0, 1.0, 2.0, 1.5, 4.0]))
    assert [b.merges_into for b in t.basins] == [None, 0, 1]
    # rises: 0 → 3 (its first merge), 1 → 2 (1.5 joins it first, below its own saddle 3), 1.5 → 2
    assert t.smad() == pytest.approx((3.0 + 1.0 + 0.5) / 3, abs=1e-15)
    assert t.smad(normalize=True) == pytest.approx(1.5 / 4.0, abs=1e-15)
    assert persistence(np.array([2.0, 1.0, 0.0, 1.0])).smad() == 0.0  # one bowl
    x = np.linspace(-2, 2, 41)[:, None]
    assert graph_persistence((x[:, 0] ** 2 - 1) ** 2, x, 2).smad() == pytest.approx(1.0)  # both rise 1

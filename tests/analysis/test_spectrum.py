import numpy as np
import pytest
import torch

from landscape.analysis.spectrum import extreme_eigenpairs, hutchinson_trace, lanczos, slq_density
from landscape.core.errors import ConfigError


def operator(eigenvalues, seed=0):
    """A symmetric matrix with a known spectrum in a random orthonormal basis."""
    n = len(eigenvalues)
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    lam = torch.tensor(eigenvalues, dtype=torch.float64)
    h = u @ torch.diag(lam) @ u.T
    return (lambda v: h @ v), u, lam


def test_lanczos_tridiagonalises_with_an_orthonormal_basis():
    mv, u, lam = operator(np.linspace(-2, 7, 30))
    a, b, q = lanczos(mv, torch.ones(30, dtype=torch.float64), 12)
    assert q.shape == (12, 30)
    assert torch.allclose(q @ q.T, torch.eye(12, dtype=torch.float64), atol=1e-12)
    t = torch.from_numpy(np.diag(a) + np.diag(b, 1) + np.diag(b, -1))
    h = torch.stack([mv(e) for e in torch.eye(30, dtype=torch.float64)])
    assert torch.allclose(q @ h @ q.T, t, atol=1e-10)


def test_extreme_eigenpairs_of_a_known_spectrum():
    values = [9.0, 7.5, 7.0] + list(np.linspace(-1.0, 5.0, 60)) + [-4.0, -6.0]
    mv, u, lam = operator(values, seed=2)
    r = extreme_eigenpairs(mv, len(values), top_k=3, bottom_k=2, tol=1e-10, max_iter=200)
    assert r.converged and r.iterations <= 2 * len(values)  # the run and one deflated run looking for repeats
    np.testing.assert_allclose(r.values, [9.0, 7.5, 7.0, -6.0, -4.0], rtol=1e-9)
    for value, vec in zip(r.values, r.vectors):  # unit eigenvectors: ‖Hv − λv‖ small
        assert float(vec.norm()) == pytest.approx(1.0)
        assert float((mv(vec) - value * vec).norm()) < 1e-6 * 9.0
    true_top = u[:, int(torch.argmax(lam))]
    assert abs(float(torch.dot(true_top, r.vectors[0]))) == pytest.approx(1.0, abs=1e-8)


def test_warm_start_needs_fewer_iterations_and_survives_an_exact_eigenvector():
    values = list(np.linspace(0.0, 1.0, 200)) + [3.0]
    mv, u, lam = operator(values, seed=4)
    cold = extreme_eigenpairs(mv, 201, top_k=1, tol=1e-8, max_iter=201, check_every=1)
    near = cold.vectors[0] + 0.05 * torch.randn(201, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    warm = extreme_eigenpairs(mv, 201, top_k=1, tol=1e-8, max_iter=201, v0=near, check_every=1)
    assert warm.values[0] == pytest.approx(3.0, rel=1e-10) and cold.values[0] == pytest.approx(3.0, rel=1e-10)
    assert warm.iterations < cold.iterations
    # starting from an exact eigenvector of a smaller eigenvalue still finds the largest
    other = u[:, 5]
    r = extreme_eigenpairs(mv, 201, top_k=1, tol=1e-8, max_iter=201, v0=other)
    assert r.values[0] == pytest.approx(3.0, rel=1e-8)


def test_repeated_eigenvalues_and_bad_requests():
    mv, _, _ = operator([2.0] * 5 + [1.0] * 5)
    r = extreme_eigenpairs(mv, 10, top_k=3, bottom_k=1, tol=1e-10)
    np.testing.assert_allclose(r.values, [2.0, 2.0, 2.0, 1.0], rtol=1e-10)
    with pytest.raises(ConfigError, match="top_k"):
        extreme_eigenpairs(mv, 10, top_k=0, bottom_k=0)


def test_repeated_eigenvalues_are_returned_as_often_as_they_occur_beyond_one_krylov_space():
    """max_iter < n: one Krylov space holds one vector per eigenspace, so without deflation a triple top and a
    22-fold zero would each come back once (bottom-2 [0, 0.5] instead of [0, 0])."""
    values = [6.0] * 3 + [5.0] + list(np.linspace(0.5, 4.0, 150)) + [0.0] * 22
    mv, _, _ = operator(values, seed=3)
    r = extreme_eigenpairs(mv, len(values), top_k=4, bottom_k=3, tol=1e-9, max_iter=120)
    assert r.converged
    np.testing.assert_allclose(r.values, [6.0, 6.0, 6.0, 5.0, 0.0, 0.0, 0.0], atol=1e-7)
    gram = r.vectors @ r.vectors.T  # distinct eigenvectors of the repeated values
    np.testing.assert_allclose(gram.numpy(), np.eye(7), atol=1e-6)
    one = extreme_eigenpairs(mv, len(values), top_k=1, bottom_k=1, tol=1e-9, max_iter=120)
    np.testing.assert_allclose(one.values, [6.0, 0.0], atol=1e-7)  # a single pair per side needs one run


def test_trace_estimates_are_within_three_standard_errors():
    values = list(np.random.default_rng(0).normal(0.5, 1.0, 150))
    mv, _, lam = operator(values, seed=5)
    exact = float(lam.sum())
    for method in ("hutchinson", "hutch++"):
        est = hutchinson_trace(mv, 150, samples=90, seed=3, method=method)
        assert est.stderr > 0 and abs(est.value - exact) < 3 * est.stderr, (method, est, exact)
        assert est.matvecs <= 90
    # a spectrum dominated by a few large eigenvalues: Hutch++ is far more precise for the same budget
    mv2, _, lam2 = operator([100.0, 80.0, 60.0] + [0.01] * 97, seed=6)
    h, hpp = (hutchinson_trace(mv2, 100, samples=60, seed=1, method=m) for m in ("hutchinson", "hutch++"))
    assert hpp.stderr < 0.1 * h.stderr and abs(hpp.value - float(lam2.sum())) < 3 * hpp.stderr + 1e-9
    with pytest.raises(ConfigError, match="hutchinson"):
        hutchinson_trace(mv2, 100, method="exact")


def test_slq_density_puts_the_mass_where_the_eigenvalues_are():
    values = [1.0] * 60 + [5.0] * 40
    mv, _, _ = operator(values, seed=7)
    grid, dens = slq_density(mv, 100, runs=8, steps=30, points=801, seed=2)
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=1e-9)
    near = lambda c: np.trapezoid(np.where(np.abs(grid - c) < 0.5, dens, 0.0), grid)
    assert near(1.0) + near(5.0) > 0.99
    assert near(1.0) == pytest.approx(0.6, abs=0.15) and near(5.0) == pytest.approx(0.4, abs=0.15)


def test_block_lanczos_returns_a_repeated_eigenvalue_with_its_multiplicity_in_one_run():
    """A triple top eigenvalue and a double bottom one, max_iter < n: one run of blocks of 3 finds each as often
    as it occurs, its products taken a block at a time (no deflated run after it)."""
    values = [6.0] * 3 + [5.0] + list(np.linspace(0.5, 4.0, 150)) + [0.0] * 2
    mv, _, _ = operator(values, seed=8)
    shapes = []

    def mm(v):
        shapes.append(tuple(v.shape))
        return torch.stack([mv(r) for r in v])

    r = extreme_eigenpairs(mv, len(values), top_k=3, bottom_k=2, tol=1e-9, max_iter=150, matmat=mm)
    assert r.block == 3 and r.converged
    np.testing.assert_allclose(r.values, [6.0, 6.0, 6.0, 0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose((r.vectors @ r.vectors.T).numpy(), np.eye(5), atol=1e-6)
    for value, vec in zip(r.values, r.vectors):
        assert float((mv(vec) - value * vec).norm()) <= 1e-9 * 6.0 * 1.01
    assert shapes and all(s == (3, len(values)) for s in shapes)  # every product a block of 3
    assert r.iterations == 3 * len(shapes) < len(values)
    # single vectors with deflation find the same values, one run more per side
    one = extreme_eigenpairs(mv, len(values), top_k=3, bottom_k=2, tol=1e-9, max_iter=150, block=1)
    assert one.block == 1
    np.testing.assert_allclose(one.values, r.values, atol=1e-7)


def test_block_lanczos_from_an_invariant_start_and_on_a_tiny_operator():
    # a start block inside an eigenspace is invariant at once: fresh vectors continue until the top is found
    d = torch.tensor([1.0, 1.0, 2.0, 3.0, 9.0, 9.0], dtype=torch.float64)
    r = extreme_eigenpairs(lambda v: d * v, 6, top_k=2, tol=1e-12, v0=torch.tensor([1.0, 0, 0, 0, 0, 0]))
    np.testing.assert_allclose(r.values, [9.0, 9.0], atol=1e-10)
    # the block spans the whole space: exact, and never more products than n
    r = extreme_eigenpairs(lambda v: d * v, 6, top_k=4, bottom_k=2, tol=1e-12)
    np.testing.assert_allclose(r.values, [9.0, 9.0, 3.0, 2.0, 1.0, 1.0], atol=1e-10)
    assert r.iterations == 6


def test_slq_runs_advance_together_with_the_same_values_as_one_by_one():
    mv, _, _ = operator(list(np.linspace(-2.0, 3.0, 60)), seed=9)
    calls = []

    def mm(v):
        calls.append(len(v))
        return torch.stack([mv(r) for r in v])

    grid1, dens1 = slq_density(mv, 60, runs=5, steps=12, seed=4)
    grid2, dens2 = slq_density(mv, 60, runs=5, steps=12, seed=4, matmat=mm)
    assert np.array_equal(grid1, grid2) and np.array_equal(dens1, dens2)
    assert calls == [5] * 12  # all five runs' vectors in each product call

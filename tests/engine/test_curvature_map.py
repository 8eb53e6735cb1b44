import numpy as np
import pytest
import torch

from conftest import exact_hessian
from landscape.core.data import load_data
from landscape.core.models import build_model
from landscape.engine.curvature_map import CurvatureMap
from landscape.engine.evaluator import Evaluator
from landscape.engine.hessian import HessianOperator
from landscape.engine.plane import PlaneEvaluator


@pytest.fixture(scope="module")
def setup():
    tr, te = load_data("spiral", n_per_class=30)
    torch.manual_seed(0)
    model = build_model("mlp", te.info(), depth=1, width=6, activation="tanh")
    ev = Evaluator(model, te, "cpu")
    c = ev.get_flat().clone()
    g = torch.Generator().manual_seed(3)
    d1, d2 = (torch.randn(c.numel(), generator=g) * 0.3 for _ in range(2))
    plane = PlaneEvaluator(ev, c, d1, d2)
    return model, te, ev, plane


def test_map_values_equal_the_exact_hessian_at_each_point(setup):
    model, te, ev, plane = setup
    op = HessianOperator(ev)
    cm = CurvatureMap(plane, op, ["lambda_max", "lambda_min", "trace"], 3, tol=1e-9, max_iter=200,
                      trace_samples=100, seed=1)
    a, b = np.array([0.0, 0.0, 0.0, 1.0]), np.array([-1.0, 0.0, 1.0, -1.0])
    lmax, lmin, trace = cm.evaluate_points(a, b)
    for k in range(len(a)):
        plane.set_point(a[k], b[k])
        lam = torch.linalg.eigvalsh(exact_hessian(ev.model, te, op.names)).numpy()
        assert lmax[k] == pytest.approx(lam.max(), rel=1e-5) and lmin[k] == pytest.approx(lam.min(), rel=1e-4)
        assert abs(trace[k] - lam.sum()) < 0.1 * abs(lam).sum()  # a Hutchinson estimate (100 probes)
    plane.set_point(0.0, 0.0)
    assert torch.equal(ev.get_flat(), plane.center)  # the model is left at the centre


def test_rows_are_independent_and_warm_starts_save_iterations(setup):
    _, _, ev, plane = setup
    op = HessianOperator(ev)
    beta = np.linspace(-1, 1, 6)
    rows = [(np.full(6, a), beta) for a in (-0.5, 0.5)]
    both = CurvatureMap(plane, op, ["lambda_max"], 6, tol=1e-4)
    together = both.evaluate_points(np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows]))[0]
    apart = np.concatenate([CurvatureMap(plane, op, ["lambda_max"], 6, tol=1e-4).evaluate_points(*r)[0]
                            for r in reversed(rows)][::-1])
    np.testing.assert_array_equal(together, apart)  # a row's values do not depend on what was computed before
    warm = CurvatureMap(plane, op, ["lambda_max"], 6, tol=1e-4)
    cold = CurvatureMap(plane, op, ["lambda_max"], 6, tol=1e-4, warm=False)
    fine = np.linspace(-0.2, 0.2, 12)
    w = warm.evaluate_points(np.zeros(12), fine)[0]
    c = cold.evaluate_points(np.zeros(12), fine)[0]
    np.testing.assert_allclose(w, c, rtol=1e-3)
    assert sum(warm.iterations[1:]) < sum(cold.iterations[1:])
    assert warm.chunk_unit == 6

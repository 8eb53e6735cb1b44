import numpy as np
import pytest
import torch

from landscape.core.data import load_data, subset
from landscape.core.models import build_model
from landscape.engine import compile_choice as cc
from landscape.engine.evaluator import Evaluator
from landscape.engine.plane import PlaneEvaluator


def test_the_saving_is_the_time_beyond_heavy_operations_and_a_share_of_theirs_and_needs_factor_times_the_cost():
    est = cc.CompileEstimate(seconds_per_point=0.010, heavy_per_point=0.004, cost=5.0, points=4000)
    assert est.saving == pytest.approx((0.006 + 0.25 * 0.004) * 4000)  # 28 s
    assert est.worth_trying(5.0)  # 28 >= 25
    assert not est.worth_trying(6.0)  # 28 < 30
    # heavy operations longer than a whole point (tables save the first convolution): a share of the point
    assert cc.CompileEstimate(0.005, 0.006, 1.0, 1000).saving == pytest.approx(0.25 * 0.005 * 1000)
    assert cc.compile_cost(10, 2) == pytest.approx(4.0 + 2 * (2.0 + 0.2))


def _plane(**kw):
    _, te = load_data("digits")
    te = subset(te, 100)
    torch.manual_seed(0)
    ev = Evaluator(build_model("lenet5", te.info()), te, "cpu", batch_size=64, **kw)
    c = ev.get_flat()
    g = torch.Generator().manual_seed(1)
    return PlaneEvaluator(ev, c, torch.randn(c.shape, generator=g) * 0.1, torch.randn(c.shape, generator=g) * 0.1)


def test_a_grid_too_short_to_repay_any_compile_is_not_profiled(monkeypatch):
    plane = _plane()
    monkeypatch.setattr(cc, "_heavy_seconds", lambda ev: pytest.fail("profiled a grid that cannot repay"))
    assert cc.estimate_compile(plane, points=10) is None


def test_the_estimate_profiles_convolutions_and_products_without_tables():
    plane = _plane()
    assert plane.ev.input_tables is not None
    est = cc.estimate_compile(plane, points=10**7)
    assert 0 < est.heavy_per_point and 0 < est.seconds_per_point
    assert est.cost > cc.compile_cost(0, 2)  # two batch shapes (64, 36) and some operations
    assert plane.ev.input_tables is not None  # the tables are back


def test_a_busy_moment_while_timing_does_not_inflate_the_estimate(monkeypatch):
    """A point timed while another process held the cores counts for nothing: the least time is the point's."""
    plane = _plane()
    evaluate, calls = plane._evaluate, []

    def busy_once(a, b):
        calls.append(1)
        if len(calls) == 2:  # the first timed point (after the warm-up)
            import time
            time.sleep(0.5)  # another process's time slice
        return evaluate(a, b)

    monkeypatch.setattr(plane, "_evaluate", busy_once)
    est = cc.estimate_compile(plane, points=10**7)
    assert len(calls) >= 3 and est.seconds_per_point < 0.25  # a mean would be over 0.25 s


def test_what_cannot_be_compiled_says_why():
    _, te = load_data("digits")
    ev = Evaluator(build_model("lenet5", te.info()), te, "cpu", loss=lambda out, y: out.sum())
    assert "callable loss" in cc.cannot_compile(ev)
    assert cc.cannot_compile(_plane().ev) is None


@pytest.mark.parametrize("speedup", [2.0, 0.5])
def test_a_trial_keeps_the_faster_way_and_switches_the_evaluator_whole(monkeypatch, speedup):
    """The compiled way kept: the evaluator compiled, no tables, values of a compiled run; not kept: eager with
    its tables again, values of an eager run bitwise."""
    plane = _plane()
    eager = _plane(compile=False)
    a, b = np.linspace(-1, 1, 3), np.linspace(1, -1, 3)
    monkeypatch.setattr(cc, "stable_ratio", lambda *args, **kw: speedup)
    chosen, report = cc.trial_compile(plane, lambda: PlaneEvaluator(plane.ev, plane.center, plane.d1, plane.d2),
                                      0.01)
    assert report["kept"] is (speedup > 1) and report["compile_seconds"] > 0 and report["graphs"] == plane.ev.compiles
    values = chosen.evaluate_points(a, b)[0]
    if speedup > 1:
        assert chosen is not plane and plane.ev.compile and plane.ev.transforms() == {"compile": True}
        np.testing.assert_allclose(values, eager.evaluate_points(a, b)[0], rtol=1e-5)
    else:
        assert chosen is plane and not plane.ev.compile and "input_tables" in plane.ev.transforms()
        np.testing.assert_array_equal(values, eager.evaluate_points(a, b)[0])


def test_a_model_whose_points_stack_exactly_keeps_its_stacks_instead_of_compiling(monkeypatch):
    """An MLP on spirals: two points stacked with vmap give one point's values bitwise, so calibration may stack
    them; compiling (one point at a time) is not even estimated. LeNet-5's tables rule stacks out."""
    tr, te = load_data("spiral", n_per_class=50)
    torch.manual_seed(0)
    ev = Evaluator(build_model("mlp", te.info()), te, "cpu")
    c = ev.get_flat()
    mlp = PlaneEvaluator(ev, c, torch.randn_like(c), torch.randn_like(c), "auto")
    assert cc.stacks_instead(mlp) and (mlp.batch_mode, mlp.points_per_batch) == ("one", 1)
    monkeypatch.setattr(cc, "_heavy_seconds", lambda ev: pytest.fail("estimated a plane that stacks"))
    assert cc.estimate_compile(mlp, points=10**9) is None
    lenet = _plane()
    lenet.auto = True
    assert not cc.stacks_instead(lenet)

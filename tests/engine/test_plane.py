"""Plane evaluation: every way of evaluating points gives bitwise the same values, and calibration leaves no trace
in them."""
import numpy as np
import pytest
import torch

from landscape.core.data import load_data
from landscape.core.models import build_model
from landscape.engine.calibration import calibrate
from landscape.engine.evaluator import Evaluator
from landscape.engine.plane import PlaneEvaluator

CASES = {"mlp": ("spiral", {"depth": 3, "width": 16}), "lenet5": ("digits", {})}


def plane_inputs(name):
    data, kwargs = CASES[name]
    _, te = load_data(data)
    torch.manual_seed(0)
    ev = Evaluator(build_model(name, te.info(), **kwargs), te, "cpu")
    c = ev.get_flat()
    g = torch.Generator().manual_seed(1)
    return ev, c, torch.randn(c.shape, generator=g) * 0.1, torch.randn(c.shape, generator=g) * 0.1


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_batch_mode_gives_bitwise_the_same_values(name):
    ev, c, d1, d2 = plane_inputs(name)
    a, b = np.linspace(-1, 1, 11), np.linspace(0.7, -0.4, 11)
    ref = PlaneEvaluator(ev, c, d1, d2, 1).evaluate_points(a, b)
    for mode in (4, "threads:2", "threads:3", "auto"):
        plane = PlaneEvaluator(ev, c, d1, d2, mode)
        plane.expected_points = 10_000  # a budget that lets calibration try every mode
        loss, acc = plane.evaluate_points(a, b)
        np.testing.assert_array_equal(loss, ref[0], err_msg=f"{name} {mode} ({plane.batch_mode})")
        np.testing.assert_array_equal(acc, ref[1])
        # in smaller pieces (chunks) and in another order: the same values again
        order = np.arange(len(a))[::-1]
        parts = [plane.evaluate_points(a[order[k:k + 3]], b[order[k:k + 3]])[0] for k in range(0, len(a), 3)]
        np.testing.assert_array_equal(np.concatenate(parts), ref[0][order])


def test_stacking_that_rounds_differently_falls_back_to_one_point(caplog):
    ev, c, d1, d2 = plane_inputs("lenet5")  # stacked convolutions round differently from single ones
    plane = PlaneEvaluator(ev, c, d1, d2, 4, input_tables=False)  # (with tables no stack is tried)
    plane.evaluate_points(np.array([0.5, 0.1]), np.array([0.2, -0.3]))
    assert plane.batch_mode == "one" and "rounds differently" in caplog.text


def test_calibration_results_are_thrown_away_and_its_share_is_bounded():
    ev, c, d1, d2 = plane_inputs("lenet5")
    plane = PlaneEvaluator(ev, c, d1, d2, 1)
    calls = []
    original = plane._evaluate
    plane._evaluate = lambda a, b: calls.append(len(a)) or original(a, b)
    mode = calibrate(plane, np.linspace(-1, 1, 40), np.zeros(40), expected=10)
    assert mode == ("one", 1)  # 10 points of work leave no budget to try other modes
    assert sum(calls) == 5  # the warm-up point and the four reference points only
    calls.clear()
    mode = calibrate(plane, np.linspace(-1, 1, 40), np.zeros(40), expected=100_000)
    assert mode[0] in ("one", "threads") and sum(calls) > 5  # stacking rounds differently: never chosen


def test_stacked_points_are_formed_bitwise_as_one_point_is():
    ev, c, d1, d2 = plane_inputs("mlp")
    plane = PlaneEvaluator(ev, c, d1, d2, 1)
    # zero coordinates (where one point skips an add), negatives, values that are not float32-exact
    a = np.array([0.0, -0.3, 0.1, 0.0, 1 / 3, -1.0, 0.7])
    b = np.array([0.25, 0.0, -2 / 7, 0.0, 0.6, 1e-8, -0.05])
    stacked = plane._stack(a, b)
    for k in range(len(a)):
        plane.set_point(a[k], b[k])
        for name, t in zip(plane.names, plane.targets):
            assert torch.equal(stacked[name][k], t), (k, name)
    one = plane._evaluate(a, b)
    plane.batch_mode, plane.points_per_batch = "vmap", len(a)
    assert np.array_equal(plane._evaluate(a, b)[0], one[0]) and np.array_equal(plane._evaluate(a, b)[1], one[1])


def test_the_first_chunk_of_a_small_grid_is_all_of_it_without_timing_forwards(monkeypatch):
    """The first chunk's size is timed by two forwards; a grid no larger than its least size is one chunk
    whatever that time, so nothing is timed."""
    ev, c, d1, d2 = plane_inputs("mlp")
    plane = PlaneEvaluator(ev, c, d1, d2, "auto")
    forwards = []
    original = ev.forward
    monkeypatch.setattr(ev, "forward", lambda *a, **kw: forwards.append(1) or original(*a, **kw))
    assert plane.calibration_chunk(least=96, pending=96) == 96 and forwards == []
    assert plane.calibration_chunk(least=96, most=4096, pending=97) >= 96 and len(forwards) == 2

import numpy as np
import pytest
import torch

from landscape.core.data import load_data, subset
from landscape.core.models import build_model
from landscape.engine.evaluator import Evaluator
from landscape.engine.plane import PlaneEvaluator


def test_compiled_once_per_batch_shape_and_never_again_for_new_points():
    """100 samples in batches of 64: one graph for 64, one for the last 36; then points written in place
    are evaluated by the same graphs (no recompilation) and equal eager values up to rounding."""
    torch._dynamo.reset()  # no graph of an earlier test's LeNet-5 (guards would let this one reuse it)
    _, te = load_data("digits")
    te = subset(te, 100)
    torch.manual_seed(0)
    eager = Evaluator(build_model("lenet5", te.info()), te, "cpu", batch_size=64)
    ev = Evaluator(build_model("lenet5", te.info()), te, "cpu", batch_size=64, compile=True)
    ev.set_flat(eager.get_flat())
    assert ev.compiles == 0 and ev.transforms() == {"compile": True}
    assert ev.evaluate().loss == pytest.approx(eager.evaluate().loss, rel=1e-5)
    warm = ev.compiles
    assert warm == 2
    center = ev.get_flat()
    g = torch.Generator().manual_seed(1)
    d1, d2 = torch.randn(center.shape, generator=g) * 0.1, torch.randn(center.shape, generator=g) * 0.1
    a, b = np.linspace(-1, 1, 4), np.linspace(1, -1, 4)
    compiled = PlaneEvaluator(ev, center, d1, d2, 1).evaluate_points(a, b)
    reference = PlaneEvaluator(eager, center, d1, d2, 1).evaluate_points(a, b)
    assert ev.compiles == warm  # 0 recompiles after the warm-up pass
    np.testing.assert_allclose(compiled[0], reference[0], rtol=1e-5)
    np.testing.assert_array_equal(compiled[1], reference[1])
    assert len(set(compiled[0].tolist())) == 4

"""Max pooling by strided maxima equals torch's max_pool2d bitwise (NaNs, padding, dilation, odd sizes), and the
evaluator's values with it equal a plain forward's."""
import itertools

import torch
import torch.nn.functional as F

import landscape as ls
from landscape.engine.fastpool import exact_pooling


def _pair(v):
    return v if isinstance(v, tuple) else (v, v)


def test_strided_maxima_equal_max_pool2d_bitwise():
    g = torch.Generator().manual_seed(0)
    shapes = ((1, 1), (2, 2), (3, 3), (2, 3), (3, 1))  # square and not (the maxima are taken rows first)
    for k, s, p, d in itertools.product(shapes, (None, 1, 2, 3, (1, 2)), (0, 1, (1, 0)), (1, 2, (2, 1))):
        if 2 * max(_pair(p)[0] / k[0], _pair(p)[1] / k[1]) > 1:
            continue
        x = torch.randn(2, 3, 11, 8, generator=g)
        x[0, 1, 2, 3] = float("nan")
        ref = F.max_pool2d(x, k, s, p, d)
        with exact_pooling():
            fast = F.max_pool2d(x, k, s, p, d)
            module = torch.nn.MaxPool2d(k, s, p, d)(x)
        for out in (fast, module):
            assert out.shape == ref.shape
            assert torch.equal(torch.isnan(out), torch.isnan(ref)), (k, s, p, d)
            assert torch.equal(out.nan_to_num(), ref.nan_to_num()), (k, s, p, d)
    with exact_pooling():  # calls it does not cover run as they would
        out, idx = F.max_pool2d(torch.randn(1, 1, 4, 4), 2, return_indices=True)
    assert idx.shape == (1, 1, 2, 2)


def test_evaluator_values_equal_the_plain_forward():
    _, te = ls.load_data("digits")
    torch.manual_seed(0)
    model = ls.build_model("lenet5", te.info()).eval()
    ev = ls.Evaluator(model, te, "cpu", batch_size=512)
    assert ev.exact_pooling
    with torch.no_grad():
        plain = F.cross_entropy(model(te.x), te.y, reduction="none").double().sum() / len(te)
    assert ev.evaluate().loss == float(plain)

import math

import pytest
import torch

from landscape.analysis.sharpness import basin_width, epsilon_box, epsilon_sharpness
from landscape.core.errors import ConfigError


def test_epsilon_sharpness_of_a_quadratic_reaches_the_box_corner():
    a = torch.tensor([4.0, 1.0, 0.25], dtype=torch.float64)
    center = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)  # the minimum, loss 0.3 there

    def loss_grad(theta):
        d = theta - center
        return float(0.5 * (a * d * d).sum() + 0.3), a * d

    box = epsilon_box(center, 0.01)
    value, delta = epsilon_sharpness(loss_grad, center, 0.01, steps=6)
    exact = 100 * (0.5 * (a * box * box).sum()) / (1 + 0.3)  # the maximum of a convex quadratic: a corner
    assert value == pytest.approx(float(exact), rel=1e-9)
    assert torch.allclose(delta.abs(), box)
    # away from a minimum the ascent follows the gradient's signs
    value2, delta2 = epsilon_sharpness(loss_grad, center + 0.5, 0.01, steps=4)
    assert (delta2 > 0).all() and value2 > 0
    with pytest.raises(ConfigError, match="epsilon"):
        epsilon_sharpness(loss_grad, center, 0.0)


def test_basin_width_finds_where_the_loss_doubles_on_each_side():
    left, right = basin_width(lambda s: 1.0 + (4 * s * s if s < 0 else s * s), tol=1e-9)
    assert left == pytest.approx(0.5, rel=1e-6) and right == pytest.approx(1.0, rel=1e-6)
    assert basin_width(lambda s: 2.0 + abs(s), tol=1e-9) == pytest.approx((2.0, 2.0), rel=1e-6)
    assert basin_width(lambda s: 1.0 + 1e-6 * s * s, limit=10.0) == (math.inf, math.inf)
    # a model that breaks (NaN loss) counts as outside the basin
    assert basin_width(lambda s: 1.0 if abs(s) < 0.3 else math.nan, tol=1e-6)[1] == pytest.approx(0.3, rel=1e-5)

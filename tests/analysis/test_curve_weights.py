import numpy as np
import pytest
import torch

from landscape.analysis.curves import (CURVE_KINDS, Curve, basis_moments, bezier_weights, chord_midpoint,
                                       curve_weights, optimal_bend, polychain_weights)
from landscape.analysis.interpolation import KINDS, path_weights
from landscape.core.errors import ConfigError


def test_weights_hand_values_and_endpoints():
    assert bezier_weights(0.0) == (1.0, 0.0, 0.0) and bezier_weights(1.0) == (0.0, 0.0, 1.0)
    assert bezier_weights(0.5) == (0.25, 0.5, 0.25)
    assert bezier_weights(2.0) == (1.0, -4.0, 4.0)  # (1−2)², 2·2·(−1), 4
    assert polychain_weights(0.0) == (1.0, 0.0, 0.0) and polychain_weights(1.0) == (0.0, 0.0, 1.0)
    assert polychain_weights(0.5) == (0.0, 1.0, 0.0)
    assert polychain_weights(0.25) == (0.5, 0.5, 0.0) and polychain_weights(0.75) == (0.0, 0.5, 0.5)
    for kind in CURVE_KINDS:
        assert kind in KINDS and path_weights(kind, 0.3) == curve_weights(kind, 0.3)
        for t in np.linspace(-0.5, 1.5, 17):
            assert sum(curve_weights(kind, float(t))) == pytest.approx(1.0)
    # the chain is continuous at its bend
    a, b = polychain_weights(0.5 - 1e-12), polychain_weights(0.5)
    assert np.allclose(a, b, atol=1e-9)
    with pytest.raises(ConfigError, match="bezier"):
        curve_weights("spline", 0.5)


@pytest.mark.parametrize("kind", CURVE_KINDS)
def test_basis_moments_against_quadrature(kind):
    t = np.linspace(0.0, 1.0, 200_001)
    w = np.array([curve_weights(kind, float(x)) for x in t[::1000]])  # spot check the vectorised form below
    if kind == "bezier":
        b0, bb, b1 = (1 - t) ** 2, 2 * t * (1 - t), t ** 2
    else:
        b0, bb, b1 = np.where(t < 0.5, 1 - 2 * t, 0), np.where(t < 0.5, 2 * t, 2 - 2 * t), np.where(t < 0.5, 0, 2 * t - 1)
    assert np.allclose(w, np.stack([b0, bb, b1], 1)[::1000])
    quad = [np.trapezoid(f, t) for f in (bb * b0, bb * bb, bb * b1, bb)]
    assert np.allclose(basis_moments(kind), quad, atol=1e-9)


@pytest.mark.parametrize("kind", CURVE_KINDS)
def test_optimal_bend_minimises_the_expected_quadratic_loss(kind):
    g = np.random.default_rng(3)
    d = 4
    q = g.normal(size=(d, d))
    a = q @ q.T + 0.5 * np.eye(d)  # an SPD Hessian
    c, s, e = g.normal(size=d), g.normal(size=d), g.normal(size=d)
    t = np.linspace(0.0, 1.0, 100_001)

    def expected_loss(bend):
        w = np.array([curve_weights(kind, float(x)) for x in t[::100]])
        phi = w[:, :1] * s + w[:, 1:2] * bend + w[:, 2:] * e - c
        return np.mean(0.5 * np.einsum("ti,ij,tj->t", phi, a, phi))

    best = optimal_bend(kind, s, e, c)
    base = expected_loss(best)
    for _ in range(20):  # every perturbation raises the expected loss
        assert expected_loss(best + 1e-2 * g.normal(size=d)) > base
    # and the closed form solves the stationarity condition E[b_b A(φ(t) − c)] = 0 exactly
    m0, mb, m1, m = basis_moments(kind)
    assert np.allclose(a @ (m0 * s + mb * best + m1 * e - m * c), 0.0, atol=1e-12)
    assert optimal_bend(kind, c, c, c) == pytest.approx(c)


def test_curve_state_and_chord_midpoint():
    s = {"w": torch.tensor([0.0, 2.0]), "n": torch.tensor(3)}
    e = {"w": torch.tensor([4.0, 2.0]), "n": torch.tensor(7)}
    mid = chord_midpoint(s, e)
    assert mid["w"].tolist() == [2.0, 2.0] and mid["n"].item() == 7
    c = Curve("bezier", s, mid, e)
    for t in (0.0, 0.3, 1.0, 1.4):  # an untrained Bézier curve is the straight chord
        assert torch.allclose(c.state(t)["w"], (1 - t) * s["w"] + t * e["w"])
        assert c.state(t)["n"].item() == 7
    bent = Curve("polychain", s, {"w": torch.tensor([1.0, 5.0]), "n": torch.tensor(7)}, e)
    assert bent.state(0.5)["w"].tolist() == [1.0, 5.0] and bent.state(0.25)["w"].tolist() == [0.5, 3.5]

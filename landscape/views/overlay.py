"""The projected training path over a surface: whether it means something there, and its height on the surface.

On a plane made from the trajectory (PCA) or from checkpoints the path lies in (or near) the plane and is
drawn. On random directions the path projects onto a tiny region (random directions in millions of dimensions
are nearly orthogonal to it): drawn only when it spans at least ``MIN_SPAN`` of the grid along an axis;
otherwise it is left out and the reason logged. In 3-D its height is the surface's value at the projected point
(interpolated); the losses recorded during training stay attached as arrays.

Example:
    >>> import numpy as np
    >>> from landscape.io.surface_file import SurfaceData
    >>> s = SurfaceData(None, np.linspace(-1, 1, 3), np.linspace(-1, 1, 3), np.arange(9.).reshape(3, 3),
    ...                 np.zeros((3, 3)), np.ones((3, 3)), {}, {"directions": "random"})
    >>> path_to_draw(s, {"alpha": np.array([0.0, 0.001]), "beta": np.array([0.0, 0.0])})[0] is None
    True
    >>> surface_height(s, s.loss, np.array([0.5]), np.array([0.0])).tolist()
    [5.5]
"""
from __future__ import annotations

import logging

import numpy as np

from ..core.optional import require
from ..io.surface_file import SurfaceData

__all__ = ["path_to_draw", "surface_height", "MIN_SPAN", "PLANES_OF_THE_PATH"]

log = logging.getLogger(__name__)

#: fraction of the grid's extent a path must span (along alpha or beta) to be drawn on random directions
MIN_SPAN = 0.05
#: direction kinds whose plane is made from the trajectory or its checkpoints: the path is always drawn
PLANES_OF_THE_PATH = ("pca", "checkpoints")


def path_to_draw(s: SurfaceData, traj: dict[str, np.ndarray] | None) -> tuple[dict[str, np.ndarray] | None, str]:
    """``(traj, "")`` when the projected path means something on this surface, else ``(None, why)``."""
    if traj is None or s.beta is None:
        return None, "the file holds no projected path" if traj is None else "a 1-D surface"
    if s.inputs.get("directions") in PLANES_OF_THE_PATH:
        return traj, ""
    spans = [np.ptp(traj[k]) / max(np.ptp(axis), 1e-300) for k, axis in (("alpha", s.alpha), ("beta", s.beta))]
    if max(spans) >= MIN_SPAN:
        return traj, ""
    return None, (f"the projected path spans {100 * max(spans):.2g}% of the grid (random directions are nearly "
                  f"orthogonal to it); drawn from {100 * MIN_SPAN:g}%, always on PCA and checkpoint planes")


def surface_height(s: SurfaceData, values: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``values`` (a grid array of ``s``) at the points (alpha, beta), linearly interpolated; NaN outside."""
    grid_interpolator = require("scipy.interpolate").RegularGridInterpolator  # imported when used (slow import)
    f = grid_interpolator((s.alpha, s.beta), np.asarray(values, dtype=np.float64), bounds_error=False,
                          fill_value=np.nan)
    return f(np.stack([alpha, beta], 1))

"""The maths on states and trajectories: surface directions and their normalisation, PCA and projections, path weights
and items, robust/ambient layers, training-dynamics measures.
"""
from __future__ import annotations

from .directions import (
    NORMS, IGNORES, DIR_TYPES, movable_names, random_direction, normalize_direction, direction_between, cosine,
    random_directions)
from .pca import pca_directions, project, PROJECTIONS
from .interpolation import lagrange_weights, linear_weights, path_weights, PathItem, path_items, KINDS, LEVELS
from .robustness import layer_report
from .dynamics import (
    LayerNorms, filter_correlation, activation_correlation, correlated_pairs, merge_filters, layer_kind)

__all__ = [
    "NORMS", "IGNORES", "DIR_TYPES", "movable_names", "random_direction", "normalize_direction",
    "direction_between", "cosine", "random_directions", "pca_directions", "project", "PROJECTIONS",
    "lagrange_weights", "linear_weights", "path_weights", "PathItem", "path_items", "KINDS", "LEVELS",
    "layer_report", "LayerNorms", "filter_correlation", "activation_correlation", "correlated_pairs",
    "merge_filters", "layer_kind",
]

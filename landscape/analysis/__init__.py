"""The maths on states and trajectories: surface directions and their normalisation, PCA and projections, path weights
and items, learned-curve weights, robust/ambient layers, training-dynamics measures.
"""
from __future__ import annotations

from .directions import (
    NORMS, IGNORES, DIR_TYPES, movable_names, random_direction, normalize_direction, direction_between, cosine,
    random_directions)
from .pca import pca_directions, project, PROJECTIONS
from .curves import (
    CURVE_KINDS, bezier_weights, polychain_weights, curve_weights, basis_moments, optimal_bend, chord_midpoint,
    Curve)
from .interpolation import lagrange_weights, linear_weights, path_weights, PathItem, path_items, KINDS, LEVELS
from .robustness import layer_report
from .dynamics import (
    LayerNorms, filter_correlation, activation_correlation, correlated_pairs, merge_filters, layer_kind)
from .sharpness import epsilon_box, epsilon_sharpness, basin_width
from .spectrum import (
    MatVec, MatMat, Eigenpairs, lanczos, extreme_eigenpairs, TraceEstimate, hutchinson_trace, slq_density,
    TRACE_METHODS)
from .topology import (
    Basin, Topology, persistence, basin_region, diagram_distance, DISTANCES, MERGE_TREE_BASINS, graph_persistence,
    neighbour_edges)
from .merge_tree import tree_order, merge_tree_segments, topological_profile

__all__ = [
    "NORMS", "IGNORES", "DIR_TYPES", "movable_names", "random_direction", "normalize_direction",
    "direction_between", "cosine", "random_directions", "pca_directions", "project", "PROJECTIONS", "CURVE_KINDS",
    "bezier_weights", "polychain_weights", "curve_weights", "basis_moments", "optimal_bend", "chord_midpoint",
    "Curve", "lagrange_weights", "linear_weights", "path_weights", "PathItem", "path_items", "KINDS", "LEVELS",
    "layer_report", "LayerNorms", "filter_correlation", "activation_correlation", "correlated_pairs",
    "merge_filters", "layer_kind", "epsilon_box", "epsilon_sharpness", "basin_width", "MatVec", "MatMat",
    "Eigenpairs", "lanczos", "extreme_eigenpairs", "TraceEstimate", "hutchinson_trace", "slq_density",
    "TRACE_METHODS", "Basin", "Topology", "persistence", "basin_region", "diagram_distance", "DISTANCES",
    "MERGE_TREE_BASINS", "graph_persistence", "neighbour_edges", "tree_order", "merge_tree_segments",
    "topological_profile",
]

"""What people look at, drawn from files alone: matplotlib figures, VTK files for ParaView, animations.
"""
from __future__ import annotations

from .mpl import pyplot, save_figure, savefig, log_tick_values, plain_number, plain_log_ticks
from .overlay import path_to_draw, surface_height, MIN_SPAN, PLANES_OF_THE_PATH
from .surface_plots import (
    plot_surface, plot_problems, cell_extent, axis_labels, levels, color_norm, plain_ticks, FIGURES)
from .path_plots import plot_paths, distance_opacity, loss_limits, KIND_LABELS, Y_SCALES
from .figures import plot_files
from .animation import animate_path
from .vtk_export import (
    surface_polydata, surface_structured, trajectory_polydata, write_vtk, write_pvd, export_surface, export_files,
    resample_surface, height_problems, Z_ARRAYS, field_values)
from .filters_vtk import export_filter_evolution
from .dynamics_plots import plot_norms, plot_weight_walk, plot_correlation, sqrt_fit
from .curvature_plots import convexity_ratio, plot_curvature_maps, plot_spectrum, spectrum_linthresh
from .report_data import (
    surface_section, paths_section, trajectory_section, curvature_section, correlation_section, topology_section,
    jsonable, log_ticks, log_axis, twin_layout, MAX_SIDE, MAX_PARAMETER_LINES)
from .report import write_report, build_report, REPORT_NAME
from .paraview import surface_script, filters_script, write_script, contour_levels, write_states, state_path
from .inline import surface_figure, surface_xarray, INLINE_KINDS
from .topology_plots import plot_topology, tree_inputs
from .report_samples import sample_section, MAX_SAMPLE_POINTS

__all__ = [
    "pyplot", "save_figure", "savefig", "log_tick_values", "plain_number", "plain_log_ticks", "path_to_draw",
    "surface_height", "MIN_SPAN", "PLANES_OF_THE_PATH", "plot_surface", "plot_problems", "cell_extent",
    "axis_labels", "levels", "color_norm", "plain_ticks", "FIGURES", "plot_paths", "distance_opacity",
    "loss_limits", "KIND_LABELS", "Y_SCALES", "plot_files", "animate_path", "surface_polydata",
    "surface_structured", "trajectory_polydata", "write_vtk", "write_pvd", "export_surface", "export_files",
    "resample_surface", "height_problems", "Z_ARRAYS", "field_values", "export_filter_evolution", "plot_norms",
    "plot_weight_walk", "plot_correlation", "sqrt_fit", "convexity_ratio", "plot_curvature_maps", "plot_spectrum",
    "spectrum_linthresh", "surface_section", "paths_section", "trajectory_section", "curvature_section",
    "correlation_section", "topology_section", "jsonable", "log_ticks", "log_axis", "twin_layout", "MAX_SIDE",
    "MAX_PARAMETER_LINES", "write_report", "build_report", "REPORT_NAME", "surface_script", "filters_script",
    "write_script", "contour_levels", "write_states", "state_path", "surface_figure", "surface_xarray",
    "INLINE_KINDS", "plot_topology", "tree_inputs", "sample_section", "MAX_SAMPLE_POINTS",
]

"""The job layer: each stage resolves a job once into plain inputs and runs it (surface, paths, dynamics), the whole
job, and the job-level API the commands call.
"""
from __future__ import annotations

from .summary import read_summary, write_summary, summary
from .checks import check_dependencies
from .surface import SurfacePlan, resolve_surface, plan_directions, run_surface_job, job_centre
from .paths import PathsResult, run_paths_job, run_paths, write_report
from .dynamics import run_dynamics, correlation_report
from .curvature import CurvatureResult, run_curvature, curvature_inputs
from .job import run_job, demo_job_path, export_job, decision_regions
from .given import (
    working_copy, as_state, axis_values, given_evaluator, check_forward, data_checksum, model_label, scratch_path,
    progress_default, copy_file, flat_directions)
from .given_surface import Surface, surface
from .sample import sample, run_sample_job, sample_directions
from .given_paths import PathResult, CurvatureSummary, path, curve, curvature
from .api import SweepRun, run_sweep, evaluate_checkpoint, ReduceResult, reduce_filters
from .topology import LandscapeTopology, landscape_topology, topology_path, distance_table, RELATIVE_THRESHOLD

__all__ = [
    "read_summary", "write_summary", "summary", "check_dependencies", "SurfacePlan", "resolve_surface",
    "plan_directions", "run_surface_job", "job_centre", "PathsResult", "run_paths_job", "run_paths", "write_report",
    "run_dynamics", "correlation_report", "CurvatureResult", "run_curvature", "curvature_inputs", "run_job",
    "demo_job_path", "export_job", "decision_regions", "working_copy", "as_state", "axis_values", "given_evaluator",
    "check_forward", "data_checksum", "model_label", "scratch_path", "progress_default", "copy_file",
    "flat_directions", "Surface", "surface", "sample", "run_sample_job", "sample_directions", "PathResult",
    "CurvatureSummary", "path", "curve", "curvature", "SweepRun", "run_sweep", "evaluate_checkpoint",
    "ReduceResult", "reduce_filters", "LandscapeTopology", "landscape_topology", "topology_path", "distance_table",
    "RELATIVE_THRESHOLD",
]

"""Checks a job passes before any work starts.

Example:
    >>> from landscape.run.jobfile import load_job
    >>> check_dependencies(load_job({}))  # no stage needs an optional dependency
"""
from __future__ import annotations

from ..core.optional import package_file, require
from ..run.config import JobConfig

__all__ = ["check_dependencies"]


def check_dependencies(job: JobConfig) -> None:
    """Fail before any work when a stage needs an optional dependency that is missing (names the extra)."""
    if job.export is not None and job.export.vtk and (job.surface is not None):
        require("vtk", "vtk")
    if job.export is not None and job.export.plots and (job.surface is not None or job.paths is not None):
        require("matplotlib", "plot")
    if job.dynamics is not None:
        require("vtk", "vtk")
        require("matplotlib", "plot")
    if job.export is not None and job.export.report:
        package_file("plotly", "package_data/plotly.min.js", "plot")

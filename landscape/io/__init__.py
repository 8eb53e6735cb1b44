"""Files: opening HDF5, the surface/path file, the trajectory store, checkpoints, and file summaries.
"""
from __future__ import annotations

from .hdf5 import (
    open_hdf5, file_schema, SURFACE_SCHEMA, PATH_SCHEMA, SURFACE_VERSION, TRAJECTORY_SCHEMA, TRAJECTORY_VERSION)
from .surface_file import (
    SurfaceStore, SurfaceData, read_surface, diff_inputs, append_run, batch_context, read_projected_path,
    read_projections)
from .path_file import read_path
from .trajectory import TrajectoryStore, SCHEMA, SCHEMA_VERSION, METRICS
from .checkpoints import load_state_file, check_state, load_source, apply_state, split_source
from .status import describe_file

__all__ = [
    "open_hdf5", "file_schema", "SURFACE_SCHEMA", "PATH_SCHEMA", "SURFACE_VERSION", "TRAJECTORY_SCHEMA",
    "TRAJECTORY_VERSION", "SurfaceStore", "SurfaceData", "read_surface", "diff_inputs", "append_run",
    "batch_context", "read_projected_path", "read_projections", "read_path", "TrajectoryStore", "SCHEMA",
    "SCHEMA_VERSION", "METRICS", "load_state_file", "check_state", "load_source", "apply_state", "split_source",
    "describe_file",
]

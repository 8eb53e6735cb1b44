"""Files: opening HDF5 (and refusing writes clearly), one writer per file, the surface/path file and its run records,
the trajectory store, checkpoints, and file summaries.
"""
from __future__ import annotations

from .hdf5 import (
    open_hdf5, file_schema, recorded_inputs, unreadable, label_dimension, ensure_space, write_failure, writes_to,
    replaced_atomically, read_whole, WRITE_ERRNOS, SURFACE_SCHEMA, PATH_SCHEMA, SAMPLE_SCHEMA, SURFACE_VERSION,
    TRAJECTORY_SCHEMA, TRAJECTORY_VERSION, CORRELATION_SCHEMA, CURVATURE_SCHEMA, CURVATURE_VERSION, TOPOLOGY_SCHEMA,
    TOPOLOGY_VERSION)
from .locks import WriterLock
from .runs import append_run, batch_context
from .surface_file import (
    SurfaceStore, SurfaceData, read_surface, open_checked, diff_inputs, axis_text, MAP_NAMES, CURVATURE_DONE,
    read_projected_path, read_projections)
from .path_file import read_path
from .sample_file import open_sample, read_sample, SampleData, SAMPLE_AXES
from .trajectory import TrajectoryStore, SCHEMA, SCHEMA_VERSION, METRICS
from .checkpoints import (
    load_state_file, check_state, load_source, apply_state, split_source, complete_state, WEIGHT_FILES)
from .status import describe_file, describe_path, describe_correlation, describe_sweep
from .curvature_file import write_curvature, read_curvature, describe_curvature, stored_curvature
from .curvature_maps import open_maps
from .topology_file import share_label, write_topology, read_topology, values_checksum

__all__ = [
    "open_hdf5", "file_schema", "recorded_inputs", "unreadable", "label_dimension", "ensure_space", "write_failure",
    "writes_to", "replaced_atomically", "read_whole", "WRITE_ERRNOS", "SURFACE_SCHEMA", "PATH_SCHEMA",
    "SAMPLE_SCHEMA", "SURFACE_VERSION", "TRAJECTORY_SCHEMA", "TRAJECTORY_VERSION", "CORRELATION_SCHEMA",
    "CURVATURE_SCHEMA", "CURVATURE_VERSION", "TOPOLOGY_SCHEMA", "TOPOLOGY_VERSION", "WriterLock", "append_run",
    "batch_context", "SurfaceStore", "SurfaceData", "read_surface", "open_checked", "diff_inputs", "axis_text",
    "MAP_NAMES", "CURVATURE_DONE", "read_projected_path", "read_projections", "read_path", "open_sample",
    "read_sample", "SampleData", "SAMPLE_AXES", "TrajectoryStore", "SCHEMA", "SCHEMA_VERSION", "METRICS",
    "load_state_file", "check_state", "load_source", "apply_state", "split_source", "complete_state",
    "WEIGHT_FILES", "describe_file", "describe_path", "describe_correlation", "describe_sweep", "write_curvature",
    "read_curvature", "describe_curvature", "stored_curvature", "open_maps", "share_label", "write_topology",
    "read_topology", "values_checksum",
]

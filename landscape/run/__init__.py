"""Running work: job configuration and job files, inputs resolved from configuration, plane directions, projections,
training, the serial and MPI runners, and Slurm scripts.
"""
from __future__ import annotations

from .config import (
    ModelConfig, DataConfig, TrainConfig, EvalConfig, SurfaceConfig, CurveConfig, PathsConfig, CurvatureConfig,
    DynamicsConfig, ExportConfig, SampleConfig, JobConfig, SECTIONS, PCA_DEFAULTS)
from .jobfile import load_job, expand_sweep, parse_override, apply_overrides, job_to_dict
from .inputs import (
    prepare_data, prepare_model, data_meta, evaluation_data, is_source, resolve_checkpoint, mid_fraction,
    seed_reference, seed_trajectory)
from .planes import (
    random_plane, checkpoint_plane, pca_plane, file_plane, hessian_plane, grid_axis, find_trajectory, random_basis,
    checkpoint_basis, pca_basis, hessian_basis)
from .projection import projection_datasets, project_trajectory, project_onto
from .training import train, train_job, make_optimizer, learning_rate, crop_flip
from .curves import curve_train_config, train_curve, load_curve, curve_file
from .mpi import (
    check_launcher, mpi_comm, srun_mpich_env, local_rank, pick_device, usable_cores, in_mpi_launch, RankFailed,
    on_root, agree, abort_if_parallel, abort_job, note_output, exit_together, wait_for, share, gather, allgather,
    TAG_TO_MASTER, TAG_TO_WORKER, TAG_EXIT, TAG_THREADS, affinity, mpi_library, check_mpi_match, matching_mpiexec)
from .distributed import run_distributed, chunk_size
from .runner import compute_surface, run_points
from .slurm import (
    SlurmOptions, parse_time, render_script, submit, watch_hint, SubmitError, PRESETS, wait_for_job, FINAL_STATES)
from .recorder import Recorder
from .callbacks import lightning_recorder, hf_recorder, metric_names
from .compiling import parse_compile, settle_compile
from .idle_cores import threads_for, ThreadsHook, cpu_rank_threads

__all__ = [
    "ModelConfig", "DataConfig", "TrainConfig", "EvalConfig", "SurfaceConfig", "CurveConfig", "PathsConfig",
    "CurvatureConfig", "DynamicsConfig", "ExportConfig", "SampleConfig", "JobConfig", "SECTIONS", "PCA_DEFAULTS",
    "load_job", "expand_sweep", "parse_override", "apply_overrides", "job_to_dict", "prepare_data", "prepare_model",
    "data_meta", "evaluation_data", "is_source", "resolve_checkpoint", "mid_fraction", "seed_reference",
    "seed_trajectory", "random_plane", "checkpoint_plane", "pca_plane", "file_plane", "hessian_plane", "grid_axis",
    "find_trajectory", "random_basis", "checkpoint_basis", "pca_basis", "hessian_basis", "projection_datasets",
    "project_trajectory", "project_onto", "train", "train_job", "make_optimizer", "learning_rate", "crop_flip",
    "curve_train_config", "train_curve", "load_curve", "curve_file", "check_launcher", "mpi_comm", "srun_mpich_env",
    "local_rank", "pick_device", "usable_cores", "in_mpi_launch", "RankFailed", "on_root", "agree",
    "abort_if_parallel", "abort_job", "note_output", "exit_together", "wait_for", "share", "gather", "allgather",
    "TAG_TO_MASTER", "TAG_TO_WORKER", "TAG_EXIT", "TAG_THREADS", "affinity", "mpi_library", "check_mpi_match",
    "matching_mpiexec", "run_distributed", "chunk_size", "compute_surface", "run_points", "SlurmOptions",
    "parse_time", "render_script", "submit", "watch_hint", "SubmitError", "PRESETS", "wait_for_job", "FINAL_STATES",
    "Recorder", "lightning_recorder", "hf_recorder", "metric_names", "parse_compile", "settle_compile",
    "threads_for", "ThreadsHook", "cpu_rank_threads",
]

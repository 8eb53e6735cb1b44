"""landscape: loss surfaces, interpolation paths and training trajectories of neural networks.

Example:
    >>> import landscape as ls
    >>> train, test = ls.load_data("spiral", n_per_class=50)
    >>> model = ls.build_model("mlp", train.info(), depth=1, width=8)
    >>> 0 <= ls.Evaluator(model, test, device="cpu").evaluate().accuracy <= 1
    True
"""
__version__ = "0.1.0"

from .checkpoints import apply_state, check_state, load_source, load_state_file
from .config import DataConfig, EvalConfig, JobConfig, ModelConfig, TrainConfig, load_job
from .data import TensorData, load_data, subset
from .errors import (EXIT_INTERRUPTED, CheckpointError, ConfigError, DataError, DependencyError, Interrupted,
                     LandscapeError, ModelError, StoreError)
from .evaluate import EvalResult, Evaluator, resolve_device
from .job import run_job, train_job
from .models import build_model, layer_names
from .slurm import SlurmOptions, render_script, submit
from .params import StateSpec, flatten_state, model_state, state_checksum, unflatten_state
from .train import train
from .trajectory import TrajectoryStore

__all__ = [
    "__version__", "apply_state", "check_state", "load_source", "load_state_file",
    "DataConfig", "EvalConfig", "JobConfig", "ModelConfig", "TrainConfig", "load_job",
    "TensorData", "load_data", "subset",
    "CheckpointError", "ConfigError", "DataError", "DependencyError", "LandscapeError", "ModelError", "StoreError",
    "Interrupted", "EXIT_INTERRUPTED", "SlurmOptions", "render_script", "submit",
    "EvalResult", "Evaluator", "resolve_device", "run_job", "train_job", "build_model", "layer_names",
    "StateSpec", "flatten_state", "model_state", "state_checksum", "unflatten_state", "train", "TrajectoryStore",
]

"""landscape: loss surfaces, interpolation paths and training trajectories of neural networks.

The package is layered; each layer imports only the layers before it (checked by
``tests/test_architecture.py``, described in ``docs/architecture.md``):

``core`` → ``analysis`` → ``engine`` → ``io`` → ``views`` → ``run`` → ``stages`` → this module → ``cli``

Example:
    >>> import landscape as ls
    >>> train, test = ls.load_data("spiral", n_per_class=50)
    >>> model = ls.build_model("mlp", train.info(), depth=1, width=8)
    >>> 0 <= ls.Evaluator(model, test, device="cpu").evaluate().accuracy <= 1
    True
"""
import gc as _gc
import os as _os
import signal as _signal
import sys as _sys
import time as _time

# the command line (the `landscape` script, `python -m landscape`) holds SIGTERM and SIGUSR1 (Slurm's time-limit
# warning) from its first line: torch's import takes seconds under load, and a signal then would kill the process
# (status 138/143) instead of ending it as interrupted (75); the command delivers what arrived once its handlers
# are in place (cli.main). A library import (a notebook) leaves the handlers alone.
_startup_signals: list[int] = []
_command_line = _sys.argv[:1] == ["-m"] or \
    _sys.argv[0].replace("\\", "/").rsplit("/", 1)[-1] in ("landscape", "landscape.exe")
if _command_line:
    for _s in (_signal.SIGTERM, _signal.SIGUSR1):
        if _signal.getsignal(_s) is _signal.SIG_DFL:
            _signal.signal(_s, lambda signum, _frame: _startup_signals.append(signum))
    del _s


def _others_running() -> float:
    """Processes running on the machine now besides this one: the median of a few reads of /proc/loadavg's
    runnable count over 10 ms (the load averages lag by a minute and count this job's own previous steps)."""
    counts = []
    for i in range(5):
        with open("/proc/loadavg", encoding="ascii") as f:
            counts.append(int(f.read().split()[3].split("/")[0]) - 1)
        if i < 4:
            _time.sleep(0.002)
    return float(sorted(counts)[2])


def _wait_policy() -> str:
    """torch's OpenMP threads spin while they wait for work (fast on idle cores); on cores other processes use,
    the spinning takes their time slices (a demo took 13.5 min instead of 5 on a shared machine). Chosen here,
    before torch's OpenMP runtime reads it: passive when other processes run on half the usable cores or more,
    the runtime's default otherwise; ``OMP_WAIT_POLICY`` set by the user is left as it is. Measured by
    ``tools/bench_wait_policy.py``. Only the command line chooses: a library import (a notebook, a user's
    script) leaves the process's environment as it is."""
    if not _command_line:
        return "as the process was started (a library import does not choose)"
    if "OMP_WAIT_POLICY" in _os.environ or "torch" in _sys.modules:
        return _os.environ.get("OMP_WAIT_POLICY", "as set before torch was imported").lower()
    try:
        cores = len(_os.sched_getaffinity(0))
        others = _others_running()
    except (AttributeError, OSError, ValueError, IndexError):
        return "default"
    if others >= 0.5 * cores:
        _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        return f"passive ({others:.0f} other processes running, {cores} cores)"
    return f"default ({others:.0f} other processes running, {cores} cores)"


_omp_wait = _wait_policy()
# importing torch creates about a million long-lived objects, and the cyclic garbage collector would scan them
# again and again while they pile up (0.15 s of every process here): it is paused while the package is imported
_collecting = _gc.isenabled()
_gc.disable()
from .core.data import TensorData, load_data, subset
from .core.errors import (EXIT_INTERRUPTED, CheckpointError, ConfigError, DataError, DependencyError, Interrupted,
                          LandscapeError, ModelError, StoreError)
from .core.models import build_model, layer_names
from .core.params import StateSpec, flatten_state, model_state, state_checksum, unflatten_state
from .core.version import __version__
from .engine.device import resolve_device
from .engine.evaluator import EvalResult, Evaluator
from .io.checkpoints import apply_state, check_state, load_source, load_state_file
from .io.status import describe_file
from .io.trajectory import TrajectoryStore
from .run.config import DataConfig, EvalConfig, JobConfig, ModelConfig, TrainConfig
from .run.callbacks import hf_recorder, lightning_recorder
from .run.curves import load_curve
from .run.recorder import Recorder
from .run.jobfile import load_job
from .run.projection import project_onto
from .run.slurm import SlurmOptions, render_script, submit
from .run.training import train, train_job
from .stages.api import evaluate_checkpoint, reduce_filters, run_sweep
from .stages.given_paths import CurvatureSummary, PathResult, curvature, curve, path
from .stages.given_surface import Surface, surface
from .stages.sample import sample, run_sample_job
from .io.sample_file import SampleData, read_sample
from .engine.objective import Step
from .stages.curvature import run_curvature
from .stages.job import run_job
from .stages.paths import run_paths
from .stages.surface import run_surface_job
from .views.animation import animate_path
from .views.figures import plot_files
from .views.report import write_report
from .views.vtk_export import export_files

if _collecting:
    _gc.enable()
del _gc, _collecting

__all__ = [
    # functions on model objects (README: Your model)
    "surface", "Surface", "sample", "SampleData", "read_sample", "path", "PathResult", "curve", "curvature", "CurvatureSummary", "Step",
    "Recorder", "lightning_recorder", "hf_recorder",
    "__version__", "apply_state", "check_state", "load_source", "load_state_file",
    "DataConfig", "EvalConfig", "JobConfig", "ModelConfig", "TrainConfig", "load_job",
    "TensorData", "load_data", "subset",
    "CheckpointError", "ConfigError", "DataError", "DependencyError", "LandscapeError", "ModelError", "StoreError",
    "Interrupted", "EXIT_INTERRUPTED", "SlurmOptions", "render_script", "submit",
    "EvalResult", "Evaluator", "resolve_device", "run_job", "train_job", "build_model", "layer_names",
    "StateSpec", "flatten_state", "model_state", "state_checksum", "unflatten_state", "train", "TrajectoryStore",
    # job-level operations behind the commands (README: Python API)
    "run_surface_job", "run_sample_job", "run_paths", "run_sweep", "evaluate_checkpoint", "reduce_filters", "project_onto",
    "describe_file", "plot_files", "export_files", "animate_path", "load_curve",
    "run_curvature", "write_report",
]

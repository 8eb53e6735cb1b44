"""Typed job configuration: one dataclass per section of a TOML job file (see :mod:`landscape.run.jobfile` for
loading, overrides, validation and sweeps).

Example:
    >>> JobConfig().train.epochs, SurfaceConfig().norm
    (15, 'filter')
"""
from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any, Iterable

__all__ = ["ModelConfig", "DataConfig", "TrainConfig", "EvalConfig", "SurfaceConfig", "CurveConfig", "PathsConfig",
           "CurvatureConfig", "DynamicsConfig", "ExportConfig", "SampleConfig", "JobConfig", "SECTIONS",
           "PCA_DEFAULTS"]


def _f(default: Any, *, choices: Iterable[Any] | None = None, min: float | None = None, max: float | None = None,
       doc: str = "") -> Any:
    meta = {"choices": tuple(choices) if choices else None, "min": min, "max": max, "doc": doc}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    """[model]: a built-in name or ``package.module:callable``, with keyword arguments."""

    name: str = _f("lenet5", doc="lenet5, mlp, resnet20/56/110[_noskip], densenet, or module:callable")
    kwargs: dict = _f({}, doc="keyword arguments of the model factory")
    checkpoint: typing.Optional[str] = _f(None, doc="use this state instead of training (file.pt or run.h5:NAME)")


@dataclass
class DataConfig:
    """[data]: the data set and the subsets used for training and evaluation."""

    name: str = _f("digits", doc="digits, spiral, sine, mnist, cifar10, pytext, text, tokens, imagefolder, arrays, "
                                 "torchvision:Name or module:callable")
    root: typing.Optional[str] = _f(None, doc="local folder of mnist/cifar10/torchvision files or of an image folder; "
                                              "the text or token file")
    task: typing.Optional[str] = _f(None, choices=("classification", "regression", "language"),
                                    doc="default: from the data")
    train_subset: typing.Optional[int] = _f(None, min=1, doc="use N training samples")
    test_subset: typing.Optional[int] = _f(None, min=1, doc="use N evaluation samples")
    subset_mode: str = _f("first", choices=("first", "random"))
    subset_seed: int = _f(0)
    kwargs: dict = _f({}, doc="keyword arguments of the loader (e.g. n_per_class for spiral; resize, crop, mean, "
                              "std, workers for imagefolder; x, y, train_x, train_y for arrays)")


@dataclass
class TrainConfig:
    """[train]: optimiser and schedule of the recorded training run."""

    optimizer: str = _f("sgd", choices=("sgd", "adam"))
    lr: float = _f(0.05, min=0.0)
    momentum: float = _f(0.9, min=0.0)
    nesterov: bool = _f(False)
    weight_decay: float = _f(0.0, min=0.0)
    lr_milestones: list = _f([], doc="multiply the learning rate by lr_gamma at each of these epochs (step decay)")
    lr_gamma: float = _f(0.1, min=0.0, doc="factor of each learning-rate step")
    epochs: int = _f(15, min=1, max=100_000)
    batch_size: int = _f(64, min=1)
    seed: int = _f(0)
    augment: str = _f("none", choices=("none", "crop_flip"), doc="crop_flip: random 4-pixel-padded crops and "
                                                                 "horizontal flips of image batches (CIFAR)")
    checkpoint_every_steps: int = _f(0, min=0, doc="also checkpoint every N optimiser steps (0: off)")
    norms_every: int = _f(0, min=0, doc="record per-layer weight and gradient L2 norms every N steps (0: off)")
    loss: typing.Optional[str] = _f(None, choices=("cross_entropy", "nll", "mse"))
    threads: int = _f(2, min=0, doc="CPU threads of the training run, fixed so that the trajectory is the same "
                                    "however the job is launched (serial, mpiexec, Slurm); 0: the launch's count "
                                    "(the trajectory then depends on it)")


@dataclass
class EvalConfig:
    """[evaluate]: where and how evaluations run."""

    device: str = _f("auto", doc="auto, cpu, cuda or cuda:N")
    batch_size: int = _f(256, min=1, doc="samples per evaluation batch (the values are those of this size); on CPUs "
                         "larger batches of conv activations are page-faulted afresh on every use")
    tune_batch: bool = _f(False, doc="surfaces with points_per_batch = auto may run at another batch size (64 and "
                                     "up) when timing shows it is faster; off by default: another size can round "
                                     "other points differently (in the last bit) than the reference points checked")
    precision: str = _f("fp32", choices=("fp32", "bf16", "fp16"), doc="bf16 autocast (CUDA, or CPUs; native on "
                        "AVX-512 BF16/AMX ones) or fp16 (CUDA); surfaces store the centre's loss difference to fp32")
    fold_bn: bool = _f(True, doc="fold each eval-mode BatchNorm into the convolution before it (values equal up to "
                                 "float32 rounding; models without such pairs are evaluated as they are)")
    channels_last: bool = _f(True, doc="image batches in channels-last (NHWC) layout, so that convolutions run in "
                                       "it (models with 2-D convolutions only)")
    input_tables: bool = _f(True, doc="surfaces keep the first convolution's outputs for the centre and each "
                            "direction and combine them at every point (values equal up to float32 rounding, the "
                            "same whether the data are resident or streamed; the file records it)")
    compile: typing.Union[bool, str] = _f("auto", doc="torch.compile the forward of surfaces and samples: auto "
                                          "(when timing shows the grid repays the compile time, decided before "
                                          "the first point and recorded in the file), true (always; paths too) "
                                          "or false; on CPUs it needs a C++ compiler")
    split: str = _f("test", choices=("train", "test"), doc="data split the analyses evaluate on")
    logits_budget_mb: float = _f(256.0, min=1, doc="language models: at most this many MiB of logits per "
                                                   "evaluation batch (fewer sequences per batch)")
    resident_mb: typing.Optional[float] = _f(None, min=0, doc="streamed data sets up to this size are read once "
                                                               "and kept resident; default: half the free GPU "
                                                               "memory, a quarter of the available host memory")

    def resident_bytes(self) -> typing.Optional[int]:
        """``resident_mb`` in bytes (None: the device's default budget)."""
        return None if self.resident_mb is None else int(self.resident_mb * 2**20)


@dataclass
class SurfaceConfig:
    """[surface]: a loss surface θ(α, β) = θ* + α·d₁ + β·d₂ around a centre model."""

    center: str = _f("final", doc="checkpoint of the job's trajectory (final, epoch N, ...), file.pt or run.h5:NAME")
    alpha: str = _f("-1:1:25", doc="MIN:MAX:NUM")
    beta: typing.Optional[str] = _f("-1:1:25", doc="MIN:MAX:NUM; none for a 1-D line")
    directions: str = _f("random", choices=("random", "checkpoints", "file", "pca", "hessian"),
                         doc="random (seeded Gaussian), checkpoints (θ₁−θ*, θ₂−θ*), file (reuse another surface's), "
                             "pca (top principal components of the trajectory), hessian (eigenvectors of the "
                             "Hessian at the centre, unit length)")
    hessian_pair: str = _f("top", choices=("top", "extremes"), doc="directions=hessian: the two largest "
                                                                   "eigenvalues' eigenvectors, or λmax's and λmin's")
    curvature: list = _f([], doc="curvature maps at every grid point: any of lambda_max, lambda_min, trace "
                                 "(settings from [curvature])")
    trajectory: typing.Optional[str] = _f(None, doc="trajectory store for pca and the projected path "
                                                    "(default: the job's trajectory.h5)")
    pca_checkpoints: str = _f("epochs", choices=("epochs", "all"), doc="rows of the PCA: epoch checkpoints, or "
                                                                      "also step checkpoints")
    pca_center_row: bool = _f(True, doc="keep the centre's own (zero) row θ* − θ* in the PCA when the centre is one "
                                        "of the checkpoints, as the reference implementation does (its published "
                                        "figures); false drops it (the formula of Li et al.)")
    projection: str = _f("lstsq", choices=("lstsq", "cos"), doc="how checkpoints are projected onto the plane")
    norm: str = _f("filter", choices=("filter", "layer", "model", "none"))
    ignore: str = _f("biasbn", choices=("biasbn", "none"), doc="biasbn: biases and BatchNorm stay at θ*")
    dir_type: str = _f("weights", choices=("weights", "states"), doc="states also moves BatchNorm statistics")
    seed: int = _f(0)
    target1: typing.Optional[str] = _f(None, doc="θ₁ for directions=checkpoints")
    target2: typing.Optional[str] = _f(None, doc="θ₂ for directions=checkpoints (plane through θ*, θ₁, θ₂)")
    directions_file: typing.Optional[str] = _f(None, doc="surface file whose directions to reuse (directions=file)")
    subset: typing.Optional[int] = _f(None, min=1, doc="evaluate on N samples of the split (data.subset_mode)")
    points_per_batch: typing.Union[int, str] = _f("auto", doc="'auto', N points stacked with vmap, or 'threads:N' "
                                                                 "(N points on concurrent CPU threads)")
    chunk: int = _f(0, min=0, doc="points per work chunk (0: adaptive, about 2 s of work per chunk)")
    points_per_pass: int = _f(8, min=1, doc="streamed data (too large to keep resident): grid points evaluated "
                                            "per read of the data (each batch is read once for them)")
    flush_every: int = _f(64, min=1, doc="flush results to the file every N points (and every 10 s)")
    output: str = _f("surface.h5", doc="file name inside the job's output folder (or an absolute path)")


@dataclass
class SampleConfig:
    """[sample]: the loss at the points θ* + Σᵢ cᵢ·dᵢ of a k-dimensional design around a centre model."""

    center: str = _f("final", doc="checkpoint of the job's trajectory (final, epoch N, ...), file.pt or run.h5:NAME")
    k: int = _f(3, min=1, doc="number of directions")
    directions: str = _f("random", choices=("random", "checkpoints", "pca", "hessian"),
                         doc="random (seeded Gaussian, normalised per norm; the first two are [surface]'s with the "
                             "same seed), checkpoints (θ_i − θ* towards each of targets), pca (top k principal "
                             "components of the trajectory), hessian (the k largest eigenvalues' eigenvectors)")
    targets: list = _f([], doc="directions=checkpoints: k checkpoints (file.pt, run.h5:NAME, epoch N, ...)")
    design: str = _f("grid", choices=("grid", "sobol", "halton"),
                     doc="grid (the product of the ranges, C order), or scipy's scrambled sobol/halton sequence")
    ranges: list = _f(["-1:1:11"], doc="grid: one MIN:MAX:NUM for every axis or one per axis; sobol/halton: "
                                       "MIN:MAX of the box (or MAX the radius of the ball)")
    points: int = _f(1024, min=1, doc="sobol/halton: number of points")
    region: str = _f("box", choices=("box", "ball"), doc="sobol/halton: a box [MIN, MAX]^k or a ball of radius MAX")
    design_seed: int = _f(0, doc="sobol/halton: the scrambling seed")
    norm: str = _f("filter", choices=("filter", "layer", "model", "none"))
    ignore: str = _f("biasbn", choices=("biasbn", "none"), doc="biasbn: biases and BatchNorm stay at θ*")
    dir_type: str = _f("weights", choices=("weights", "states"), doc="states also moves BatchNorm statistics")
    seed: int = _f(0, doc="seed of random directions")
    trajectory: typing.Optional[str] = _f(None, doc="trajectory store for pca (default: the job's trajectory.h5)")
    pca_checkpoints: str = _f("epochs", choices=("epochs", "all"), doc="rows of the PCA")
    subset: typing.Optional[int] = _f(None, min=1, doc="evaluate on N samples of the split (data.subset_mode)")
    points_per_batch: typing.Union[int, str] = _f("auto", doc="'auto', 1, or 'threads:N' (no vmap stacking)")
    chunk: int = _f(0, min=0, doc="points per work chunk (0: adaptive, about 2 s of work per chunk)")
    points_per_pass: int = _f(8, min=1, doc="streamed data: points evaluated per read of the data")
    flush_every: int = _f(64, min=1, doc="flush results to the file every N points (and every 10 s)")
    output: str = _f("sample.h5", doc="file name inside the job's output folder (or an absolute path)")


@dataclass
class CurveConfig:
    """[paths.curve]: training of the learned curves (``bezier``, ``polychain``): SGD on the bend θ_b, a fresh
    t ~ U(0, 1) per mini-batch, endpoints fixed, starting from the chord's midpoint (Garipov et al. 2018)."""

    epochs: int = _f(10, min=1)
    lr: float = _f(0.02, min=0.0)
    momentum: float = _f(0.9, min=0.0)
    weight_decay: float = _f(0.0, min=0.0)
    lr_milestones: list = _f([], doc="multiply the learning rate by lr_gamma at each of these epochs")
    lr_gamma: float = _f(0.1, min=0.0)
    batch_size: int = _f(64, min=1)
    seed: int = _f(0, doc="seed of the t draws and of the mini-batch order")
    update_bn: bool = _f(False, doc="re-estimate BatchNorm running statistics on the training data at every "
                                    "evaluated point of a learned curve (its cost is logged)")


@dataclass
class PathsConfig:
    """[paths]: linear and quadratic paths between checkpoints at model, layer and parameter level, and learned
    curves (bezier, polychain) between any two states."""

    kinds: list = _f(["linear", "quadratic"], doc="any of linear, quadratic, bezier, polychain")
    levels: list = _f(["model", "layer"], doc="any of model, layer, parameter")
    layers: list = _f([], doc="layers for the layer/parameter levels (default: every layer)")
    params_per_layer: int = _f(0, min=0, doc="parameter level: scalars sampled per layer (seeded)")
    parameters: list = _f([], doc="parameter level: named scalars, e.g. fc1.weight[3,7]")
    seed: int = _f(0, doc="seed of the parameter sampling")
    start: str = _f("init", doc="θ₀ at α=0: a checkpoint name, a file, or 'seed N[:NAME]' (a second training "
                                "run of the job with train.seed = N, trained into OUTPUT/trajectory_seedN.h5)")
    mid: str = _f("mid", doc="θ_mid, the middle node of the quadratic path")
    end: str = _f("final", doc="θ₁ at α=1 (as start)")
    mid_position: str = _f("half", choices=("half", "true"), doc="half: α=0.5; true: its training fraction")
    alpha: str = _f("-0.5:1.5:41", doc="MIN:MAX:NUM (may extrapolate); the report needs 0 and 1 on it")
    subset: typing.Optional[int] = _f(None, min=1, doc="evaluate on N samples of the split")
    robust_threshold: float = _f(0.1, min=0.0, doc="accuracy lost on reset (relative loss rise for "
                                                   "regression) from which a layer is robust")
    chunk: int = _f(0, min=0, doc="points per MPI work chunk (0: adaptive)")
    flush_every: int = _f(64, min=1)
    output: str = _f("path", doc="files OUTPUT/<output>_<kind>.h5 (learned curves: also <output>_<kind>_curve.h5)")
    curve: CurveConfig = field(default_factory=CurveConfig)


@dataclass
class CurvatureConfig:
    """[curvature]: Hessian spectrum, trace, density and sharpness of the loss (mean over the evaluation split)
    at a centre, and the settings of curvature maps and Hessian planes."""

    center: str = _f("final", doc="checkpoint, file.pt or run.h5:NAME (as surface.center)")
    top_k: int = _f(5, min=1, max=1000, doc="largest eigenpairs (Lanczos keeps a float64 vector of the parameters "
                                             "per iteration: hundreds of pairs already take minutes and GBs)")
    bottom_k: int = _f(1, min=0, max=1000, doc="smallest eigenpairs (λmin < 0: a saddle direction)")
    tol: float = _f(1e-3, min=0.0, doc="Lanczos stops when every wanted Ritz residual <= tol·max|θ|")
    max_iter: int = _f(100, min=2, max=10_000, doc="Hessian-vector products per Lanczos run at most")
    block: int = _f(0, min=0, max=64, doc="vectors per block Lanczos step, their products taken together; a block "
                                          "of p holds an eigenvalue up to p times (0: the larger of top_k and "
                                          "bottom_k, at most 16, where products are batched (accelerators), "
                                          "else 1 with deflated runs for repeats)")
    trace: bool = _f(True, doc="estimate tr(H) with its standard error")
    trace_method: str = _f("hutchinson", choices=("hutchinson", "hutch++"))
    trace_samples: int = _f(30, min=2, doc="Hessian-vector products for the trace")
    density: bool = _f(False, doc="spectral density by stochastic Lanczos quadrature")
    density_runs: int = _f(4, min=1)
    density_steps: int = _f(40, min=2)
    sharpness: bool = _f(True, doc="ε-sharpness (Keskar et al.) and basin widths along the surface directions")
    epsilon: float = _f(1e-3, min=0.0, doc="ε-sharpness box: |δᵢ| <= ε(|θᵢ| + 1)")
    ascent_steps: int = _f(10, min=1, doc="projected gradient-ascent steps of the ε-sharpness")
    ignore: str = _f("biasbn", choices=("biasbn", "none"), doc="biasbn: biases and BatchNorm weights excluded")
    dir_type: str = _f("weights", choices=("weights", "states"), doc="only parameters are differentiated")
    subset: typing.Optional[int] = _f(None, min=1, doc="use N samples of the evaluation split")
    seed: int = _f(0, doc="seed of the start vectors and probes")
    threads: int = _f(2, min=0, doc="CPU threads of Hessian products (spectra, maps, Hessian directions), fixed so "
                                    "that the values are the same however the job is launched; 0: the launch's "
                                    "count (the values then depend on it)")
    output: str = _f("curvature.h5", doc="file name inside the job's output folder (or an absolute path)")


@dataclass
class DynamicsConfig:
    """[dynamics]: training dynamics (TensorViz): norms plot, filter evolution, weight walk, correlations."""

    filter_layer: str = _f("conv1", doc="conv layer whose filters evolve in ParaView (.vtp per checkpoint, .pvd)")
    walk: str = _f("first2", choices=("first2", "random"), doc="weight-vector walk: first two coordinates or a "
                                                              "random 2-D projection")
    correlation_threshold: float = _f(0.9, doc="list filter pairs correlated at least this much")
    activations_batch: int = _f(256, min=1, doc="evaluation samples for activation correlations")


@dataclass
class ExportConfig:
    """[export]: VTK files for ParaView and matplotlib figures of the job's surfaces."""

    vtk: list = _f(["vtp"], doc="any of vtp (polydata with quads), vts (structured grid)")
    plots: list = _f(["png", "pdf"], doc="figure formats: png, pdf, svg")
    z: str = _f("loss", choices=("loss", "accuracy", "log_loss"), doc="array used as the height of VTK surfaces")
    log: bool = _f(False, doc="log10 heights and log colour scales")
    zmax: typing.Optional[float] = _f(None, doc="clip heights (and plotted loss) above this value")
    vmin: typing.Optional[float] = _f(None, doc="lower end of the figures' loss colour range (default: the values)")
    vmax: typing.Optional[float] = _f(None, doc="upper end of the figures' loss colour range (default: the values)")
    levels: int = _f(20, min=2, doc="contour levels of the surface figures")
    equal_aspect: bool = _f(False, doc="draw alpha and beta at the same scale in the surface figures")
    path_y: str = _f("log", choices=("log", "linear", "clip"), doc="loss axis of path figures; clip: limited to the "
                                                                   "values at 0 <= alpha <= 1")
    zscale: float = _f(1.0, doc="multiply heights by this factor")
    resample: int = _f(1, min=1, doc="export on a grid this many times finer (linear interpolation)")
    animate: bool = _f(False, doc="an animated GIF of the projected path over the PCA surface (decision "
                                  "regions beside it for 2-D data)")
    report: bool = _f(True, doc="write OUTPUT/report.html at the end: one self-contained page (opens offline) "
                                "with interactive surfaces, paths, provenance and links to every file")
    paraview: bool = _f(False, doc="also write a pvpython script per surface that opens the VTK files with a "
                                   "ready view (pvbatch SCRIPT --png OUT.png renders it)")
    paraview_state: bool = _f(True, doc="with paraview, also the ParaView state file (.pvsm) of each view, for "
                                        "File > Load State in the GUI (written by pvbatch where it is installed)")


@dataclass
class JobConfig:
    """A whole experiment: [job] name/output plus the sections above."""

    name: str = "job"
    output: str = "landscape-out"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    surface: typing.Optional[SurfaceConfig] = None
    paths: typing.Optional[PathsConfig] = None
    export: typing.Optional[ExportConfig] = None
    pca: typing.Optional[SurfaceConfig] = None
    curvature: typing.Optional[CurvatureConfig] = None
    dynamics: typing.Optional[DynamicsConfig] = None
    sample: typing.Optional[SampleConfig] = None
    sweep: dict = field(default_factory=dict)


SECTIONS: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "evaluate": EvalConfig,
                             "surface": SurfaceConfig, "paths": PathsConfig, "export": ExportConfig,
                             "pca": SurfaceConfig, "curvature": CurvatureConfig, "dynamics": DynamicsConfig,
                             "sample": SampleConfig}


PCA_DEFAULTS = {"directions": "pca", "alpha": "auto:25", "beta": "auto:25", "output": "surface_pca.h5"}

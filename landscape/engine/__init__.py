"""Evaluating given parameter points fast: the evaluator (data resident, weights in place), the plane evaluator with
its batch modes and calibration, the path evaluator and the learned-curve module. Knows nothing of files, jobs or MPI.
"""
from __future__ import annotations

from .device import resolve_device, autocast_context, cpu_has_bf16, keep_freed_memory, available_memory, default_budget
from .losses import (
    LOSSES, PER_SAMPLE, TASKS, IGNORE_INDEX, loss_function, per_sample_loss, target_count, correct_count, logits)
from .evaluator import EvalResult, Evaluator
from .calibration import (
    calibrate, parse_points_per_batch, cpu_threads, stable_ratio, batch_candidates, VMAP_MAX_NUMEL, MODE_NAMES)
from .plane import PlaneEvaluator, CALIBRATE_MIN_POINTS
from .sample import SampleEvaluator
from .curve import CurveModule, bend_state, batchnorm_layers, update_bn
from .path import PathEvaluator
from .hessian import HessianOperator
from .curvature_map import CurvatureMap, MAPS
from .compiled import CompiledNet
from .folding import fold_conv_bn, FoldedNet, GraphFold
from .objective import Step, Objective, is_step, OBJECTIVE_LOSSES
from .fastpool import strided_max_pool2d, exact_pooling, ExactPooling
from .input_tables import InputTables, find_input_conv, input_conv, attach_tables, TABLE_ROWS
from .data_conv import PatchedConv, PATCH_BYTES
from .compile_choice import (
    CompileEstimate, compile_cost, cannot_compile, stacks_instead, point_upper_bound, estimate_compile,
    trial_compile, REPAY_FACTOR, HEAVY_SHARE, HEAVY_OPS)

__all__ = [
    "resolve_device", "autocast_context", "cpu_has_bf16", "keep_freed_memory", "available_memory", "default_budget",
    "LOSSES", "PER_SAMPLE", "TASKS", "IGNORE_INDEX", "loss_function", "per_sample_loss", "target_count",
    "correct_count", "logits", "EvalResult", "Evaluator", "calibrate", "parse_points_per_batch", "cpu_threads",
    "stable_ratio", "batch_candidates", "VMAP_MAX_NUMEL", "MODE_NAMES", "PlaneEvaluator", "CALIBRATE_MIN_POINTS",
    "SampleEvaluator", "CurveModule", "bend_state", "batchnorm_layers", "update_bn", "PathEvaluator",
    "HessianOperator", "CurvatureMap", "MAPS", "CompiledNet", "fold_conv_bn", "FoldedNet", "GraphFold", "Step",
    "Objective", "is_step", "OBJECTIVE_LOSSES", "strided_max_pool2d", "exact_pooling", "ExactPooling",
    "InputTables", "find_input_conv", "input_conv", "attach_tables", "TABLE_ROWS", "PatchedConv", "PATCH_BYTES",
    "CompileEstimate", "compile_cost", "cannot_compile", "stacks_instead", "point_upper_bound", "estimate_compile",
    "trial_compile", "REPAY_FACTOR", "HEAVY_SHARE", "HEAVY_OPS",
]

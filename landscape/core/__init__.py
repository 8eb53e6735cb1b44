"""Foundations every layer uses: errors and stop signals, optional dependencies, progress, flat model states, grids,
built-in models and data sets. Imports nothing else of landscape.
"""
from __future__ import annotations

from .version import __version__
from .errors import (
    LandscapeError, ConfigError, DataError, ModelError, CheckpointError, StoreError, DependencyError, Interrupted,
    EXIT_INTERRUPTED)
from .signals import (
    interruption_in, interruptible, check_interrupted, interrupt_pending, stop_signals_ignored, deferred)
from .threads import fixed_threads, threads_pinned, DEFAULT_STAGE_THREADS
from .optional import require, package_file, EXTRAS, HINTS
from .progress import Progress, format_seconds
from .params import StateSpec, model_state, flatten_state, unflatten_state, state_checksum, is_bn_name, tied_aliases
from .grid import parse_range, Grid, chunked, MAX_POINTS
from .design import Design, DESIGNS, REGIONS, coefficients_checksum, parse_design
from .models import LeNet5, MLP, CifarResNet, DenseNet, MODELS, build_model, load_callable, layer_names
from .data import (
    TensorData, load_data, subset, resident, DATASETS, read_idx, read_cifar10_bin, spiral, digits, image_folder,
    arrays)
from .gpt import GPT, CausalSelfAttention, FeedForward
from .hf import HFCausalLM, HFSequenceClassifier, build_hf, hf_spec, HEADS
from .text import text_windows, stdlib_corpus, windows, TEXT_DATASETS
from .imagenet import ImageNetResNet, DenseNet121, resnet18, resnet50, resnet18_noskip, resnet50_noskip, densenet121
from .streams import StreamedData, ImageFolder, ArrayPair, open_array, IMAGE_SUFFIXES
from .userdata import GivenData, given_data, infer_task, DATA_KINDS

__all__ = [
    "__version__", "LandscapeError", "ConfigError", "DataError", "ModelError", "CheckpointError", "StoreError",
    "DependencyError", "Interrupted", "EXIT_INTERRUPTED", "interruption_in", "interruptible", "check_interrupted",
    "interrupt_pending", "stop_signals_ignored", "deferred", "fixed_threads", "threads_pinned",
    "DEFAULT_STAGE_THREADS", "require", "package_file", "EXTRAS", "HINTS", "Progress", "format_seconds",
    "StateSpec", "model_state", "flatten_state", "unflatten_state", "state_checksum", "is_bn_name", "tied_aliases",
    "parse_range", "Grid", "chunked", "MAX_POINTS", "Design", "DESIGNS", "REGIONS", "coefficients_checksum",
    "parse_design", "LeNet5", "MLP", "CifarResNet", "DenseNet", "MODELS", "build_model", "load_callable",
    "layer_names", "TensorData", "load_data", "subset", "resident", "DATASETS", "read_idx", "read_cifar10_bin",
    "spiral", "digits", "image_folder", "arrays", "GPT", "CausalSelfAttention", "FeedForward", "HFCausalLM",
    "HFSequenceClassifier", "build_hf", "hf_spec", "HEADS", "text_windows", "stdlib_corpus", "windows",
    "TEXT_DATASETS", "ImageNetResNet", "DenseNet121", "resnet18", "resnet50", "resnet18_noskip", "resnet50_noskip",
    "densenet121", "StreamedData", "ImageFolder", "ArrayPair", "open_array", "IMAGE_SUFFIXES", "GivenData",
    "given_data", "infer_task", "DATA_KINDS",
]

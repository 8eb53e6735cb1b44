"""Hugging Face ``transformers`` causal language models as plain modules (``model.name = "hf:..."``), never
downloading: ``hf:/path/to/dir`` loads a local directory (``from_pretrained(dir, local_files_only=True)``), any
other ``hf:TYPE`` builds a randomly initialised model of that architecture from a config (``from_config``), e.g.
``hf:gpt2`` with ``model.kwargs = {n_layer = 2, n_head = 2, n_embd = 64}``. The vocabulary follows the data unless
given. The wrapped model maps token ids (N, T) to logits (N, T, V), like the built-in ``gpt``; its parameters are
the Hugging Face model's under the prefix ``hf.``. ``model.kwargs.head = "sequence_classification"`` builds an
``AutoModelForSequenceClassification`` instead (token ids (N, T) to class logits (N, C); ``num_labels`` from the
data). Tied weights (GPT-2's embeddings) are held once: a directory's own ``model.safetensors`` or
``pytorch_model.bin`` (keys without the ``hf.`` prefix) loads as a centre directly (``--center DIR``). Needs
``pip install "landscape[hf]"``.

Example:
    >>> hf_spec("hf:gpt2")
    'gpt2'
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .errors import ModelError
from .optional import require

__all__ = ["HFCausalLM", "HFSequenceClassifier", "build_hf", "hf_spec", "HEADS"]

#: ``model.kwargs.head``: which Auto class builds the model
HEADS = ("causal_lm", "sequence_classification")


def hf_spec(name: str) -> str:
    """What follows ``hf:`` in a model name (a local directory or a model type)."""
    return name.split(":", 1)[1]


class HFCausalLM(nn.Module):
    """A ``transformers`` causal LM whose forward takes token ids and returns the logits tensor."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.hf = model

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        out = self.hf(input_ids=idx, use_cache=False)
        return out.logits if hasattr(out, "logits") else out[0]

    def adapt_state(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A Hugging Face state dict (a directory's ``model.safetensors``/``pytorch_model.bin``, keys without
        this wrapper's ``hf.`` prefix, or the base model's keys without its prefix) under this module's names."""
        if any(k.startswith("hf.") for k in state):
            return dict(state)
        own = set(self.state_dict())
        base = getattr(self.hf, "base_model_prefix", "")
        out = {}
        for k, v in state.items():
            names = [f"hf.{k}"] + ([f"hf.{base}.{k}"] if base else [])
            out[next((n for n in names if n in own), names[0])] = v
        return out


class HFSequenceClassifier(HFCausalLM):
    """A ``transformers`` sequence classifier: token ids (N, T) to class logits (N, C)."""

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        out = self.hf(input_ids=idx)
        return out.logits if hasattr(out, "logits") else out[0]


def build_hf(name: str, data_info: Mapping[str, Any] | None = None, **kwargs: Any) -> HFCausalLM:
    """The model of ``hf:DIR`` (local, no download) or ``hf:TYPE`` (from a config with ``kwargs``).

    Example:
        >>> build_hf.__name__  # tested with a tiny random GPT-2 in tests/core/test_language.py
        'build_hf'
    """
    transformers = require("transformers", "hf")
    spec = hf_spec(name)
    kwargs = dict(kwargs)
    attn = kwargs.pop("attn_implementation", "eager")  # plain matmuls: the same values one point at a time or stacked
    head = kwargs.pop("head", "causal_lm")
    if head not in HEADS:
        raise ModelError(f"model {name!r}: model.kwargs.head must be one of {list(HEADS)}, got {head!r}")
    auto = transformers.AutoModelForCausalLM if head == "causal_lm" else \
        transformers.AutoModelForSequenceClassification
    info = dict(data_info or {})
    if head == "sequence_classification" and info.get("num_classes") and "num_labels" not in kwargs:
        kwargs["num_labels"] = int(info["num_classes"])
    try:
        if Path(spec).is_dir():
            model = auto.from_pretrained(spec, local_files_only=True, attn_implementation=attn, **kwargs)
        else:
            if info.get("vocab") and "vocab_size" not in kwargs:
                kwargs["vocab_size"] = int(info["vocab"])
            config = transformers.AutoConfig.for_model(spec, **kwargs)
            model = auto.from_config(config, attn_implementation=attn)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"model {name!r}: expected a local model directory or a transformers model type built "
                         f"from a config (nothing is downloaded); {type(exc).__name__}: {exc}") from exc
    vocab = getattr(model.config, "vocab_size", None)
    if info.get("vocab") and vocab is not None and vocab < int(info["vocab"]):
        raise ModelError(f"model {name!r} has a vocabulary of {vocab}; the data's token ids go up to "
                         f"{int(info['vocab']) - 1}")
    if head == "sequence_classification" and getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = getattr(model.config, "eos_token_id", None) or 0  # batches of equal length
    return HFCausalLM(model) if head == "causal_lm" else HFSequenceClassifier(model)

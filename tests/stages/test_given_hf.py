"""Hugging Face models as they ship: GPT-2 with its tied embeddings through jobs (train, surface, paths, resume) and
through ls.surface/ls.curvature with dict batches, a local directory's own weights as the centre, sequence
classifiers. transformers is in the test extra: nothing here skips."""
import numpy as np
import pytest
import torch
import transformers

import landscape as ls
from landscape.core.params import model_state, tied_aliases
from landscape.io.surface_file import read_surface

from conftest import run_cli


def _gpt2(vocab=48, seed=0):
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=vocab, n_positions=32)
    return transformers.GPT2LMHeadModel(cfg).eval()


def _batches(vocab=48, n=24, t=10, size=8):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab, (n, t), generator=g)
    mask = torch.ones(n, t, dtype=torch.long)
    return [{"input_ids": ids[i:i + size], "attention_mask": mask[i:i + size], "labels": ids[i:i + size]}
            for i in range(0, n, size)]


def test_gpt2_as_shipped_ties_its_embeddings_and_the_surface_matches_its_own_loss():
    model = _gpt2()
    assert tied_aliases(model) == {"lm_head.weight": "transformer.wte.weight"}
    assert "lm_head.weight" not in model_state(model)
    batches = _batches()
    s = ls.surface(model, batches, alpha=(-1, 1, 3), beta=(-1, 1, 3), loss="token_cross_entropy", progress=False)
    # the centre: the mean next-token loss over every target token, as model(**batch).loss averages per batch
    with torch.no_grad():
        own = [model(**b).loss.item() for b in batches]  # equal batches: the mean of means is the mean
    assert s.loss[1, 1] == pytest.approx(float(np.mean(own)), rel=1e-5)
    step = ls.surface(model, batches, alpha=(-1, 1, 3), beta=(-1, 1, 3), progress=False,
                      loss=lambda model, b: (model(**b).loss * (b["labels"].shape[1] - 1) * len(b["labels"]),
                                             (b["labels"].shape[1] - 1) * len(b["labels"])))
    np.testing.assert_allclose(step.loss, s.loss, rtol=1e-5)
    assert s.accuracy is not None and np.all((0 <= s.accuracy) & (s.accuracy <= 1))
    c = ls.curvature(model, batches, loss="token_cross_entropy", top_k=1, trace=False, max_iter=30)
    assert np.isfinite(c.lambda_max) and c.parameters == sum(p.numel() for p in model.parameters())


def test_sequence_classifier_from_a_config_with_dict_batches():
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=40, n_positions=16, num_labels=3,
                                  pad_token_id=0)
    model = transformers.AutoModelForSequenceClassification.from_config(cfg).eval()
    g = torch.Generator().manual_seed(2)
    batches = [{"input_ids": torch.randint(1, 40, (8, 6), generator=g),
                "labels": torch.randint(0, 3, (8,), generator=g)} for _ in range(3)]
    s = ls.surface(model, batches, alpha=(-1, 1, 3), beta=None, progress=False)
    with torch.no_grad():
        own = np.mean([model(**b).loss.item() for b in batches])
    assert s.loss[1] == pytest.approx(float(own), rel=1e-5)
    built = ls.build_model("hf:gpt2", {"num_classes": 3, "vocab": 40}, head="sequence_classification", n_layer=1,
                           n_head=2, n_embd=16, n_positions=16)
    assert built(torch.randint(0, 40, (2, 6))).shape == (2, 3)


@pytest.mark.slow
def test_documented_hugging_face_commands_run_as_written(tmp_path):
    """Every `landscape ... hf:` command of the language-model page (docs/language-models.md), in the order
    given."""
    import re
    import shlex
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    text = (root / "docs" / "language-models.md").read_text()
    cmds = [c for c in re.findall(r"^(?:landscape|python) [^\n]*(?:hf[:_]|my-gpt2)[^\n]*$", text, re.M)]
    assert len(cmds) >= 3, cmds
    (tmp_path / "jobs").symlink_to(root / "jobs")
    for cmd in cmds:
        args = shlex.split(cmd.split("  #")[0])
        if args[0] == "python":
            import subprocess
            import sys
            r = subprocess.run([sys.executable, *args[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        else:
            r = run_cli(*args[1:], cwd=tmp_path, timeout=600)
        assert r.returncode == 0, f"{cmd}\n{r.stderr[-3000:]}"
    surfaces = sorted(tmp_path.rglob("surface.h5"))
    assert surfaces and all(read_surface(p).done.all() for p in surfaces)

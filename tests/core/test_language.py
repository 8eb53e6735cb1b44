"""The language task: next-token data with no download, the built-in GPT, Hugging Face models from a config or a
local directory, per-token losses checked by hand, bounded logits memory, and the engine's modes agreeing."""
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from landscape.core.data import TensorData, load_data
from landscape.core.errors import DataError, ModelError
from landscape.core.models import build_model, layer_names
from landscape.analysis.directions import movable_names
from landscape.engine.evaluator import Evaluator
from landscape.engine.losses import IGNORE_INDEX
from landscape.engine.plane import PlaneEvaluator


def small_lm(vocab=32, context=12, n=20, seed=0, pad=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab, (n, context), generator=g)
    y = torch.randint(0, vocab, (n, context), generator=g)
    if pad:  # the last positions of some sequences are padding
        y[::3, -4:] = IGNORE_INDEX
    return TensorData(x, y, "language", vocab, "toy")


def test_loss_is_mean_token_cross_entropy_and_accuracy_next_token():
    data = small_lm()
    torch.manual_seed(0)
    model = build_model("gpt", data.info(), n_layer=1, n_head=2, d_model=16)
    r = Evaluator(model, data, "cpu", batch_size=7).evaluate()
    with torch.no_grad():
        logits = model(data.x).double()
    keep = data.y != IGNORE_INDEX
    tokens = int(keep.sum())
    assert tokens == 20 * 12 - 7 * 4
    nll = -torch.log_softmax(logits, -1)[keep].gather(1, data.y[keep][:, None]).sum().item()  # by hand
    assert r.loss == pytest.approx(nll / tokens, rel=1e-6)
    hits = (logits.argmax(-1) == data.y)[keep].sum().item()
    assert r.accuracy == pytest.approx(hits / tokens) and r.n == 20
    assert r.perplexity == pytest.approx(math.exp(r.loss))


def test_stacked_points_equal_one_at_a_time_bitwise():
    data = small_lm()
    torch.manual_seed(1)
    model = build_model("gpt", data.info(), n_layer=2, n_head=2, d_model=16)
    ev = Evaluator(model, data, "cpu", batch_size=8)
    c = ev.get_flat().cpu()
    g = torch.Generator().manual_seed(2)
    d1, d2 = torch.randn(c.shape, generator=g) * 0.05, torch.randn(c.shape, generator=g) * 0.05
    a, b = np.array([-1.0, 0.0, 0.5, 1.0]), np.array([0.5, 0.0, -1.0, 1.0])
    one = PlaneEvaluator(ev, c, d1, d2, 1).evaluate_points(a, b)
    stacked = PlaneEvaluator(ev, c, d1, d2, 4).evaluate_points(a, b)
    np.testing.assert_array_equal(one[0], stacked[0])
    np.testing.assert_array_equal(one[1], stacked[1])


def test_gpt_layers_attention_and_mlp_and_layernorm_ignored_like_batchnorm():
    data = small_lm()
    model = build_model("gpt", data.info(), n_layer=2, n_head=2, d_model=16)
    names = layer_names(model)
    assert {"blocks.0.attn", "blocks.0.mlp", "blocks.1.attn", "blocks.1.mlp", "tok_emb", "ln_f"} <= set(names)
    state = dict(model.named_parameters())
    moved = movable_names(state, state, "weights", "biasbn")
    assert not any(".ln" in n or n.startswith("ln_f") for n in moved)  # LayerNorm left out like BatchNorm
    assert "blocks.0.attn.qkv_weight" in moved and "tok_emb.weight" in moved
    assert "blocks.0.attn.qkv_bias" not in moved
    # tied output head: the logits are the hidden states times the token embedding
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in set(model.parameters()))


def test_embedded_corpus_and_user_text_and_memory_mapped_tokens(tmp_path):
    tr, te = load_data("pytext", context=16, n_train=40, n_test=8, seed=3)
    tr2, _ = load_data("pytext", context=16, n_train=40, n_test=8, seed=3)
    assert tr.task == "language" and tr.num_classes == 256 and tuple(tr.x.shape) == (40, 16)
    assert torch.equal(tr.x, tr2.x) and bool((tr.x[:, 1:] == tr.y[:, :-1]).all())  # fixed seed, shifted targets
    text = tmp_path / "corpus.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    tr, te = load_data("text", str(text), context=8, n_train=10, n_test=2)
    assert bytes(tr.x[0].tolist()).decode() in text.read_text()
    ids = np.arange(5000, dtype=np.int32) % 997
    np.save(tmp_path / "ids.npy", ids)
    tr, te = load_data("tokens", str(tmp_path / "ids.npy"), context=10, n_train=30, n_test=5, vocab=1000)
    assert tr.num_classes == 1000 and int(tr.x.max()) < 997
    row = tr.x[0].numpy()
    assert ((row[1:] - row[:-1]) % 997 == 1).all()  # consecutive ids, read from the memory-mapped array
    with pytest.raises(DataError, match="data.root"):
        load_data("tokens", None)
    with pytest.raises(DataError, match="windows.*n_train = 0 leaves the training split empty"):
        load_data("tokens", str(tmp_path / "ids.npy"), context=10, n_train=600, n_test=5)


def test_a_text_too_short_for_the_training_windows_still_gives_its_test_split(tmp_path):
    """A surface on the test split alone needs no training windows: n_train = 0 (a short file cannot hold the
    default 2,048)."""
    from landscape.run.config import TrainConfig
    from landscape.run.training import train

    text = tmp_path / "short.txt"
    text.write_text("a short text of a few hundred bytes, far from 2,048 windows. " * 6)
    with pytest.raises(DataError, match="asked for 2,304"):
        load_data("text", str(text), context=8)
    tr, te = load_data("text", str(text), context=8, n_train=0, n_test=16)
    assert len(tr) == 0 and len(te) == 16
    model = build_model("gpt", te.info(), n_layer=1, d_model=8, n_head=2, context=8)
    assert math.isfinite(Evaluator(model, te, "cpu").evaluate().loss)
    with pytest.raises(DataError, match="training split is empty"):
        train(model, tr, te, TrainConfig(epochs=1), tmp_path / "t.h5", "cpu", progress=False)


def test_logits_memory_stays_within_the_budget_for_gpt2s_vocabulary():
    """Vocabulary 50,257 (GPT-2's), 64 sequences of 128 tokens: the whole batch's float32 logits would be
    1.65 GB. With a 64 MiB budget the evaluation's peak memory grows by less than 256 MiB, and gives the same
    loss as one batch of every sequence."""
    code = textwrap.dedent("""
        import resource, sys, torch
        from landscape.core.data import TensorData
        from landscape.core.models import build_model
        from landscape.engine.evaluator import Evaluator
        torch.manual_seed(0)
        V, N, T = 50257, 64, 128
        d = TensorData(torch.randint(0, V, (N, T)), torch.randint(0, V, (N, T)), "language", V, "random")
        m = build_model("gpt", d.info(), n_layer=1, n_head=2, d_model=16)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        ev = Evaluator(m, d, "cpu", batch_size=1024, logits_budget=int(sys.argv[1]) << 20)
        r = ev.evaluate()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(ev.batch_size, (peak - base) / 1024, repr(r.loss))
    """)
    out = {}
    for budget in (64, 4096):
        r = subprocess.run([sys.executable, "-c", code, str(budget)], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        rows, grown, loss = r.stdout.split()
        out[budget] = (int(rows), float(grown), float(loss))
    assert out[64][0] == 2 and out[4096][0] >= 64  # 2 sequences of 128 x 50,257 float32 logits fit in 64 MiB
    assert out[64][1] < 256, out  # MiB grown during the evaluation
    assert out[4096][1] > 1000, out  # the whole batch at once: the logits alone are 1.65 GB
    assert out[64][2] == out[4096][2]  # per-sequence sums in a fixed order: the same loss


def test_training_records_per_token_loss(tmp_path):
    from landscape.run.config import TrainConfig
    from landscape.run.training import train

    tr, te = load_data("pytext", context=16, n_train=64, n_test=16)
    torch.manual_seed(0)
    model = build_model("gpt", tr.info(), n_layer=1, n_head=2, d_model=16)
    store = train(model, tr, te, TrainConfig(epochs=2, lr=0.01, optimizer="adam", batch_size=16), tmp_path / "t.h5",
                  "cpu", progress=False)
    m = store.metrics()
    assert m["train_loss"][0] == pytest.approx(Evaluator(build_model("gpt", tr.info(), n_layer=1, n_head=2,
                                                                     d_model=16), tr, "cpu").evaluate().loss,
                                               rel=0.2)  # about ln(256) at init
    assert m["test_loss"][-1] < m["test_loss"][0] < math.log(256) + 0.5 and 0 < m["test_accuracy"][-1] < 1


def test_hugging_face_gpt2_from_config_and_local_directory(tmp_path):
    import transformers  # noqa: F401 - the test extra installs it (landscape[hf]); the test must not skip

    data = small_lm(vocab=40, context=10, n=12)
    torch.manual_seed(0)
    model = build_model("hf:gpt2", data.info(), n_layer=2, n_head=2, n_embd=16, n_positions=16)
    assert model.hf.config.vocab_size == 40  # from the data
    assert tuple(model(data.x).shape) == (12, 10, 40)
    r = Evaluator(model, data, "cpu", batch_size=5).evaluate()
    with torch.no_grad():
        logits = model(data.x)
    keep = data.y != IGNORE_INDEX
    ref = F.cross_entropy(logits[keep], data.y[keep], reduction="sum").item() / int(keep.sum())
    assert r.loss == pytest.approx(ref, rel=1e-6)
    model.hf.save_pretrained(tmp_path / "tiny")
    again = build_model(f"hf:{tmp_path / 'tiny'}", data.info())
    with torch.no_grad():
        assert torch.equal(again(data.x), logits)
    ev = Evaluator(again, data, "cpu", batch_size=5)
    c = ev.get_flat().cpu()
    d = torch.randn(c.shape, generator=torch.Generator().manual_seed(0)) * 0.01
    lo, ac = PlaneEvaluator(ev, c, d, None, 1).evaluate_points(np.array([0.0, 1.0]), np.array([0.0, 0.0]))
    assert lo[0] == pytest.approx(r.loss, rel=1e-9) and lo[1] != lo[0]
    with pytest.raises(ModelError, match="nothing is downloaded"):
        build_model("hf:no-such-architecture", data.info())


def test_hessian_vector_product_of_the_token_mean_loss():
    """Curvature works on language models: H·v of the mean per-token loss (evaluated in budget-sized batches)
    equals double backward through the whole set's mean token cross-entropy written out directly."""
    from landscape.engine.hessian import HessianOperator

    data = small_lm(vocab=24, context=8, n=9)
    torch.manual_seed(3)
    model = build_model("gpt", data.info(), n_layer=1, n_head=2, d_model=8)
    ev = Evaluator(model, data, "cpu", batch_size=4)
    op = HessianOperator(ev)
    v = torch.randn(op.numel, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    got = op.matvec(v)
    params = op.params
    keep = data.y != IGNORE_INDEX
    loss = F.cross_entropy(model(data.x)[keep], data.y[keep], reduction="mean")
    grads = torch.autograd.grad(loss, params, create_graph=True)
    vs = torch.split(v.float(), op.sizes)
    dot = sum((g * w.view_as(g)).sum() for g, w in zip(grads, vs))
    want = torch.cat([h.reshape(-1) for h in torch.autograd.grad(dot, params)]).double()
    torch.testing.assert_close(got, want, rtol=2e-4, atol=1e-6)


class _ObjectOutput(torch.nn.Module):
    """A user language model returning an object with .logits, as Hugging Face models do."""

    def __init__(self, vocab=24, context=8):
        super().__init__()
        self.inner = build_model("gpt", {"vocab": vocab, "context": context}, n_layer=1, n_head=2, d_model=8)

    def forward(self, idx):
        from types import SimpleNamespace

        return SimpleNamespace(logits=self.inner(idx), past_key_values=None)


def test_user_models_returning_an_object_with_logits():
    data = small_lm(vocab=24, context=8, n=6)
    torch.manual_seed(0)
    wrapped = _ObjectOutput()
    r = Evaluator(wrapped, data, "cpu").evaluate()
    assert r == Evaluator(wrapped.inner, data, "cpu").evaluate()
    ev = Evaluator(wrapped, data, "cpu")
    c = ev.get_flat().cpu()
    d = torch.randn(c.shape, generator=torch.Generator().manual_seed(0)) * 0.01
    a = np.array([0.0, 1.0])
    np.testing.assert_array_equal(PlaneEvaluator(ev, c, d, None, 2).evaluate_points(a, a * 0)[0],
                                  PlaneEvaluator(ev, c, d, None, 1).evaluate_points(a, a * 0)[0])

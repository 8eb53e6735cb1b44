"""Trajectories recorded from other training loops with the real packages: PyTorch Lightning's Trainer and Hugging
Face's transformers.Trainer write the documented trajectory store, and the PCA plane works on it."""
import logging
import warnings

import numpy as np
import pytest
import torch

import landscape as ls
from landscape.io.trajectory import TrajectoryStore
from landscape.run.planes import pca_plane


def _data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] > 0).long()


def test_lightning_trainer_records_init_epochs_and_metrics(tmp_path):
    import lightning.pytorch as pl  # in the test extra: never skipped
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    x, y = _data()

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))

        def training_step(self, batch, _):
            loss = torch.nn.functional.cross_entropy(self.net(batch[0]), batch[1])
            self.log("train_loss", loss, on_epoch=True, on_step=False)
            return loss

        def validation_step(self, batch, _):
            out = self.net(batch[0])
            self.log("val_loss", torch.nn.functional.cross_entropy(out, batch[1]))
            self.log("val_acc", (out.argmax(1) == batch[1]).float().mean())

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.5)

    torch.manual_seed(0)
    module = Module()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    init = {k: v.clone() for k, v in module.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = pl.Trainer(max_epochs=3, callbacks=[ls.lightning_recorder(tmp_path / "run.h5", every_steps=2)],
                             logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, accelerator="cpu", devices=1)
        trainer.fit(module, loader, loader)
    st = TrajectoryStore(tmp_path / "run.h5")
    kinds = st.table()["kind"].tolist()
    assert kinds[0] == "init" and kinds.count("epoch") == 3 and kinds.count("step") == 4  # 9 steps, every 2nd
    assert bool(st.attrs["complete"])
    torch.testing.assert_close(st.state("init")["net.0.weight"], init["net.0.weight"], rtol=0, atol=0)
    torch.testing.assert_close(st.state("final")["net.2.bias"], module.net[2].bias.detach(), rtol=0, atol=0)
    m = st.metrics()
    assert m["epoch"].tolist() == [1.0, 2.0, 3.0]
    assert np.isfinite(m["train_loss"]).all() and np.isfinite(m["test_loss"]).all()
    assert ((0 <= m["test_accuracy"]) & (m["test_accuracy"] <= 1)).all()
    assert m["test_loss"][-1] < m["test_loss"][0]


def test_hf_trainer_records_the_same_store(tmp_path):
    import transformers  # in the test extra: never skipped
    x, y = _data(64)

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return {"inputs": x[i], "labels": y[i]}

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, inputs, labels=None):
            logits = self.fc(inputs)
            loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
            return {"loss": loss, "logits": logits}

    torch.manual_seed(0)
    net = Net()
    args = transformers.TrainingArguments(output_dir=str(tmp_path / "hf"), num_train_epochs=2,
                                          per_device_train_batch_size=16, per_device_eval_batch_size=32,
                                          learning_rate=0.1, logging_steps=1, eval_strategy="epoch",
                                          save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True)
    trainer = transformers.Trainer(model=net, args=args, train_dataset=Data(), eval_dataset=Data(),
                                   callbacks=[ls.hf_recorder(tmp_path / "run.h5", every_steps=3)])
    trainer.train()
    st = TrajectoryStore(tmp_path / "run.h5")
    kinds = st.table()["kind"].tolist()
    assert kinds[0] == "init" and kinds.count("epoch") == 2 and kinds.count("step") == 2  # 8 steps, every 3rd
    assert st.table()["step"].tolist()[-1] == 8
    torch.testing.assert_close(st.state("final")["fc.weight"], net.fc.weight.detach(), rtol=0, atol=0)
    m = st.metrics()
    assert m["epoch"].tolist() == [1.0, 2.0]
    assert np.isfinite(m["train_loss"]).all() and np.isfinite(m["test_loss"]).all()
    # the PCA plane of the recorded run
    d1, d2, info = pca_plane(st, st.state("final"), ["fc.weight", "fc.bias"], "none", "weights", "all", 2, None)
    assert abs(float(d1.norm()) - 1) < 1e-5 and abs(float(d1 @ d2)) < 1e-5 and len(info["explained_variance"]) >= 2

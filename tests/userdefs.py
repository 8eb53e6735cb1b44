"""User-defined model and data set factories, loaded by tests as 'userdefs:NAME'."""
import torch
from torch import nn


def tiny(input_dim: int = 2, num_classes: int = 3, hidden: int = 4) -> nn.Module:
    return nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


def blobs(split: str = "train", n: int = 30):
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    x = torch.randn(n, 2, generator=g)
    return x, (x[:, 0] > 0).long()


def pairs(split: str = "train"):
    return [(torch.tensor([float(i), 1.0]), i % 2) for i in range(10)]


def not_a_model():
    return 42


class _FailsOnRank(nn.Module):
    """Evaluates normally except on the MPI rank named by LANDSCAPE_TEST_FAIL_RANK, where forward raises
    after its first ``LANDSCAPE_TEST_FAIL_AFTER`` calls (40). With LANDSCAPE_TEST_READY_FILE set, that rank creates
    the file at its first forward call and the other ranks' forward waits for it from their second call on (rank 0
    times a point before any rank starts its grid): the failing rank surely takes part, however late a loaded
    machine starts it, instead of finding the grid done."""

    def __init__(self, input_dim: int, num_classes: int):
        import os

        super().__init__()
        self.fc = nn.Linear(input_dim, num_classes)
        self.calls = 0
        self.failing = os.environ.get("PMI_RANK") == os.environ.get("LANDSCAPE_TEST_FAIL_RANK", "-")
        self.after = int(os.environ.get("LANDSCAPE_TEST_FAIL_AFTER", "40"))
        self.ready = os.environ.get("LANDSCAPE_TEST_READY_FILE") if os.environ.get("PMI_RANK") else None

    def forward(self, x):
        import os
        import time

        self.calls += 1
        if self.failing:
            if self.ready:
                open(self.ready, "w").close()
                self.ready = None
            if self.calls > self.after:
                raise RuntimeError("injected failure on this rank")
        elif self.ready and self.calls > 1:
            while not os.path.exists(self.ready):  # progress-based: the failing rank's own first evaluation
                time.sleep(0.01)
            self.ready = None
        return self.fc(x)


def fails_on_rank(input_dim: int = 2, num_classes: int = 3) -> nn.Module:
    return _FailsOnRank(input_dim, num_classes)


def breaks_on_rank(input_dim: int = 2, num_classes: int = 3) -> nn.Module:
    """A factory that fails with a plain RuntimeError (a bug, not a landscape error) on one MPI rank only."""
    import os

    if os.environ.get("PMI_RANK") == os.environ.get("LANDSCAPE_TEST_FAIL_RANK", "-"):
        raise RuntimeError("injected bug on this rank")
    return tiny(input_dim, num_classes)


class _Slow(nn.Module):
    """``tiny``, with every forward taking LANDSCAPE_TEST_FORWARD_SECONDS more (a point that spans many batches of
    real work, as a large model's does)."""

    def __init__(self, input_dim: int, num_classes: int):
        import os

        super().__init__()
        self.net = tiny(input_dim, num_classes)
        self.seconds = float(os.environ.get("LANDSCAPE_TEST_FORWARD_SECONDS", "0"))

    def forward(self, x):
        import time

        time.sleep(self.seconds)
        return self.net(x)


def slow_tiny(input_dim: int = 2, num_classes: int = 3) -> nn.Module:
    return _Slow(input_dim, num_classes)

"""Evaluation engine vs one pure forward pass, measured side by side in one run.

For each case it prints the time of a pure forward pass over the evaluation set
(``model(x)`` batch by batch under ``no_grad``, data already on the device), the
time of one engine evaluation (parameters written in place, forward, loss and
accuracy, one host sync) and their ratio. Target on CPU: ratio <= 1.10.

    python tools/bench_eval.py                 # resnet20 on 2000 CIFAR-shaped images, lenet5 on digits
    python tools/bench_eval.py --device cuda --repeats 20
"""
from __future__ import annotations

import argparse

import torch
from benchlib import cifar_shaped, header, interleaved, pure_forward

from landscape.core.data import TensorData, load_data
from landscape.engine.device import resolve_device
from landscape.engine.evaluator import Evaluator
from landscape.core.models import build_model


def bench(name: str, model: torch.nn.Module, data: TensorData, device: torch.device, repeats: int,
          batch_size: int) -> tuple[float, float]:
    ev = Evaluator(model, data, device, batch_size)
    state = {k: v.detach().clone() for k, v in ev.state.items()}
    pure = pure_forward(ev)

    def engine() -> None:
        ev.evaluate(state)

    p, e = interleaved([pure, engine], device, repeats)
    print(f"{name:<28} {len(data):>6} {p * 1e3:>12.2f} {e * 1e3:>12.2f} {e / p:>7.3f}")
    return p, e


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--n-cifar", type=int, default=2000)
    args = ap.parse_args()
    dev = resolve_device(args.device)
    torch.manual_seed(0)
    cifar = cifar_shaped(args.n_cifar)
    _, digits = load_data("digits")
    print(header(dev))
    print(f"{'case':<28} {'n':>6} {'forward ms':>12} {'engine ms':>12} {'ratio':>7}")
    bench("resnet20 / CIFAR-shaped", build_model("resnet20"), cifar, dev, args.repeats, args.batch_size)
    bench("lenet5 / digits", build_model("lenet5"), digits, dev, args.repeats, args.batch_size)


if __name__ == "__main__":
    main()

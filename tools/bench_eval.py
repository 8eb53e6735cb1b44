"""Evaluation engine and its forward options vs the fastest pure forward pass, measured side by side in one run.

For each model it first times a pure eager forward over the evaluation set (``model(x)`` batch by batch under
``no_grad``, data resident) at several batch sizes, with the system time of each (allocator churn shows there),
and takes the fastest as the limit. Then, interleaved, one engine evaluation (parameters written in place,
forward, loss, accuracy, one host sync) at the default batch size, the tuned one, and with each forward option
of ``[evaluate]``: ``fold_bn``, ``channels_last``, both, ``precision = "bf16"`` (with the centre's loss
difference to fp32), combinations, and ``compile`` (with its compilation time and graph count). Every ratio is to the fastest
pure forward; < 1 means the option moves the limit. Targets on CPU: engine <= 1.05 for resnet20 and lenet5.

    python tools/bench_eval.py                       # resnet20 / 2000 CIFAR-shaped images, lenet5 / digits, mlp
    python tools/bench_eval.py --models resnet20 --no-compile --repeats 5
"""
from __future__ import annotations

import argparse
import copy
import resource
import time

import torch
from benchlib import cifar_shaped, header, interleaved, pure_forward

from landscape.core.data import TensorData, load_data
from landscape.core.models import build_model
from landscape.engine.device import cpu_has_bf16, resolve_device
from landscape.engine.evaluator import Evaluator

DEFAULT_BATCH = 256


def cpu_seconds(fn, repeats: int = 3) -> tuple[float, float]:
    """Median wall seconds of ``fn`` and the system seconds of one call (mean over the repeats)."""
    fn()
    walls, sys0 = [], resource.getrusage(resource.RUSAGE_SELF).ru_stime
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t)
    sys1 = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    return sorted(walls)[len(walls) // 2], (sys1 - sys0) / repeats


def fastest_forward(model: torch.nn.Module, data: TensorData, dev: torch.device, repeats: int) -> tuple[int, float]:
    """The batch size of the fastest pure eager forward and its seconds; prints every size it tried."""
    best = (0, float("inf"))
    for bs in (32, 64, 128, 256, 512, 1024):
        if bs > 2 * len(data) and bs != 32:
            break
        ev = Evaluator(model, data, dev, bs)
        wall, sys = cpu_seconds(pure_forward(ev), repeats)
        print(f"  pure forward at batch {bs:>5}: {wall * 1e3:9.2f} ms (system {sys * 1e3:7.2f} ms)")
        if wall < best[1]:
            best = (bs, wall)
    return best


def bench(name: str, model: torch.nn.Module, data: TensorData, dev: torch.device, repeats: int,
          compile_: bool) -> None:
    print(f"\n{name}: {len(data)} samples, {sum(p.numel() for p in model.parameters()):,} parameters")
    bs, _ = fastest_forward(model, data, dev, repeats)
    print(f"  fastest pure forward: batch {bs}")
    variants: dict[str, dict] = {"engine (API defaults)": {}}
    if bs != DEFAULT_BATCH:
        variants[f"engine at batch {bs}"] = {"batch_size": bs}
    variants.update({"fold_bn": {"fold_bn": True}, "channels_last": {"channels_last": True},
                     "fold_bn + channels_last (job default)": {"fold_bn": True, "channels_last": True},
                     "bf16": {"precision": "bf16"},
                     "bf16 + fold_bn + channels_last": {"precision": "bf16", "fold_bn": True, "channels_last": True}})
    if compile_:
        variants["compile"] = {"compile": True}
        variants["compile + fold_bn + channels_last"] = {"compile": True, "fold_bn": True, "channels_last": True}
    evs, notes = {}, {}
    for label, kw in variants.items():
        kw = {"batch_size": DEFAULT_BATCH, **kw}
        evs[label] = ev = Evaluator(copy.deepcopy(model), data, dev, **kw)  # options change the model's layout
        if "fold_bn" in kw and "fold_bn" not in ev.transforms():
            notes[label] = "nothing to fold"
        if "channels_last" in kw and not ev.channels_last:
            notes[label] = (notes.get(label, "") + "; no 2-D convolution").lstrip("; ")
        if kw.get("precision") == "bf16" and label == "bf16":
            gap = ev.precision_gap()
            notes[label] = f"loss {gap['bf16']:.6f} vs fp32 {gap['fp32']:.6f}: difference {gap['difference']:+.2e}" + \
                ("" if dev.type == "cuda" or cpu_has_bf16() else " (no native bf16 on this CPU)")
        if kw.get("compile"):
            t = time.perf_counter()
            ev.evaluate()
            notes[label] = f"compiled in {time.perf_counter() - t:.1f} s, {ev.compiles} graphs"
    states = {label: {k: v.detach().clone() for k, v in ev.state.items()} for label, ev in evs.items()}
    fns = [pure_forward(Evaluator(model, data, dev, bs))]  # the limit again, in the same rounds as the rest
    fns += [(lambda ev=ev, s=states[label]: ev.evaluate(s)) for label, ev in evs.items()]
    limit, *times = interleaved(fns, dev, repeats)
    print(f"  {'pure forward, batch ' + str(bs):<38} {limit * 1e3:9.2f} ms  {1:6.3f} x fastest forward  "
          "(timed again beside the rest)")
    for (label, ev), t in zip(evs.items(), times):
        recompiled = f", {ev.compiles} graphs after timing" if ev.compile else ""
        print(f"  {label:<38} {t * 1e3:9.2f} ms  {t / limit:6.3f} x fastest forward  {notes.get(label, '')}"
              f"{recompiled}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--n-cifar", type=int, default=2000)
    ap.add_argument("--models", default="resnet20,lenet5,mlp")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    args = ap.parse_args()
    dev = resolve_device(args.device)
    print(header(dev))
    cases = {"resnet20": lambda: ("resnet20 / CIFAR-shaped", build_model("resnet20"), cifar_shaped(args.n_cifar)),
             "lenet5": lambda: ("lenet5 / digits", build_model("lenet5"), load_data("digits")[1]),
             "mlp": lambda: ("mlp / spiral", build_model("mlp", load_data("spiral")[1].info()),
                             load_data("spiral")[1])}
    for key in args.models.split(","):
        torch.manual_seed(0)
        name, model, data = cases[key]()
        bench(name, model, data, dev, args.repeats, not args.no_compile)


if __name__ == "__main__":
    main()

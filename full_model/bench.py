"""Throughput of a training step and of an evaluation pass (images per second).

ResNet-32 with the fixed-ETF head and released-form DR, on CIFAR-shaped
synthetic images with CIFAR-10-LT's counts (ratio 100, 12406 images), fed by
the same device-side loader as real runs (crop-flip and mixup on the
device), in channels-last memory (4× faster than NCHW on a 2-core CPU).
On CUDA also bfloat16 autocast, with the data on the GPU.

    python -m full_model.bench --device cpu --threads 2 --steps 8 --repeats 3

prints one JSON object with mean ± std over the repeats (n stated).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time

import numpy as np
import torch

from .data import load_dataset
from .distributed import DistContext
from .loader import Normalizer, TensorTrainLoader
from .losses import Objective
from .models import build_network


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _setup(device: torch.device, batch_size: int, amp: bool, channels_last: bool, compile_model: bool):
    data = load_dataset("synthetic-images-lt", ratio=100)
    torch.manual_seed(0)
    net = build_network("resnet32", "fixed-etf", 10, data.input_shape).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    model = torch.compile(net) if compile_model else net
    norm = Normalizer(data.mean, data.std, device, channels_last)
    loader = TensorTrainLoader(data.x_train, data.y_train, 10, batch_size=batch_size, device=device, ctx=DistContext(),
                               rng=np.random.default_rng(0), normalizer=norm, augment=True, mixup_alpha=1.0)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if amp else contextlib.nullcontext
    return data, net, model, norm, loader, autocast


def train_rate(device, steps: int, warmup: int, batch_size: int = 128, amp: bool = False,
               channels_last: bool = False, compile_model: bool = False, repeats: int = 3) -> list[float]:
    """Images/s of full SGD steps (loader, forward, DR loss, backward, update), one value per repeat."""
    _, net, model, _, loader, autocast = _setup(device, batch_size, amp, channels_last, compile_model)
    objective = Objective("dr", "released", balance_batch=True)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
    net.train()
    batches = iter(loader)

    def step():
        nonlocal batches
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        with autocast():
            h, z = model(batch.x, with_features=True)
        loss = objective(h.float(), z.float(), net.get_classifier(), batch.y_a, batch.y_b, batch.lam, batch.counts,
                         batch.global_size)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return len(batch.y_a)

    for _ in range(warmup):
        step()
    rates = []
    for _ in range(repeats):
        _sync(device)
        t0, seen = time.perf_counter(), 0
        for _ in range(steps):
            seen += step()
        _sync(device)
        rates.append(seen / (time.perf_counter() - t0))
    return rates


@torch.no_grad()
def eval_rate(device, batches: int, batch_size: int = 512, amp: bool = False, channels_last: bool = False,
              repeats: int = 3) -> list[float]:
    """Images/s of eval-mode forward passes returning features and logits."""
    data, net, model, norm, _, autocast = _setup(device, batch_size, amp, channels_last, False)
    net.eval()
    x_all = torch.from_numpy(data.x_train[: batch_size * batches]).to(device)
    chunks = [norm(x_all[i:i + batch_size]) for i in range(0, len(x_all), batch_size)]
    with autocast():
        model(chunks[0], with_features=True)
    rates = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        for x in chunks:
            with autocast():
                model(x, with_features=True)
        _sync(device)
        rates.append(len(x_all) / (time.perf_counter() - t0))
    return rates


def _summary(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values), "values": values}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per repeat")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--eval-batches", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--eval-batch-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--json", default=None, help="also write the result to this file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    fast = device.type == "cuda"
    result = {
        "device": torch.cuda.get_device_name(device) if fast else f"cpu ({torch.get_num_threads()} threads)",
        "torch": torch.__version__, "model": "resnet32 + fixed-etf head, DR (released form), mixup, crop-flip",
        "amp_bf16": fast, "channels_last": True, "compile": args.compile, "batch_size": args.batch_size,
        "train_images_per_s": _summary(train_rate(device, args.steps, args.warmup, args.batch_size, fast, True,
                                                  args.compile, args.repeats)),
        "eval_images_per_s": _summary(eval_rate(device, args.eval_batches, args.eval_batch_size, fast, True,
                                                args.repeats)),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")
    return result


if __name__ == "__main__":
    main()

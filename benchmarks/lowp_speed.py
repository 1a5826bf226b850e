"""Slowdown of 8-bit block floating point training against FP32, measured in one run.

Trains the same network with the same batches for a few epochs in FP32 and in a low-precision
format (``benchmarks/precisions.yaml``), alternating the two so drift of the machine hits both,
and prints one JSON line: images/s of each and their ratio (FP32 / low precision = slowdown).
The quantisers are simulated in FP32 arithmetic (``methods.train.lowp``), so this is the cost of the
simulation on this device, not of 8-bit hardware.

    .venv/bin/python -m benchmarks.lowp_speed --scale smoke --model vgg16 --data-root ../shared/data
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings

import torch

from methods.base.inputs import OneLineParser, one_line_errors


@one_line_errors
def main(argv=None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit deprecation noise from fvcore's import
    from methods.base.config import ConfigError, load_scale
    from methods.base.data import DatasetError, balanced_subset, load_cifar, num_classes
    from methods.pruning.eb import bn_layers
    from methods.train.lowp import LowPrecisionSGD, lower, unlower
    from methods.models import build_model
    from methods.stages.common import run_config, scaled_precision
    from methods.train.loop import device_of, train_epoch

    ap = OneLineParser(prog="python -m benchmarks.lowp_speed", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="smoke")
    ap.add_argument("--model", default="vgg16")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--precision", default="bfp8")
    ap.add_argument("--data-root", default="data")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per precision (after one warm-up each)")
    args = ap.parse_args(argv)
    try:
        scale = load_scale(args.scale)
        lp = scaled_precision(args.precision, scale)
        train, _ = load_cifar(args.data_root, args.dataset, False)
    except (ConfigError, DatasetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    if scale.threads:
        torch.set_num_threads(scale.threads)
    dev = device_of(scale.device)
    classes = num_classes(args.dataset)
    train = balanced_subset(train, scale.train_images, classes).to(dev)
    cfg = run_config(scale, args.model, args.dataset, [scale.epochs], [0.1, 0.01], 1, args.data_root, False)
    nets, opts, hooks = {}, {}, {}
    for name, p in (("fp32", None), (args.precision, lp)):
        torch.manual_seed(1)
        nets[name] = build_model(args.model, classes, **cfg.knobs).to(dev)
        sgd = dict(lr=0.1, momentum=0.9, weight_decay=1e-4)
        opts[name] = LowPrecisionSGD(nets[name].parameters(), p, **sgd) if p else torch.optim.SGD(nets[name].parameters(), **sgd)
        hooks[name] = lower(nets[name], p) if p else []
    seconds = {name: [] for name in nets}
    for epoch in range(args.epochs + 1):  # epoch 0 warms up both
        for name, net in nets.items():
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            train_epoch(net, opts[name], train, cfg, epoch, bn_layers(net))
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if epoch:
                seconds[name].append(time.perf_counter() - t0)
    for h in hooks.values():
        unlower(h)
    ips = {name: len(train.y) / statistics.median(s) for name, s in seconds.items()}
    print(json.dumps({"scale": scale.name, "model": args.model, "device": str(dev), "threads": torch.get_num_threads(),
                      "images": len(train.y), "epochs_timed": args.epochs,
                      "images_per_s": {k: round(v, 1) for k, v in ips.items()},
                      "slowdown": round(ips["fp32"] / ips[args.precision], 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

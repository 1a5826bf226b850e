"""Minutes per run of every model of a scale on this machine, from a short trial of each.

    .venv/bin/python -m benchmarks.perf.scale_models --scale mid --data-root ../shared/data --out results/perf

Each model trains ``--epochs`` epochs (default 1) of its first stage with the scale's every other
setting (knobs, batch, images, threads, layout): an EB model (vgg16, preresnet101) as a search
(``methods.stages.eb.run_search``, with the BN L1 term and the mask history), an RT model as a dense
run (``methods.stages.lottery.run_dense``, batch ``Scale.batch(64)``). A row gives the model's knobs,
parameters, forward MACs of one 3x32x32 image, training images, seconds per epoch (the epoch loop as
the result's ``log`` records it: training and test, not start-up) and the estimate for one run of the
scale: seconds per epoch x ``Scale.epochs`` / 60. The runs write to a temporary folder and are
deleted; ``scale_models.json`` under ``--out`` keeps the rows. Run it alone for a quiet number, or
beside a training job for the two-jobs-at-once figure the scale's ``threads: 1`` is chosen for.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

from methods.base.inputs import OneLineParser, one_line_errors

EB_MODELS = ("vgg16", "preresnet101")


@one_line_errors
def main(argv=None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning)
    ap = OneLineParser(prog="python -m benchmarks.perf.scale_models", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="mid")
    ap.add_argument("--data-root", default="data")
    ap.add_argument("--out", default="results/perf")
    ap.add_argument("--epochs", type=int, default=1, help="trial epochs per model")
    ap.add_argument("--models", default=None, help="comma-separated registry names (default: every model of the scale)")
    ap.add_argument("--dataset", default="cifar10", choices=("cifar10", "cifar100"))
    args = ap.parse_args(argv)
    if args.epochs < 1:
        ap.error("--epochs must be at least 1")

    from methods.base.config import load_scale
    from methods.models import MODELS, build_model, knobs_at
    from methods.metrics.flops import complexity
    from methods.runs.cells import DenseRun, SearchRun
    from methods.stages.common import StageContext
    from methods.workflow.jobs import train

    scale = load_scale(args.scale)
    models = args.models.split(",") if args.models else list(scale.models)
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; choose from {sorted(MODELS)}")
    short = scale.model_copy(update={"epochs": args.epochs})  # every per-epoch cost stays the scale's own
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for m in models:
            run = (SearchRun(m, args.dataset, "80-120", 0.1, 1) if m in EB_MODELS
                   else DenseRun(m, args.dataset, "80-120", 0.1, 1))
            res = train(run, StageContext(short, args.data_root, results=tmp))
            secs = [e["seconds"] for e in res.log]
            knobs = knobs_at(m, scale) or {}
            cx = complexity(build_model(m, 10 if args.dataset == "cifar10" else 100, **knobs))
            row = {"model": m, "stage": "search" if m in EB_MODELS else "dense", "knobs": knobs,
                   "params": cx["params"], "macs": cx["macs"], "train_images": res.train_images,
                   "batch": (res.config or {}).get("batch_size"), "seconds_per_epoch": sum(secs) / len(secs),
                   "epochs": scale.epochs, "minutes_per_run": sum(secs) / len(secs) * scale.epochs / 60,
                   "trial_test_acc": res.final_acc}
            rows.append(row)
            print(f"{m:13s} {json.dumps(knobs):32s} {row['params'] / 1e6:6.2f} M params {row['macs'] / 1e6:7.1f} M MACs "
                  f"{row['train_images']} images batch {row['batch']}: {row['seconds_per_epoch']:6.1f} s/epoch, "
                  f"about {row['minutes_per_run']:.0f} min per {scale.epochs}-epoch run", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from methods.base.io import write_json

    write_json(out / "scale_models.json", {"scale": args.scale, "dataset": args.dataset, "trial_epochs": args.epochs,
                                           "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())

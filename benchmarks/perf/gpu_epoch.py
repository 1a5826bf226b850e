"""A full-width VGG16 CIFAR-10 epoch on a GPU: our step against the reference-style loop, FP32 and bf16.

One short script for a machine with a CUDA GPU (prepared to fit a few minutes of device time):

    .venv/bin/python -m benchmarks.perf.gpu_epoch --data-root ../shared/data --out results/perf

Rows (each the median over ``--rounds`` epochs after a warm-up epoch; an epoch is every training
image under the data root, 50,000 from torchvision's CIFAR, 25,000 from the shared npz):
FP32 and bf16 autocast, each with our step in NCHW and NHWC (``channels_last``), against the
reference-style loop (``throughput.py``: PIL transforms through a DataLoader, one worker and
pinned memory as the official ``main.py``) and the compute-only limit; ``--compile`` adds
``torch.compile`` rows (minutes of compilation). Also the EB detection per epoch on the GPU
(``eb_overhead.py``) as a fraction of the FP32 epoch. TF32 stays off, as in training (``methods.stages.eb``).
Writes ``gpu_epoch.json`` under ``--out`` and prints one line per row.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

from methods.base.inputs import OneLineParser, one_line_errors


@one_line_errors
def main(argv=None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning)
    ap = OneLineParser(prog="python -m benchmarks.perf.gpu_epoch", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default="data")
    ap.add_argument("--out", default="results/perf")
    ap.add_argument("--rounds", type=int, default=2, help="timed epochs per loop")
    ap.add_argument("--images", type=int, default=None, help="training images per epoch (default: all)")
    ap.add_argument("--batch-size", type=int, default=256, help="EB main.py's batch")
    ap.add_argument("--compile", action="store_true", help="add torch.compile rows")
    args = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("error: no CUDA GPU here; run this script on a GPU machine", file=sys.stderr)
        return 2
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    from methods.base.io import write_json

    from .eb_overhead import eb_seconds_per_epoch
    from .throughput import measure

    rows = []
    configs = [(ac, cl, False) for ac in (None, "bf16") for cl in (False, True)]
    if args.compile:
        configs += [(ac, True, True) for ac in (None, "bf16")]
    t0 = time.perf_counter()
    for ac, cl, comp in configs:
        r = measure("vgg16", {}, args.batch_size, args.images, args.rounds, args.data_root, device="cuda",
                    autocast=ac, channels_last=cl, compile=comp)
        r.pop("rounds_images_per_s", None)
        rows.append(r)
        print(json.dumps({k: r[k] for k in ("autocast", "channels_last", "compile", "ours", "reference", "compute",
                                            "ours_vs_reference", "ours_vs_compute")}), flush=True)
    eb = eb_seconds_per_epoch("vgg16", {}, 160, device="cuda")
    fp32 = next(r for r in rows if r["autocast"] is None and not r["channels_last"])
    eb["fraction_of_fp32_epoch"] = eb["seconds_per_epoch"] / (fp32["images"] / fp32["ours"])
    print(json.dumps({"eb": eb}), flush=True)
    res = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows, "eb": eb,
           "seconds": time.perf_counter() - t0}
    write_json(Path(args.out) / "gpu_epoch.json", res)
    print(f"wrote {Path(args.out) / 'gpu_epoch.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Performance benchmark of the suite, every ratio measured in one run on one machine.

    .venv/bin/python -m benchmarks.perf --data-root ../shared/data            # everything (~20 min on 2 cores)
    .venv/bin/python -m benchmarks.perf --data-root ../shared/data --parts throughput,eb,dag

Parts: ``throughput`` (ours vs a reference-style DataLoader loop vs the compute-only limit, at
smoke width and at full width; ``throughput.py``), ``eb`` (EB detection per epoch against an
epoch's training; ``eb_overhead.py``), ``dag`` (epochs and FLOPs the full-scale ``all_tables``
schedules against every cell trained on its own; ``dag.py``), ``smoke`` (wall time and peak
memory of the smoke-scale ``all_tables``; ``smoke.py``). Writes ``perf.json`` and ``perf.md``
under ``--out``. The GPU epoch benchmark is ``gpu_epoch.py`` (run it where there is a GPU); the
minutes per run of each model of a scale, from a one-epoch trial, ``scale_models.py``.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from methods.base.inputs import OneLineParser, one_line_errors

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("throughput", "eb", "dag", "smoke")
#: The goals of issue 7, for the summary's last column.
GOALS = {"ours_vs_reference": 1.4, "ours_vs_compute": 0.9, "eb_fraction": 0.01, "dag_ratio_epochs": 0.5,
         "smoke_wall_s": 15 * 60}


def _throughput(args) -> list[dict]:
    from methods.base.config import load_scale

    from .throughput import measure

    out = []
    for scale_name, images, rounds in (("smoke", 512, args.rounds), ("full", args.full_images, max(2, args.rounds // 2))):
        sc = load_scale(scale_name)
        threads = min(sc.threads or os.cpu_count(), os.cpu_count()) if args.threads is None else args.threads
        r = measure(args.model, sc.models.get(args.model, {}), sc.batch_size, images, rounds, args.data_root,
                    threads=threads, channels_last=sc.channels_last, autocast=sc.autocast)
        out.append({"scale": scale_name, **r})
        print(f"throughput {scale_name}: ours {r['ours']:.0f}, reference {r['reference']:.0f}, compute {r['compute']:.0f} img/s",
              flush=True)
    return out


def _eb(args, throughput: list[dict]) -> list[dict]:
    from methods.base.config import load_scale
    from methods.stages.common import PAPER_TRAIN_IMAGES

    from .eb_overhead import eb_seconds_per_epoch

    rates = {t["scale"]: t["ours"] for t in throughput}
    out = []
    for scale_name in ("smoke", "full"):
        sc = load_scale(scale_name)
        for model in ("vgg16", "preresnet101"):
            r = eb_seconds_per_epoch(model, sc.models.get(model, {}), sc.epochs)
            row = {"scale": scale_name, **r}
            if model == args.model and scale_name in rates:  # an epoch of the model whose throughput we measured
                images = sc.train_images or PAPER_TRAIN_IMAGES
                row["epoch_s"] = images / rates[scale_name]
                row["fraction"] = r["seconds_per_epoch"] / row["epoch_s"]
            out.append(row)
            print(f"eb {scale_name} {model}: {1e3 * r['seconds_per_epoch']:.2f} ms per epoch", flush=True)
    return out


def _dag(args) -> dict:
    from methods.workflow.rerun import job_counts

    from .dag import dag_cost

    r = dag_cost("full")
    dry = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "slurm", "all_tables", "-n", "--config",
                          f"results={tempfile.mkdtemp()}"], cwd=ROOT, capture_output=True, text=True, check=True)
    jobs = job_counts(dry.stdout)
    r["dry_run_jobs"] = {k: jobs.get(k, 0) for k in ("search", "retrain", "dense", "lottery")}
    r["dry_run_matches"] = sum(r["dry_run_jobs"].values()) == r["scheduled"]["runs"]
    print(f"dag: {r['scheduled']['epochs']} scheduled epochs vs {r['independent']['epochs']} independent "
          f"({r['ratio_epochs']:.3f}); dry run {sum(r['dry_run_jobs'].values())} training jobs", flush=True)
    return r


def _smoke(args) -> dict:
    from .smoke import run_workflow

    results = Path(args.smoke_results or tempfile.mkdtemp(prefix="perf-smoke-"))
    r = run_workflow(results, "all_tables", "smoke", args.data_root, args.cores)
    print(f"smoke all_tables: {r['wall_s'] / 60:.1f} min, peak {r['peak_tree_rss_mb']:.0f} MB", flush=True)
    return r


def summary(res: dict) -> str:
    """The Markdown summary of a ``perf.json``."""
    lines = ["# Performance benchmark", "", f"Machine: {res['machine']}", "",
             "| measure | value | goal |", "|---|---|---|"]

    def row(name, value, goal=""):
        lines.append(f"| {name} | {value} | {goal} |")

    for t in res.get("throughput", []):
        s = (f"{t['scale']} width ({t['model']}, batch {t['batch_size']}, {t['threads']} threads"
             f"{', NHWC' if t['channels_last'] else ''})")
        row(f"images/s, {s}: ours / reference / compute-only", f"{t['ours']:.0f} / {t['reference']:.0f} / {t['compute']:.0f}")
        # The 1.4x goal is the for smoke widths: at full width a CPU step is compute-bound and
        # the reference's data pipeline hides behind it, so only the compute-only goal applies there.
        ref_goal = f">= {GOALS['ours_vs_reference']}x" if t["scale"] == "smoke" else ""
        row(f"ours / reference-style loop, {t['scale']}", f"{t['ours_vs_reference']:.2f}x", ref_goal)
        row(f"ours / compute-only limit, {t['scale']}", f"{100 * t['ours_vs_compute']:.1f} %",
            f">= {100 * GOALS['ours_vs_compute']:.0f} %")
        row(f"reference / compute-only, {t['scale']}", f"{100 * t['reference_vs_compute']:.1f} %")
    for e in res.get("eb", []):
        frac = f", {100 * e['fraction']:.2g} % of a {e['epoch_s']:.1f} s epoch" if "fraction" in e else ""
        row(f"EB detection per epoch, {e['scale']} {e['model']} ({e['bn_channels']} BN channels)",
            f"{1e3 * e['seconds_per_epoch']:.2f} ms{frac}", f"< {100 * GOALS['eb_fraction']:.0f} %" if frac else "")
    if "dag" in res:
        d = res["dag"]
        row("full all_tables: training runs scheduled / independent", f"{d['scheduled']['runs']} / {d['independent']['runs']}")
        row("full all_tables: epochs scheduled / independent",
            f"{d['scheduled']['epochs']} / {d['independent']['epochs']} = {d['ratio_epochs']:.3f}",
            f"<= {GOALS['dag_ratio_epochs']}")
        row("full all_tables: training PFLOPs scheduled / independent",
            f"{d['scheduled']['flops'] / 1e15:.0f} / {d['independent']['flops'] / 1e15:.0f} = {d['ratio_flops']:.3f}")
        row("dry run's training jobs (search, retrain, dense, lottery)",
            f"{', '.join(str(v) for v in d['dry_run_jobs'].values())} ({'matches' if d['dry_run_matches'] else 'DIFFERS'})")
    if "smoke" in res:
        s = res["smoke"]
        row("smoke all_tables wall time", f"{s['wall_s'] / 60:.1f} min ({s['training_jobs']} training jobs)",
            f"<= {GOALS['smoke_wall_s'] / 60:.0f} min")
        row("smoke all_tables peak memory (process tree / largest process)",
            f"{s['peak_tree_rss_mb']:.0f} MB / {s['peak_process_rss_mb']:.0f} MB"
            + (f" (`{s['peak_process'][:80]}`)" if s.get("peak_process") else ""))
    return "\n".join(lines) + "\n"


@one_line_errors
def main(argv=None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit deprecation noise from fvcore's import
    ap = OneLineParser(prog="python -m benchmarks.perf", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default="data")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    ap.add_argument("--out", default="results/perf", help="folder for perf.json and perf.md")
    ap.add_argument("--model", default="vgg16")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per loop at smoke width (half at full width)")
    ap.add_argument("--full-images", type=int, default=512, help="images per round at full width")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the scale's, at most the cores)")
    ap.add_argument("--cores", type=int, default=2, help="Snakemake --cores of the smoke run")
    ap.add_argument("--smoke-results", default=None, help="results folder of the smoke run (default: a fresh temporary one)")
    args = ap.parse_args(argv)
    parts = args.parts.split(",")
    if set(parts) - set(PARTS):
        ap.error(f"unknown part(s) {sorted(set(parts) - set(PARTS))}; choose from {','.join(PARTS)}")
    import torch

    from methods.base.io import write_json

    res = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"}
    if "throughput" in parts or "eb" in parts:
        res["throughput"] = _throughput(args)
    if "eb" in parts:
        res["eb"] = _eb(args, res["throughput"])
    if "dag" in parts:
        res["dag"] = _dag(args)
    if "smoke" in parts:
        res["smoke"] = _smoke(args)
    out = Path(args.out)
    write_json(out / "perf.json", res)
    (out / "perf.md").write_text(summary(res))
    print(summary(res))
    print(f"wrote {out / 'perf.json'} and {out / 'perf.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

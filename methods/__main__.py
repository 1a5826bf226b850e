"""Command line: ``python -m methods {flops,data,search,retrain,dense,lottery,batch,status,rerun} ...``.

Bad input ends with one line on stderr naming the fix and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
import warnings

warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit deprecation noise from fvcore's import

# Imported after the filter, which must be in place when these pull in fvcore.
from methods.base.config import SCHEDULES, ConfigError, load_scale  # noqa: E402
from methods.base.data import DATASETS, DatasetError, num_classes  # noqa: E402
from methods.base.inputs import check_draw, check_ratio  # noqa: E402
from methods.base.plugins import load_configured  # noqa: E402
from methods.base.preempt import Preempted, requeue_after_warning  # noqa: E402
from methods.runs.spec import INITS  # noqa: E402
from methods.models import MODELS, build_model, knobs_at  # noqa: E402
from methods.pruning.registry import PRUNING  # noqa: E402
from methods.workflow.batch import BATCHABLE  # noqa: E402


def _refuse(p) -> None:
    p.add_argument("--refuse-disconnected", action="store_true",
                   help="do not train a ticket that cuts every path from input to logits (methods/pruning/ticket.py): record it "
                   "as refused; a table specification's refuse_disconnected: true sets this")

def _ratio(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"pruning ratio must be a number in (0, 1), got {s!r}") from None
    try:
        return check_ratio(v)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _draw(s: str) -> str:
    try:
        return check_draw(s)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _lrs(s: str) -> list[float]:
    try:
        return [float(x) for x in s.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"learning rates are comma-separated numbers, e.g. 0.5,0.01,0.001; got {s!r}") from None


class _Parser(argparse.ArgumentParser):
    """Bad arguments end in one line naming the argument, the value and the choices (exit 2);
    ``--help`` still prints the usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _common(p: argparse.ArgumentParser, schedule: bool = True, eb: bool = True) -> None:
    """Arguments every training stage takes; ``schedule``: its LR schedule; ``eb``: explicit LRs
    and the number format (EB stages only; the RT stages train FP32 with x0.1 steps)."""
    p.add_argument("--scale", default="full", help="benchmarks/scales/<scale>.yaml (full, smoke, tiny)")
    p.add_argument("--data-root", default="data", help="folder with cifar10.npz/cifar100.npz or torchvision's CIFAR folders")
    p.add_argument("--download", action="store_true", help="let torchvision download CIFAR when absent")
    if schedule:
        p.add_argument("--schedule", default="80-120", choices=sorted(SCHEDULES))
        p.add_argument("--lr", type=float, default=0.1, help="initial LR; later LRs are x0.1 per milestone")
    if eb:
        p.add_argument("--lrs", type=_lrs, default=None, help="explicit LRs, one more than milestones, e.g. 0.5,0.01,0.001")
    p.add_argument("--seed", type=int, default=None, help="default 1; a retraining or lottery arm trains with its "
                   "upstream run's seed, which this may only repeat")
    if eb:
        p.add_argument("--precision", default="fp32",
                       help="training number format of this run, a name in benchmarks/precisions.yaml (fp32, bfp8)")
    p.add_argument("--out", required=True, help="output folder of this run")


def parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="python -m methods", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("flops", help="print a model's forward MACs, FLOPs and params as one JSON line")
    f.add_argument("--model", required=True, choices=sorted(MODELS))
    f.add_argument("--dataset", default="cifar10", choices=sorted(DATASETS))
    f.add_argument("--scale", default="full")
    d = sub.add_parser("data", help="check (and with --download fetch) CIFAR-10 and CIFAR-100 under a data root")
    d.add_argument("--data-root", default="data")
    d.add_argument("--download", action="store_true")
    d.add_argument("--out", required=True, help="JSON file recording the image counts found")
    s = sub.add_parser("search", help="dense sparse-BN training with EB mask history")
    s.add_argument("--model", required=True, choices=sorted(MODELS))
    s.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    s.add_argument("--snapshot-epochs", default="",
                   help="paper-scale epochs whose weights to keep, e.g. 10,20,40,final (or none)")
    _common(s)
    r = sub.add_parser("retrain", help="retrain a subnetwork drawn from a search run")
    r.add_argument("--search", required=True, help="output folder of the search run")
    r.add_argument("--ratio", type=_ratio, required=True, help="channel pruning ratio p in (0, 1)")
    r.add_argument("--draw", type=_draw, required=True, help="paper-scale draw epoch, 'final', 'best', 'eb' or 'eb_official'")
    r.add_argument("--init", default="fresh", choices=INITS,
                   help="fresh init, drawn weights, continue from the draw epoch (EB Train), rewind to theta_0 (LT), "
                   "or continue from the draw epoch with a fresh init (the official head main_c.py)")
    r.add_argument("--prune", default="bn", choices=sorted(set(PRUNING) - {"l1"}),
                   help="pruning method: bn (network slimming, EB), thinet, magnitude (LT), snip, "
                   "convmagnitude (conv weights only)")
    _refuse(r)
    _common(r)
    dn = sub.add_parser("dense", help="RT Tables 8/9: train the dense network, keeping theta_0 and the trained weights")
    dn.add_argument("--model", required=True, choices=sorted(MODELS))
    dn.add_argument("--dataset", default="cifar10", choices=sorted(DATASETS))
    _common(dn, eb=False)
    lt = sub.add_parser("lottery", help="RT Tables 8/9: prune a dense run and train the winning ticket or a random init "
                        "(schedule, LR and batch are the dense run's)")
    lt.add_argument("--dense", required=True, help="output folder of the dense run")
    lt.add_argument("--prune", required=True, choices=["l1", "convmagnitude"],  # methods.stages.lottery.LOTTERY_METHODS
                    help="l1 (Li et al. filter pruning, Table 8) or convmagnitude (global |w| of conv weights, Table 9)")
    lt.add_argument("--target", required=True, help="l1: architecture variant a or b; convmagnitude: ratio in (0, 1)")
    lt.add_argument("--arm", required=True, choices=["winning", "random"], help="winning ticket (theta_0) or random init")
    _refuse(lt)
    _common(lt, schedule=False, eb=False)
    b = sub.add_parser("batch", help="run several training stages one after another in this process (a grouped job: "
                       "torch and the data are loaded once); each writes its output to its --out folder's log.txt")
    b.add_argument("commands", nargs="+", help="quoted stage command lines, e.g. 'retrain --search S --ratio 0.5 ... --out DIR'")
    st = sub.add_parser("status", help="cells of each table done, stale (settings changed since), running, missing or failed, "
                        "from the result files alone")
    st.add_argument("--scale", default="smoke")
    st.add_argument("--results", default="results", help="results root (the workflow's results= key)")
    st.add_argument("--tables", default=None, help="table specification (default benchmarks/tables.yaml)")
    st.add_argument("--list", metavar="TABLE", default=None, help="list every cell id of TABLE with its state")
    st.add_argument("--stale-minutes", type=float, default=None, help="a run whose log has not moved this long counts as failed")
    rr = sub.add_parser("rerun", help="rerun one cell of a table: force its own stages, refresh its page, print its result")
    rr.add_argument("table", help="table1, table2, table4, table8, table9, figure1, figure2, figure3 or figure5")
    rr.add_argument("cell", help="cell id as its page titles it, e.g. vgg16/80-120/cifar100/10 (status --list TABLE lists them)")
    rr.add_argument("--scale", default="smoke")
    rr.add_argument("--results", default="results", help="results root (the workflow's results= key)")
    rr.add_argument("--data-root", default="data")
    rr.add_argument("--tables", default=None, help="table specification (default benchmarks/tables.yaml)")
    rr.add_argument("--seed", type=int, action="append", help="only this seed (repeatable; default every seed of the cell)")
    rr.add_argument("--cores", type=int, default=1)
    rr.add_argument("--upstream", action="store_true", help="force the shared search/dense runs too (changes every cell "
                    "using them); figure3/figure5 cells are searches: without it they only rebuild the page")
    rr.add_argument("-n", "--dry-run", action="store_true", help="list the jobs it would run, run nothing")
    rr.add_argument("--slurm", action="store_true", help="send it to SLURM through submitit instead of running here")
    rr.add_argument("--cluster", default=None, help=argparse.SUPPRESS)  # submitit cluster: tests use "debug"
    rr.add_argument("--minutes", type=int, default=None, help="with --slurm: the job's time limit (default: the "
                    "slurm/runtime.yaml limits of the runs it trains)")
    rr.add_argument("--wait", action="store_true", help="with --slurm: wait for the job and print the cell's result")
    return ap


def main(argv=None) -> int:
    try:
        load_configured()  # a plug-in's methods and models are choices of the parser (methods.base.plugins)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args = parser().parse_args(argv)
    if args.cmd not in BATCHABLE:
        return _main(args)
    from methods.base.attempts import AttemptLog

    with AttemptLog(args.out, args.cmd) as log:  # the run's log.txt keeps every attempt (methods/base/attempts.py)
        rc = _main(args)
        log.ok = rc == 0
        return rc


def _main(args) -> int:
    try:
        if args.cmd == "data":
            from methods.base.data import load_cifar
            from methods.base.io import write_json

            counts = {}
            for name in sorted(DATASETS):
                train, test = load_cifar(args.data_root, name, args.download)
                counts[name] = {"train": len(train.y), "test": len(test.y)}
            write_json(args.out, {"data_root": args.data_root, **counts})
            print(json.dumps(counts))
            return 0
        if args.cmd == "status":
            return _status(args)
        if args.cmd == "rerun":
            return _rerun(args)
        if args.cmd == "batch":
            from methods.workflow.batch import run_batch

            return run_batch(args.commands, parser(), main)
        scale = load_scale(args.scale)
        if args.cmd == "flops":
            from methods.metrics.flops import complexity

            m = build_model(args.model, num_classes(args.dataset), **(knobs_at(args.model, scale) or {}))
            from methods.pruning.eb import bn_layers

            print(json.dumps({"model": args.model, "dataset": args.dataset, "scale": scale.name,
                              **complexity(m), "bn_channels": sum(b.num_features for b in bn_layers(m)),
                              "unit": "macs = conv+linear multiply-adds per 3x32x32 image; flops = 2 x macs; "
                                      "flops_paper = official counter (EB compute_flops.py): conv+linear+bias+BN+ReLU+pool, "
                                      "1 MAC = 2 FLOPs"}))
        else:
            _stage(args, scale)
    except (ConfigError, DatasetError, FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Preempted as e:  # a cluster signal: the checkpoint is on disk, a retry resumes (methods.base.preempt)
        print(f"preempted: {e}", file=sys.stderr)
        requeue_after_warning(e.signum)  # a SLURM warning: back in the queue under the same job id
        return e.exit_code
    return 0


def _stage(args, scale) -> None:
    """Build the run dataclass the arguments name (``methods.runs.cells``), train it with its stage
    into ``--out`` and print its summary as one JSON line. A retraining's or lottery arm's
    upstream run is read from its folder (``methods.runs.recorded``).

    Raises:
        ConfigError: ``--seed`` other than the upstream run's; what the stage raises.
    """
    from methods.runs.cells import DenseRun, LotteryRun, RetrainRun, SearchRun
    from methods.stages.common import StageContext

    ctx = StageContext(scale, args.data_root, download=args.download)
    seed = 1 if args.seed is None else args.seed
    if args.cmd == "search":
        from methods.stages.eb import run_search

        snaps = [e for e in args.snapshot_epochs.split(",") if e and e != "none"]
        run = SearchRun(args.model, args.dataset, args.schedule, args.lr, seed, args.precision,
                        tuple(args.lrs) if args.lrs else None)
        res = run_search(run, ctx, args.out, snaps)
        print(json.dumps({"out": args.out, "best_acc": res.best_acc, "eb_epochs": res.eb_epochs["0.5"]}))
    elif args.cmd == "dense":
        from methods.stages.lottery import run_dense

        res = run_dense(DenseRun(args.model, args.dataset, args.schedule, args.lr, seed), ctx, args.out)
        print(json.dumps({"out": args.out, "best_acc": res.best_acc, "final_acc": res.final_acc}))
    elif args.cmd == "lottery":
        from methods.runs.recorded import dense_run_of
        from methods.stages.lottery import run_lottery

        _check_upstream(args.dense, args.prune)
        dense = _seeded(dense_run_of(args.dense), args.seed, "--dense", args.dense)
        run = LotteryRun(dense, args.prune, args.target, args.arm)
        res = run_lottery(run, ctx, args.out, args.dense, refuse_disconnected=args.refuse_disconnected)
        print(json.dumps({"out": args.out, "best_acc": res.best_acc, "final_acc": res.final_acc,
                          "weight_density": res.weight_density}))
    else:
        from methods.runs.recorded import search_run_of
        from methods.stages.eb import run_retrain

        _check_upstream(args.search, args.prune)
        search = _seeded(search_run_of(args.search), args.seed, "--search", args.search)
        run = RetrainRun(search, args.ratio, args.draw, args.init, args.schedule, args.lr, args.prune, args.precision,
                         tuple(args.lrs) if args.lrs else None)
        res = run_retrain(run, ctx, args.out, args.search, refuse_disconnected=args.refuse_disconnected)
        print(json.dumps({"out": args.out, "best_acc": res.best_acc, "final_acc": res.final_acc,
                          **({"no_ticket": res.no_ticket} if res.no_ticket is not None else {})}))


def _seeded(upstream, seed: int | None, flag: str, folder: str):
    """``upstream``, the run in ``folder``, checked against ``--seed``: a retraining or lottery arm
    trains with its upstream run's seed (``RetrainRun``/``LotteryRun`` have none of their own).

    Raises:
        ConfigError: ``seed`` given and not the upstream's.
    """
    if seed not in (None, upstream.seed):
        raise ConfigError(f"--seed {seed}: {flag} {folder} was trained with seed {upstream.seed}, which the runs drawn "
                          f"from it use; drop --seed or point {flag} at a run of seed {seed}")
    return upstream


def _check_upstream(folder: str, prune: str) -> None:
    """Refuse ``prune`` on the model of the upstream (search or dense) run in ``folder`` before
    anything loads or trains (``methods.pruning.registry.check_supported``); a missing result.json is
    named by the stage itself."""
    from methods.base.io import read_json
    from methods.pruning.registry import check_supported

    if (Path(folder) / "result.json").is_file():
        check_supported(prune, read_json(Path(folder) / "result.json")["config"]["model"])


def _status(args) -> int:
    from methods.runs.cells import cells_of, load_tables
    from methods.workflow.status import STALE_MINUTES, cell_state, format_status, table_status

    scale, spec = load_scale(args.scale), load_tables(args.tables)
    root = f"{args.results}/{scale.name}"
    kw = {"stale_minutes": args.stale_minutes or STALE_MINUTES}
    if args.list:
        for c in cells_of(scale, args.list, spec):
            print(f"{cell_state(c, root, scale=scale, **kw):<8} {c.id}")
    else:
        print(f"scale {scale.name}, results {root}")
        print(format_status(table_status(scale, root, spec, **kw)))
        from methods.workflow.verdicts import status_line  # the claims' verdicts, from the same result files

        print(status_line(scale, root, spec))
    return 0


def _rerun(args) -> int:
    from methods.workflow.rerun import command, rerun, submit

    kw = dict(table=args.table, cell_id=args.cell, scale=args.scale, results=args.results, data_root=args.data_root,
              seeds=args.seed, tables=args.tables, cores=args.cores, upstream=args.upstream, dry_run=args.dry_run)
    if args.slurm:
        job = submit(cluster=args.cluster, minutes=args.minutes, **kw)
        print(f"submitted {command(args.table, args.cell, args.scale, args.results, args.data_root, args.seed, args.tables)}"
              f" as job {job.job_id}; logs under {job.paths.folder}")
        print(f"follow it: squeue -j {job.job_id}; tail -f {job.paths.stdout} {job.paths.stderr}; each run's log.txt; "
              f"python -m methods status --scale {args.scale} --results {args.results} --list {args.table}")
        if args.cluster == "debug" or args.wait:  # debug runs in-process: now
            try:
                out = job.result()
            except Exception as e:  # submitit's error carries the job's traceback; its last line says what failed
                print(f"error: job {job.job_id} failed: {str(e).strip().splitlines()[-1]}; see {job.paths.stderr}",
                      file=sys.stderr)
                return 1
            _print_rerun(out)
        return 0
    _print_rerun(rerun(**kw))
    return 0


def _print_rerun(out: dict) -> None:
    print(f"jobs: {json.dumps(out['jobs'])}")
    for line in out["why"]:  # what made each run train: missing, stale (and what changed) or forced
        print(f"why: {line}")
    for r in out["runs"]:
        if r["best_acc"] is None:  # an EB cell whose search found no ticket at this ratio
            print(f"{r['path']}: no ticket ({r['no_ticket']})")
        else:
            print(f"{r['path']}: best_acc {r['best_acc']:.2f}, final_acc {r['final_acc']:.2f}")


if __name__ == "__main__":
    sys.exit(main())

"""Config digests: whether a finished result is what the current configuration would produce.

A run's *config digest* is a hash of what its numbers depend on, known before it trains: its
identity (the fields of ``methods.runs.cells`` ``SearchRun``/``RetrainRun``/``DenseRun``/``LotteryRun``),
the scale numbers it trains with (the model's knobs, epochs, batch, test batch, image counts,
autocast; not threads, device, memory layout or grouping, which leave the maths alone, as
``RunConfig.digest``), its number format (``benchmarks/precisions.yaml`` entry, SWA start at the
scale) and its upstream run's digest (a retraining of a retrained search is stale too).
Stages record it in ``result.json`` (``config_digest``, with the hashed ``digest_inputs``); a
result whose digest differs from the expected one is *stale*: its stage trains it again,
``methods status`` counts it, reports show it as pending, ``methods rerun`` says why.

A result made before digests existed (no ``config_digest``) is judged by its recorded
``config`` against the scale (knobs, epochs, batch, test batch, images, autocast, precision);
one without a config (a retraining that found no EB ticket) is current when its scale is.

For Snakemake, which sees only files and mtimes, every training job takes a *marker*
``<run>/config-<digest>.digest`` as input (``marker``): missing when the expected digest changed,
so it is written fresh (newer than the stale result: the job reruns), and aged to mtime 0 by the
stage once the run is current (so a group job's untouched runs do not rerun it again).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from pathlib import Path

from methods.runs.cells import (DenseRun, LotteryRun, RetrainRun, SearchRun, explicit_lrs, parse_dense, parse_lottery,
                                parse_retrain, parse_search)
from methods.base.config import Scale, load_precision
from methods.base.io import CorruptFile, finished, read_json, remove_checkpoint, write_text
from methods.models import knobs_at

#: Bump when a code change alters what every run computes: every result becomes stale.
DIGEST_VERSION = 1
#: RT trains every lottery run with batch 64 (``methods.stages.lottery.RT_BATCH``, not imported: it pulls in torch).
RT_BATCH = 64
MARKER_GLOB = "config-*.digest"
#: The digest of the training whose checkpoint and snapshots are in a run folder (others' are dropped).
SIDECAR = "ckpt.digest"


@functools.lru_cache(maxsize=32)
def _precision(name: str, epochs: int) -> dict | None:
    """``methods.stages.eb.scaled_precision`` as a dict, cached (the Snakefile asks once per run)."""
    lp = load_precision(name)
    if lp is None:
        return None
    if lp.swa_start is not None:
        lp = lp.model_copy(update={"swa_start": int(lp.swa_start * epochs / 160 + 0.5)})
    return lp.model_dump()


def _scale_part(scale: Scale, model: str, rt: bool) -> dict:
    return {"knobs": dict(knobs_at(model, scale) or {}), "epochs": scale.epochs,
            "batch_size": scale.batch(RT_BATCH) if rt else scale.batch_size, "test_batch_size": scale.test_batch_size,
            "train_images": scale.train_images, "test_images": scale.test_images, "autocast": scale.autocast}


def _lrs(lr: float, lrs) -> list | None:
    ex = explicit_lrs(float(lr), list(lrs)[1:]) if lrs else None
    return list(ex) if ex else None


def search_inputs(scale: Scale, model, dataset, schedule, lr, seed, lrs=None, precision="fp32") -> dict:
    return {"v": DIGEST_VERSION, "stage": "search", "model": model, "dataset": dataset, "schedule": schedule,
            "lr": float(lr), "lrs": _lrs(lr, lrs), "seed": int(seed), "precision": precision,
            "format": _precision(precision, scale.epochs), **_scale_part(scale, model, False)}


def _refuse(refuse: bool) -> dict:
    # only when set: digests of runs trained before refuse_disconnected existed stay as they were
    return {"refuse_disconnected": True} if refuse else {}


def retrain_inputs(scale: Scale, model, upstream: str, ratio, draw, init, schedule, lr, seed, lrs=None, prune="bn",
                   precision="fp32", refuse: bool = False) -> dict:
    return {**_refuse(refuse), "v": DIGEST_VERSION, "stage": "retrain", "upstream": upstream, "ratio": float(ratio),
            "draw": str(draw), "init": init, "schedule": schedule, "lr": float(lr), "lrs": _lrs(lr, lrs), "seed": int(seed),
            "prune": prune, "precision": precision, "format": _precision(precision, scale.epochs),
            **_scale_part(scale, model, False)}


def dense_inputs(scale: Scale, model, dataset, schedule, lr, seed) -> dict:
    return {"v": DIGEST_VERSION, "stage": "dense", "model": model, "dataset": dataset, "schedule": schedule,
            "lr": float(lr), "seed": int(seed), **_scale_part(scale, model, True)}


def lottery_inputs(scale: Scale, model, upstream: str, prune, target, arm, seed, refuse: bool = False) -> dict:
    return {**_refuse(refuse), "v": DIGEST_VERSION, "stage": "lottery", "upstream": upstream, "prune": prune,
            "target": str(target), "arm": arm, "seed": int(seed), **_scale_part(scale, model, True)}


def digest_of(inputs: dict) -> str:
    return hashlib.sha1(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]


def inputs_of(run, scale: Scale, refuse: bool = False) -> dict:
    """The hashed inputs of a run dataclass at ``scale`` (its upstream's digest included);
    ``refuse``: a table specification refuses to train its disconnected ticket.

    Raises:
        TypeError: not a run dataclass of ``methods.runs.cells``.
    """
    if isinstance(run, SearchRun):
        return search_inputs(scale, run.model, run.dataset, run.schedule, run.lr, run.seed, run.lrs, run.precision)
    if isinstance(run, RetrainRun):
        s = run.search
        return retrain_inputs(scale, s.model, expected(s, scale), run.ratio, run.draw, run.init, run.schedule, run.lr,
                              s.seed, run.lrs, run.prune, run.precision, refuse)
    if isinstance(run, DenseRun):
        return dense_inputs(scale, run.model, run.dataset, run.schedule, run.lr, run.seed)
    if isinstance(run, LotteryRun):
        d = run.dense
        return lottery_inputs(scale, d.model, expected(d, scale), run.prune, run.target, run.arm, d.seed, refuse)
    raise TypeError(f"{run!r} is not a run of methods.runs.cells")


def expected(run, scale: Scale) -> str:
    """The config digest the current configuration gives ``run``."""
    return digest_of(inputs_of(run, scale))


def run_of(path) -> object | None:
    """The run dataclass a canonical run folder names (``.../search/S[/retrain/R]``,
    ``.../dense/D[/lottery/T]``), None for any other folder (a stage run by hand elsewhere)."""
    p = Path(path)
    try:
        if p.parent.name == "search":
            return parse_search(p.name)
        if p.parent.name == "retrain" and p.parent.parent.parent.name == "search":
            return parse_retrain(p.parent.parent.name, p.name)
        if p.parent.name == "dense":
            return parse_dense(p.name)
        if p.parent.name == "lottery" and p.parent.parent.parent.name == "dense":
            return parse_lottery(p.parent.parent.name, p.name)
    except ValueError:
        return None
    return None


def upstream_digest(upstream_dir, scale: Scale) -> str:
    """The digest a stage hashes for its search or dense run: the one the current configuration
    gives a canonically named folder, else the one its result recorded ("unrecorded" if none)."""
    run = run_of(upstream_dir)
    if run is not None:
        return expected(run, scale)
    try:
        return read_json(Path(upstream_dir) / "result.json").get("config_digest") or "unrecorded"
    except (OSError, CorruptFile):
        return "unrecorded"


def _legacy_reason(result: dict, inputs: dict) -> str | None:
    """Why a result without a digest does not fit ``inputs`` (None when its recorded config does)."""
    cfg = result.get("config")
    if cfg is None:  # a no-ticket retraining records no config: its search's staleness decides
        return None
    want = {k: inputs[k] for k in ("knobs", "epochs", "batch_size", "test_batch_size", "train_images", "test_images")}
    want["autocast"] = inputs["autocast"]
    have = {k: cfg.get(k) for k in want}
    if "format" in inputs:
        want["precision"], have["precision"] = inputs["format"], cfg.get("precision")
    diff = [f"{k} {have[k]!r} -> {want[k]!r}" for k in want if have[k] != want[k]]
    return f"recorded config differs: {', '.join(diff)}" if diff else None


def _diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k} {a!r} -> {b!r}" if k != "upstream" else f"{prefix}upstream run changed")
    return out


def stale_reason(result: dict, inputs: dict) -> str | None:
    """None when ``result`` is what ``inputs`` produce, else why not (one line)."""
    if "config_digest" not in result:
        return _legacy_reason(result, inputs)
    if result["config_digest"] == digest_of(inputs):
        return None
    what = _diff(result.get("digest_inputs", {}), inputs)
    return f"config digest {result['config_digest']} != {digest_of(inputs)}" + (f": {', '.join(what)}" if what else "")


def path_stale_reason(path, result: dict, scale: Scale) -> str | None:
    """``stale_reason`` of the result in run folder ``path`` (None for a folder ``run_of`` cannot name)."""
    run = run_of(path)
    return None if run is None else stale_reason(result, inputs_of(run, scale))


def record(inputs: dict) -> dict:
    """The keys a stage adds to its ``result.json``."""
    return {"config_digest": digest_of(inputs), "digest_inputs": inputs}


def current(out, inputs: dict, upstream=None) -> dict | None:
    """``methods.base.io.finished`` that also refuses a stale result (said on stderr), and ages a
    current run's marker (``age_marker``). When it returns None the stage trains: a checkpoint
    of another digest (``ckpt.digest``) is dropped first, so a changed scale never resumes the
    old configuration's weights (train.py would refuse them), and weight snapshots are kept only
    beside a checkpoint they were saved with (a fresh start saves them again; a stale run's
    theta_0 must not seed the new one). The stage calls ``begin`` before it trains."""
    out, digest = Path(out), digest_of(inputs)
    done = finished(out, upstream)
    if done is not None:
        reason = stale_reason(done, inputs)
        if reason is None:
            age_marker(out, digest)
            return done
        print(f"warning: {out / 'result.json'} is stale ({reason}); training the run again", file=sys.stderr)
        remove_checkpoint(out / "ckpt.pt")
    side = out / SIDECAR
    own = side.read_text().strip() if side.is_file() else None
    if own not in (None, digest) and (out / "ckpt.pt").is_file():
        print(f"warning: {out / 'ckpt.pt'} belongs to config digest {own}, not {digest}; starting over", file=sys.stderr)
        remove_checkpoint(out / "ckpt.pt")
    if not any((out / f).is_file() for f in ("ckpt.pt", "ckpt.prev.pt")):
        for snap in (out / "snapshots").glob("*.pt"):
            snap.unlink()
    return None


def begin(out, inputs: dict) -> None:
    """Record, before training, whose checkpoint and snapshots ``out`` will hold (``ckpt.digest``;
    not earlier: a stage refusing bad input leaves no folder)."""
    write_text(Path(out) / SIDECAR, digest_of(inputs))


def finish(out, inputs: dict) -> None:
    """After a stage wrote its result: age its marker (the workflow's input)."""
    age_marker(Path(out), digest_of(inputs))


def age_marker(out: Path, digest: str) -> None:
    m = Path(out) / f"config-{digest}.digest"
    if m.is_file() and m.stat().st_mtime != 0:
        os.utime(m, (0, 0))


def marker(run, results: str, scale: Scale, refuse: bool = False) -> str:
    """The marker a workflow job for ``run`` takes as input (``<run>/config-<digest>.digest``).

    When it is missing and ``run`` has a result, it is written now: aged (mtime 0) if the result
    is current (a tree made before digests, or a result made by hand, is adopted, nothing
    reruns), fresh if stale (newer than the result: Snakemake reruns the job). Markers of other
    digests in the folder are removed, so going back to an earlier setting reruns too. Without a
    result it is written now too (the job runs anyway): a job per marker cost smoke seconds each.
    """
    inputs = inputs_of(run, scale, refuse)
    folder = Path(run.path(results))
    m = folder / f"config-{digest_of(inputs)}.digest"
    if m.is_file():
        return str(m)
    write_marker(m, inputs)
    if not (folder / "result.json").is_file():
        return str(m)
    try:
        fresh = stale_reason(read_json(folder / "result.json"), inputs) is not None
    except (OSError, CorruptFile):  # its stage trains it again anyway
        fresh = True
    if not fresh:
        os.utime(m, (0, 0))
    return str(m)


def write_marker(path, inputs: dict) -> None:
    """Write the marker ``path`` (the hashed inputs, for whoever wonders why a job reran) and
    remove the folder's markers of other digests."""
    path = Path(path)
    for old in path.parent.glob(MARKER_GLOB):
        if old.name != path.name:
            old.unlink(missing_ok=True)
    write_text(path, json.dumps(inputs, indent=1, sort_keys=True) + "\n")


def _recorded_model(upstream_dir) -> str | None:
    try:
        return read_json(Path(upstream_dir) / "result.json").get("config", {}).get("model")
    except (OSError, CorruptFile):
        return None


def stage_retrain_inputs(scale: Scale, search_dir, ratio, draw, init, schedule, lr, seed, lrs=None, prune="bn",
                         precision="fp32", refuse: bool = False) -> dict:
    """``retrain_inputs`` of a ``run_retrain`` call (its search named by folder, or by its result)."""
    up = run_of(search_dir)
    model = up.model if isinstance(up, SearchRun) else _recorded_model(search_dir)
    return retrain_inputs(scale, model, upstream_digest(search_dir, scale), ratio, draw, init, schedule, lr, seed, lrs,
                          prune, precision, refuse)


def stage_lottery_inputs(scale: Scale, dense_dir, prune, target, arm, seed, refuse: bool = False) -> dict:
    """``lottery_inputs`` of a ``run_lottery`` call."""
    up = run_of(dense_dir)
    model = up.model if isinstance(up, DenseRun) else _recorded_model(dense_dir)
    return lottery_inputs(scale, model, upstream_digest(dense_dir, scale), prune, target, arm, seed, refuse)

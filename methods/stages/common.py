"""The stages' common core. Each stage (``methods.stages.eb``, ``methods.stages.lottery``) takes a run
dataclass (``methods.runs.cells``: what to train) and a ``StageContext`` (where and how), starts from
``prepare`` (threads, FP32 maths, the scale's data on the device) and ``run_config`` (the validated
``RunConfig`` of one training), summarises its log with ``accuracy_summary`` and
``measured_energy_j``, and ends in ``save_result`` or ``save_untrained``, which return the typed
``methods.runs.results.Result`` they wrote.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import torch

from methods.base.io import CorruptFile, remove_checkpoint
from methods.base.config import ConfigError, Precision, RunConfig, Scale, load_precision, validate
from methods.base.data import balanced_subset, load_cifar, num_classes
from methods.models import knobs_at
from methods.runs import digest as dg
from methods.runs.results import Result, check_result, write_result
from methods.train.loop import device_of

#: Images per epoch in the papers' CIFAR training (REFERENCE.md section 1): costs are also given at this size.
PAPER_TRAIN_IMAGES = 50_000


@dataclass(frozen=True)
class StageContext:
    """Where and how the stages train, the same for every run of one workflow: the ``scale``
    (``benchmarks/scales/<name>.yaml``), the ``data_root`` holding CIFAR, the ``results`` root under
    which a run's folder is ``run.path(results)`` (``methods.runs.cells``; the workflow's is
    ``<results>/<scale>``) and whether torchvision may ``download`` CIFAR."""

    scale: Scale
    data_root: str
    results: str | None = field(default=None, kw_only=True)
    download: bool = field(default=False, kw_only=True)

    def folder(self, run, given=None) -> Path:
        """``given``, else the folder the workflow keeps ``run`` in.

        Raises:
            ValueError: neither ``given`` nor a ``results`` root.
        """
        if given is not None:
            return Path(given)
        if self.results is None:
            raise ValueError(f"no folder for {run.name}: pass its folder, or StageContext(..., results=<results>/<scale>)")
        return Path(run.path(self.results))


#: torch's own thread count, which ``threads: 0`` means (also for a later run of a batch).
_TORCH_THREADS = torch.get_num_threads()


def prepare(scale: Scale, dataset: str, data_root: str, download: bool):
    """Threads and FP32 maths for ``scale``; returns ``(device, classes, train, test)``, the scale's
    subsets of ``dataset`` on the device (read once per process). Every stage starts here.

    Raises:
        methods.base.data.DatasetError: the data root lacks the dataset (and ``download`` is off).
    """
    torch.set_num_threads(scale.threads or _TORCH_THREADS)
    # FP32 as in the original runs: TF32 convolutions could reorder gammas near the threshold.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = device_of(scale.device)
    classes = num_classes(dataset)
    train, test = _device_data(str(data_root), dataset, download, scale.train_images, scale.test_images, str(dev))
    return dev, classes, train, test


@functools.lru_cache(maxsize=2)
def _device_data(data_root: str, dataset: str, download: bool, train_images, test_images, dev: str):
    """The scale's subsets on the training device, read once per process: the runs of a grouped
    job (``methods batch``) share them. Nothing writes into them (augmentation copies)."""
    classes = num_classes(dataset)
    train, test = load_cifar(data_root, dataset, download)
    return (balanced_subset(train, train_images, classes).to(dev),
            balanced_subset(test, test_images, classes).to(dev))


def run_config(scale: Scale, model: str, dataset: str, milestones: list[int], lrs: list[float], seed: int,
               data_root: str, download: bool, **extra) -> RunConfig:
    """The validated ``RunConfig`` of one training at ``scale`` (milestones in epochs at this scale,
    one LR per phase); ``extra`` adds or overrides fields (RT: batch size, sparsity).

    Raises:
        ConfigError: a model with no knobs at this scale, or a bad field.
    """
    knobs = knobs_at(model, scale)
    if knobs is None:
        raise ConfigError(f"model {model!r} has no entry in scale {scale.name!r} (known: {sorted(scale.models)}); add "
                          f"models.{model} to its scale file or give register_model(..., scales={{{scale.name!r}: {{...}}}})")
    fields = dict(model=model, knobs=knobs, dataset=dataset, seed=seed, epochs=scale.epochs,
                  batch_size=scale.batch_size, test_batch_size=scale.test_batch_size, train_images=scale.train_images,
                  test_images=scale.test_images, milestones=milestones, lrs=lrs, data_root=str(data_root),
                  download=download, device=scale.device, threads=scale.threads, autocast=scale.autocast,
                  channels_last=scale.channels_last, compile=scale.compile)
    return validate(RunConfig, {**fields, **extra}, "run config")  # extra may override (RT: batch, sparsity)


def scaled_precision(name: str, scale: Scale) -> Precision | None:
    """The named format (``benchmarks/precisions.yaml``) with its SWA start mapped to ``scale``.

    Raises:
        ConfigError: unknown name or invalid entry.
    """
    lp = load_precision(name)
    if lp is None or lp.swa_start is None:
        return lp
    return lp.model_copy(update={"swa_start": scale.epoch(lp.swa_start)})


def accuracy_summary(log: list[dict]) -> dict:
    """``best_acc`` (%): the best test accuracy of the trained network over epochs (EB
    ``main_c_lp.py`` prints it as "Best accuracy"); ``swa_acc``: the last SWA evaluation
    (its "SWA accuracy"), None without SWA."""
    best = max(log, key=lambda r: r["test_acc"])
    swa = [r["swa_test_acc"] for r in log if "swa_test_acc" in r]
    return {"best_acc": best["test_acc"], "best_epoch": best["epoch"], "final_acc": log[-1]["test_acc"],
            "swa_acc": swa[-1] if swa else None}


#: ``no_ticket`` of a disconnected ticket a table specification refuses to train (``refuse_disconnected``).
REFUSED = ("refused: the ticket is disconnected (no path from input to logits) and the table specification sets "
           "refuse_disconnected")


def measured_energy_j(rows: list[dict]) -> float | None:
    """Joules a meter measured over the epochs ``rows`` (a result's ``log``); None if any epoch has none."""
    values = [r.get("energy_j") for r in rows]
    return None if any(v is None for v in values) else float(sum(values))


def save_result(out: Path, result: dict, digest_inputs) -> Result:
    """Every trained stage's last step: record the config digest (``methods.runs.digest``: what makes
    the result current), write ``out/result.json`` atomically and checked
    (``methods.runs.results.write_result``), then drop the checkpoint (only now: a kill before the
    write resumes from it) and mark the run finished. Returns the typed result written.

    Raises:
        ValueError: a recorded field missing or of the wrong type (``write_result``).
    """
    return _save(out, result, digest_inputs, trained=True)


def save_untrained(out: Path, result: dict, digest_inputs) -> Result:
    """``save_result`` for a run that trains nothing: no EB ticket to draw, or a refused ticket
    (``no_ticket``). Its result is current like a trained one, so a rerun does not try again.

    Raises:
        ValueError: as ``save_result``.
    """
    return _save(out, result, digest_inputs, trained=False)


def _save(out: Path, result: dict, digest_inputs, trained: bool) -> Result:
    result.update(dg.record(digest_inputs))
    write_result(out / "result.json", result)
    if trained:
        remove_checkpoint(out / "ckpt.pt")
    dg.finish(out, digest_inputs)
    return check_result(result, str(out / "result.json"))


def done_result(out: Path, inputs: dict, upstream: Path | None = None) -> Result | None:
    """The current result in ``out`` (``methods.runs.digest.current``: finished, and made with
    ``inputs``), typed; None when the stage must train.

    Raises:
        methods.base.io.CorruptFile: a result.json whose fields have the wrong types.
    """
    done = dg.current(out, inputs, upstream)
    if done is None:
        return None
    try:
        return check_result(done, str(out / "result.json"))
    except CorruptFile as e:
        raise CorruptFile(f"{e}; delete it to train the run again") from None

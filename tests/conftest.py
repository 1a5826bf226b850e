"""Shared fixtures: a CIFAR data root (the real ``shared/data`` when present, else a small
generated one in the same ``.npz`` layout)."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("CIFAR_ROOT", ROOT.parent / "shared" / "data"))


def write_fake_cifar(root: Path, per_class_train: int | dict[str, int] = 30, per_class_test: int = 10) -> Path:
    """Learnable fake CIFAR-10/100 npz files: each class a distinct colour plus noise.
    ``per_class_train``: one count for both datasets, or one per name ("cifar10", "cifar100")."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for name, classes in (("cifar10", 10), ("cifar100", 100)):
        arrays = {}
        colours = rng.integers(0, 256, (classes, 1, 1, 3))  # shared by train and test
        train = per_class_train[name] if isinstance(per_class_train, dict) else per_class_train
        for split, per in (("train", train), ("test", per_class_test)):
            y = np.repeat(np.arange(classes), per)
            x = np.clip(colours[y] + rng.normal(0, 30, (len(y), 32, 32, 3)), 0, 255).astype(np.uint8)
            arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y.astype(np.int64)
        np.savez_compressed(root / f"{name}.npz", **arrays)
    return root


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    if (SHARED_DATA / "cifar10.npz").is_file() and (SHARED_DATA / "cifar100.npz").is_file():
        return SHARED_DATA
    return write_fake_cifar(tmp_path_factory.mktemp("cifar"))


# One intra-op thread from the start, module- and session-scoped fixtures included: the suite runs
# beside the SLURM modules and Snakemake's jobs, where a second thread per process oversubscribes
# the two cores (a report build took 4x longer with two).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # a stage may have set the scale's threads


# ---- markers: `pytest -m fast` is the unit layer -------------------------------------------------
# Every test is `fast` unless marked `slow` (a Snakemake workflow or `python -m` processes, or
# multi-epoch training). Modules and tests whose files are edited elsewhere are marked slow here.
SLOW_MODULES = {"test_slurm.py", "test_slurm_accounting.py"}  # a throwaway SLURM cluster
SLOW_TESTS = {"test_plugins.py::test_plugins_add_a_table2_row_a_table1_model_and_a_table"}  # the tiny workflow with plug-ins


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = item.nodeid.rsplit("/", 1)[-1].split("[", 1)[0]  # test_x.py::test_y
        if name.split("::", 1)[0] in SLOW_MODULES or name in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.fast)
    # The readers of the shared tiny workflow tree run last: the tree builds in the background from the
    # session's start (``_tiny_tree_build``), on the core the single-threaded tests before them leave idle.
    items.sort(key=lambda item: "tiny_tree" in item.fixturenames)


# ---- shared runs, built once per session; read-only: a test that changes one works on a copy ---------

@pytest.fixture(scope="session")
def _tiny_search(tmp_path_factory, data_root):
    from methods.base.config import load_scale
    from methods.runs.cells import SearchRun
    from methods.stages.common import StageContext
    from methods.stages.eb import run_search

    out = tmp_path_factory.mktemp("tiny_search") / "s"
    res = run_search(SearchRun("vgg16", "cifar10", "80-120", 0.1, 1), StageContext(load_scale("tiny"), str(data_root)), out,
                     snapshot_epochs=["10", "20", "40", "final"])
    return out, res


@pytest.fixture
def tiny_search(_tiny_search):
    """One tiny VGG16 CIFAR-10 search (seed 1, [80,120], LR 0.1), snapshots at draws 10, 20, 40 and
    final (and the EB epochs): (its folder, its typed result). Read-only; copy the folder to change it."""
    out, res = _tiny_search
    return out, res.model_copy(deep=True)


def tiny_spec() -> dict:
    """The table specification of the tiny end-to-end run: every row, draw, model and both precisions
    on CIFAR-10 at p = 0.5 (CIFAR-100's cells and the other ratios are the same code), so CI stays short;
    the full cell lists are asserted by the dry runs of tests/test_workflow.py."""
    from methods.runs.cells import load_tables

    spec = load_tables()
    for name in ("table1", "table2", "table4", "figure1", "figure2", "figure5"):
        spec[name]["datasets"] = ["cifar10"]
    spec["table4"]["models"] = {"vgg16": [0.1, 0.5]}  # one new-LR search; PreResNet's is the same code
    spec["figure3"]["dataset"] = "cifar10"
    for name in ("table2", "figure1", "figure2"):  # one ratio: p = 0.3 and 0.7 are the same code (dry runs list them)
        spec[name]["ratios"] = [0.5]
    # RT: every arm, method and model family, each LR once: a ResNet and a VGG of each table
    spec["table8"].update(models={"resnet56": ["b"], "vgg16l1": ["a"]}, lrs=[0.1])
    spec["table9"].update(models=["resnet50", "vgg16bn"], ratios=[0.95], lrs=[0.01])
    return spec


class TinyTree:
    """A results folder (``results=``; the runs under ``<root>/tiny``) with its ``tables.yaml``."""

    def __init__(self, root: Path, data_root: Path, run=None):
        self.root, self.data_root, self.run = Path(root), Path(data_root), run
        self.tables = self.root / "tables.yaml"

    def cmd(self, *targets: str, cores: int = 2) -> list[str]:
        """The Snakemake command line that built this tree, for ``targets``."""
        import sys

        return [sys.executable, "-m", "snakemake", *targets, "--cores", str(cores), "--config", "scale=tiny",
                f"results={self.root}", f"data_root={self.data_root}", f"tables={self.tables}"]

    def copy(self, dest: Path) -> "TinyTree":
        """A copy at ``dest`` (times kept: Snakemake finds it as done as this one; it has no metadata for
        the copy, which it reads as unchanged)."""
        import shutil

        shutil.copytree(self.root, dest, symlinks=True)
        return TinyTree(dest, self.data_root)


@pytest.fixture(scope="session", autouse=True)
def _tiny_tree_build(request, tmp_path_factory, data_root):
    """Start ``snakemake all_tables`` of the shared tiny tree (``tiny_tree``) at the session's start,
    as a background process, when a collected test reads the tree: it takes about 5 minutes of both
    cores, and most tests before its readers (sorted last) use one core. Output goes to files, so a
    full pipe never stalls it; stopped at the session's end if still running."""
    import subprocess

    import yaml

    if not any("tiny_tree" in item.fixturenames for item in request.session.items):
        yield None
        return
    tree = TinyTree(tmp_path_factory.mktemp("tiny_tree"), data_root)
    tree.tables.write_text(yaml.safe_dump(tiny_spec()))
    out, err = (open(tree.root.parent / f"tiny_tree.{k}", "w+") for k in ("out", "err"))
    # its own process group: a session stopped early (-x, Ctrl-C) stops Snakemake and the jobs it started
    proc = subprocess.Popen(tree.cmd("all_tables"), cwd=ROOT, stdout=out, stderr=err, text=True, start_new_session=True)
    try:
        yield tree, proc, out, err
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # Snakemake waits for running jobs on SIGTERM
            proc.wait(timeout=60)
        out.close(), err.close()


@pytest.fixture(scope="session")
def tiny_tree(_tiny_tree_build) -> TinyTree:
    """The whole tiny workflow for real, once (``snakemake all_tables`` at scale tiny through
    ``tiny_spec()``): every rule and page, started in the background at the session's start
    (``_tiny_tree_build``). Read-only: a test that changes it works on ``.copy()``."""
    import subprocess

    tree, proc, out, err = _tiny_tree_build
    try:
        rc = proc.wait(timeout=1500)
    except subprocess.TimeoutExpired:
        err.seek(0)
        pytest.fail(f"the tiny tree took over 1500 s: {err.read()[-3000:]}")
    out.seek(0), err.seek(0)
    tree.run = subprocess.CompletedProcess(proc.args, rc, out.read(), err.read())
    assert rc == 0, tree.run.stderr[-3000:]
    return tree

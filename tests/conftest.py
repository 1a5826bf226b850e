"""Shared fixtures: a CIFAR data root (the real ``shared/data`` when present, else a small
generated one in the same ``.npz`` layout)."""
from __future__ import annotations

import os
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


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)

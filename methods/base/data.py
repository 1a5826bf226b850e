"""CIFAR-10/100 as uint8 tensors, with batched on-device augmentation.

Two layouts are read from a data root: the ``.npz`` files of ``shared/data`` (``cifar10.npz``,
``cifar100.npz``; HWC uint8) and torchvision's pickles (``cifar-10-batches-py/``,
``cifar-100-python/``), downloaded through torchvision when absent and allowed.
Augmentation follows EB ``main.py``: pad 4, random 32x32 crop, random horizontal flip, then
normalisation with the CIFAR-10 statistics for both datasets (REFERENCE.md section 2).
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

#: EB ``main.py`` normalisation, used for CIFAR-100 too.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)

DATASETS = {
    "cifar10": {"classes": 10, "npz": "cifar10.npz", "dir": "cifar-10-batches-py",
                "train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"], "label": "labels"},
    "cifar100": {"classes": 100, "npz": "cifar100.npz", "dir": "cifar-100-python",
                 "train": ["train"], "test": ["test"], "label": "fine_labels"},
}


class DatasetError(RuntimeError):
    """The dataset is missing or unreadable under the data root."""


@dataclass(frozen=True)
class Split:
    """Images ``x`` uint8 ``(N, 3, 32, 32)`` and labels ``y`` int64 ``(N,)``."""

    x: torch.Tensor
    y: torch.Tensor

    def to(self, device) -> "Split":
        return Split(self.x.to(device), self.y.to(device))


def num_classes(name: str) -> int:
    """Number of classes of dataset ``name``; raises ValueError for an unknown dataset."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]["classes"]


def _read_npz(path: Path):
    with np.load(path) as z:
        return (z["x_train"].transpose(0, 3, 1, 2), z["y_train"], z["x_test"].transpose(0, 3, 1, 2), z["y_test"])


def _read_pickles(folder: Path, spec: dict):
    def read(names):
        xs, ys = [], []
        for n in names:
            with open(folder / n, "rb") as f:
                d = pickle.load(f, encoding="latin1")
            xs.append(np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d[spec["label"]], dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)

    return (*read(spec["train"]), *read(spec["test"]))


def _download(root: Path, name: str) -> None:
    """torchvision download under an exclusive lock, so parallel jobs fetch and extract once."""
    import fcntl

    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{name}.download.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for train in (True, False):
            cls(str(root), train=train, download=True)


def load_cifar(root, name: str, download: bool = False) -> tuple[Split, Split]:
    """Load ``name`` ("cifar10" or "cifar100") from ``root``; returns (train, test) on the CPU.

    torchvision's folder wins over the ``.npz`` when both exist (the shared ``.npz`` keeps only
    25,000 of the 50,000 training images; results record how many were used).

    Raises:
        ValueError: unknown dataset name.
        DatasetError: neither layout is readable under ``root`` (and download is off or failed).
    """
    spec = DATASETS[name] if name in DATASETS else num_classes(name)
    root = Path(root).expanduser()
    npz, folder = root / spec["npz"], root / spec["dir"]
    hint = (f"{name} not found or unreadable under data root {root}: expected {npz} (npz layout, "
            f"as in shared/data) or {folder}/ (torchvision layout); set data_root or allow download")
    try:
        if folder.is_dir():  # preferred: torchvision's layout holds the whole training set
            arrays = _read_pickles(folder, spec)
        elif npz.is_file():
            arrays = _read_npz(npz)
        elif download:
            _download(root, name)
            arrays = _read_pickles(folder, spec)
        else:
            raise DatasetError(hint)
    except DatasetError:
        raise
    except Exception as e:  # corrupt archive, truncated pickle, failed download
        raise DatasetError(f"{hint} ({type(e).__name__}: {e})") from e
    xtr, ytr, xte, yte = (torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)
    if xtr.dtype != torch.uint8 or xtr.shape[1:] != (3, 32, 32) or xte.shape[1:] != (3, 32, 32):
        raise DatasetError(f"{hint} (unexpected images: {xtr.dtype} {tuple(xtr.shape)}, expected uint8 (N, 3, 32, 32))")
    low, high = min(int(ytr.min()), int(yte.min())), max(int(ytr.max()), int(yte.max()))
    if low < 0 or high >= spec["classes"]:  # e.g. CIFAR-100's files under CIFAR-10's name
        raise DatasetError(f"{name} under {root} is mislabelled: labels {low}..{high}, expected 0..{spec['classes'] - 1}")
    return Split(xtr, ytr.long()), Split(xte, yte.long())


def balanced_subset(split: Split, total: int | None, classes: int) -> Split:
    """The first ``total // classes`` images of each class, in dataset order; ``None`` keeps all."""
    if total is None:
        return split
    per = max(1, total // classes)
    keep = torch.cat([torch.nonzero(split.y == c).flatten()[:per] for c in range(classes)]).sort().values
    return Split(split.x[keep], split.y[keep])


def normalize(x: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` -> float32 normalised with ``MEAN``/``STD``."""
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x.float().div_(255) - mean) / std


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Pad 4 (zeros), random 32x32 crop and random horizontal flip of a uint8 batch, batched.

    ``x``: uint8 ``(B, 3, 32, 32)`` on any device; ``gen`` a generator on the same device.
    Returns normalised float32 ``(B, 3, 32, 32)``. Zero padding of the raw image matches
    torchvision's ``RandomCrop(32, padding=4)`` applied before ``ToTensor``/``Normalize``.
    """
    b, dev = x.shape[0], x.device
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    oy = torch.randint(0, 9, (b,), device=dev, generator=gen)
    ox = torch.randint(0, 9, (b,), device=dev, generator=gen)
    flip = torch.rand(b, device=dev, generator=gen) < 0.5
    ar = torch.arange(32, device=dev)
    rows = (oy[:, None] + ar[None]).view(b, 1, 32, 1)
    cols = ox[:, None] + ar[None]
    cols = torch.where(flip[:, None], cols.flip(1), cols).view(b, 1, 1, 32)
    out = padded[torch.arange(b, device=dev).view(b, 1, 1, 1), torch.arange(3, device=dev).view(1, 3, 1, 1), rows, cols]
    return normalize(out)

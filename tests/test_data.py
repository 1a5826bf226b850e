"""Data layouts, class-balanced subsets, batched augmentation and clear errors."""
import pickle

import numpy as np
import pytest
import torch

from methods.base.data import DatasetError, Split, augment, balanced_subset, load_cifar, normalize


def _write_torchvision_layout(root, train: Split, test: Split):
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    x = train.x.numpy().reshape(len(train.y), -1)
    for i, part in enumerate(np.array_split(np.arange(len(train.y)), 5), 1):
        with open(d / f"data_batch_{i}", "wb") as f:
            pickle.dump({"data": x[part], "labels": train.y.numpy()[part].tolist()}, f)
    with open(d / "test_batch", "wb") as f:
        pickle.dump({"data": test.x.numpy().reshape(len(test.y), -1), "labels": test.y.tolist()}, f)


def test_npz_and_torchvision_layouts_agree(data_root, tmp_path):
    train, test = load_cifar(data_root, "cifar10")
    assert train.x.dtype == torch.uint8 and train.x.shape[1:] == (3, 32, 32)
    sub, subt = balanced_subset(train, 500, 10), balanced_subset(test, 100, 10)
    _write_torchvision_layout(tmp_path, sub, subt)
    tr2, te2 = load_cifar(tmp_path, "cifar10")
    assert torch.equal(tr2.x, sub.x) and torch.equal(tr2.y, sub.y) and torch.equal(te2.x, subt.x)


def test_balanced_subset_counts(data_root):
    train, _ = load_cifar(data_root, "cifar100")
    sub = balanced_subset(train, 1000, 100)
    assert len(sub.y) == 1000 and torch.bincount(sub.y, minlength=100).tolist() == [10] * 100


def test_missing_dataset_names_root_and_both_layouts(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_cifar(tmp_path, "cifar100")
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path) in msg and "cifar100.npz" in msg and "cifar-100-python" in msg


def test_corrupt_npz_is_reported(tmp_path):
    (tmp_path / "cifar10.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="unreadable"):
        load_cifar(tmp_path, "cifar10")


def test_augment_is_a_padded_crop_or_its_mirror():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    out = augment(x, g)
    padded = normalize(torch.nn.functional.pad(x, (4, 4, 4, 4)))
    flips = 0
    for i in range(16):
        views = {(dy, dx, f): padded[i, :, dy:dy + 32, dx:dx + 32] for dy in range(9) for dx in range(9) for f in (0, 1)}
        crops = {k for k, v in views.items() if torch.allclose(v.flip(2) if k[2] else v, out[i])}
        assert len(crops) >= 1
        flips += min(crops)[2]
    assert 0 < flips < 16  # both flipped and unflipped samples occur
    assert torch.equal(augment(x, torch.Generator().manual_seed(5)), augment(x, torch.Generator().manual_seed(5)))

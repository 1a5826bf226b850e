"""Bad input on the command line ends with one line naming the fix (exit status 2)."""
import subprocess
import sys

import pytest

from methods.base.config import ROOT


def run(*args):
    return subprocess.run([sys.executable, "-m", "methods", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args,needle", [
    (["flops", "--model", "resnet9"], "invalid choice: 'resnet9'"),
    (["flops", "--model", "vgg16", "--scale", "huge"], "unknown scale 'huge'"),
    (["search", "--model", "vgg16", "--dataset", "cifar10", "--schedule", "30-60", "--out", "x"], "invalid choice: '30-60'"),
    (["search", "--model", "vgg16", "--dataset", "svhn", "--out", "x"], "invalid choice: 'svhn'"),
    (["retrain", "--search", "x", "--ratio", "1.5", "--draw", "10", "--out", "y"], "pruning ratio must lie in (0, 1)"),
    (["search", "--scale", "tiny", "--model", "vgg16", "--dataset", "cifar10", "--precision", "int8", "--out", "x"],
     "unknown precision 'int8'; choose one of ['bfp8', 'fp32']"),
])
def test_bad_arguments_fail_in_one_line(args, needle, capsys, tmp_path, monkeypatch):
    """``main`` in this process (the exit status a process gets: test_missing_dataset_fails_before_training)."""
    from methods.__main__ import main

    monkeypatch.chdir(tmp_path)  # the relative --out folders, were one made
    try:
        rc = main(list(args))
    except SystemExit as e:  # argparse
        rc = e.code
    assert rc == 2 and needle in capsys.readouterr().err


@pytest.mark.slow
def test_missing_dataset_fails_before_training(tmp_path):
    p = run("search", "--scale", "tiny", "--model", "vgg16", "--dataset", "cifar10", "--data-root", str(tmp_path / "none"),
            "--out", str(tmp_path / "run"))
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "cifar-10-batches-py" in lines[0] and "cifar10.npz" in lines[0]
    assert not (tmp_path / "run" / "ckpt.pt").exists()

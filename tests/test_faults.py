"""Fault injection: a tiny run killed with SIGKILL at several points (mid-epoch, during a
checkpoint write, during the result write, during aggregation), or stopped by the cluster's
signals, and then rerun, ends with exactly the result of an uninterrupted run; truncated or
damaged checkpoints and result files are detected and never used."""
from __future__ import annotations

import signal
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from methods.base.io import CorruptFile, load_checkpoint, read_json, save_checkpoint, write_json

ROOT = Path(__file__).resolve().parent.parent

# A child process that installs one fault, then runs `python -m methods ARGS` (or the reports).
# step:K   SIGKILL in the K-th optimizer step (tiny: 7 steps an epoch)
# write:NAME:K  SIGKILL halfway through writing the K-th file called NAME (a temporary left behind)
HARNESS = r'''
import os, signal, sys
fault, entry, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
kind, *spec = fault.split(":")
calls = [0]
def die():
    os.kill(os.getpid(), signal.SIGKILL)
if kind == "step":
    import torch
    real = torch.optim.SGD.step
    def step(self, *a, **k):
        calls[0] += 1
        if calls[0] == int(spec[0]):
            die()
        return real(self, *a, **k)
    torch.optim.SGD.step = step
elif kind == "write":
    import io, tempfile
    from pathlib import Path
    import methods.base.io as mio
    real = mio._atomic
    def atomic(path, write):
        path = Path(path)
        if path.name == spec[0]:
            calls[0] += 1
            if calls[0] == int(spec[1]):
                buf = io.BytesIO()
                write(buf)
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
                os.write(fd, buf.getvalue()[: len(buf.getvalue()) // 2])
                os.fsync(fd)
                die()
        return real(path, write)
    mio._atomic = atomic
if entry == "reports":
    from reports.__main__ import main
else:
    from methods.__main__ import main
sys.exit(main(argv))
'''


def _child(fault, entry, *args):
    return subprocess.run([sys.executable, "-c", HARNESS, fault, entry, *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def _search(out, data_root):
    return ["search", "--scale", "tiny", "--data-root", data_root, "--model", "vgg16", "--dataset", "cifar10",
            "--snapshot-epochs", "20,final", "--out", out]


def _comparable(res):
    return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s", "energy_j")} for r in res["log"]]


def _same_search(a: Path, b: Path):
    ra, rb = read_json(a / "result.json"), read_json(b / "result.json")
    assert _comparable(ra) == _comparable(rb) and ra["eb_epochs"] == rb["eb_epochs"] and ra["best_acc"] == rb["best_acc"]
    ha, hb = np.load(a / "history.npz"), np.load(b / "history.npz")
    assert sorted(ha.files) == sorted(hb.files) and all(np.array_equal(ha[k], hb[k]) for k in ha.files)
    assert sorted(p.name for p in (a / "snapshots").iterdir()) == sorted(p.name for p in (b / "snapshots").iterdir())
    assert not list(b.rglob("*.tmp")) and not (b / "ckpt.pt").exists() and not (b / "ckpt.prev.pt").exists()


def _main(*args) -> int:
    """``python -m methods ARGS`` in this process: the same ``main`` the children run, for the runs no
    fault touches (what a killed child must equal, and the rerun that resumes it from its files)."""
    from methods.__main__ import main

    return main([str(a) for a in args])


def _rerun(capfd, *args) -> tuple[int, str]:
    """``_main(*args)`` after a killed child: (exit status, what it wrote to stderr)."""
    capfd.readouterr()
    rc = _main(*args)
    return rc, capfd.readouterr().err


@pytest.fixture(scope="module")
def clean(tmp_path_factory, data_root):
    """The uninterrupted search."""
    out = tmp_path_factory.mktemp("clean") / "run"
    assert _main(*_search(out, data_root)) == 0
    return out


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["step:38", "write:ckpt.pt:4", "write:result.json:1"])
def test_a_search_killed_and_rerun_equals_an_uninterrupted_one(fault, clean, tmp_path, data_root, capfd):
    out = tmp_path / "run"
    killed = _child(fault, "methods", *_search(out, data_root))
    assert killed.returncode == -signal.SIGKILL and not (out / "result.json").exists()
    if fault.startswith("write"):
        assert list(out.glob(".*.tmp"))  # the half-written temporary the kill left
    rc, err = _rerun(capfd, *_search(out, data_root))
    assert rc == 0, err[-2000:]
    assert "resuming after epoch" in err
    _same_search(clean, out)


@pytest.mark.slow
def test_a_killed_retraining_resumes_mid_run(clean, tmp_path, data_root, capfd):
    args = ["retrain", "--scale", "tiny", "--data-root", data_root, "--search", clean, "--ratio", "0.5", "--draw", "20",
            "--init", "rewind"]
    assert _main(*args, "--out", tmp_path / "a") == 0  # uninterrupted
    assert _child("step:50", "methods", *args, "--out", tmp_path / "b").returncode == -signal.SIGKILL
    rc, err = _rerun(capfd, *args, "--out", tmp_path / "b")
    assert rc == 0 and "resuming after epoch" in err, err[-2000:]
    assert _comparable(read_json(tmp_path / "a" / "result.json")) == _comparable(read_json(tmp_path / "b" / "result.json"))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM])
def test_a_cluster_signal_checkpoints_stops_and_resumes(sig, clean, tmp_path, data_root, capfd):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "methods", *_search(out, data_root)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not (out / "ckpt.pt").exists() and time.time() - t0 < 120:  # training has started: handlers installed
        time.sleep(0.05)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, stderr[-2000:]
    assert f"preempted: {signal.Signals(sig).name}: stopped with the checkpoint after epoch" in stderr
    stopped = int(stderr.split("checkpoint after epoch ")[1].split(";")[0])
    assert load_checkpoint(out / "ckpt.pt")["epoch"] == stopped < 16 and not (out / "result.json").exists()
    rc, err = _rerun(capfd, *_search(out, data_root))
    assert rc == 0 and f"resuming after epoch {stopped}" in err, err[-2000:]
    _same_search(clean, out)


def test_a_truncated_or_damaged_checkpoint_is_never_used(tmp_path, capsys):
    ck = tmp_path / "ckpt.pt"
    for epoch in (1, 2):
        save_checkpoint(ck, {"epoch": epoch})
    assert load_checkpoint(tmp_path / "ckpt.prev.pt") == {"epoch": 1}  # the predecessor kept beside it
    data = ck.read_bytes()
    ck.write_bytes(data[: len(data) // 2])  # truncated
    assert load_checkpoint(ck) == {"epoch": 1}
    assert "corrupt" in capsys.readouterr().err and not ck.exists() and (tmp_path / "ckpt.pt.corrupt").is_file()
    save_checkpoint(ck, {"epoch": 2})  # keeps epoch 1 as the previous one
    damaged = bytearray(ck.read_bytes())
    damaged[len(damaged) // 3] ^= 0xFF  # one byte flipped: torch would load it; the checksum does not
    ck.write_bytes(bytes(damaged))
    (tmp_path / "ckpt.prev.pt").write_bytes(b"")  # and the previous one empty
    assert load_checkpoint(ck) is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "does not match its checksum" in err[0] and err[0].endswith("trying the previous checkpoint")
    assert err[1].endswith("starting over")


@pytest.mark.slow
def test_a_truncated_or_edited_result_is_rejected_and_retrained(clean, tmp_path, data_root, capfd):
    f = tmp_path / "r.json"
    write_json(f, {"best_acc": 71.5})
    assert read_json(f) == {"best_acc": 71.5}
    text = f.read_text()
    f.write_text(text.replace("71.5", "75.5"))
    with pytest.raises(CorruptFile, match=r"does not match its checksum\); delete it"):
        read_json(f)
    f.write_text(text[: len(text) // 2])
    with pytest.raises(CorruptFile, match="not valid JSON"):
        read_json(f)
    # a stage finds its own result truncated: it says so and trains the run again, bitwise the same
    out = tmp_path / "run"
    shutil.copytree(clean, out)
    res = (out / "result.json").read_text()
    (out / "result.json").write_text(res[:100])
    rc, err = _rerun(capfd, *_search(out, data_root))
    assert rc == 0 and "not valid JSON" in err and "training the run again" in err, err[-2000:]
    _same_search(clean, out)
    # a retraining reading a damaged search result stops with one line naming the file
    (out / "result.json").write_text(res.replace('"kind": "search"', '"kind": "dense"'))
    rc, err = _rerun(capfd, "retrain", "--scale", "tiny", "--data-root", data_root, "--search", out, "--ratio", "0.5",
                     "--draw", "20", "--out", tmp_path / "r")
    assert rc == 2 and err.strip().splitlines()[-1].startswith(f"error: corrupt {out / 'result.json'}")


@pytest.mark.slow
def test_a_report_killed_while_writing_its_table_rebuilds_the_same_table(tmp_path):
    results = tmp_path / "results"
    (results / "tiny").mkdir(parents=True)  # every cell pending: the table is still written in full
    args = ["table1", "--scale", "tiny", "--results", results / "tiny"]
    from reports.__main__ import main as reports

    assert reports([str(a) for a in args]) == 0  # in this process: only the killed build needs its own
    first = (results / "tiny" / "tables" / "table1.csv").read_text()
    (results / "tiny" / "tables" / "table1.csv").unlink()
    assert _child("write:table1.csv:1", "reports", *args).returncode == -signal.SIGKILL
    assert not (results / "tiny" / "tables" / "table1.csv").exists()
    assert reports([str(a) for a in args]) == 0
    assert (results / "tiny" / "tables" / "table1.csv").read_text() == first
    assert not list((results / "tiny").rglob("*.tmp"))

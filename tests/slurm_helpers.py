"""What the SLURM test modules share: a copy of the suite on a trimmed specification, and the
processes, logs and waits they assert on."""
from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import yaml

from conftest import write_fake_cifar

ROOT = Path(__file__).resolve().parent.parent
# The plugin's first status check after 2 s, not 40: the tests wait on jobs of seconds.
FAST = ["--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs"]


def make_suite(d: Path, train_images: int, per_class_train: dict[str, int], table1: dict) -> Path:
    """A copy of the suite in ``d`` (what a clean clone has, its own ``.snakemake``): the tiny scale with
    ``train_images`` (a run trains min(that, the fake dataset's) images), fake CIFAR with
    ``per_class_train`` training images per class and 20 test images, and a specification of Table 1 alone,
    ``table1`` overriding its keys."""
    for f in ("Snakefile", "config.yaml"):
        shutil.copy(ROOT / f, d / f)
    for sub in ("methods", "reports", "benchmarks", "slurm", "profiles"):
        if (ROOT / sub).is_dir():
            shutil.copytree(ROOT / sub, d / sub, ignore=shutil.ignore_patterns("__pycache__"))
    tiny = yaml.safe_load((d / "benchmarks/scales/tiny.yaml").read_text())
    tiny.update(train_images=train_images, test_images=200)
    (d / "benchmarks/scales/tiny.yaml").write_text(yaml.safe_dump(tiny))
    spec = yaml.safe_load((ROOT / "benchmarks/tables.yaml").read_text())
    (d / "tables.yaml").write_text(yaml.safe_dump({"table1": dict(spec["table1"], **table1)}))
    write_fake_cifar(d / "data", per_class_train, per_class_test=20)
    return d


def snakemake_config(suite: Path) -> list[str]:
    return ["--config", "scale=tiny", f"results={suite / 'results'}", f"data_root={suite / 'data'}",
            f"tables={suite / 'tables.yaml'}"]


def epochs_in(text: str) -> list[int]:
    return [int(m) for m in re.findall(r"epoch (\d+)/16", text)]


def epochs(log: Path) -> list[int]:
    return epochs_in(log.read_text()) if log.is_file() else []


def attempts(log: Path) -> list[str]:
    """The log's attempts, each from its ``== attempt`` line (methods/base/attempts.py)."""
    return log.read_text().split("== attempt")[1:] if log.is_file() else []


def trainers(folder: Path) -> list[int]:
    """Pids of the processes training into ``folder`` (the trainer only: not shells, not Snakemake), by
    their ``--out``, absolute (the profile run) or relative to the process's folder (rerun); exactly
    ``folder``: other test runs on this machine train folders of the same name. -ww: ps cuts command
    lines to 80 columns when its output is no terminal."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    pids = []
    for line in out.splitlines():
        pid, _, args = line.strip().partition(" ")
        m = re.search(r"--out (\S+)", args)
        if (not m or " -m methods " not in args or "snakemake" in args
                or args.startswith(("/bin/bash", "/usr/bin/bash", "bash", "sh ", "/bin/sh"))):
            continue
        try:
            if (Path(f"/proc/{pid}/cwd").resolve() / m[1]).resolve() == folder.resolve():
                pids.append(int(pid))
        except OSError:  # ended meanwhile
            pass
    return pids


def until(cond, timeout: float, what: str, proc=None):
    """``cond()``'s first true value; fails at ``timeout`` or as soon as ``proc`` has exited."""
    end = time.time() + timeout
    while time.time() < end:
        if v := cond():
            return v
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited ({proc.returncode}) while waiting for {what}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def popen(cmd, cwd, env):
    """The process and the list its output lines are appended to as they come."""
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out: list[str] = []
    threading.Thread(target=lambda: out.extend(p.stdout), daemon=True).start()
    return p, out


def tres(job: dict) -> set[str]:
    return set(job.get("TRES", "").split(","))


def cluster_mark(accounting: bool):
    """The SLURM modules' skip mark: skipped with one line where no cluster can start (not root,
    packages missing); under CI=true that is an error instead (CI must run them)."""
    import os

    import pytest

    from slurm_cluster import why_not

    why = why_not(accounting=accounting)
    if why and os.environ.get("CI") == "true":
        raise RuntimeError(f"CI must run the SLURM tests: {why}")
    return pytest.mark.skipif(bool(why), reason=why or "")

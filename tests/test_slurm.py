"""The SLURM profile and ``methods rerun --slurm`` on a real single-node SLURM 22.05 (tests/slurm_cluster.py),
one cluster for the module, without accounting (no slurmdbd: ``sacct`` has nothing to say), as the
second profile (slurm/no-accounting.yaml) supports: completion noticed through squeue, resources as
submitted despite a command-line override, a killed trainer retried and resumed with its whole log,
the cell in the job's comment; then ``rerun --slurm --wait`` warned as submitit's time limit would
(USR2): its epoch finished, no orphan, no lock, requeued once (the module's only requeue), resumed;
and ``rerun --slurm`` cancelled (``scancel``): the trainer stops with its checkpoint, no lock is left.

Tiny scale on a one-cell specification (table1 vgg16/80-120/cifar10/10: a search and a retraining), in a
copy of the suite (its own ``.snakemake``), with epochs made long enough (1000 images) to interrupt. \
The module takes about 4 minutes.
Skipped with one line where no cluster can start (not root, packages missing), except in CI.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slurm_cluster import Cluster
from slurm_helpers import (cluster_mark, FAST, attempts, epochs, epochs_in, make_suite, popen, snakemake_config, tres,
                           trainers, until)

CELL = "vgg16/80-120/cifar10/10"
SEARCH = "vgg16-cifar10-80-120-lr0.1-s1"
RUN = "p0.5-e10-fresh-80-120-lr0.1"
# slurm/resources.yaml (the GPU: TresPerJob/TresPerNode, gres/gpu is no TRES without slurmdbd)
TRAIN_TRES = {"cpu=4", "mem=16000M"}

pytestmark = cluster_mark(accounting=False)


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    """A copy of the suite (what a clean clone has), one-cell specification, longer tiny epochs: 1000 of
    the fake 2000 CIFAR-10 training images (an epoch of about 1 s here)."""
    return make_suite(tmp_path_factory.mktemp("suite"), 1000, {"cifar10": 200, "cifar100": 20},
                      dict(models=["vgg16"], datasets=["cifar10"], schedules=["80-120"], draws=["10"], runs=1))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # MinJobAge an hour: squeue (the plugin's status command here) and scontrol know every job of the module
    with Cluster(tmp_path_factory.mktemp("slurm"), accounting=False, min_job_age=3600) as c:
        yield c


def test_profile_without_accounting(suite, cluster):
    """``snakemake --profile slurm --profile slurm/no-accounting.yaml`` as a user runs it on a cluster without
    accounting (the cell's search only: the retraining is the rerun test's), with one resource overridden on
    the command line (search:runtime=10). The search's trainer is SIGKILLed after two epochs: the job fails,
    Snakemake notices it through squeue and retries it as a new SLURM job, which resumes from the checkpoint;
    the run's log keeps both attempts. Snakemake notices the end through squeue and exits 0."""
    t0 = time.time()
    res = suite / "results" / "tiny"
    s_dir, r_dir = res / "search" / SEARCH, res / "search" / SEARCH / "retrain" / RUN
    s_log = s_dir / "log.txt"
    # no accounting: what makes the first profile (sacct) wait forever on finished jobs
    sacct = subprocess.run(["sacct", "-X"], env=cluster.env, capture_output=True, text=True)
    assert "accounting storage is disabled" in (sacct.stdout + sacct.stderr).lower(), sacct
    cmd = [sys.executable, "-m", "snakemake", "--profile", "slurm", "--profile", "slurm/no-accounting.yaml",
           str(s_dir / "result.json"), *FAST, "--set-resources", "search:runtime=10", *snakemake_config(suite)]
    smk, out = popen(cmd, suite, cluster.env)
    try:
        until(lambda: len(epochs(s_log)) >= 2 and trainers(s_dir), 180, "the search's second epoch", smk)
        killed = trainers(s_dir)
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        until(lambda: len(attempts(s_log)) >= 2 and trainers(s_dir), 120, "the search's retry", smk)
        assert not set(killed) & set(trainers(s_dir))
        assert smk.wait(timeout=300) == 0, "".join(out)[-4000:]
    except BaseException:
        print("".join(out)[-6000:], *(f"--- {f}\n{f.read_text(errors='replace')[-2000:]}"
                                      for f in suite.glob(".snakemake/slurm_logs/**/*.log")))
        raise
    finally:
        if smk.poll() is None:
            smk.send_signal(signal.SIGINT)  # Snakemake cancels its SLURM jobs
            smk.wait(timeout=60)
    log = "".join(out)
    print(f"\nprofile run: {time.time() - t0:.0f} s")
    assert (s_dir / "result.json").is_file()
    # Snakemake's own words on which status command it used
    assert not re.search(r"Falling back to 'sacct'", log), log[-3000:]

    # Every job of the run, as squeue shows it (the module's MinJobAge keeps finished ones): %k is the comment.
    rows = sorted((line.split("|") for line in cluster.run("squeue", "-h", "--states=all", "-o", "%i|%T|%k").splitlines()),
                  key=lambda r: int(r[0]))
    print("squeue -o '%i|%T|%k':\n" + "\n".join("|".join(r) for r in rows))
    # The search: killed (its job FAILED, as the trainer's exit status made it), then Snakemake's retry,
    # a second job, COMPLETED; both with the cell in the comment column.
    assert [(t, c) for _, t, c in rows] == [("FAILED", f"rule_search_wildcards_{SEARCH}"),
                                           ("COMPLETED", f"rule_search_wildcards_{SEARCH}")], rows
    ids = [i for i, _, _ in rows]
    assert all(f"SLURM jobid {i}" in log for i in ids)  # Snakemake submitted and followed both
    for j in map(cluster.job, ids):
        print(f"scontrol show job {j['JobId']}: JobName={j['JobName']} JobState={j['JobState']} Restarts={j['Restarts']} "
              f"ExitCode={j['ExitCode']} TimeLimit={j['TimeLimit']} TRES={j['TRES']} TresPerJob={j.get('TresPerJob')} "
              f"Comment={j['Comment']}")
        # GPU, 4 CPUs, 16000M from slurm/resources.yaml, kept though the command line set a runtime
        assert tres(j) >= TRAIN_TRES and j["TresPerJob"] == "gres:gpu:1", j  # sbatch --gpus=1
        assert j["TimeLimit"] == "00:10:00"  # the override
        assert j["Restarts"] == "0"

    # The search's log keeps both attempts; the second resumed from the first's checkpoint.
    tries = attempts(s_log)
    print(f"search log attempts: {[a.splitlines()[0] for a in tries]}")
    assert len(tries) == 2, s_log.read_text()[-3000:]
    assert [f"SLURM job {i} (restart 0)" in a.splitlines()[0] for i, a in zip(ids, tries)] == [True, True]
    first, second = (epochs_in(a) for a in tries)
    assert first[:2] == [1, 2] and re.search(r"resuming after epoch (\d+)", tries[1])
    resumed = int(re.search(r"resuming after epoch (\d+)", tries[1])[1])
    assert second[0] == resumed + 1 and second[-1] == 16 and resumed >= 2
    assert not (s_dir / ".log.history").exists()  # removed once the run succeeded
    assert not trainers(s_dir) and not trainers(r_dir)  # nothing left running
    assert not list((suite / ".snakemake" / "locks").glob("*.lock"))


def _rerun(suite: Path, cluster, *flags: str):
    """``methods rerun table1 CELL --slurm [flags]`` started in the suite copy: (process, its output lines)."""
    cmd = [sys.executable, "-m", "methods", "rerun", "table1", CELL, "--scale", "tiny", "--results", str(suite / "results"),
           "--data-root", str(suite / "data"), "--tables", str(suite / "tables.yaml"), "--slurm", *flags]
    return popen(cmd, suite, cluster.env)


def _print_submitit(out: list[str], suite: Path) -> None:
    """The command's output and submitit's files, for a failing test (the files include pickles: read as
    text, undecodable bytes replaced)."""
    print("".join(out)[-6000:], *(f"--- {f}\n{f.read_text(errors='replace')[-2000:]}"
                                  for f in (suite / "results" / "submitit").glob("*")))


def test_rerun_slurm_warned_requeued_and_resumed(suite, cluster):
    """``methods rerun --slurm --wait`` after the profile run: submitit's USR2 warning mid-training reaches
    the trainer alone (it finishes its epoch; Snakemake and the job step live on), Snakemake unlocks,
    submitit requeues the job; the requeued job resumes the run and the command prints the cell's result."""
    t0 = time.time()
    res = suite / "results" / "tiny"
    r_dir = res / "search" / SEARCH / "retrain" / RUN
    r_log = r_dir / "log.txt"
    if not (res / "search" / SEARCH / "result.json").is_file():
        pytest.skip("needs the search the profile test trains")
    p, out = _rerun(suite, cluster, "--wait")
    try:
        jobid = until(lambda: next((m[1] for line in list(out) if (m := re.search(r" as job (\d+);", line))), None),
                       60, "the job id", p)
        # two epochs into the job's first attempt (the forced rerun starts the log afresh)
        until(lambda: (a := attempts(r_log)) and f"SLURM job {jobid} (restart 0)" in a[-1]
               and len(epochs_in(a[-1])) >= 2 and trainers(r_dir), 240, "two epochs", p)
        trainer = trainers(r_dir)
        running = cluster.job(jobid)
        # submitit's warning (--signal=USR2@180) as SLURM sends it: to every process of the job's steps
        cluster.run("scancel", "--signal=USR2", jobid)
        until(lambda: cluster.job(jobid)["Restarts"] == "1", 120, "the requeue", p)
        assert not set(trainer) & set(trainers(r_dir))  # the warned trainer ended: no orphan
        assert p.wait(timeout=240) == 0, "".join(out)[-4000:]
    except BaseException:
        _print_submitit(out, suite)
        raise
    finally:
        if p.poll() is None:
            p.kill()
    text = "".join(out)
    print(text[-1500:])
    print(f"rerun --slurm: {time.time() - t0:.0f} s")
    assert f"follow it: squeue -j {jobid}" in text
    assert re.search(rf"{re.escape(str(r_dir))}: best_acc \d+\.\d\d, final_acc \d+\.\d\d", text)
    # the result file is written just before the job ends: wait for SLURM to record its end
    job = until(lambda: (j := cluster.job(jobid))["JobState"] not in ("RUNNING", "COMPLETING") and j, 60, "the job's end")
    print(f"scontrol show job {jobid}: JobName={job['JobName']} JobState={job['JobState']} Restarts={job['Restarts']} "
          f"TimeLimit={job['TimeLimit']} TRES={job['TRES']} TresPerNode={job.get('TresPerNode')}")
    assert running["JobState"] == "RUNNING"
    assert job["Restarts"] == "1" and job["JobState"] == "COMPLETED"
    # the cell's one retraining (its search is done), per slurm/runtime.yaml: a tiny run gets the 30-minute minimum
    assert job["TimeLimit"] == "00:30:00"
    # slurm/resources.yaml through submitit: --cpus-per-task=4, --mem=16G (its mem_gb: 16000 MB rounded), --gpus-per-node=1
    assert tres(job) >= {"cpu=4", "mem=16G"} and job["TresPerNode"] == "gres:gpu:1", job
    comment = cluster.run("squeue", "-h", "--states=all", "-j", jobid, "-o", "%k").strip()  # README: what squeue shows
    assert job["JobName"] == f"rerun-table1-{CELL}" and comment == f"rerun table1 {CELL}", comment
    tries = attempts(r_log)
    assert len(tries) == 2, r_log.read_text()[-3000:]
    assert f"SLURM job {jobid} (restart 0)" in tries[0] and f"SLURM job {jobid} (restart 1)" in tries[1]
    stopped = int(re.search(r"preempted: SIGUSR2: stopped with the checkpoint after epoch (\d+)", tries[0])[1])
    assert epochs_in(tries[0])[-1] == stopped  # the epoch in progress finished before it stopped
    assert f"resuming after epoch {stopped}" in tries[1] and epochs_in(tries[1])[0] == stopped + 1
    assert "requeue of SLURM job" not in r_log.read_text()  # submitit requeued it, not the trainer
    assert not list((suite / ".snakemake" / "locks").glob("*.lock"))  # no lock left behind
    assert not trainers(r_dir)


def test_rerun_slurm_cancelled_leaves_no_lock(suite, cluster):
    """The kill ending of ``methods rerun --slurm``: ``scancel`` of the job mid-training (SIGTERM to every
    process of the job, SIGKILL after SLURM's KillWait). The trainer stops with its checkpoint, the
    in-job Snakemake leaves no lock behind and nothing of the job keeps running; a rerun could start."""
    res = suite / "results" / "tiny"
    r_dir = res / "search" / SEARCH / "retrain" / RUN
    r_log = r_dir / "log.txt"
    if not (res / "search" / SEARCH / "result.json").is_file():
        pytest.skip("needs the search the profile test trains")
    p, out = _rerun(suite, cluster)
    try:
        assert p.wait(timeout=60) == 0, "".join(out)  # without --wait: it submits and returns
        jobid = re.search(r" as job (\d+);", "".join(out))[1]
        until(lambda: (a := attempts(r_log)) and f"SLURM job {jobid} (restart 0)" in a[-1]
              and len(epochs_in(a[-1])) >= 2 and trainers(r_dir), 240, "two epochs")
        cluster.run("scancel", jobid)
        job = until(lambda: (j := cluster.job(jobid))["JobState"] not in ("RUNNING", "COMPLETING") and j, 120,
                    "the job's end")
    except BaseException:
        _print_submitit(out, suite)
        raise
    print(f"scontrol show job {jobid}: JobState={job['JobState']} Restarts={job['Restarts']}")
    print(r_log.read_text()[-800:])
    assert job["JobState"] == "CANCELLED" and job["Restarts"] == "0"
    until(lambda: not trainers(r_dir), 60, "the trainer's end")
    assert not list((suite / ".snakemake" / "locks").glob("*.lock"))  # no lock left behind

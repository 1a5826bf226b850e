"""The main SLURM profile alone (``snakemake --profile slurm``: job status through ``sacct``) on a real
single-node SLURM 22.05 with accounting (slurmdbd on MariaDB, tests/slurm_cluster.py), one cluster and one
Snakemake invocation for the module, asserted on SLURM's own records (``sacct -X -D``, ``scontrol show job``):

- resources: every training job requests and is allocated gres/gpu=1, cpu=4, mem=16000M (slurm/resources.yaml),
  the retraining has slurm/runtime.yaml's limit and the profile's ``--signal=USR1@300``; Snakemake follows the
  jobs through sacct and exits 0;
- the warning: the retraining's job gets SIGUSR1 on its steps mid-training; the trainer finishes its epoch and
  requeues its own job (methods/base/preempt.py): the same job id runs again (scontrol's Restarts, as 22.05's sacct
  has no such field; a REQUEUED record, which the executor plugin reads as "still running") and resumes, its
  log's attempt line counting the restart; no orphan trainer, no Snakemake retry spent;
- an administrator's ``scontrol requeue`` of that job: it runs a third time and resumes to the last epoch;
- a time limit: the CIFAR-100 search, submitted with a 1-minute first attempt and no warning (``--set-resources``
  of ``runtime``, an expression of the attempt, and ``slurm_extra=''``; the GPU, CPUs and memory kept),
  trains past its minute; SLURM ends it with TIMEOUT, Snakemake's retry (a new job, 20 minutes) resumes from
  the checkpoint, and the run's log keeps both attempts.

The warning is sent with ``scancel --signal=USR1 JOBID``, to the job's steps and not the batch shell, which is
what SLURM's timed ``--signal=USR1@300`` does; the timed one cannot be used: SLURM re-arms it at every start
of a requeued job (measured: a 5-minute job requeuing itself on the warning is warned again within 30 s of
each restart), so a limit short enough for a test would warn every attempt.

Tiny scale on a two-cell specification (table1 vgg16/80-120/cifar10/10 and .../cifar100/10; targets: the
CIFAR-10 cell's retraining, so its search too, and the CIFAR-100 search), in a copy of the suite (its own
``.snakemake``); fake CIFAR-10 of 1000 training images (epochs of about a second), CIFAR-100 of 10000 (some
110 s of training on a quiet 2-core machine, so the search outlives its minute: SLURM checks time limits every
30 s, so the end comes 60 to 90 s into the job). The module takes about 3 minutes on a quiet 2-core machine
(an estimate from CPU times: 4.7 to 6.5 minutes measured with another training run loading both cores).
Skipped with one line where no cluster can start (not root, packages missing), except in CI.
"""
from __future__ import annotations

import re
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from slurm_cluster import Cluster
from slurm_helpers import cluster_mark, FAST, attempts, epochs_in, make_suite, popen, snakemake_config, trainers, until

S10, S100 = "vgg16-cifar10-80-120-lr0.1-s1", "vgg16-cifar100-80-120-lr0.1-s1"
RUN = "p0.5-e10-fresh-80-120-lr0.1"
TRAIN_TRES = {"gres/gpu=1", "cpu=4", "mem=16000M"}  # slurm/resources.yaml, as slurmdbd records it
FIELDS = ("JobID", "JobName", "State", "Elapsed", "Timelimit", "ReqTRES", "AllocTRES", "Comment", "SubmitLine")

pytestmark = cluster_mark(accounting=True)


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    # train_images caps both datasets: CIFAR-10 trains its 1000 fake images, CIFAR-100 its 10000
    return make_suite(tmp_path_factory.mktemp("suite"), 10000, {"cifar10": 100, "cifar100": 100},
                      dict(models=["vgg16"], datasets=["cifar10", "cifar100"], schedules=["80-120"], draws=["10"],
                           runs=1))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # MinJobAge an hour: scontrol still shows every job of the module once it has ended
    with Cluster(tmp_path_factory.mktemp("slurm"), accounting=True, min_job_age=3600) as c:
        yield c


def sacct(cluster, *args: str) -> list[dict[str, str]]:
    """``sacct -X -P`` rows (with ``-D``: every run of a requeued job) as {field: value}, by job id."""
    out = cluster.run("sacct", "-X", "-P", "-n", *args, "-o", ",".join(FIELDS))
    rows = [dict(zip(FIELDS, line.split("|", len(FIELDS) - 1))) for line in out.splitlines() if line.strip()]
    return sorted(rows, key=lambda r: int(r["JobID"]))


def show(job: dict) -> str:
    return " ".join(f"{k}={job.get(k)}" for k in ("JobId", "JobName", "JobState", "Restarts", "ExitCode",
                                                   "RunTime", "TimeLimit", "Requeue", "Comment"))


@pytest.fixture(scope="module")
def run(suite, cluster):
    """The one Snakemake invocation, warning and requeueing the retraining's job as it trains."""
    t0 = time.time()
    res = suite / "results" / "tiny"
    r_dir, s_dir = res / "search" / S10 / "retrain" / RUN, res / "search" / S100
    r_log = r_dir / "log.txt"
    # The CIFAR-100 search alone gets the minute (the CIFAR-10 one, also short, could near it on a loaded
    # machine); no search gets the warning, which would come before the limit and requeue it instead.
    runtime = "search:runtime=1 if attempt == 1 and 'cifar100' in wildcards.search else 20"
    # --verbose: the plugin's debug lines name the status command it uses
    cmd = [sys.executable, "-m", "snakemake", "--profile", "slurm", "--verbose", str(r_dir / "result.json"),
           str(s_dir / "result.json"), *FAST, "--set-resources", runtime, "search:slurm_extra=''", *snakemake_config(suite)]
    smk, out = popen(cmd, suite, cluster.env)
    seen = {}  # the retraining's job as SLURM shows it at each step
    try:
        def training(restart: int):
            """The retraining's job id once its attempt ``restart`` has trained two epochs."""
            a = attempts(r_log)
            if a and f"(restart {restart})" in a[-1].splitlines()[0] and len(epochs_in(a[-1])) >= 2 and trainers(r_dir):
                return re.search(r"SLURM job (\d+)", a[-1])[1]

        def requeued(jobid: str, restarts: str):
            """True once the job is back in the queue, its previous run ended (all its processes gone)."""
            j = cluster.job(jobid)
            return j["Restarts"] == restarts and j["JobState"] == "PENDING"

        def latest(jobid: str) -> str:
            return cluster.run("sacct", "-X", "-P", "-n", "-j", jobid, "-o", "JobID,State").strip()

        jobid = until(lambda: training(0), 300, "the retraining's second epoch", smk)
        warned = trainers(r_dir)
        seen["running"] = cluster.job(jobid)
        # as SLURM's --signal=USR1@300 sends it: to the processes of the job's steps, not the batch shell
        cluster.run("scancel", "--signal=USR1", jobid)
        until(lambda: requeued(jobid, "1"), 120, "the self-requeue", smk)
        seen["requeued"] = cluster.job(jobid)
        # what the executor plugin reads meanwhile (sacct -X without -D: the job's latest record), once
        # slurmdbd has the end of the run (slurmctld tells it asynchronously)
        seen["plugin_view"] = until(lambda: (v := latest(jobid)) != f"{jobid}|RUNNING" and v, 20, "the requeue in sacct", smk)
        seen["orphans"] = set(warned) & set(trainers(r_dir))
        until(lambda: training(1), 180, "the requeued run's second epoch", smk)
        stopped = trainers(r_dir)
        cluster.run("scontrol", "requeue", jobid)  # an administrator's requeue
        until(lambda: requeued(jobid, "2"), 120, "the admin requeue", smk)
        seen["orphans"] |= set(stopped) & set(trainers(r_dir))
        assert smk.wait(timeout=600) == 0, "".join(out)[-5000:]
    except BaseException:
        print("".join(out)[-8000:], *(f"--- {f}\n{f.read_text()[-2000:]}" for f in suite.glob(".snakemake/slurm_logs/**/*.log")))
        raise
    finally:
        if smk.poll() is None:
            smk.send_signal(signal.SIGINT)  # Snakemake cancels its SLURM jobs
            smk.wait(timeout=60)
        (suite / "snakemake.out").write_text("".join(out))  # the whole verbose log, to read after a failure
    # the result file is written just before the job ends: wait for SLURM to record every end
    until(lambda: not cluster.run("squeue", "-h"), 60, "the jobs' ends")
    rows = sacct(cluster, "-D")
    print(f"\nsnakemake --profile slurm: {time.time() - t0:.0f} s\nsacct -X -D -P -o {','.join(FIELDS)}:")
    for r in rows:
        flags = re.findall(r"(?:^|\s)(-t \S+|--(?:mem|cpus-per-task|gpus|signal)[= ]\S+)", r["SubmitLine"])
        print("|".join(r[f] for f in FIELDS[:-1]), "| sbatch", *flags)
    for k, j in seen.items():
        print(f"{k}: {show(j) if isinstance(j, dict) else j}")
    return SimpleNamespace(out="".join(out), rows=rows, seen=seen, jobid=jobid, r_dir=r_dir, s_dir=s_dir, suite=suite)


def _of(run, rule: str, wildcards: str) -> list[dict]:
    return [r for r in run.rows if r["Comment"] == f"rule_{rule}_wildcards_{wildcards}"]


def test_profile_with_accounting(run, cluster):
    """``--profile slurm`` alone: Snakemake follows its jobs through sacct (its verbose log names the command)
    and exits 0; every training job requested and got the GPU, 4 CPUs and 16000 MB; the retraining has
    slurm/runtime.yaml's limit (tiny runs: the 30-minute minimum) and the profile's warning signal."""
    assert "command=sacct" in run.out and "command=squeue" not in run.out, run.out[-3000:]
    assert "Falling back" not in run.out
    assert {r["JobName"] for r in run.rows} == {re.search(r"SLURM run ID: (\S+)", run.out)[1]}  # what it asks sacct about
    for r in run.rows:
        assert set(r["ReqTRES"].split(",")) >= TRAIN_TRES and set(r["AllocTRES"].split(",")) >= TRAIN_TRES, r
    retrain = _of(run, "retrain", f"{S10}_{RUN}")
    assert {r["Timelimit"] for r in retrain} == {"00:30:00"}
    assert all("--signal=USR1@300" in r["SubmitLine"] for r in retrain)
    search10 = _of(run, "search", S10)
    assert [(r["State"], r["Timelimit"]) for r in search10] == [("COMPLETED", "00:20:00")], search10
    assert (run.r_dir / "result.json").is_file() and (run.s_dir / "result.json").is_file()
    assert not list((run.suite / ".snakemake" / "locks").glob("*.lock"))


def test_warning_requeues_the_same_job(run, cluster):
    """SIGUSR1 on the retraining's steps: the trainer finishes its epoch, checkpoints and runs ``scontrol
    requeue`` on its own job; the job's processes end (no orphan), the same job id runs again and resumes;
    Snakemake submitted one job for the rule and retried nothing."""
    jobid, tries = run.jobid, attempts(run.r_dir / "log.txt")
    assert run.seen["running"]["JobState"] == "RUNNING" and run.seen["running"]["Restarts"] == "0"
    assert run.seen["requeued"]["Restarts"] == "1"
    # the plugin's status query meanwhile: REQUEUED, which it leaves running (not a fail status)
    assert run.seen["plugin_view"] == f"{jobid}|REQUEUED", run.seen["plugin_view"]
    assert not run.seen["orphans"]
    retrain = _of(run, "retrain", f"{S10}_{RUN}")
    assert [(r["JobID"], r["State"]) for r in retrain] == [(jobid, "REQUEUED"), (jobid, "REQUEUED"), (jobid, "COMPLETED")]
    assert len(re.findall(rf"submitted with SLURM jobid {jobid}\b", run.out)) == 1
    assert run.out.count("Trying to restart job") == 1  # the timed-out search's, below
    job = cluster.job(jobid)
    print(f"scontrol show job {jobid}: {show(job)}")
    assert job["JobState"] == "COMPLETED" and job["Restarts"] == "2"  # the warning's requeue and the admin's
    assert len(tries) == 3, (run.r_dir / "log.txt").read_text()[-3000:]
    print(f"retraining log attempts: {[a.splitlines()[0] for a in tries]}")
    # the in-job srun drops SLURM_RESTART_COUNT from the step: methods.base.preempt.restarts asks scontrol
    assert all(f"SLURM job {jobid} (restart {i})" in a.splitlines()[0] for i, a in enumerate(tries))
    stopped = int(re.search(r"preempted: SIGUSR1: stopped with the checkpoint after epoch (\d+)", tries[0])[1])
    assert epochs_in(tries[0])[-1] == stopped >= 2  # the epoch in progress finished before it stopped
    assert f"requeue of SLURM job {jobid}: done" in tries[0]
    assert f"resuming after epoch {stopped}" in tries[1] and epochs_in(tries[1])[0] == stopped + 1


def test_admin_requeue_resumes(run, cluster):
    """``scontrol requeue`` of the running retraining: SLURM's SIGTERM stops the trainer before its next step
    (it requeues nothing itself); the job runs a third time, resumes from the last epoch's checkpoint and
    trains to the last epoch; nothing is left running."""
    tries = attempts(run.r_dir / "log.txt")
    assert "preempted: SIGTERM" in tries[1] and "requeue of SLURM job" not in tries[1]
    resumed = int(re.search(r"resuming after epoch (\d+)", tries[2])[1])
    assert resumed == epochs_in(tries[1])[-1] and epochs_in(tries[2]) == list(range(resumed + 1, 17))
    assert not (run.r_dir / ".log.history").exists()  # removed once the run succeeded
    assert not trainers(run.r_dir)


def test_time_limit_retried_and_resumed(run, cluster):
    """The CIFAR-100 search with a 1-minute first attempt and no warning: SLURM ends it with TIMEOUT (its
    SIGTERM stops the trainer before its next step); Snakemake's retry, a second job with the 20 minutes of
    the override's later attempts, resumes from the checkpoint; both jobs kept the GPU, CPUs and memory
    (the override changed the runtime and the warning only); the run's log keeps both attempts."""
    search = _of(run, "search", S100)
    assert search[0]["State"] != "COMPLETED", "the search ended within its minute: give it more images (suite)"
    assert [(r["State"], r["Timelimit"]) for r in search] == [("TIMEOUT", "00:01:00"), ("COMPLETED", "00:20:00")], search
    first, retry = search
    assert first["JobID"] != retry["JobID"] and first["Elapsed"] >= "00:01:00"
    assert not any("--signal" in r["SubmitLine"] for r in search)
    assert all(set(r["ReqTRES"].split(",")) >= TRAIN_TRES for r in search)
    assert "Trying to restart job" in run.out
    tries = attempts(run.s_dir / "log.txt")
    print(f"search log attempts: {[a.splitlines()[0] for a in tries]}")
    assert len(tries) == 2, (run.s_dir / "log.txt").read_text()[-3000:]
    assert [f"SLURM job {r['JobID']} (restart 0)" in a.splitlines()[0] for r, a in zip(search, tries)] == [True, True]
    done = epochs_in(tries[0])
    assert "preempted: SIGTERM" in tries[0] and done and done[-1] < 16
    assert f"resuming after epoch {done[-1]}" in tries[1] and epochs_in(tries[1]) == list(range(done[-1] + 1, 17))
    assert not (run.s_dir / ".log.history").exists() and not trainers(run.s_dir)

"""Wall time and peak memory of a workflow run (the smoke-scale ``all_tables`` on this machine).

Runs Snakemake in a fresh results folder and samples, once a second, the resident memory of
the whole process tree (Snakemake and every job: /proc), keeping the peak of the sum and of the
largest single process, with that process's command line (``getrusage(RUSAGE_CHILDREN)`` would
also count processes this benchmark forked before the workflow, such as DataLoader workers).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tree_rss(pid: int) -> tuple[int, int, int]:
    """(sum of resident bytes over ``pid``'s process tree, largest single process's bytes, its pid)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/statm") as f:
                rss[int(d)] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):  # the process ended meanwhile
            continue
        children.setdefault(ppid, []).append(int(d))
    total, largest, todo = 0, (0, pid), [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        largest = max(largest, (rss.get(p, 0), p))
        todo += children.get(p, [])
    return total, *largest


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:300]
    except OSError:
        return ""


def run_workflow(results: Path, target: str = "all_tables", scale: str = "smoke", data_root: str = "data",
                 cores: int = 2, extra: tuple[str, ...] = ()) -> dict:
    """Run ``snakemake TARGET --cores CORES --config scale=... results=... data_root=...`` in ROOT.

    Returns ``wall_s``, ``peak_tree_rss_mb`` (sum over the process tree, sampled each second),
    ``peak_process_rss_mb`` (largest single process, sampled likewise) with its command line
    ``peak_process``, ``jobs`` ({rule: n} from Snakemake's job
    stats) and ``returncode``. Raises RuntimeError when the workflow fails (its last lines included).
    """
    from methods.workflow.rerun import job_counts

    cmd = [sys.executable, "-m", "snakemake", target, "--cores", str(cores), "--config", f"scale={scale}",
           f"results={results}", f"data_root={data_root}", *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = {"tree": 0, "process": 0, "process_cmd": ""}

    def sample():
        while proc.poll() is None:
            total, largest, pid = _tree_rss(proc.pid)
            peak["tree"] = max(peak["tree"], total)
            if largest > peak["process"]:
                peak["process"], peak["process_cmd"] = largest, _cmdline(pid)
            time.sleep(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = proc.communicate()[0]
    wall = time.perf_counter() - t0
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out[-3000:]}")
    jobs = job_counts(out)
    return {"command": " ".join(cmd[1:]), "wall_s": wall, "peak_tree_rss_mb": peak["tree"] / 2**20,
            "peak_process_rss_mb": peak["process"] / 2**20, "peak_process": peak["process_cmd"],
            "jobs": jobs, "training_jobs": sum(v for k, v in jobs.items() if k.split("_group")[0] in
                                               ("search", "retrain", "dense", "lottery")),
            "returncode": proc.returncode}

"""A throwaway single-node SLURM for the tests (Debian's slurmctld, slurmd, munge, and for
accounting slurmdbd on MariaDB), every daemon's state, socket, port and log in one temporary
folder, so it runs beside nothing and leaves nothing behind.

The node declares what a GPU cluster offers the profile (8 CPUs, 64 GB, two ``gpu`` generic
resources) whatever this machine has (``SlurmdParameters=config_overrides``), so ``--profile slurm``
runs unmodified: ``--gpus=1 --cpus-per-task=4 --mem=16000`` is schedulable on a 2-core CPU box.
Clients find it through ``SLURM_CONF`` (``Cluster.env``); jobs inherit it (sbatch ``--export=ALL``).

    with Cluster(tmp, accounting=True) as c:
        subprocess.run(["sbatch", ...], env=c.env)

Needs root and the Debian packages (``.ci/run`` installs them); ``why_not()`` says in one line
what is missing.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
ACCOUNTING = ("slurmdbd", "mariadbd", "mariadb-install-db", "sacctmgr")
PACKAGES = "slurmctld slurmd slurm-client munge slurmdbd mariadb-server"
# The executor plugin's in-job step drops SLURM_CONF (it keeps only SLURM_JOB_ID and a few), so the
# srun inside each job reads the default path: while the test cluster runs, a link to its slurm.conf.
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")


def _which(name: str) -> str | None:
    return shutil.which(name) or next((p for d in ("/usr/sbin", "/usr/bin") if os.access(p := f"{d}/{name}", os.X_OK)), None)


def why_not(accounting: bool = False) -> str | None:
    """None when a cluster can start here, else one line saying why not and what to do."""
    if os.geteuid() != 0:
        return "the SLURM tests start slurmctld/slurmd/munged and need root (CI runs them as root)"
    missing = [d for d in (*DAEMONS, "sbatch", *(ACCOUNTING if accounting else ())) if not _which(d)]
    if missing:
        return f"{', '.join(missing)} not installed: apt-get install {PACKAGES} (.ci/run does)"
    _clear_stale_link()
    if DEFAULT_CONF.exists() or DEFAULT_CONF.is_symlink():
        return f"{DEFAULT_CONF} exists (a real or another test's cluster): the test cluster needs that path for itself"
    return None


def _clear_stale_link() -> None:
    """Remove the link a killed test run left at ``DEFAULT_CONF`` (its teardown never ran): a
    symlink while no slurmctld runs here. A real slurm.conf (a file) is never touched."""
    if DEFAULT_CONF.is_symlink() and not _running("slurmctld"):
        DEFAULT_CONF.unlink()


def _running(name: str) -> bool:
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == name:
                return True
        except OSError:  # the process ended meanwhile
            pass
    return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """One node, partition ``gpu``; ``accounting``: slurmdbd on MariaDB (sacct works), else none."""

    def __init__(self, root: Path, accounting: bool = True, min_job_age: int = 300):
        self.d = Path(root)
        self.accounting = accounting
        self.min_job_age = min_job_age
        self.host = socket.gethostname().split(".")[0]
        self.procs: list[tuple[str, int]] = []  # (name, pid) of the daemons started, stopped in reverse
        self.env = {**os.environ, "SLURM_CONF": str(self.d / "slurm.conf"),
                    "MYSQL_UNIX_PORT": str(self.d / "mysql.sock")}  # slurmdbd's MariaDB client reads it

    # -- configuration -------------------------------------------------------------------------
    def _write_config(self) -> None:
        d, ctld, slurmd, dbd = self.d, _free_port(), _free_port(), _free_port()
        for sub in ("ctld", "spool", "munge"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        acct = (f"AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=localhost\n"
                f"AccountingStoragePort={dbd}\nAccountingStoreFlags=job_comment\nAccountingStorageTRES=gres/gpu\n"
                # the munge socket of the connection to slurmdbd (AuthInfo covers the others)
                f"AccountingStoragePass={d}/munge/munge.sock\n"
                if self.accounting else "AccountingStorageType=accounting_storage/none\n")
        (d / "slurm.conf").write_text(f"""\
ClusterName=ebtest
SlurmctldHost={self.host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld}
SlurmdPort={slurmd}
AuthType=auth/munge
# cred_expire: a requeued job waits cred_expire + 1 s before it may start again (120 s by default)
AuthInfo=socket={d}/munge/munge.sock,cred_expire=10
StateSaveLocation={d}/ctld
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
# the main scheduling loop every 2 s, not 60: a requeued job starts as soon as it may
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge={self.min_job_age}
KillWait=10
OverTimeLimit=0
InactiveLimit=0
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
{acct}JobCompType=jobcomp/none
NodeName={self.host} NodeAddr=127.0.0.1 CPUs=8 RealMemory=64000 Gres=gpu:2 State=UNKNOWN
PartitionName=gpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
        # Two "GPUs" that are device files anyone can open: nothing to detect, nothing to bind
        # (task/none), and slurmd reports the configured count (a bare Count=2 is reported as 0).
        (d / "gres.conf").write_text(f"NodeName={self.host} Name=gpu File=/dev/null\n"
                                     f"NodeName={self.host} Name=gpu File=/dev/zero\n")
        if self.accounting:
            conf = d / "slurmdbd.conf"
            conf.write_text(f"""\
AuthType=auth/munge
AuthInfo=socket={d}/munge/munge.sock
DbdHost=localhost
DbdPort={dbd}
SlurmUser=root
PidFile={d}/slurmdbd.pid
LogFile={d}/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
""")
            conf.chmod(0o600)  # slurmdbd refuses a readable one (it may hold the DB password)

    # -- daemons --------------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], pidfile: Path | None = None, foreground: bool = False) -> None:
        log = open(self.d / f"{name}.out", "ab")
        p = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if foreground:
            self.procs.append((name, p.pid))
            return
        if p.wait(timeout=60) != 0:
            raise RuntimeError(f"{name} did not start: {(self.d / f'{name}.out').read_text()[-2000:]}")
        for _ in range(100):
            if pidfile and pidfile.is_file() and pidfile.read_text().strip():
                self.procs.append((name, int(pidfile.read_text())))
                return
            time.sleep(0.1)
        raise RuntimeError(f"{name} wrote no pid file {pidfile}")

    def _wait(self, what: str, check, timeout: float = 60) -> None:
        end = time.time() + timeout
        while time.time() < end:
            if check():
                return
            time.sleep(0.5)
        logs = "\n".join(f"--- {f.name}\n{f.read_text()[-1500:]}" for f in sorted(self.d.glob("*.log")))
        raise RuntimeError(f"the test cluster's {what} did not come up in {timeout:.0f} s\n{logs}")

    def run(self, *argv: str, check: bool = True, timeout: float = 60) -> str:
        r = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {r.stdout}{r.stderr}")
        return r.stdout

    def start(self) -> "Cluster":
        self._write_config()
        d = self.d
        _clear_stale_link()
        if DEFAULT_CONF.exists() or DEFAULT_CONF.is_symlink():
            raise RuntimeError(why_not(self.accounting))
        DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
        DEFAULT_CONF.symlink_to(d / "slurm.conf")
        self.linked = True
        key = d / "munge" / "munge.key"
        subprocess.run([_which("mungekey"), "--create", f"--keyfile={key}"], check=True, capture_output=True)
        key.chmod(0o400)
        self._spawn("munged", [_which("munged"), "--force", f"--key-file={key}", f"--socket={d}/munge/munge.sock",
                               f"--pid-file={d}/munge/munged.pid", f"--log-file={d}/munge/munged.log",
                               f"--seed-file={d}/munge/munged.seed"], d / "munge" / "munged.pid")
        if self.accounting:
            subprocess.run([_which("mariadb-install-db"), "--no-defaults", f"--datadir={d}/db", "--user=root",
                            "--auth-root-authentication-method=socket", "--skip-test-db"],
                           check=True, capture_output=True, env=self.env)
            self._spawn("mariadbd", [_which("mariadbd"), "--no-defaults", f"--datadir={d}/db", "--user=root",
                                     f"--socket={d}/mysql.sock", "--skip-networking", f"--pid-file={d}/mariadb.pid",
                                     f"--log-error={d}/mariadb.log"], foreground=True)
            self._wait("MariaDB", lambda: (d / "mysql.sock").exists())
            # slurmdbd reads slurmdbd.conf from SLURM_CONF's folder (it has no -f)
            self._spawn("slurmdbd", [_which("slurmdbd")], d / "slurmdbd.pid")
            self._wait("slurmdbd", lambda: subprocess.run(["sacctmgr", "-n", "list", "cluster"], env=self.env,
                                                          capture_output=True).returncode == 0)
            # The cluster, an account and its user, as a site's administrator would register them.
            self.run("sacctmgr", "-i", "add", "cluster", "ebtest", check=False)
            self.run("sacctmgr", "-i", "add", "account", "research", "cluster=ebtest", check=False)
            self.run("sacctmgr", "-i", "add", "user", "root", "account=research", "cluster=ebtest", check=False)
        self._spawn("slurmctld", [_which("slurmctld"), "-f", str(d / "slurm.conf"), "-i"], d / "slurmctld.pid")
        self._spawn("slurmd", [_which("slurmd"), "-f", str(d / "slurm.conf"), "-N", self.host], d / "slurmd.pid")
        self._wait("node", lambda: self.run("sinfo", "-h", "-o", "%T", check=False).strip() == "idle")
        return self

    def stop(self) -> None:
        """Cancel every job, then stop the daemons this object started, by pid, newest first."""
        try:
            self.run("scancel", "--full", "-u", "root", check=False, timeout=20)
            end = time.time() + 30
            while time.time() < end and self.run("squeue", "-h", check=False, timeout=20).strip():
                time.sleep(0.5)
        except Exception:  # a daemon already dead: nothing to cancel through it
            pass
        for name, pid in reversed(self.procs):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
                try:  # a foreground child must be reaped, or it stays a zombie that os.kill still finds
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            else:
                os.kill(pid, signal.SIGKILL)
        self.procs.clear()
        if getattr(self, "linked", False) and DEFAULT_CONF.is_symlink():
            DEFAULT_CONF.unlink()
            self.linked = False

    def __enter__(self) -> "Cluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- queries the tests assert on ------------------------------------------------------------
    def job(self, jobid: str) -> dict[str, str]:
        """``scontrol show job -o`` as {field: value} (also for a finished job, within MinJobAge)."""
        out = self.run("scontrol", "show", "job", "-o", str(jobid))
        fields = {}
        for tok in out.split():
            k, _, v = tok.partition("=")
            fields.setdefault(k, v)
        return fields

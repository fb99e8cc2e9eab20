"""A single-node SLURM cluster on this machine, from Debian's packages, in one folder.

    python scripts/local_slurm.py up /tmp/cluster        # prints `export SLURM_CONF=...`; daemons keep running
    python scripts/local_slurm.py down /tmp/cluster      # cancels jobs, stops the daemons, by their pids

Writes ``slurm.conf``, ``slurmdbd.conf`` and a fresh munge key under the folder and starts ``munged``,
a MariaDB server, ``slurmdbd``, ``slurmctld`` and ``slurmd`` in the foreground of their own sessions, on
loopback and on free ports, so it touches no system-wide setup and several clusters can run side by side.
Accounting (slurmdbd) is there because submitit learns that a job died without a result from ``sacct``,
and ``sacct`` gives each job's peak memory. Needs root (slurmd starts jobs as their user) and
``apt-get install slurmctld slurmd slurm-client munge slurmdbd slurm-wlm-mysql-plugin mariadb-server-core``.
``tests/cluster/`` uses it as a pytest fixture; ``scripts/export_100k_slurm.sh`` from the shell.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd")  # in start order
CLIENTS = ("sbatch", "squeue", "scancel", "sinfo", "srun", "sacct", "sacctmgr", "mungekey", "mariadb-install-db")
PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge", "slurmdbd", "slurm-wlm-mysql-plugin", "mariadb-server-core")


def missing_programs() -> list[str]:
    """Programs of the cluster not found on PATH (nor in /usr/sbin)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return [p for p in DAEMONS + CLIENTS if shutil.which(p, path=path) is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slurmdbd_conf(root: Path, dbd_port: int, db_port: int) -> str:
    return f"""\
AuthType=auth/munge
AuthInfo=socket={root}/run/munge.socket
DbdAddr=127.0.0.1
DbdHost=localhost
DbdPort={dbd_port}
SlurmUser=root
PidFile={root}/run/slurmdbd.pid
LogFile={root}/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={db_port}
StorageUser=root
StorageLoc=slurm_acct_db
"""


def slurm_conf(root: Path, host: str, cpus: int, memory_mb: int, ctld_port: int, slurmd_port: int, dbd_port: int) -> str:
    # cons_tres with CR_CPU: jobs share the node by CPUs only. proctrack/linuxproc and task/none need no
    # cgroup setup (containers, CI). config_overrides: the node may declare more CPUs than it has, to run
    # more jobs at once than there are cores.
    return f"""\
ClusterName=svrlocal
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/run/munge.socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=2
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={dbd_port}
AccountingStoragePass={root}/run/munge.socket
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=600
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=local Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


class LocalSlurm:
    """``start()`` brings the cluster up and waits until its node is idle; ``stop()`` cancels every job
    and stops the daemons (their whole process groups). ``env`` is the environment for clients."""

    def __init__(self, root: Path, cpus: int | None = None):
        self.root = Path(root).resolve()
        self.cpus = cpus or os.cpu_count() or 1
        self.conf = self.root / "slurm.conf"
        self.processes: dict[str, subprocess.Popen] = {}
        self.started_pids: list[int] = []  # every daemon this object started, kept after stop()
        self.env = dict(os.environ, SLURM_CONF=str(self.conf), PATH=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))

    # -- state on disk, so that `down` in another process can stop what `up` started --------------------
    def _pids_file(self) -> Path:
        return self.root / "run" / "pids.json"

    def start(self, timeout_s: float = 90.0) -> "LocalSlurm":
        if os.geteuid() != 0:
            raise PermissionError("a local SLURM cluster needs root (slurmd starts jobs as their user)")
        missing = missing_programs()
        if missing:
            raise FileNotFoundError(f"not installed: {', '.join(missing)} (apt-get install {' '.join(PACKAGES)})")
        for sub in ("key", "run", "state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # munged insists: key folder private, socket folder searchable by all.
        os.chmod(self.root, 0o755)
        os.chmod(self.root / "run", 0o755)
        os.chmod(self.root / "key", 0o700)
        key = self.root / "key" / "munge.key"
        if not key.exists():
            subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True, env=self.env)
        host = socket.gethostname().split(".")[0]
        memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 * 9 // 10
        dbd_port, db_port = _free_port(), _free_port()
        self.conf.write_text(slurm_conf(self.root, host, self.cpus, memory_mb, _free_port(), _free_port(), dbd_port))
        dbd_conf = self.root / "slurmdbd.conf"  # slurmdbd reads it beside slurm.conf; it must be private
        dbd_conf.write_text(slurmdbd_conf(self.root, dbd_port, db_port))
        os.chmod(dbd_conf, 0o600)
        try:
            self._spawn("munged", ["munged", "-F", "--num-threads=8", f"--key-file={key}", f"--socket={self.root}/run/munge.socket",
                                   f"--pid-file={self.root}/run/munged.pid", f"--log-file={self.root}/log/munged.log",
                                   f"--seed-file={self.root}/key/munged.seed"])
            self._wait(lambda: (self.root / "run" / "munge.socket").exists(), timeout_s, "munged socket")
            if not (self.root / "db").exists():
                subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.root}/db", "--user=root",
                                "--skip-test-db", "--auth-root-authentication-method=normal", "--innodb-log-file-size=8M"],
                               check=True, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            # Loopback only and no grant tables: the database serves slurmdbd of this cluster alone.
            self._spawn("mariadbd", ["mariadbd", "--no-defaults", f"--datadir={self.root}/db", f"--port={db_port}",
                                     "--bind-address=127.0.0.1", f"--socket={self.root}/run/mariadb.sock", "--user=root",
                                     "--skip-grant-tables", "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M",
                                     f"--pid-file={self.root}/run/mariadbd.pid", f"--log-error={self.root}/log/mariadbd.log"])
            self._wait(lambda: _listening(db_port), timeout_s, "MariaDB")
            self._spawn("slurmdbd", ["slurmdbd", "-D"])
            self._wait(lambda: _listening(dbd_port), timeout_s, "slurmdbd")
            self._wait(self._cluster_registered, timeout_s, "cluster in the accounting database")
            self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
            self._wait(lambda: self.client("sinfo", "-h").returncode == 0, timeout_s, "slurmctld answering")
            self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf), "-N", host])
            self._wait(self._node_idle, timeout_s, "node idle")
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "ab")
        # Own session: stop() signals the whole group, including anything the daemon forked.
        self.processes[name] = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.started_pids.append(self.processes[name].pid)
        pids = {k: p.pid for k, p in self.processes.items()}
        self._pids_file().write_text(json.dumps(pids))

    def _wait(self, ready, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, p in self.processes.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with {p.returncode} while waiting for {what}; see {self.root}/log/")
            if ready():
                return
            time.sleep(0.3)
        raise TimeoutError(f"local SLURM: no {what} after {timeout_s:.0f} s; see {self.root}/log/")

    def client(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=30)

    def _cluster_registered(self) -> bool:
        listed = self.client("sacctmgr", "-n", "-P", "list", "cluster", "format=cluster")
        if listed.returncode == 0 and "svrlocal" in listed.stdout.split():
            return True
        self.client("sacctmgr", "-i", "add", "cluster", "svrlocal")
        return False

    def _node_idle(self) -> bool:
        r = self.client("sinfo", "-h", "-N", "-o", "%t")
        return r.returncode == 0 and r.stdout.strip() == "idle"

    def jobs(self) -> list[str]:
        """Lines ``<jobid> <state>`` of the queue (array tasks one per line)."""
        r = self.client("squeue", "-h", "-r", "-o", "%i %T")
        return [l for l in r.stdout.splitlines() if l.strip()]

    def step_processes(self, task: str) -> list[int]:
        """Pids of the job step (``srun``'s processes, not the batch shell) of array task ``<array>_<index>``."""
        array, index = task.split("_")
        return job_processes(str(self.conf), SLURM_ARRAY_JOB_ID=array, SLURM_ARRAY_TASK_ID=index, SLURM_STEP_ID="0")

    def stop(self, timeout_s: float = 30.0) -> None:
        """Cancel all jobs, then stop the daemons and every process that runs under this cluster's config."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            try:
                self.client("scancel", "--full", "--user", str(os.geteuid()))
                deadline = time.monotonic() + timeout_s
                while self.jobs() and time.monotonic() < deadline:
                    time.sleep(0.5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        for name in reversed(DAEMONS):
            p = self.processes.get(name)
            if p is not None:
                _stop_group(p.pid, lambda p=p: p.poll() is not None)
        # Job steps and their children carry SLURM_CONF=<ours> and a job id: none may outlive the cluster.
        for pid in job_processes(str(self.conf)):
            _stop_group(pid, lambda pid=pid: not Path(f"/proc/{pid}").exists(), group=False)
        self.processes.clear()
        self._pids_file().unlink(missing_ok=True)

    @classmethod
    def attach(cls, root: Path) -> "LocalSlurm":
        """The cluster that ``up`` started in ``root`` (for ``down``)."""
        cluster = cls(root)
        pids = json.loads(cluster._pids_file().read_text()) if cluster._pids_file().exists() else {}
        cluster.processes = {k: _Attached(v) for k, v in pids.items()}
        return cluster


class _Attached:
    """A daemon started by another process: poll() as on a Popen."""

    def __init__(self, pid: int):
        self.pid = pid

    def poll(self):
        return None if alive(self.pid) else 0


def alive(pid: int) -> bool:
    """Running (a zombie has finished: only its exit status waits to be read)."""
    return Path(f"/proc/{pid}").exists() and _state(pid) not in ("Z", "X")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def _stop_group(pid: int, stopped, group: bool = True, grace_s: float = 10.0) -> None:
    kill = (lambda sig: os.killpg(pid, sig)) if group else (lambda sig: os.kill(pid, sig))
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, grace_s)):
        try:
            kill(sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if stopped():
                return
            time.sleep(0.1)


def job_processes(conf: str, **env: str) -> list[int]:
    """Pids of slurmstepd and job processes of the cluster configured by ``conf``: their environment
    holds ``SLURM_CONF=<conf>`` and a ``SLURM_JOB_ID`` (the shell that submitted jobs has no job id);
    ``env`` narrows them, e.g. ``SLURM_ARRAY_TASK_ID="0"``, ``SLURM_STEP_ID="0"`` (a task's job step)."""
    wanted = {f"SLURM_CONF={conf}".encode()} | {f"{k}={v}".encode() for k, v in env.items()}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            variables = set((entry / "environ").read_bytes().split(b"\0"))
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        is_job = comm == "slurmstepd" or any(v.startswith(b"SLURM_JOB_ID=") for v in variables)
        if is_job and wanted <= variables and not (env and comm == "slurmstepd"):
            found.append(int(entry.name))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("root", type=Path)
    parser.add_argument("--cpus", type=int, default=None, help="CPUs the node declares (default: this machine's)")
    args = parser.parse_args()
    if args.action == "up":
        cluster = LocalSlurm(args.root, cpus=args.cpus).start()
        print(f"export SLURM_CONF={cluster.conf}")
    else:
        LocalSlurm.attach(args.root).stop()
        print(f"local SLURM in {args.root} stopped", file=sys.stderr)


if __name__ == "__main__":
    main()

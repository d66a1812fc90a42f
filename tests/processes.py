"""Real processes for the crash tests: `digest worker` in a process group of its own (so a test
can kill -9 the whole worker, pool children included) and a private redis-server that a test
may kill and start again on the same port without touching the machine's Redis on 6379."""

from __future__ import annotations

import ast
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from tests.conftest import IN_CI
from tests.helpers import DIGEST, clean_env, run_digest
from tests.smtp_server import free_port

T = TypeVar("T")

_BATCH_RESULT = re.compile(r"send_batch\[[^]]+\] succeeded in [\d.]+s: (\{[^}]*\})")


def wait_until(
    check: Callable[[], T], timeout: float, poll: float = 0.1, what: str = "condition"
) -> T:
    """Poll until `check` returns something truthy, and return it."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)
    return found


def _pgid_of(pid: int) -> int | None:
    """The process group of a live process (None: gone or a zombie, i.e. dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces; fields after its closing paren are fixed.
    state, _ppid, pgid = stat.rsplit(")", 1)[1].split()[:3]
    return None if state in ("Z", "X") else int(pgid)


def _socket_inodes(local_ports: set[int], remote_port: int) -> dict[int, int]:
    """TCP sockets of this machine from one of `local_ports` to `remote_port` (any address):
    socket inode -> local port, from /proc/net/tcp{,6} (no psutil in the venv)."""
    found: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], int(fields[9])
            port = int(local.rsplit(":", 1)[1], 16)
            if port in local_ports and int(remote.rsplit(":", 1)[1], 16) == remote_port and inode:
                found[inode] = port
    return found


def socket_owners(pids: set[int], local_ports: set[int], remote_port: int) -> set[int]:
    """Those of `pids` holding an open TCP socket from one of `local_ports` to `remote_port`
    (a client's connection, named by the port the server saw it come from)."""
    inodes = _socket_inodes(local_ports, remote_port)
    owners: set[int] = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue  # gone
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and int(target[8:-1]) in inodes:
                owners.add(pid)
                break
    return owners


class WorkerProcess:
    """`digest worker` as a subprocess; its log goes to a file the test can print."""

    def __init__(self, env: dict[str, str], log: Path, concurrency: int = 2) -> None:
        self.log = log
        self.handle = log.open("w")
        self.proc = subprocess.Popen(
            [DIGEST, "worker", "--concurrency", str(concurrency), "--loglevel", "INFO"],
            env=clean_env(env),
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill -9 takes the pool too
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def batch_results(self) -> list[dict[str, int]]:
        """What each send_batch task of this worker returned (its BatchResult's counts)."""
        return [ast.literal_eval(found) for found in _BATCH_RESULT.findall(self.output())]

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.output()[-3000:]}")
            return " ready." in self.output()

        wait_until(ready, timeout, what="the worker to be ready")

    def group_pids(self) -> set[int]:
        """The main process and its pool children (same process group)."""
        pids = {int(p) for p in os.listdir("/proc") if p.isdigit()}
        return {p for p in pids if _pgid_of(p) == self.proc.pid}

    def kill9(self) -> set[int]:
        """kill -9 of the whole worker, as a machine losing power would; returns the pids."""
        pids = self.group_pids()
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        wait_until(lambda: not (self.group_pids() & pids), 10, what="the pool to die")
        self.handle.close()
        return pids

    def pool_pids(self) -> set[int]:
        return self.group_pids() - {self.proc.pid}

    def kill9_pool_process(self, pid: int) -> set[int]:
        """kill -9 of one pool process only (the out-of-memory killer's way): Celery's main
        process sees it die and re-queues its task (acks_late, reject_on_worker_lost)."""
        assert pid in self.pool_pids(), f"{pid} is not a pool process of this worker"
        os.kill(pid, signal.SIGKILL)
        # Dead, not just signalled: until then it could still write its results.
        wait_until(lambda: pid not in self.group_pids(), 10, 0.01, "the kill")
        return {pid}

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (Celery's warm shutdown); returns the exit code, kill -9 if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
                self.handle.close()
                raise AssertionError(
                    f"worker ignored SIGTERM for {timeout} s:\n{self.output()[-3000:]}"
                ) from None
        self.handle.close()
        return int(self.proc.returncode)


def queue_send(issue_id: int, env: dict[str, str]) -> None:
    """`digest issues send ISSUE` with a broker: plan the issue and hand it to the workers.
    The timeout only catches a hang: on a loaded machine (other tests' CPU hogs, twelve
    runnable processes on two cores) the command was seen runnable all along yet given
    under 3 CPU-seconds in 40 s, and 60 s was not enough for it to import and plan."""
    queued = run_digest("issues", "send", str(issue_id), env=env, timeout=240)
    assert queued.returncode == 0, queued.stdout + queued.stderr


def stop_all(workers: list[WorkerProcess]) -> None:
    """SIGTERM each worker; each must exit 0 (a warm shutdown)."""
    for w in workers:
        assert w.stop() == 0, "a worker did not exit cleanly on SIGTERM"


def reap(workers: Sequence[WorkerProcess | None]) -> None:
    """Kill -9 whatever is still running (a test's cleanup, whatever failed)."""
    for w in workers:
        if w is not None and w.proc.poll() is None:
            w.kill9()


def require_redis_server() -> None:
    """The crash tests start their own redis-server; without the binary they cannot run."""
    if shutil.which("redis-server"):
        return
    if IN_CI:
        pytest.fail("redis-server is not installed (CI must run the crash tests)")
    pytest.skip("redis-server is not installed")


class RedisServer:
    """A redis-server of the test's own on a free port; nothing kept on disk, like the
    machine's, so a restart loses every queued task."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self._answers, 10, what=f"redis-server on port {self.port}")
        return self

    def _answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.ConnectionError:
            return False

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill9()


def digest_env(db_url: str, broker_url: str, smtp_port: int, **overrides: str) -> dict[str, str]:
    """DIGEST_* settings for workers and CLI runs of a crash test: SMTP on 127.0.0.1, small
    batches, and a short lease so a dead worker's batch is reclaimed within seconds."""
    env = {
        "DIGEST_DATABASE_URL": db_url,
        "DIGEST_BROKER_URL": broker_url,
        "DIGEST_TRANSPORT": "smtp",
        "DIGEST_SMTP_HOST": "127.0.0.1",
        "DIGEST_SMTP_PORT": str(smtp_port),
        "DIGEST_SMTP_TIMEOUT": "10",
        "DIGEST_SECRET_KEY": "test-secret",
        "DIGEST_BATCH_SIZE": "100",
        "DIGEST_LEASE_SECONDS": "5",
        "DIGEST_RETRY_BASE_SECONDS": "0.5",
    }
    env.update({f"DIGEST_{k.upper()}": v for k, v in overrides.items()})
    return env


# Spins until its parent (the test) is gone, so a test killed mid-way leaves no hog behind.
_HOG = """
import os
parent = os.getppid()
while os.getppid() == parent:
    for _ in range(200_000):
        pass
"""


@contextmanager
def cpu_hogs(per_core: int = 2) -> Iterator[list[int]]:
    """A loaded machine for the block: `per_core` processes per usable core spinning on the
    CPU (4 on a 2-core machine), so workers, PostgreSQL and the SMTP server get a fraction of
    a core each and every step of a send is slow. Yields the hogs' pids."""
    cores = len(os.sched_getaffinity(0))
    hogs = [
        subprocess.Popen([sys.executable, "-c", _HOG], stdin=subprocess.DEVNULL)
        for _ in range(per_core * cores)
    ]
    try:
        yield [h.pid for h in hogs]
    finally:
        for h in hogs:
            h.kill()
        for h in hogs:
            h.wait(timeout=10)

"""Real clusters for tests: a Ray head, Ray worker nodes that cannot see a folder (their own
mount namespace), and an S3 object store served locally by moto."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

RAY = Path(sys.executable).with_name("ray")
MOTO = Path(sys.executable).with_name("moto_server")
BUCKET = "runs"
# nodes of one machine at the address Ray gives it (Ray refuses to add a worker node in its
# loopback-only mode, and maps 127.0.0.1 to this address); no auth token; a dead node noticed
# within seconds
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",
           "RAY_AUTH_MODE": "disabled", "RAY_health_check_period_ms": "1000",
           "RAY_health_check_failure_threshold": "3"}
# moto accepts any credentials; every node reads them from its environment
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float = 90,
                  host: str = "127.0.0.1") -> None:
    """Until something accepts connections at host:port (the process still alive)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{what} exited with {process.returncode}"
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.3)
    pytest.fail(f"no {what} at {host}:{port} after {timeout} s")


def end_group(process: subprocess.Popen) -> None:
    """End a process started in its own session, and everything in its group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:  # draining can stall; the group is ours alone
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)


@contextlib.contextmanager
def s3_store() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 with one bucket; yields the --storage-path URI prefix."""
    from pyarrow import fs

    port = free_port()
    server = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True, env=dict(os.environ, **S3_ENV))
    try:
        wait_for_port(port, server, "moto S3 server")
        uri = f"s3://{BUCKET}/nas?endpoint_override=127.0.0.1:{port}&scheme=http"
        s3 = fs.S3FileSystem(access_key="testing", secret_key="testing", region="us-east-1",
                             endpoint_override=f"127.0.0.1:{port}", scheme="http",
                             allow_bucket_creation=True)
        s3.create_dir(BUCKET)
        yield uri
    finally:
        end_group(server)


class Cluster:
    """A Ray head and worker nodes on this machine, each `ray start --block` in its own session
    (`ray stop` would end every Ray process on the machine)."""

    def __init__(self, env: dict[str, str]):
        from ray._private.services import node_ip_address_from_perspective

        self.env = env
        self.ip = node_ip_address_from_perspective()  # what the driver's ray.init will pick
        self.port = free_port()
        # short: Ray's Unix sockets live there and socket paths are limited to ~107 bytes
        self.tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
        self.processes: list[subprocess.Popen] = []
        self.head = self._start([str(RAY), "start", "--head", f"--node-ip-address={self.ip}",
                                 f"--port={self.port}", "--num-cpus=1", "--num-gpus=0",
                                 "--include-dashboard=false", "--disable-usage-stats",
                                 f"--temp-dir={self.tmp}", "--block"])
        wait_for_port(self.port, self.head, "Ray head", host=self.ip)

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    def add_blind_worker(self, hidden: Path) -> subprocess.Popen:
        """A worker node with 1 CPU whose processes see an empty folder at `hidden` (a tmpfs
        mounted over it in the node's own mount namespace): no disk shared with the driver."""
        command = (f"mount -t tmpfs tmpfs {hidden} && exec {RAY} start --address={self.address}"
                   f" --node-ip-address={self.ip} --num-cpus=1 --num-gpus=0"
                   " --disable-usage-stats --block")
        return self._start(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            command])

    def _start(self, argv: list[str]) -> subprocess.Popen:
        process = subprocess.Popen(argv, env=self.env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        self.processes.append(process)
        return process

    def wait_for_nodes(self, count: int, timeout: float = 90) -> None:
        """Until the cluster has `count` live nodes (asked in a separate interpreter)."""
        probe = (f"import ray; ray.init(address={self.address!r}, logging_level='ERROR');"
                 "print(sum(n['Alive'] for n in ray.nodes()))")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = subprocess.run([sys.executable, "-c", probe], env=self.env,
                                  capture_output=True, text=True, timeout=120)
            if done.stdout.strip().isdigit() and int(done.stdout.strip()) >= count:
                return
            time.sleep(1)
        pytest.fail(f"the cluster did not reach {count} live nodes in {timeout} s")

    def stop(self) -> None:
        for process in reversed(self.processes):
            end_group(process)
        shutil.rmtree(self.tmp, ignore_errors=True)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (through /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def raylet_of(process: subprocess.Popen) -> int:
    """The PID of the raylet a `ray start` process started."""
    for pid in descendants(process.pid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "raylet":
                return pid
    pytest.fail(f"no raylet below process {process.pid}")

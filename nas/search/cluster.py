"""The local Ray cluster of one search, in its own process group, ended with its driver.

`ray.init()` in the driver would start Ray's processes as the driver's children; a SIGKILLed
driver then leaves some of them (the dashboard and runtime-env agents) running for ever. So a
small keeper process starts the cluster in a new session and waits on a pipe from the driver:
when the driver ends, however it ends, the pipe closes and the keeper ends its own process
group, which holds this cluster's processes and nothing else (never anything found by name).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START_TIMEOUT_S = 120  # a loaded 2-core machine can take a minute to start Ray
STOP_TIMEOUT_S = 30
_GRACE_S = 2.0  # between asking the group to end (SIGTERM) and making it (SIGKILL)


class ClusterError(ValueError):
    """The local cluster did not start; the message (one line) holds the keeper's last words."""


class LocalCluster:
    """A keeper process and the Ray cluster it started; `address` is its GCS address."""

    def __init__(self, env: dict[str, str]):
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - the keeper writes it for its lifetime
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nas.search.cluster", str(os.cpu_count() or 1)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            # RAY_ADDRESS (a user's, or one Ray left set after joining a cluster) would make
            # the keeper's ray.init join that cluster instead of starting this one
            env={k: v for k, v in env.items() if k != "RAY_ADDRESS"}, start_new_session=True,
            cwd=Path(__file__).resolve().parents[2])
        self.address = self._read_address()

    def _read_address(self) -> str:
        ready, _, _ = select.select([self.process.stdout], [], [], START_TIMEOUT_S)
        line = self.process.stdout.readline().decode().strip() if ready else ""  # EOF: it died
        if not line.startswith("address "):
            self.stop()
            self._log.seek(0)
            lines = self._log.read().decode(errors="replace").strip().splitlines()
            why = lines[-1] if lines else f"keeper exit code {self.process.poll()}"
            raise ClusterError(f"the local Ray cluster did not start: {why}")
        return line.split(" ", 1)[1]

    def stop(self) -> None:
        """Close the pipe (the keeper then ends the cluster) and wait; force it if it hangs."""
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _kill_group(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_S)
        self._log.close()


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def keep(num_cpus: int) -> None:
    """In the keeper: start Ray, say where it listens, wait for the driver to go, end it all."""
    import ray

    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
             logging_level="WARNING")
    print(f"address {ray.get_runtime_context().gcs_address}", flush=True)
    while sys.stdin.buffer.read(4096):  # returns b"" once the driver's end is closed
        pass
    try:
        ray.shutdown()
    finally:
        # Whatever ray.shutdown left (agents started by the raylet) is in this group alone.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _kill_group(0, signal.SIGTERM)
        deadline = time.monotonic() + _GRACE_S
        while _others_in_group() and time.monotonic() < deadline:
            time.sleep(0.1)
        if _others_in_group():
            _kill_group(0, signal.SIGKILL)


def _others_in_group() -> bool:
    """Whether a live process other than this one is still in this process group."""
    if not Path("/proc").is_dir():
        return True  # no way to look (not Linux): wait the grace period out, then SIGKILL
    me, group = os.getpid(), os.getpgid(0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            # fields after the ')' that ends the command name: state, ppid, pgrp, ...
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


if __name__ == "__main__":
    keep(int(sys.argv[1]))

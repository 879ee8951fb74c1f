"""The Ray cluster of a search: joined (--address), or started locally and ended with its driver.

`ray.init()` in the driver would start Ray's processes as the driver's children; a SIGKILLed
driver then leaves some of them (the dashboard and runtime-env agents) running for ever. So a
small keeper process starts the local cluster in a new session and waits on a pipe from the
driver: when the driver ends, however it ends, the pipe closes and the keeper ends its own
process group, which holds this cluster's processes and nothing else (never anything found by
name).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

START_TIMEOUT_S = 120  # a loaded 2-core machine can take a minute to start Ray
STOP_TIMEOUT_S = 30
_GRACE_S = 2.0  # between asking the group to end (SIGTERM) and making it (SIGKILL)


# Ray reads these at import. Always: quiet, no usage reporting.
QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_DEDUP_LOGS": "0",
}
# Only for the local cluster we start: every Ray process on 127.0.0.1 (Ray otherwise binds
# and advertises the machine's network address), no token to manage. An existing cluster
# (--address) keeps the user's own settings.
LOCAL_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}


class ClusterError(ValueError):
    """The local cluster did not start (the message holds the keeper's last words), or the
    cluster cannot run a trial as asked; the message is one line."""


_LOCAL: list[LocalCluster] = []  # the local cluster start_ray started


def start_ray(address: str | None = None) -> dict[str, float]:
    """Join the cluster at `address` (--address) or start a local one bound to 127.0.0.1 in its
    own process group (LocalCluster), which ends with this process however it ends (a caller
    that runs many searches keeps it until stop_ray or its exit); return its resources."""
    for key, value in (QUIET_ENV | ({} if address else LOCAL_ENV)).items():
        os.environ.setdefault(key, value)
    import ray

    cluster = None if address else LocalCluster(dict(os.environ))
    try:
        ray.init(address=address or cluster.address, log_to_driver=False,
                 logging_level="WARNING")
    except BaseException:
        if cluster is not None:
            cluster.stop()
        raise
    if cluster is not None:
        _LOCAL.append(cluster)
    for handler in logging.getLogger("ray").handlers:
        handler.addFilter(_one_line)
    return ray.cluster_resources()


def stop_ray() -> None:
    """Leave Ray and end the local cluster start_ray started, if any."""
    import ray

    ray.shutdown()
    while _LOCAL:
        _LOCAL.pop().stop()


def _one_line(record: logging.LogRecord) -> bool:
    """Ray's driver-side log records on one line, without tracebacks: a failed trial's error is
    in its progress line, trials.csv and its error file; a traceback per trial buries them."""
    message = record.getMessage().strip().splitlines()
    if message and message[0].startswith("Trial task failed"):
        return False  # the progress line says so, with the error
    record.exc_info, record.exc_text, record.stack_info = None, None, None
    record.msg, record.args = (message[0] if message else ""), ()
    return True


def check_resources(cpus_per_trial: float, gpus_per_trial: float,
                    resources: dict[str, float]) -> None:
    """Fail now rather than leave trials pending forever on a cluster that cannot run them."""
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    if cpus_per_trial > cpus:
        raise ClusterError(f"--cpus-per-trial {cpus_per_trial} > the {cpus:g} CPUs of the"
                           " Ray cluster")
    if gpus_per_trial > gpus:
        raise ClusterError(f"--gpus-per-trial {gpus_per_trial} but the Ray cluster has"
                           f" {gpus:g} GPUs (use --gpus-per-trial 0 on a CPU machine)")


def node_death_window_s() -> float:
    """How long Ray's health checks take to declare a silent node dead (its settings, read from
    the environment like Ray reads them, with Ray's defaults), plus a second."""
    period = float(os.environ.get("RAY_health_check_period_ms", 3000)) / 1000  # noqa: SIM112 - Ray's own spelling
    misses = int(os.environ.get("RAY_health_check_failure_threshold", 5))  # noqa: SIM112
    return period * misses + 1.0


def check_shared(run_dir: Path, timeout_s: float = 120.0) -> None:
    """Refuse a cluster of several nodes that do not all see the run folder: trials on the
    others would write their checkpoints to their own disks, out of the driver's reach."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [node["NodeID"] for node in ray.nodes() if node.get("Alive")]
    if len(nodes) <= 1:
        return
    token = uuid.uuid4().hex
    marker = run_dir.resolve() / f".shared-{token}"
    marker.write_text(token)
    try:
        sees = ray.remote(num_cpus=0)(_sees)
        asked = [sees.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
                              ).remote(str(marker), token) for node in nodes]
        answers = ray.get(asked, timeout=timeout_s)
    finally:
        marker.unlink(missing_ok=True)
    blind = [node[:8] for node, seen in zip(nodes, answers, strict=True) if not seen]
    if blind:
        raise ClusterError(f"the Ray cluster has {len(nodes)} nodes and {len(blind)} of them"
                           f" ({', '.join(blind)}) cannot see the run folder {run_dir}: pass"
                           " --storage-path (a mount every node shares, or s3://BUCKET/PREFIX)"
                           " so their checkpoints reach this driver")


def _sees(path: str, token: str) -> bool:
    """On a node: whether the driver's marker file is there with its content."""
    try:
        return Path(path).read_text() == token
    except OSError:
        return False


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

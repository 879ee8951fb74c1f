"""Faults a demanding user meets, run as real processes: each ends in one clear line, leaves
good files as they were, and a run folder belongs to one search (issue 16)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from nas.dashboard.server import Dashboard, DashServer, Handler
from nas.search.engine import plain_name
from nas.search.monitor import SearchMonitor
from nas.search.report import summarize
from tests.searchkit import FOLDER, ROOT, TINY, image_folder, run_cli, variant, write_space


@pytest.fixture(autouse=True)
def _data(cifar_dir, monkeypatch):
    monkeypatch.setenv("NAS_DATA_DIR", str(cifar_dir))


def one_line_error(done: subprocess.CompletedProcess) -> str:
    """The command failed with exactly one line on stderr and no traceback; return it."""
    assert done.returncode != 0, done.stdout[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-3000:]
    return lines[0]


def fingerprint(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under `folder`: its content hash and mtime (what 'untouched' means)."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                         p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------
# Bad input: refused before anything is written


@pytest.mark.parametrize(("section", "text", "named"), [
    ("[blocks]", "kernel = [3, 4]", ["[blocks].kernel", "4", "odd kernel"]),
    ("[macro]", "widths = [30, 64, 0]", ["[macro].widths", "0 must be >= 1"]),
    ("[macro]", "strides = [1, 3, 2]", ["[macro].strides", "3 is not 1 or 2"]),
])
def test_dry_run_refuses_values_the_genotype_rejects(tmp_path, section, text, named):
    space = write_space(tmp_path, f"{section}\n{text}\n")
    line = one_line_error(run_cli("--space", str(space), "--dry-run"))
    for part in [str(space), *named]:
        assert part in line


@pytest.mark.parametrize("flags", [["--trials", "0"], ["--max-epochs", "0"],
                                   ["--concurrency", "0"], ["--name", "../escaped"],
                                   ["--name", "ABSOLUTE"]])
def test_zero_budgets_and_unsafe_names_are_refused(tmp_path, flags):
    results = tmp_path / "results"
    flags = [str(tmp_path / "abs") if f == "ABSOLUTE" else f for f in flags]
    space = write_space(tmp_path, TINY)
    line = one_line_error(run_cli("--space", str(space), "--results-dir", str(results), *flags))
    assert flags[0] in line and ("must be >= 1" in line or "plain folder name" in line)
    assert not results.exists() and not (tmp_path / "escaped").exists()
    assert not (tmp_path / "abs").exists()


def test_a_plain_name_is_one_folder_inside_the_results_dir():
    assert plain_name("long") and plain_name("a..b") and plain_name("cifar-2024.1")
    for bad in ("", ".", "..", "a/b", "/abs", "../x", "a\0b"):
        assert not plain_name(bad), bad


def test_a_results_dir_that_is_a_file_is_one_line(tmp_path):
    blocker = tmp_path / "passwd"
    blocker.write_text("not a folder\n")
    space = write_space(tmp_path, TINY)
    line = one_line_error(run_cli("--space", str(space), "--results-dir", str(blocker / "x"),
                                  "--name", "n"))
    assert str(blocker / "x") in line or str(blocker) in line
    assert blocker.read_text() == "not a folder\n"


def _read_only_dir(tmp_path: Path) -> Path:
    """A folder nobody can write to: a read-only tmpfs as root (root ignores permissions),
    else a folder without write permission."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o500)
        return folder
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"running as root but cannot mount a read-only tmpfs: {mounted.stderr}")
    return folder


def test_an_unwritable_results_dir_is_one_line(tmp_path):
    folder = _read_only_dir(tmp_path)
    try:
        space = write_space(tmp_path, TINY)
        line = one_line_error(run_cli("--space", str(space), "--results-dir", str(folder),
                                      "--name", "n"))
        assert str(folder / "n") in line and "cannot create the run folder" in line
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(folder)], check=False)


def test_a_failed_start_leaves_no_run_folder(tmp_path, cifar_dir):
    bad = tmp_path / "data" / "cifar-10-batches-bin"
    bad.mkdir(parents=True)
    for source in (cifar_dir / "cifar-10-batches-bin").iterdir():
        (bad / source.name).write_bytes(source.read_bytes()[:1000])  # truncated batches
    space = write_space(tmp_path, TINY)
    args = ["--space", str(space), "--results-dir", str(tmp_path / "r"), "--name", "n"]
    env = dict(os.environ, NAS_DATA_DIR=str(bad.parent))
    for _ in range(2):  # the same command again gets the same answer, not "already holds a run"
        line = one_line_error(run_cli(*args, env=env))
        assert "data_batch_1.bin" in line and "truncated" in line
        assert not (tmp_path / "r" / "n").exists()


@pytest.mark.parametrize(("url", "named"), [
    ("foo://x", ["--storage foo://x", "unknown database 'foo'", "sqlite", "postgresql"]),
    ("postgresql://user@127.0.0.1/db", ["postgresql driver 'psycopg' is not installed",
                                        "pip install 'spectrum-nas[postgres]'"]),
])
@pytest.mark.parametrize("dry_run", [False, True])
def test_a_storage_url_that_cannot_hold_the_study_is_one_line(tmp_path, url, named, dry_run):
    space = write_space(tmp_path, TINY)
    results = tmp_path / "results"
    # psycopg as a machine without the postgres extra has it: a package that is not there
    hidden = tmp_path / "without" / "psycopg"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n")
    path = os.pathsep.join(p for p in (str(hidden.parent), os.environ.get("PYTHONPATH")) if p)
    done = run_cli("--space", str(space), "--results-dir", str(results), "--name", "n",
                   "--storage", url, *(["--dry-run"] if dry_run else []),
                   env=dict(os.environ, PYTHONPATH=path))
    assert done.returncode == 2
    line = one_line_error(done)
    for part in named:
        assert part in line
    assert not results.exists()


def test_a_space_no_point_of_which_fits_in_memory_is_refused(tmp_path):
    space = write_space(tmp_path, TINY)
    results = tmp_path / "results"
    env = dict(os.environ, NAS_MEMORY_BYTES="1000000")
    line = one_line_error(run_cli("--space", str(space), "--results-dir", str(results),
                                  "--name", "n", env=env))
    assert "no point of the space fits in memory: the smallest needs ~" in line
    assert "per trial (0.00 GiB / 2 concurrent trials" in line
    assert "lower --concurrency, [train].batch_size or the widths" in line
    assert not (results / "n").exists()


def test_dry_run_says_how_many_points_exceed_memory(tmp_path):
    space = write_space(tmp_path, TINY)
    lines = {}
    for memory in ("1000000", ""):
        done = run_cli("--space", str(space), "--dry-run",
                       env=dict(os.environ, NAS_MEMORY_BYTES=memory))
        assert done.returncode == 0, done.stderr[-2000:]
        lines[memory] = next(x for x in done.stdout.splitlines() if x.startswith("Memory"))
    assert lines["1000000"].startswith("Memory (on paper): largest sampled point ~0.5")
    assert "200/200 sampled and 2/2 reference points exceed 0.00 GiB per trial" in lines[
        "1000000"]
    assert "0/200 sampled and 0/2 reference points exceed" in lines[""]


def test_image_folder_refuses_a_symlink_out_of_its_root(tmp_path, cifar_dir):
    root = image_folder(tmp_path / "tree", cifar_dir)
    secret = tmp_path / "elsewhere.png"
    shutil.copyfile(next((root / "train").rglob("*.png")), secret)
    link = next((root / "train").iterdir()) / "zz_link.png"
    link.symlink_to(secret)
    space = write_space(tmp_path, FOLDER)
    line = one_line_error(run_cli("--space", str(space), "--data-dir", str(root),
                                  "--results-dir", str(tmp_path / "r"), "--name", "n"))
    assert str(link) in line and "outside the ImageFolder root" in line
    assert not (tmp_path / "r" / "n").exists()


# ---------------------------------------------------------------------------
# Damaged run folders: every reader names the file; nothing good is rewritten


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy, symlinks=True)
    return copy


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("damage", ["trials.csv", "meta.json"])
@pytest.mark.parametrize("action", ["export", "dashboard", "retrain"])
def test_a_damaged_table_or_meta_is_one_line_naming_it(run_copy, tmp_path, damage, action):
    if damage == "trials.csv":
        # cut inside a quoted JSON curve: the tokenizer's "EOF inside string"
        text = (run_copy / "trials.csv").read_text()
        (run_copy / "trials.csv").write_text(text[: text.index('"[') + 5])
    else:
        (run_copy / "meta.json").write_text("{ garbage")
    args = {"export": ["--out", str(tmp_path / "out")], "dashboard": ["--out",
                                                                     str(tmp_path / "d.html")],
            "retrain": ["--top", "1", "--epochs", "1", "--seeds", "1"]}[action]
    line = one_line_error(run_cli(action, str(run_copy), *args))
    assert str(run_copy / damage) in line
    assert not (tmp_path / "out").exists() and not (tmp_path / "d.html").exists()


def test_a_damaged_optuna_db_is_noticed_and_resume_refuses(run_copy, tmp_path):
    _truncate(run_copy / "optuna.db", 0.3)
    db = str(run_copy / "optuna.db")
    exported = run_cli("export", str(run_copy), "--out", str(tmp_path / "out"))
    assert exported.returncode == 0, exported.stderr[-2000:]  # export does not need the study
    assert "warning" in exported.stderr and db in exported.stderr
    assert len(exported.stderr.strip().splitlines()) == 1
    shown = run_cli("dashboard", str(run_copy), "--out", str(tmp_path / "d.html"))
    assert shown.returncode == 0 and db in shown.stderr
    assert len(shown.stderr.strip().splitlines()) == 1
    before = fingerprint(run_copy)
    space = run_copy / "space.toml"
    line = one_line_error(run_cli("--space", str(space), "--results-dir", str(run_copy.parent),
                                  "--name", run_copy.name, "--resume"))
    assert db in line and "cannot resume" in line
    after = fingerprint(run_copy)
    assert {k: v for k, v in after.items() if k != ".search.lock"} == {
        k: v for k, v in before.items() if k != ".search.lock"}  # meta.json not rewritten


# ---------------------------------------------------------------------------
# Small views: the dashboard server, progress lines, the summary


def test_the_dashboard_server_closes_idle_connections(tiny_run, monkeypatch):
    monkeypatch.setattr(Handler, "timeout", 1)
    server = DashServer(0, Dashboard(tiny_run, 5.0))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as idle:
            start = time.monotonic()
            assert idle.recv(1) == b""  # closed by the server, not by our 10 s timeout
            assert time.monotonic() - start < 5
    finally:
        server.shutdown()
        server.server_close()


def test_progress_lines_and_summary_after_a_failed_row(tiny_run):
    table = pd.read_csv(tiny_run / "trials.csv", dtype={"trial_id": str})
    failed = table.iloc[0].copy()
    failed[["params", "macs", "best_val_acc"]] = float("nan")
    failed[["trial_id", "status", "error", "reference"]] = ["zz", "failed", "boom", "lost_ref"]
    table = pd.concat([table, failed.to_frame().T], ignore_index=True)
    table.to_csv(tiny_run.parent / "with_failed.csv", index=False)
    table = pd.read_csv(tiny_run.parent / "with_failed.csv", dtype={"trial_id": str})
    assert table["params"].dtype == float  # what made '295,338.0 params'
    monitor = SearchMonitor(total=len(table), max_epochs=4)
    monitor.rows = {r["trial_id"]: r for r in table.to_dict("records")}
    line = monitor.progress_line(monitor.rows["zz"], running=0)
    assert " params)" in line and ".0 params" not in line and "zz failed" in line
    assert "boom" in line

    class Outcome:
        run_dir, interrupted, seconds = tiny_run, False, 1.0

    Outcome.table = table
    text = summarize(Outcome)
    assert "lost_ref failed" in text  # a failed reference point is listed as failed
    assert "regular 0." in text
    assert "Resume with" not in text

    Outcome.interrupted = True  # each action's summary continues that action, not a search
    run = f"--name {tiny_run.name} --results-dir {tiny_run.parent} --resume"
    assert f"Resume with: python run_search.py {run}" in summarize(Outcome)
    assert f"Resume with: python run_search.py bench {run}" in summarize(Outcome, "bench")


# ---------------------------------------------------------------------------
# Real searches (slow): one search per folder, clean-up after SIGKILL, divergence, full disk


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid` (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "run_search.py"), *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))


def _rows(table: Path) -> int:
    try:
        return len(pd.read_csv(table)) if table.exists() else 0
    except (pd.errors.ParserError, pd.errors.EmptyDataError):
        return 0


@pytest.mark.slow
def test_one_search_per_folder_and_sigkill_leaves_no_ray_process(tmp_path):
    space = write_space(tmp_path, variant(TINY, search={"trials": 12}))
    args = ["--space", str(space), "--name", "r", "--results-dir", str(tmp_path)]
    first = _start(args)
    run, table = tmp_path / "r", tmp_path / "r" / "trials.csv"
    try:
        deadline = time.monotonic() + 60
        while not (run / ".search.lock").exists() or not (run / ".search.lock").stat().st_size:
            assert time.monotonic() < deadline and first.poll() is None, "no lock taken"
            time.sleep(0.2)
        for extra in ([], ["--resume"]):  # a second search, at once, is refused either way
            line = one_line_error(run_cli(*args, *extra))
            assert f"PID {first.pid}" in line and "started 20" in line and "in use" in line
        deadline = time.monotonic() + 240
        while _rows(table) < 2:
            assert time.monotonic() < deadline and first.poll() is None, "no trial finished"
            time.sleep(0.5)
        ours = _descendants(first.pid)  # the keeper, Ray's daemons and agents, the workers
        assert len(ours) >= 4, ours
        time.sleep(3)  # let the killed part be long enough to show in search_s
        killed_after = time.monotonic()
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    deadline = time.monotonic() + 60
    while any(_alive(p) for p in ours) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [p for p in ours if _alive(p)], "Ray processes outlived the killed driver"
    before = pd.read_csv(table)
    started = pd.Timestamp(json.loads((run / "meta.json").read_text())["started"])
    ran = (pd.Timestamp.now(tz="UTC") - started).total_seconds() - (time.monotonic()
                                                                      - killed_after)

    done = run_cli(*args, "--resume")  # the kernel dropped the lock with the process
    assert done.returncode == 0, done.stderr[-3000:]
    after = pd.read_csv(table)
    assert len(after) == 12 and after["trial_id"].is_unique
    kept = after.set_index("trial_id").loc[before["trial_id"]]
    cols = ["status", "best_val_acc", "curve"]
    pd.testing.assert_frame_equal(kept[cols].reset_index(drop=True), before[cols])
    meta = json.loads((run / "meta.json").read_text())
    # the killed search's time counts (up to its last heartbeat, 2 s apart), not only the resume's
    assert meta["search_s"] >= ran - 15, (meta["search_s"], ran)


@pytest.mark.slow
def test_a_trial_with_lr_50_is_diverged_never_best(tmp_path):
    space = write_space(tmp_path, variant(TINY, train={"lr": 50, "epochs": 3},
                                          search={"trials": 3}))
    done = run_cli("--space", str(space), "--name", "d", "--results-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(tmp_path / "d" / "trials.csv")
    assert (table["status"] == "diverged").all(), table[["status", "reason"]]
    # a finite explosion is caught by the loss rule: 10x where it started (ln(10) here)
    assert table["reason"].str.contains("training loss .* is over 10x").all(), table["reason"]
    assert "non-finite" not in " ".join(table["reason"])
    assert "Best:" not in done.stdout and "No trial produced a validation accuracy" in done.stdout


@pytest.mark.slow
def test_sigkill_of_a_trial_worker_is_recorded_as_failed(tmp_path):
    space = write_space(tmp_path, variant(TINY, train={"epochs": 30}, search={"trials": 3}))
    proc = _start(["--space", str(space), "--name", "w", "--results-dir", str(tmp_path)])
    try:
        deadline, worker = time.monotonic() + 240, None
        while worker is None:
            assert time.monotonic() < deadline and proc.poll() is None, "no trial started"
            for pid in _descendants(proc.pid):  # only below our own driver
                try:
                    title = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if title.startswith(b"ray::ImplicitFunc"):
                    worker = pid
            time.sleep(0.5)
        time.sleep(2)
        os.kill(worker, signal.SIGKILL)
        output, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output[-3000:]
    table = pd.read_csv(tmp_path / "w" / "trials.csv")
    assert len(table) == 3 and (table["status"] == "failed").sum() >= 1


@pytest.mark.slow
def test_a_full_disk_ends_in_one_line_and_leaves_no_empty_checkpoint_file(tmp_path):
    # Real ENOSPC: a 700 KiB tmpfs fills during the tiny search (root only; else skipped).
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=700k", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {mounted.stderr.strip()}")
    try:
        space = write_space(tmp_path, TINY)
        done = run_cli("--space", str(space), "--name", "f", "--results-dir", str(disk))
        assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
        last = done.stderr.strip().splitlines()[-1]
        assert "no space left on the device" in last and str(disk / "f") in last
        empty = [p for p in (disk / "f").rglob("checkpoint_*/*") if p.stat().st_size == 0]
        assert not empty, empty
        assert (disk / "f" / "meta.json").is_file()  # what was finished is kept
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


MEMORY = """
name = "memory"
[data]
dataset = "cifar10"
val_size = 200
train_size = 400
[macro]
strides = [2]
widths = [[8, 256]]
depths = [1]
stem_widths = [8]
stem_strides = [2]
[train]
epochs = 1
batch_size = 100
warmup_epochs = 0
[search]
sampler = "grid"
trials = 2
concurrency = 1
"""


@pytest.mark.slow
def test_a_point_over_memory_is_infeasible_and_never_trains(tmp_path):
    from nas.search.memory import trial_bytes
    from nas.search.space.load import load_space
    from nas.search.space.points import genotype

    space = load_space(write_space(tmp_path, MEMORY))
    from nas.train.device import resolve_precision

    train = dataclasses.replace(space.train, device="cpu",
                                precision=resolve_precision(space.train.precision, "cpu"))
    small, big = (trial_bytes(genotype(space, {"s1_width": w}), train) for w in (8, 256))
    assert small < big
    env = dict(os.environ, NAS_MEMORY_BYTES=str((small + big) // 2))
    done = run_cli("--space", str(space.path), "--results-dir", str(tmp_path), "--name", "m",
                   env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(tmp_path / "m" / "trials.csv").set_index("param_s1_width")
    assert table.loc[8, "status"] == "completed"
    over = table.loc[256]
    assert over["status"] == "infeasible"
    assert over["reason"].startswith("needs ~") and "per trial" in over["reason"]
    assert pd.isna(over["best_val_acc"]) and over["curve"] == "[]"
    assert pd.isna(over["checkpoint"])

"""meta.json's provenance: the git SHA of the checkout a run starts in, else only the installed
package's version."""

import subprocess
from importlib import metadata

from nas.results.meta import read_meta, write_meta

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]


def _space(tmp_path):
    space = tmp_path / "space.toml"
    space.write_text("# a space file, copied as it is\n")
    return space


def test_outside_a_checkout_meta_records_no_sha_and_the_package_version(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # git looks no further up
    monkeypatch.chdir(work)
    write_meta(work / "run", _space(tmp_path), {"seed": 3})
    meta = read_meta(work / "run")
    assert meta["git_sha"] is None
    assert meta["package_version"] == metadata.version("spectrum-nas")
    assert meta["package_version"]
    assert meta["versions"]["spectrum-nas"] == meta["package_version"]
    assert meta["space_file"] == "space.toml" and meta["seed"] == 3
    assert "cpu_count" in meta["hardware"]
    assert (work / "run" / "space.toml").read_text() == _space(tmp_path).read_text()


def test_inside_a_checkout_meta_records_the_sha_of_the_working_directory(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "runs").mkdir(parents=True)
    (repo / "notes.txt").write_text("tracked\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*GIT, "-C", str(repo), "add", "notes.txt"], check=True)
    subprocess.run([*GIT, "-C", str(repo), "commit", "-q", "-m", "one"], check=True)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    monkeypatch.chdir(repo / "runs")  # a subfolder: the enclosing checkout is found
    write_meta(repo / "runs" / "r", _space(tmp_path), {})
    meta = read_meta(repo / "runs" / "r")
    assert meta["git_sha"] == head  # the run's files are untracked: not dirty
    assert meta["package_version"] == metadata.version("spectrum-nas")

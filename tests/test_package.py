"""The wheel ships every module and data file under nas/, and nothing else of the checkout."""

import shutil
import subprocess
import sys
import zipfile

from tests.searchkit import ROOT

DATA = {"nas/dashboard/static": ("*.css", "*.js"), "nas/spaces": ("*.toml",)}


def _checkout_files() -> set[str]:
    """Every module of the package and every data file it ships, as the wheel names them."""
    found = {p.relative_to(ROOT).as_posix() for p in (ROOT / "nas").rglob("*.py")}
    for folder, patterns in DATA.items():  # nas/spaces is the link to search_spaces/
        for pattern in patterns:
            found |= {f"{folder}/{p.name}" for p in (ROOT / folder).glob(pattern)}
    return found


def test_the_wheel_holds_every_package_and_data_file(tmp_path):
    source = tmp_path / "src"  # a copy: setuptools writes build/ beside the sources
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("nas", "search_spaces"):
        shutil.copytree(ROOT / name, source / name, symlinks=True, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path), str(source)],
                   check=True, capture_output=True, timeout=300, cwd=tmp_path)
    (wheel,) = tmp_path.glob("spectrum_nas-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n for n in names if not n.startswith("spectrum_nas-")}
    assert shipped == _checkout_files()
    assert {n.rsplit("/", 1)[-1] for n in shipped if n.startswith("nas/spaces/")} == {
        p.name for p in (ROOT / "search_spaces").glob("*.toml")}  # the one source
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "spectrum-nas = " in zipfile.ZipFile(wheel).read(entry_points).decode()

"""The repository keeps its promises: README commands, CI script, layout."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    first_block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert first_block, "README has no bash block"
    return [line for line in first_block.group(1).splitlines()
            if line.strip() and not line.startswith("#")]


def test_readme_first_screen_has_the_two_commands():
    main_job, tests = _readme_commands()
    assert main_job.endswith("run_search.py")
    assert tests.endswith("-m pytest")
    for command in (main_job, tests):
        assert "-c constraints.txt" in command  # pinned versions in every install


def test_ci_runs_the_readme_test_command_verbatim():
    tests = _readme_commands()[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci


def test_required_layout():
    for name in ("nas", "search_spaces", "results", "tests", "benchmarks", "run_search.py",
                 "pyproject.toml", "README.md", "constraints.txt", ".ci/run"):
        assert (ROOT / name).exists(), name
    assert (ROOT / "results" / "README.md").exists()


def test_the_architecture_map_lists_every_module_under_its_package():
    text = (ROOT / "docs" / "architecture.md").read_text()
    sections = dict(re.findall(r"^### `(nas/(?:\w+/)*)`.*?\n(.*?)(?=^### |\Z)", text, re.S | re.M))
    for path in (ROOT / "nas").rglob("*.py"):
        if path.name == "__init__.py":
            continue
        folder = path.parent.relative_to(ROOT).as_posix() + "/"
        assert folder in sections, f"docs/architecture.md has no section for {folder}"
        assert f"`{path.name}`" in sections[folder], f"{folder}{path.name} is not in its section"

"""Every command in the README runs: each `run_search.py` line parses (with --help appended, or
as the dry run it is), and the Python example names only what nas.api has."""

import ast
import contextlib
import io
import re
import shlex

import pytest

from nas import api
from nas.cli.main import main
from tests.searchkit import ROOT

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(bash|python)\n(.*?)```", README, re.S)
COMMANDS = [line for kind, block in BLOCKS[1:] if kind == "bash"  # the first: the two commands
            for line in block.splitlines() if line.startswith("python run_search.py")]


def test_the_readme_shows_commands_of_every_action():
    used = {shlex.split(c)[2] if len(shlex.split(c)) > 2 else "" for c in COMMANDS}
    assert {"dashboard", "export", "retrain", "study", "bench", "supernet"} <= used
    assert sum("--dry-run" in c for c in COMMANDS) >= 2


@pytest.mark.parametrize("command", COMMANDS)
def test_every_readme_command_parses(command, cifar_dir):
    argv = shlex.split(command)[2:]
    dry = "--dry-run" in argv
    if "--data-dir" in argv and dry:  # the README's data may sit elsewhere: the space is the test
        at = argv.index("--data-dir")
        del argv[at:at + 2]
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            code = main(argv if dry else [*argv, "--help"])
    except SystemExit as stop:  # argparse ends --help this way
        code = stop.code
    assert code in (0, None), (command, out.getvalue()[-500:])
    assert ("Dimensions:" if dry else "usage:") in out.getvalue()


def test_the_python_example_uses_only_the_api():
    (example,) = [block for kind, block in BLOCKS if kind == "python"]
    tree = ast.parse(example)
    called = {n.attr for n in ast.walk(tree)
              if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
              and n.value.id == "api"}
    assert called == {"search", "open_run"} and all(hasattr(api, name) for name in called)
    methods = {n.attr for n in ast.walk(tree)
               if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
               and n.value.id == "run"}
    assert methods and all(hasattr(api.Run, name) for name in methods), methods

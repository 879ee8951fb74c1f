"""The command line: one dispatch table, --version, a light --help, and every numeric flag of
every action refused when out of range (one line naming the flag), a dry run included."""

import json
import subprocess
import sys

import pytest

from nas.cli.main import ACTIONS, main
from tests.searchkit import BENCH, ROOT, TINY, write_space

# action -> [(flags, the flag the error names)]; every flag is out of range
BAD = {
    "search": [(["--trials", "0"], "--trials"), (["--trials", "-2"], "--trials"),
               (["--max-epochs", "0"], "--max-epochs"), (["--concurrency", "0"], "--concurrency"),
               (["--cpus-per-trial", "0"], "--cpus-per-trial"),
               (["--cpus-per-trial", "-1"], "--cpus-per-trial"),
               (["--gpus-per-trial", "-0.5"], "--gpus-per-trial"), (["--seed", "-1"], "--seed"),
               (["--replay", "BENCH", "--replay-speed", "0"], "--replay-speed")],
    "study": [(["--trials", "0"], "--trials"), (["--max-epochs", "0"], "--max-epochs"),
              (["--concurrency", "-1"], "--concurrency"),
              (["--cpus-per-trial", "0"], "--cpus-per-trial"),
              (["--gpus-per-trial", "-1"], "--gpus-per-trial"), (["--seed", "-3"], "--seed")],
    "bench": [(["--max-epochs", "0"], "--max-epochs"), (["--concurrency", "0"], "--concurrency"),
              (["--cpus-per-trial", "0"], "--cpus-per-trial"),
              (["--gpus-per-trial", "-1"], "--gpus-per-trial"), (["--seed", "-1"], "--seed")],
    "supernet": [(["--epochs", "0"], "--epochs"), (["--top-k", "-1"], "--top-k"),
                 (["--uniform-paths", "0"], "--uniform-paths"),
                 (["--calibration-images", "0"], "--calibration-images"),
                 (["--score-trials", "0"], "--score-trials"),
                 (["--max-epochs", "0"], "--max-epochs"), (["--concurrency", "0"], "--concurrency"),
                 (["--cpus-per-trial", "0"], "--cpus-per-trial"),
                 (["--gpus-per-trial", "-1"], "--gpus-per-trial"), (["--seed", "-1"], "--seed")],
    "retrain": [(["--top", "0"], "--top"), (["--epochs", "0"], "--epochs"),
                (["--seeds", "-1"], "--seeds"), (["--cpus", "0"], "--cpus")],
    "export": [(["--tolerance", "-0.1"], "--tolerance"), (["--tolerance", "1.5"], "--tolerance")],
    "dashboard": [(["--port", "-1"], "--port"), (["--port", "70000"], "--port"),
                  (["--refresh", "0"], "--refresh"), (["--refresh", "-5"], "--refresh")],
}
CASES = [(action, flags, named) for action, cases in BAD.items() for flags, named in cases]


def _argv(action: str, flags: list[str], tmp_path) -> list[str]:
    """The action's arguments with a real target, so only the flag can be wrong."""
    results = ["--results-dir", str(tmp_path / "results")]
    flags = [str(tmp_path) if f == "BENCH" else f for f in flags]
    if action == "search":
        return ["--space", str(write_space(tmp_path, TINY)), "--dry-run", *results, *flags]
    if action in ("study", "bench", "supernet"):
        space = write_space(tmp_path, BENCH if action == "bench" else TINY)
        return [action, str(space), *results, *flags]
    if action == "export":
        return [action, str(tmp_path), "--out", str(tmp_path / "out"), *flags]
    return [action, str(tmp_path), *flags]


@pytest.mark.parametrize(("action", "flags", "named"), CASES,
                         ids=[f"{a}{''.join(f)}" for a, f, _ in CASES])
def test_out_of_range_numbers_are_refused_never_read_as_the_default(action, flags, named,
                                                                    tmp_path, capsys):
    assert main(_argv(action, flags, tmp_path)) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "must be" in lines[0], err
    assert f"run_search.py {action}: error:" in lines[0]
    assert "budget" not in out.lower()  # a dry run prints no space, no budget
    assert not (tmp_path / "results").exists() and not (tmp_path / "out").exists()


def test_a_dry_run_with_a_zero_trial_budget_is_refused_and_a_valid_one_described(tmp_path,
                                                                                 capsys):
    space = str(write_space(tmp_path, TINY))
    assert main(["--space", space, "--dry-run", "--trials", "0"]) == 2
    assert "--trials: 0 must be >= 1" in capsys.readouterr().err
    assert main(["--space", space, "--dry-run", "--trials", "1", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert out.strip() and "[verify]" not in out  # TINY has no race


def test_a_dry_run_describes_the_race_that_follows(tmp_path, capsys):
    from tests.searchkit import RACED

    assert main(["--space", str(write_space(tmp_path, RACED)), "--dry-run"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    # RACED's [verify]: 2 seeds a point, the prior sd .02 on 8 df, no budget
    assert last == ("Then a [verify] race at 90 % confidence: up to 2 seeds a point, no"
                    " core-second cap, noise prior sd 2.0 pt (8 df) (--no-verify: none)")


def test_every_action_is_one_cli_module_with_its_parser_and_main():
    import importlib

    assert set(ACTIONS) == set(BAD)
    for module in ACTIONS.values():
        loaded = importlib.import_module(module)
        assert callable(loaded.main) and callable(loaded.parser)


# A fresh interpreter: the search's --help and --version, then what they loaded.
PROBE = """
import contextlib, io, json, sys
from nas.cli.main import main
for argv in (["--help"], ["--version"]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(argv)
    print(json.dumps(out.getvalue()), file=sys.stderr)
print(json.dumps(sorted(sys.modules)))
"""


def test_help_and_version_load_neither_torch_nor_ray():
    from importlib.metadata import version

    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    helped, versioned = (json.loads(line) for line in done.stderr.splitlines()[-2:])
    assert "--trials" in helped and "Other actions" in helped
    assert versioned.strip() == f"spectrum-nas {version('spectrum-nas')}"
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    for heavy in ("torch", "ray", "optuna", "plotly"):
        assert heavy not in loaded, heavy


@pytest.mark.parametrize("command", ["spectrum-nas", "run_search.py"])
def test_usage_and_errors_name_the_command_the_user_typed(command):
    run = ("import sys; from nas.cli.main import main; sys.argv[0] = '/somewhere/' + sys.argv[1];"
           " sys.exit(main(sys.argv[2:]))")
    helped = subprocess.run([sys.executable, "-c", run, command, "export", "--help"],
                            capture_output=True, text=True, cwd=ROOT)
    assert helped.returncode == 0 and helped.stdout.startswith(f"usage: {command} export")
    refused = subprocess.run([sys.executable, "-c", run, command, "export", "/no/such/run"],
                             capture_output=True, text=True, cwd=ROOT)
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines()[-1].startswith(f"{command} export: error:")

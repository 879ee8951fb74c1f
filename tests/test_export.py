"""Export of real search trials: choice, strict weights, equal outputs without `nas`, refusals."""

import ast
import importlib.util
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch

from nas import api
from nas import export as export_module
from nas.arch.genotype import Genotype
from nas.arch.model import build
from nas.cli.main import main as cli_main
from nas.export import ExportError, ExportRequest, choose, export
from nas.onnx_export import OnnxError
from nas.results.checkpoints import trial_checkpoint
from nas.results.errors import RunFolderError
from nas.results.meta import read_meta
from nas.results.ranking import best_trial
from nas.results.table import read_trials
from nas.results.values import number
from nas.retrain import top_trials
from tests.searchkit import run_cli

RUFF = Path(sys.executable).parent / "ruff"
FILES = ("model.py", "weights.pt", "genotype.json")


def _search_model(run_dir: Path, trial_id: str) -> torch.nn.Module:
    """The search model of a trial, loaded from its own checkpoint."""
    row = next(r for r in read_trials(run_dir) if r["trial_id"] == trial_id)
    model = build(Genotype.from_json(row["genotype"]))
    state = torch.load(trial_checkpoint(run_dir, row) / "model.pt", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def _with_checkpoint(run_dir: Path) -> list[dict]:
    return [r for r in read_trials(run_dir) if trial_checkpoint(run_dir, r) is not None]


def _full_budget(run_dir: Path) -> list[dict]:
    """The trials --best ranks first: completed, with a checkpoint."""
    return [r for r in _with_checkpoint(run_dir) if r["status"] == "completed"]


@pytest.fixture(scope="module")
def cli_exports(tiny_run, tmp_path_factory):
    """`export --best` and `export --trial` of the tiny run, through the command line."""
    root = tmp_path_factory.mktemp("exports")
    best = choose(tiny_run, read_trials(tiny_run))  # ties between equal accuracies: its rule
    other = min(_with_checkpoint(tiny_run), key=lambda r: r["best_val_acc"])
    done = run_cli("export", str(tiny_run), "--best", "--out", str(root / "best"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Exported trial {best['trial_id']}" in done.stdout
    assert "; full budget, best of 4 epochs)" in done.stdout  # the fidelity it ranks at
    # the same path, in-process
    export(ExportRequest(tiny_run, root / "trial", trial=other["trial_id"]))
    return root, {"best": best, "trial": other}


CHECK = "import sys; sys.modules['nas'] = None\n" + textwrap.dedent("""
    import importlib.util, json
    import torch
    torch.set_num_threads(1)
    out = {}
    for folder in sys.argv[1:]:
        spec = importlib.util.spec_from_file_location("model", folder + "/model.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        net = module.SearchedNet().eval()
        net.load_state_dict(torch.load(folder + "/weights.pt", weights_only=True), strict=True)
        x = torch.load(folder + "/x.pt", weights_only=True)
        with torch.inference_mode():
            torch.save(net(x), folder + "/y.pt")
        out[folder] = sorted(net.state_dict())
    print(json.dumps(out))
""")


def test_exports_load_strictly_and_match_the_search_model_without_nas(cli_exports, tiny_run,
                                                                      tmp_path):
    root, rows = cli_exports
    folders = [root / name for name in rows]
    inputs = {}
    for folder, row in zip(folders, rows.values(), strict=True):
        assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
        genotype = Genotype.from_json((folder / "genotype.json").read_text())
        assert genotype == Genotype.from_json(row["genotype"])
        inputs[folder] = torch.randn(3, 3, genotype.resolution, genotype.resolution)
        torch.save(inputs[folder], folder / "x.pt")
    done = subprocess.run([sys.executable, "-c", CHECK, *map(str, folders)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    keys = json.loads(done.stdout.strip().splitlines()[-1])
    for folder, row in zip(folders, rows.values(), strict=True):
        model = _search_model(tiny_run, row["trial_id"])
        assert keys[str(folder)] == sorted(model.state_dict())
        with torch.inference_mode():
            expected = model(inputs[folder])
        got = torch.load(folder / "y.pt", weights_only=True)
        assert (got - expected).abs().max().item() <= 1e-6
        (folder / "x.pt").unlink()
        (folder / "y.pt").unlink()


def test_exported_code_carries_the_search_normalisation(cli_exports, tiny_run):
    root, rows = cli_exports
    data = json.loads((tiny_run / "meta.json").read_text())["data"]
    assert len(data["mean"]) == 3 and data["train_images"] > 0
    for name in rows:
        tree = ast.parse((root / name / "model.py").read_text())
        found = {t.id: ast.literal_eval(node.value) for node in ast.walk(tree)
                 if isinstance(node, ast.Assign) for t in node.targets
                 if isinstance(t, ast.Name) and t.id in ("MEAN", "STD")}
        assert found == {"MEAN": tuple(data["mean"]), "STD": tuple(data["std"])}


def test_best_is_the_highest_validation_accuracy_with_a_checkpoint(cli_exports, tiny_run):
    root, rows = cli_exports
    best_acc = max(r["best_val_acc"] for r in _full_budget(tiny_run))
    assert rows["best"]["best_val_acc"] == best_acc
    doc = ast.get_docstring(ast.parse((root / "best" / "model.py").read_text()))
    chosen = choose(tiny_run, read_trials(tiny_run))
    assert chosen["best_val_acc"] == best_acc
    git = read_meta(tiny_run)["git_sha"]
    for part in (f"Trial: {chosen['trial_id']}", f"Git commit: {git}", "Validation accuracy:",
                 f"Search run: {tiny_run}", "s1: spectrum", "s2: spectrum"):
        assert part in doc, part


def test_weights_are_the_checkpoint_tensors(cli_exports, tiny_run):
    root, rows = cli_exports
    row = next(r for r in read_trials(tiny_run) if r["trial_id"] == rows["trial"]["trial_id"])
    saved = torch.load(trial_checkpoint(tiny_run, row) / "model.pt", weights_only=True)
    weights = torch.load(root / "trial" / "weights.pt", weights_only=True)
    assert list(weights) == list(saved)
    assert all(torch.equal(weights[k], saved[k]) for k in saved)


def test_exported_code_is_ruff_clean(cli_exports):
    root, _ = cli_exports
    if not RUFF.is_file():
        pytest.fail(f"ruff not found at {RUFF}; install the dev extra", pytrace=False)
    files = [str(root / name / "model.py") for name in ("best", "trial")]
    fmt = subprocess.run([str(RUFF), "format", "--isolated", "--check", *files],
                         capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout
    lint = subprocess.run([str(RUFF), "check", "--isolated", "--select", "E,F,W,I,B,UP,SIM,RUF",
                           *files], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout


def test_existing_files_are_kept_unless_forced(cli_exports, tiny_run):
    root, rows = cli_exports
    folder = root / "best"
    before = {name: (folder / name).read_bytes() for name in FILES}
    trial = rows["trial"]["trial_id"]
    with pytest.raises(ExportError, match="--force"):
        export(ExportRequest(tiny_run, folder, trial=trial))
    assert {name: (folder / name).read_bytes() for name in FILES} == before
    export(ExportRequest(tiny_run, folder, trial=trial, force=True))
    assert Genotype.from_json((folder / "genotype.json").read_text()) == Genotype.from_json(
        rows["trial"]["genotype"])


def test_cheapest_within_tolerance_is_on_the_pareto_front(tiny_run):
    rows = _full_budget(tiny_run)  # like with like: the best one's fidelity only
    best = max(r["best_val_acc"] for r in rows)
    chosen = choose(tiny_run, read_trials(tiny_run), objective="macs", tolerance=0.1)
    assert chosen["best_val_acc"] >= best - 0.1
    assert chosen["macs"] == min(r["macs"] for r in rows if r["best_val_acc"] >= best - 0.1)
    assert not [r for r in rows if r["macs"] < chosen["macs"]
                and r["best_val_acc"] >= chosen["best_val_acc"]]  # nothing dominates it
    tight = choose(tiny_run, read_trials(tiny_run), objective="params", tolerance=0.0)
    assert tight["best_val_acc"] == best


def test_a_runtimes_latency_picks_the_cheapest_trial_on_that_runtime(latency_run, tmp_path,
                                                                      capsys):
    rows = read_trials(latency_run)
    for objective in ("latency_ms@onnxruntime:b1", "latency_ms@torch_cl:b2"):
        chosen = choose(latency_run, rows, objective=objective, tolerance=1.0)  # every trial
        assert chosen[objective] == min(r[objective] for r in rows)
    out = tmp_path / "out"
    assert cli_main(["export", str(latency_run), "--objective", "latency_ms@onnxruntime:b1",
                     "--tolerance", "1", "--out", str(out)]) == 0
    assert f"Exported trial {chosen_id(rows, 'latency_ms@onnxruntime:b1')} " in (
        capsys.readouterr().out)


def chosen_id(rows: list[dict], column: str) -> str:
    return min(rows, key=lambda r: r[column])["trial_id"]


def test_an_objective_the_run_did_not_record_is_one_line_naming_the_allowed(
        latency_run, tiny_run, tmp_path, capsys):
    recorded = ", ".join(f"latency_ms@{r}:b{b}" for r in ("torch", "torch_cl", "onnxruntime")
                         for b in (1, 2))
    assert cli_main(["export", str(latency_run), "--objective", "latency_ms@torch_bf16:b1",
                     "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert ("--objective 'latency_ms@torch_bf16:b1': this run's trials did not record it (its"
            " space's [latency] section did not configure that runtime and batch); expected"
            f" one of val_acc, params, macs, latency_ms, {recorded}") in err
    # the tiny run timed torch at batch 1 only (a space without [latency]); the API says so too
    with pytest.raises(ExportError, match=r"expected one of val_acc, params, macs, latency_ms,"
                       r" latency_ms@torch:b1$"):
        api.open_run(tiny_run).export(tmp_path / "b", objective="latency_ms@onnxruntime:b1")
    with pytest.raises(ExportError, match=r"^--objective 'flops': unknown; expected one of"):
        api.open_run(tiny_run).export(tmp_path / "c", objective="flops")
    assert not any(tmp_path.iterdir())


def test_failed_and_diverged_trials_cannot_be_exported(broken_run, tmp_path):
    table = read_trials(broken_run)
    failed = next(r["trial_id"] for r in table if r["status"] == "failed")
    done = run_cli("export", str(broken_run), "--trial", failed, "--out", str(tmp_path / "a"))
    assert done.returncode == 2
    assert f"trial {failed} has no checkpoint" in done.stderr and "status failed" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    with pytest.raises(ExportError, match="no completed or stopped trial has a checkpoint"):
        export(ExportRequest(broken_run, tmp_path / "b"))
    with pytest.raises(ExportError, match="no trial 'nope'"):
        export(ExportRequest(broken_run, tmp_path / "c", trial="nope"))
    assert not any(tmp_path.iterdir())


def test_best_skips_a_diverged_trial_like_the_dashboard_and_retrain(tampered):
    run, best = tampered
    table = pd.read_csv(run / "trials.csv", dtype={"trial_id": str})
    # a trial that diverged after its best epoch keeps that checkpoint, but it is not a result
    table.loc[table["trial_id"] == best["trial_id"], "status"] = "diverged"
    table.to_csv(run / "trials.csv", index=False)
    rows = read_trials(run)
    chosen = choose(run, rows)
    assert chosen["trial_id"] != best["trial_id"] and chosen["status"] in ("completed", "stopped")
    assert best_trial(table)["trial_id"] == chosen["trial_id"]
    assert top_trials(rows, 1)[0].trial_id == chosen["trial_id"]
    assert choose(run, rows, trial=best["trial_id"])["trial_id"] == best["trial_id"]  # asked for


@pytest.fixture
def tampered(tiny_run, tmp_path):
    """A copy of the tiny run (checkpoints included) to tamper with, and its best trial."""
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    return copy, choose(copy, read_trials(copy))


def _set_genotype(run_dir: Path, trial_id: str, genotype: dict) -> None:
    table = pd.read_csv(run_dir / "trials.csv", dtype={"trial_id": str})
    table.loc[table["trial_id"] == trial_id, "genotype"] = json.dumps(genotype)
    table.to_csv(run_dir / "trials.csv", index=False)


@pytest.mark.parametrize("where", ["table", "checkpoint"])
@pytest.mark.parametrize("change", ["code_kind", "extra_key", "code_act"])
def test_code_like_genotypes_are_refused_and_nothing_is_written(tampered, tmp_path, where,
                                                                change):
    run_dir, row = tampered
    genotype = json.loads(row["genotype"])
    payload = "__import__('os').system('touch pwned')"
    if change == "code_kind":
        genotype["stages"][0]["kind"] = payload
    elif change == "code_act":
        genotype["act"] = payload
    else:
        genotype["stages"][0]["evil"] = payload
    if where == "table":
        _set_genotype(run_dir, row["trial_id"], genotype)
    else:
        (trial_checkpoint(run_dir, row) / "genotype.json").write_text(json.dumps(genotype))
    out = tmp_path / "out"
    expected = {"code_kind": r"stage s1\.kind: .* is not one of", "code_act": r"\.act: ",
                "extra_key": "unknown field 'evil'"}[change]
    with pytest.raises(RunFolderError, match=expected):
        export(ExportRequest(run_dir, out, trial=row["trial_id"]))
    assert not out.exists()


def test_checkpoint_must_match_the_table(tampered, tmp_path):
    run_dir, row = tampered
    other = next(r for r in read_trials(run_dir) if r["genotype"] != row["genotype"])
    (trial_checkpoint(run_dir, row) / "genotype.json").write_text(other["genotype"])
    with pytest.raises(ExportError, match="differs from trial"):
        export(ExportRequest(run_dir, tmp_path / "out", trial=row["trial_id"]))
    assert not (tmp_path / "out").exists()


def test_moved_run_folder_uses_its_own_checkpoints(tampered):
    run_dir, row = tampered
    assert trial_checkpoint(run_dir, row).is_relative_to(run_dir)


def test_missing_onnx_packages_are_named_and_nothing_is_written(tiny_run, tmp_path,
                                                              monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(OnnxError, match=r"onnxruntime.*pip install 'spectrum-nas\[onnx\]'"):
        export(ExportRequest(tiny_run, tmp_path / "out", onnx=True))
    assert not (tmp_path / "out").exists()


def test_onnx_export_matches_torch(tiny_run, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    done = export(ExportRequest(tiny_run, tmp_path / "out", onnx=True))
    assert (tmp_path / "out" / "model.onnx").is_file()
    assert done.onnx_diff is not None and done.onnx_diff <= 1e-4


def test_number_reads_table_cells():
    assert number("0.5") == 0.5 and number(float("nan")) is None and number(None) is None
    assert export_module.text(float("nan")) == ""

"""benchmarks/rank_fidelity.py on a hand-written bench: a complete one, and a partial one."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import torch

from benchmarks import rank_fidelity
from nas.results.atomic import write_json
from nas.results.names import META, MODEL_FILE, SUPERNET_CSV, SUPERNET_DIR, SUPERNET_JSON, TABLE
from nas.search.space.load import load_space
from nas.supernet.model import SuperNet
from tests.benchkit import write_bench


@pytest.mark.slow
def test_rank_fidelity_reports_every_predictor_on_a_complete_bench(tmp_path, cifar_dir, capsys):
    bench = write_bench(tmp_path / "bench")
    out = tmp_path / "rf.md"
    code = rank_fidelity.main(["--bench", str(bench), "--supernet-epochs", "1", "--min-points",
                               "4", "--bootstrap", "50", "--data-dir", str(cifar_dir),
                               "--out", str(out)])
    assert code == 0
    text = out.read_text()
    assert "complete bench: all 4 points" in text and "PARTIAL" not in text
    for name in ("supernet, 1 epoch", "synflow", "naswot", "grad_norm", "snip", "#params",
                 "MACs", "bench epoch-1 accuracy", "random 5 points"):
        assert f"| {name}" in text, name
    # the fixture's epoch-1 accuracies rise with its finals: a perfect ranking, zero regret
    row = next(line for line in text.splitlines() if line.startswith("| bench epoch-1"))
    assert "+1.000" in row and row.rstrip().endswith("| 0.00 | 0.00 |")


def test_a_partial_bench_says_so_and_too_few_points_are_refused(tmp_path, cifar_dir, capsys):
    bench = write_bench(tmp_path / "bench")
    table = pd.read_csv(bench / TABLE)
    table.iloc[:3].to_csv(bench / TABLE, index=False)
    out = tmp_path / "rf.md"
    args = ["--bench", str(bench), "--supernet-epochs", "--bootstrap", "20", "--data-dir",
            str(cifar_dir), "--out", str(out)]
    assert rank_fidelity.main([*args, "--min-points", "3"]) == 0
    assert "PARTIAL bench: 3 of 4 points" in out.read_text()
    out.unlink()
    assert rank_fidelity.main(args) == 2  # 3 < the default minimum
    assert "at least 8" in capsys.readouterr().err and not out.exists()


def _checkpoint(run, bench):
    """An (untrained) supernet of the bench's space saved as the run's checkpoint."""
    shutil.copy(bench / "bench.toml", run / "bench.toml")
    write_json(run / META, {"space_file": "bench.toml"})
    (run / SUPERNET_DIR).mkdir()
    torch.manual_seed(0)
    net = SuperNet(load_space(run / "bench.toml"))
    torch.save(net.state_dict(), run / SUPERNET_DIR / MODEL_FILE)


def test_scores_of_supernet_run_folders_are_read(tmp_path, cifar_dir):
    bench = write_bench(tmp_path / "bench")
    table = pd.read_csv(bench / TABLE)
    run = tmp_path / "sn3"
    run.mkdir()
    # scores that rank the points as the fixture's finals do (they rise with the row index)
    # and a validation loss that ranks them backwards
    n = len(table)
    pd.DataFrame({"arch_key": table["arch_key"], "score": [-i for i in range(n)],
                  "val_acc": range(n), "val_loss": range(n)}).to_csv(run / SUPERNET_CSV,
                                                                      index=False)
    write_json(run / SUPERNET_JSON, {"settings": {"rank": "supernet", "epochs": 3, "seed": 0,
                                                  "precision": "fp32", "sandwich": False,
                                                  "uniform_paths": 3, "score_by": "val_loss"},
                                     "train_s": 10.0, "train_threads": 2, "score_s": 2.0,
                                     "score_cores": 3})
    _checkpoint(run, bench)
    strategies = tmp_path / "strategies.csv"
    pd.DataFrame([{"strategy": s, "budget": b, "runs": 30, "returned": 30, "regret_pp_median": m,
                   "regret_pp_q1": m - 1, "regret_pp_q3": m + 1, "rank_median": 2}
                  for s, b, m in (("tpe", 0.05, 1.5), ("tpe", 0.5, 0.25))]).to_csv(
        strategies, index=False)
    out = tmp_path / "rf.md"
    assert rank_fidelity.main(["--bench", str(bench), "--supernet-epochs", "--supernet-runs",
                               str(run), "--min-points", "4", "--bootstrap", "20",
                               "--strategies", str(strategies), "--data-dir", str(cifar_dir),
                               "--rescore", str(run), "--rescore-calibration", "16", "--out",
                               str(out)]) == 0
    assert "| tpe (median [IQR] of 30 runs) | | 5% | 1.50 [0.50–2.50] |" in out.read_text()
    assert "| 50% |" not in out.read_text()  # only budgets near the pipeline's
    row = next(line for line in out.read_text().splitlines()
               if line.startswith("| supernet, 3 epochs, 3 uniform paths (sn3) |"))
    assert row.split("|")[2].strip().startswith("+1.000")
    pipeline = next(line for line in out.read_text().splitlines()
                    if line.startswith("| supernet, 3 epochs, 3 uniform paths (sn3) + verify"))
    loss = next(line for line in out.read_text().splitlines()
                if line.startswith("| supernet, 3 epochs, 3 uniform paths (sn3), −val loss |"))
    assert loss.split("|")[2].strip().startswith("-1.000")
    # the checkpoint re-scored with 16 calibration images: charged the training, plus its own
    rescored = [line for line in out.read_text().splitlines()
                if line.startswith("| supernet, 3 epochs, 3 uniform paths (sn3), calibration 16")]
    assert len(rescored) == 4  # accuracy and loss rankings, fidelity and pipeline rows
    pipeline_row = rescored[-2] if "+ verify" in rescored[-2] else rescored[-1]
    assert float(pipeline_row.split("|")[2].replace(",", "")) >= 60  # 20 core-s + 40 + scoring
    # 10 s x 2 threads of training, 2 s x 3 cores of scoring, plus the bench compute of all 4
    # points (the top 5 of 4): point i trains 2 epochs of (i + 1) s per seed, 2 seeds:
    # 4 * (1 + 2 + 3 + 4) = 40 core-s
    assert pipeline.split("|")[2:4] == [" 66 ", " 165.0% "]

"""benchmarks/rank_fidelity.py on a hand-written bench: a complete one, and a partial one."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmarks import rank_fidelity
from nas.results import TABLE
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

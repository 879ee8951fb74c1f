"""`bench --reuse`: points another bench trained identically are copied, the rest trained."""

import pytest

from nas.bench.reuse import REUSED_FROM, init_independent, reusable_rows
from nas.bench.run import bench_points
from nas.bench.table import BenchError, load_bench
from nas.results.meta import read_meta
from nas.results.table import read_table
from nas.search.space.load import load_space
from nas.search.space.points import genotype
from tests.benchkit import write_bench
from tests.searchkit import BENCH, run_cli, variant, write_space

# the fixture's rows train at what precision "auto" resolves to here, the bench must agree
pytestmark = pytest.mark.precision

# The tiny bench with a residual choice: 2 orders x 2 residuals, one spectrum position.
RESIDUAL = variant(BENCH, blocks={"spectrum": [0.0], "residual": ["identity", "none"],
                                   "shared": ["spectrum", "order", "residual"]})
GAMMA1 = variant(RESIDUAL, train={"zero_init_residual": False})


def _residual(space, params) -> bool:
    return genotype(space, params).stages[0].residual != "none"


def test_the_residual_init_matters_exactly_where_a_residual_is(tmp_path):
    space = load_space(write_space(tmp_path, GAMMA1))
    points = bench_points(space)
    assert len(points) == 4
    for params in points:
        assert init_independent(space, params, "zero_init_residual") == (
            not _residual(space, params))


def test_only_the_points_the_changed_init_cannot_affect_are_copied(tmp_path):
    source = write_bench(tmp_path / "source", space=RESIDUAL, precision="fp32")
    space = load_space(write_space(tmp_path, GAMMA1))
    copies = reusable_rows(space, bench_points(space), source, 2, "fp32")
    assert len(copies) == 2 and {c[REUSED_FROM] for c in copies} == {"source"}
    want = {genotype(space, p).key() for p in bench_points(space) if not _residual(space, p)}
    assert {c["arch_key"] for c in copies} == want
    assert all(c["checkpoint"] is None for c in copies)  # the source's checkpoint is not here
    # the same space (nothing changed): every point is copied
    same = load_space(write_space(tmp_path, RESIDUAL, "same.toml"))
    assert len(reusable_rows(same, bench_points(same), source, 2, "fp32")) == 4


@pytest.mark.parametrize(("change", "named"), [
    ({"train": {"lr": 0.2}}, "[train] lr"),
    ({"data": {"val_size": 100}}, "[data] val_size"),
    ({"search": {"repeats": 1}}, "[search] repeats"),
])
def test_a_bench_trained_differently_is_refused_naming_the_difference(tmp_path, change, named):
    source = write_bench(tmp_path / "source", space=RESIDUAL, precision="fp32")
    space = load_space(write_space(tmp_path, variant(GAMMA1, **change)))
    with pytest.raises(BenchError, match=f"--reuse .*source.*{named.replace('[', '.')}"):
        reusable_rows(space, bench_points(space), source, 2, "fp32")


def test_other_epochs_or_precision_are_refused(tmp_path):
    source = write_bench(tmp_path / "source", space=RESIDUAL, precision="fp32")
    space = load_space(write_space(tmp_path, GAMMA1))
    with pytest.raises(BenchError, match="epochs"):
        reusable_rows(space, bench_points(space), source, 3, "fp32")
    with pytest.raises(BenchError, match="trained in fp32, this bench trains in bf16"):
        reusable_rows(space, bench_points(space), source, 2, "bf16")


def test_bench_reuse_copies_half_and_trains_half_through_the_stack(tmp_path):
    source = write_bench(tmp_path / "source", space=RESIDUAL)
    space_file = write_space(tmp_path, GAMMA1)
    done = run_cli("bench", str(space_file), "--name", "g1", "--results-dir", str(tmp_path),
                   "--reuse", str(source), timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "2 of 4 points to train copied from" in done.stdout
    assert "2 of 4 points to train, 2 seed(s)" in done.stdout
    assert "4 of 4 points done" in done.stdout
    run_dir = tmp_path / "g1"
    bench = load_bench(run_dir)
    assert len(bench.points) == 4
    table = read_table(run_dir).set_index("arch_key")
    src = read_table(source).set_index("arch_key")
    space = load_space(space_file)
    for params in bench_points(space):
        key = genotype(space, params).key()
        if _residual(space, params):  # trained here, with gamma 1
            assert table.loc[key, REUSED_FROM] != "source"
            assert table.loc[key, "seed_curves"] != src.loc[key, "seed_curves"]
        else:
            assert table.loc[key, REUSED_FROM] == "source"
            assert table.loc[key, "seed_curves"] == src.loc[key, "seed_curves"]
    assert read_meta(run_dir)[REUSED_FROM] == {"bench": "source", "points": 2}
    # the same space again, fresh: copying a whole bench is refused, not silently done
    again = run_cli("bench", str(write_space(tmp_path, RESIDUAL, "same.toml")), "--name", "g2",
                    "--results-dir", str(tmp_path), "--reuse", str(source))
    assert again.returncode != 0 and "holds every point" in again.stderr
    assert not (tmp_path / "g2").exists()


def test_a_resumed_bench_is_completed_from_another_without_training(tmp_path):
    source = write_bench(tmp_path / "source", space=RESIDUAL)
    target = write_bench(tmp_path / "g1", space=GAMMA1)
    space = load_space(target / "bench.toml")
    residual = {genotype(space, p).key() for p in bench_points(space) if _residual(space, p)}
    table = read_table(target)
    # only the residual points trained here
    table[table["arch_key"].isin(residual)].to_csv(target / "trials.csv", index=False)
    done = run_cli("bench", "--resume", "--name", "g1", "--results-dir", str(tmp_path),
                   "--reuse", str(source))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "2 of 2 points to train copied from" in done.stdout
    assert "all 4 points done" in done.stdout
    table = read_table(target)
    assert len(table) == 4 and (table[REUSED_FROM] == "source").sum() == 2
    assert read_meta(target)[REUSED_FROM] == {"bench": "source", "points": 2}
    assert (target / "bench.md").is_file()  # re-tabulated with the copied points

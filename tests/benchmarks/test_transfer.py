"""The transfer study: point selection, bootstrap interval, report, resume, bad input."""

import dataclasses
import json
import math
from pathlib import Path

import pytest

from benchmarks import transfer as tr
from benchmarks import transfer_report as rep
from nas.arch.genotype import Genotype, Stage, divisor_at
from nas.search.space.load import load_space

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / tr.BENCH


@pytest.fixture(scope="module")
def real():
    """The committed γ = 1 bench's entries (2 seeds: the seeds23 bench is left out while
    partial, and the test must not move when it completes)."""
    return tr.bench_entries(BENCH, more=())[0]


def arch(position: float, order: str = "dw_pw", mid: str = "none", res: str = "identity"
         ) -> Genotype:
    """A bench-like network: three stages at widths 32/64/128, one spectrum position."""
    stages = tuple(Stage(width=w, stride=s, units=2, order=order, mid_act=mid, residual=res,
                         groups=divisor_at(position, w))
                   for w, s in ((32, 1), (64, 2), (128, 2)))
    return Genotype(stages=stages).validate()


def entries_of(archs: list[Genotype], means: list[float]) -> list[tr.Entry]:
    """Entries ranked by the given means (two seeds each, ±0.01 around the mean)."""
    made = [tr.Entry(a.key(), a, f"p{i}", (m - 0.01, m + 0.01), 1000 * (i + 1), 10 ** 6)
            for i, (a, m) in enumerate(zip(archs, means, strict=True))]
    made.sort(key=lambda e: (-e.mean, e.key))
    return [dataclasses.replace(e, rank=i) for i, e in enumerate(made, start=1)]


def test_selection_on_the_real_bench_spans_the_ranking_and_both_ends(real):
    chosen, notes = tr.select(real, 12)
    by_key = {e.key: e for e in real}
    picked = [by_key[c.key] for c in chosen]
    roles = [c.role for c in chosen]
    assert sorted(e.rank for e in picked if roles[picked.index(e)] == "top") == [1, 2, 3, 4]
    assert sorted(e.rank for e in picked
                  if roles[picked.index(e)] == "bottom") == [69, 70, 71, 72]
    # the bench has no dense point in the middle: the one nearest the median rank comes in
    # for the middle point farthest from it (rank 38, the worse of 35 and 38)
    swapped = [e for e, r in zip(picked, roles, strict=True) if r.startswith("swapped")]
    assert [e.label for e in swapped] == ["g=1 pw_dw mid relu res none"]
    assert len(notes) == 1 and "rank 38" in notes[0] and "all-dense" in notes[0]
    for _, test in tr.REQUIREMENTS:
        assert any(test(e.genotype) for e in picked)
    assert roles[:3] == ["top", "middle", "bottom"]  # round robin: a partial study spans
    assert tr.select(real, 12) == (chosen, notes)  # deterministic


def test_a_swap_never_removes_the_only_carrier_of_a_requirement():
    # ranks 1..7; n = 4 takes rank 1, the middle ranks 3 and 4, and rank 7. No dense point:
    # rank 5 (the only one) comes in. Rank 3 is farther from the median (4) but the only
    # pw_dw point, so rank 4 goes.
    archs = [arch(1.0), arch(0.6), arch(0.6, "pw_dw"), arch(0.4, mid="relu"),
             arch(0.0, mid="relu"), arch(0.4, mid="elu"), arch(0.4, res="none")]
    entries = entries_of(archs, [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    chosen, notes = tr.select(entries, 4)
    assert {c.key for c in chosen} == {archs[i].key() for i in (0, 2, 4, 6)}
    assert notes == ["p4 (bench rank 5) swapped in for p3 (rank 4): no chosen point had"
                     " all-dense stages"]
    without_dense = entries_of(archs[:4] + archs[5:], [0.9, 0.8, 0.7, 0.6, 0.4, 0.3])
    chosen, notes = tr.select(without_dense, 4)
    assert notes == ["not covered: all-dense stages (no middle point can make room)"]
    assert len(chosen) == 4
    with pytest.raises(tr.TransferError, match="--points 1: the bench has 6 points"):
        tr.select(without_dense, 1)


def test_pairs_are_matched_on_every_other_choice_and_partners_are_added(real):
    chosen, _ = tr.select(real, 12)
    archs = {e.key: e.genotype for e in real}
    keys = [c.key for c in chosen]
    assert tr.matched_pairs(keys, archs, "residual") == []
    more, notes = tr.add_pairs(chosen, real, 2)
    assert len(tr.matched_pairs([c.key for c in more], archs, "residual")) == 2
    assert len(more) == 14 and all(c.role.startswith("residual partner") for c in more[12:])
    assert notes[-1] == "--pairs 2: residual: 2 partner(s) added, 2 pair(s)"
    a = arch(0.6, "dw_pw", "relu")
    assert tr.partner_key(a, "mid_act") == arch(0.6, "dw_pw", "none").key()
    assert tr.partner_key(arch(0.6), "mid_act") == arch(0.6, mid="relu").key()
    assert tr.partner_key(a, "order") == arch(0.6, "pw_dw", "relu").key()


def test_a_bench_point_goes_on_the_imagenet_macro_at_its_chosen_position():
    bench_space = load_space(BENCH / "spectrum_bench_gamma1.toml")
    space = load_space(REPO / tr.IMAGENET_SPACE)
    source = arch(0.2, "pw_dw", "elu", "none")  # groups 2, 2, 2 at 32/64/128
    position = tr.shared_position(bench_space, source)
    assert position == 0.2
    net = tr.on_macro(space, source, position)
    assert [s.width for s in net.stages] == [32, 64, 128, 256]
    assert [s.groups for s in net.stages] == [2, 2, 2, 4]  # 256 ** 0.2 = 3.03 -> 4
    assert {(s.order, s.mid_act, s.residual, s.units) for s in net.stages} == {
        ("pw_dw", "elu", "none", 2)}
    assert (net.resolution, net.stem.kernel, net.stem.pool, net.head.num_classes) == (
        96, 7, True, 10)
    # without a shared position each stage keeps its own: stage 4 copies stage 3's (1/7)
    assert tr.on_macro(space, source, None).stages[3].groups == 2


def test_the_bootstrap_interval_on_a_case_counted_by_hand():
    # x = 1, 2, 3 against y = 1, 3, 2: tau = 1/3. Of the 27 resamples, 3 repeat one point (no
    # pair: skipped); 6 hold all three (1/3); 18 hold two distinct points, 6 per pair: (1, 2)
    # and (1, 3) concordant (+1), (2, 3) discordant (-1). So P(-1) = P(1/3) = 1/4, P(+1) = 1/2.
    tau, low, high = rep.tau_ci([1, 2, 3], [1, 3, 2], samples=4000)
    assert tau == pytest.approx(1 / 3)
    assert (low, high) == (-1.0, 1.0)  # 90 %: the 5th percentile is in the -1 quarter
    _, low, high = rep.tau_ci([1, 2, 3], [1, 3, 2], samples=4000, level=0.4)
    assert (low, high) == (pytest.approx(1 / 3), 1.0)  # 30th percentile: past the -1 quarter
    assert rep.tau_ci([1, 2, 3, 4], [2, 4, 6, 8]) == (1.0, 1.0, 1.0)
    assert all(math.isnan(v) for v in rep.tau_ci([1], [1]))


def fixture_record(n_full: int = 8):
    """A study of 8 points (4 top, 4 bottom of a 10-point bench) whose full-data order is the
    bench's but for the best two swapped, and an Imagenette order reversed."""
    archs = [arch(p, o) for p in (0.0, 0.4, 0.6, 1.0) for o in ("dw_pw", "pw_dw")]
    archs += [arch(0.4, "dw_pw", "relu"), arch(0.4, "dw_pw", "none", "none")]
    entries = entries_of(archs, [0.60 - 0.01 * i for i in range(10)])
    chosen = [{"key": e.key, "role": "top" if e.rank <= 4 else "bottom"}
              for e in entries if e.rank <= 4 or e.rank >= 7]
    selection = {"bench": "b", "points": 8, "pairs": 0, "accuracy": "a", "made": "then",
                 "chosen": chosen, "notes": []}
    by_key = {e.key: e for e in entries}
    full = [0.80, 0.81, 0.78, 0.77, 0.70, 0.69, 0.68, 0.67]
    runs = {"cifar": [], "imagenette": []}
    for i, c in enumerate(chosen[:n_full]):
        base = {"key": c["key"], "seed": 0, "status": "completed", "params": 1, "macs": 1,
                "cpu_s": 100.0, "wall_s": 60.0, "threads": 1, "train_images": 45000,
                "test_images": 10000, "settings": {"train": {"epochs": 10}}}
        runs["cifar"].append(base | {"test_acc": full[i], "machine": "CPU: x"})
        runs["cifar"].append(base | {"seed": 1, "test_acc": full[i] + 0.02})
        runs["imagenette"].append(base | {"test_acc": 0.5 + 0.01 * i})
    sessions = {"cifar": [{"wall_s": 3600.0, "machine": "CPU: x"}], "imagenette": []}
    supernet = {c["key"]: float(i) for i, c in enumerate(chosen)}  # the reverse of the bench
    return rep.build(entries, selection, runs, sessions, supernet, 500), by_key


def test_the_report_of_a_fixture_record():
    record, _ = fixture_record()
    cifar = {a["predictor"]: a for a in record["agreement"] if a["truth"] == "cifar"}
    assert cifar["bench"]["n"] == 8
    assert cifar["bench"]["tau"] == pytest.approx(26 / 28)  # one discordant pair of 28
    assert cifar["supernet"]["tau"] == pytest.approx(-26 / 28)
    inet = next(a for a in record["agreement"]
                if a["predictor"] == "bench" and a["truth"] == "imagenette")
    assert inet["tau"] == pytest.approx(-1.0)
    top = next(t for t in record["top"] if t["predictor"] == "bench" and t["truth"] == "cifar")
    assert [x["truth_rank"] for x in top["top"]] == [2, 1, 3, 4]
    assert all(x["in_top_half"] for x in top["top"])
    point = record["points"][0]
    assert point["cifar_runs"]["accs"] == pytest.approx([0.80, 0.82])
    assert point["cifar_runs"]["sd"] == pytest.approx(0.02 ** 0.5 / 10)
    order = next(e for e in record["effects"] if e["factor"] == "order")
    assert order["contrast"] == "pw_dw − dw_pw" and len(order["pairs"]) == 3
    assert order["summary"]["bench"]["mean"] == pytest.approx(-0.01)
    assert order["summary"]["cifar"]["mean"] == pytest.approx(-0.01 / 3)  # +1, -1, -1 pt
    residual = next(e for e in record["effects"] if e["factor"] == "residual")
    assert residual["summary"]["bench"] == {"n": 1, "mean": pytest.approx(0.07), "se": None}
    assert residual["summary"]["cifar"]["mean"] == pytest.approx(0.11)
    record |= {"generated": "now", "machine": "CPU: x", "git_sha": "abc"}
    default = {"file": "cifar_spectrum.toml", "trials": 20, "epochs": 6, "images": 4000,
               "bench": "4,000 images"}
    text = rep.markdown(record, default)
    assert "+0.93 [" in text and "(n = 8)" in text
    assert "All of the bench's top 4 are in the full-data top half" in text
    assert "| mid_act | none − elu | none | – | – | – |" in text
    assert "| identity − none | p2 vs p9 | +7.0 (n = 1) | +11.0 (n = 1) | -5.0 (n = 1) |" in text
    assert "cifar: 16 runs, 0.44 core-h" in text and "imagenette: 8 runs, 0.22 core-h" in text
    # runs per machine: the CPU changes between sittings, and older records name none
    assert f"runs by machine: 8 on CPU: x; 8 on {rep.NOT_RECORDED}" in text
    assert "bench top vs bench bottom on Imagenette val acc: 0 of 16" in text


def test_the_budget_note_when_the_bench_top_falls_to_the_bottom_half():
    record, _ = fixture_record()
    for p, acc in zip(record["points"], [0.1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3], strict=True):
        p["cifar"] = acc
    record["top"] = [rep.top_check(record["points"], "bench", "cifar")]
    for p, rank in zip(record["points"], [8, 1, 2, 3, 4, 5, 6, 7], strict=True):
        p["cifar_order"] = rank
    note = rep.budget_note(record, {"file": "f", "trials": 20, "epochs": 6, "images": 4000,
                                    "bench": "4,000 images"})
    # the bench's 1st is last at 10 %; the top half's last place (4th of 8) scores 60 %
    assert note.startswith("**3 of the bench's top 4 are in the full-data top half**: the lowest,"
                           " p0, scores 10.0 %, 50.0 pt under the half's last place")
    assert "alone spreads a run by ±0.3 pt (1 sd)" in note  # sqrt(.9 * .1 / 10,000) at the best
    assert "The bench's top 4 score 10.0–90.0 % at full data against 90.0 % for the best" in note
    assert "--train-size all --top K --seeds 2" in note
    few, _ = fixture_record(n_full=3)
    assert rep.budget_note(few, {}).startswith("Pending: 3 point(s)")


def tasks_for(tmp_path: Path, n: int = 3, epochs: int = 10) -> list[tr.Task]:
    space = load_space(BENCH / "spectrum_bench_gamma1.toml")
    phase = tr.Phase("cifar", space, str(tmp_path), 100, dataclasses.replace(
        space.train, epochs=epochs, precision="fp32"), lambda e: e.genotype)
    entries = entries_of([arch(p) for p in (0.0, 0.4, 1.0)][:n], [0.6, 0.5, 0.4][:n])
    return phase.tasks(entries, seeds=1)


def fake_train(calls: list, fail_on: int | None = None):
    def train(task):
        calls.append(task.key)
        if len(calls) == fail_on:
            raise KeyboardInterrupt
        return {"status": "completed", "test_acc": 0.5, "wall_s": 1.0, "settings": task.settings}
    return train


def test_a_rerun_skips_finished_runs_and_an_interrupted_one_continues(tmp_path):
    out = tmp_path / "out"
    tasks = tasks_for(tmp_path)
    calls: list = []
    with pytest.raises(KeyboardInterrupt):
        tr.run_tasks(tasks, out, 1, fake_train(calls, fail_on=2), log=lambda _: None)
    assert len(list((out / tr.RUNS / "cifar").glob("*.json"))) == 1  # the first landed
    todo = tr.pending(out, tasks)
    assert [t.key for t in todo] == [t.key for t in tasks[1:]]
    calls.clear()
    assert tr.run_tasks(todo, out, 1, fake_train(calls), log=lambda _: None) == 2
    assert calls == [t.key for t in tasks[1:]]
    assert tr.pending(out, tasks) == []
    with pytest.raises(tr.TransferError, match=r"seed0.json: trained with other settings"
                       r" \(train.epochs: 10 there, 1 now\); give another --out"):
        tr.pending(out, tasks_for(tmp_path, epochs=1))


def test_a_run_interrupted_after_an_epoch_continues_from_it_to_the_same_result(
        tmp_path, cifar_dir):
    task = dataclasses.replace(tasks_for(cifar_dir, n=1, epochs=2)[0], train_size=256)
    straight = tr.train_task(task, log=lambda _: None)
    kept = dataclasses.replace(task, kept=str(tr.kept_path(tmp_path, task)))

    def interrupted(line: str) -> None:
        if "epoch 2/2" in line:  # epoch 1 is kept; the process dies in epoch 2
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tr.train_task(kept, log=interrupted)
    assert Path(kept.kept).is_file()
    lines: list[str] = []
    record = tr.train_task(kept, log=lines.append)
    assert any("continues after epoch 1" in line for line in lines), lines
    assert sum("epoch 2/2" in line for line in lines) == 1 and not any(
        "epoch 1/2" in line for line in lines)
    assert record["resumed_after_epoch"] == 1 and straight["resumed_after_epoch"] == 0
    assert record["test_acc"] == straight["test_acc"]  # CPU training is bitwise repeatable
    assert record["train_loss"] == straight["train_loss"]
    # kept under other settings (another --epochs): said, and trained from its first epoch
    other = dataclasses.replace(kept, cfg=dataclasses.replace(kept.cfg, epochs=1),
                                settings={**kept.settings, "train": {"epochs": 1}})
    lines.clear()
    tr.train_task(other, log=lines.append)
    assert any("kept with other settings, trained from epoch 1" in line for line in lines)
    # a landed run's kept file goes
    tr.run_tasks([kept], tmp_path, 1, lambda t: record, log=lambda _: None)
    assert not Path(kept.kept).exists() and tr.run_path(tmp_path, kept).is_file()


def test_a_run_recorded_before_a_train_field_existed_still_counts_at_its_default(tmp_path):
    out = tmp_path / "out"
    task = tasks_for(tmp_path, n=1)[0]
    older = json.loads(json.dumps(task.settings))
    del older["train"]["label_smoothing"]  # as if the field came after the run
    tr.run_tasks([task], out, 1, lambda t: {"status": "completed", "test_acc": 0.5,
                                            "wall_s": 1.0, "settings": older},
                 log=lambda _: None)
    assert tr.pending(out, [task]) == []  # the current value is the field's default
    other = dataclasses.replace(task, settings={**task.settings, "train": {
        **task.settings["train"], "label_smoothing": 0.3}})
    with pytest.raises(tr.TransferError, match=r"train\.label_smoothing: 0\.1 there, 0\.3 now"):
        tr.pending(out, [other])


def test_the_selection_is_pinned_and_other_flags_are_refused(tmp_path, real):
    logged: list = []
    first = tr.pinned_selection(tmp_path, real, "acc", 12, 2, BENCH, logged.append)
    assert len(first["chosen"]) == 14
    # a bench that now ranks otherwise does not move the study's points
    shuffled = sorted((dataclasses.replace(e, finals=(1.0 - e.mean,)) for e in real),
                      key=lambda e: (-e.mean, e.key))
    shuffled = [dataclasses.replace(e, rank=i) for i, e in enumerate(shuffled, start=1)]
    again = tr.pinned_selection(tmp_path, shuffled, "acc", 12, 2, BENCH, logged.append)
    assert again["chosen"] == first["chosen"] and "would pick other points" in logged[0]
    with pytest.raises(tr.TransferError, match="--points 12 --pairs 2; give the same flags"):
        tr.pinned_selection(tmp_path, real, "acc", 10, 2, BENCH, logged.append)


def test_a_second_run_on_the_same_folder_is_refused(tmp_path):
    with (tr.locked(tmp_path),
          pytest.raises(tr.TransferError, match=r"--out .* in use by another transfer run"),
          tr.locked(tmp_path)):
        pass
    with tr.locked(tmp_path):  # released when the first ended
        pass


@pytest.mark.parametrize("flags, message", [
    (["--phase", "cifar"], "--data-dir: required for --phase cifar"),
    (["--phase", "cifar", "--data-dir", "{tmp}/nowhere"], "--data-dir {tmp}/nowhere: no such"),
    (["--phase", "imagenette", "--imagenette-dir", "{tmp}"], "--imagenette-dir {tmp}: not a"),
    (["--report"], "selection.json: no study here yet"),
])
def test_bad_input_is_one_line_naming_the_flag(tmp_path, capsys, monkeypatch, flags, message):
    monkeypatch.chdir(REPO)
    flags = [f.format(tmp=tmp_path) for f in flags]
    assert tr.main([*flags, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.format(tmp=tmp_path) in err


def test_a_train_size_above_the_data_names_the_flag(tmp_path, capsys, monkeypatch, cifar_dir):
    monkeypatch.chdir(REPO)
    assert tr.main(["--phase", "cifar", "--data-dir", str(cifar_dir), "--train-size", "6000",
                    "--points", "2", "--pairs", "0", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--train-size 6000: the data holds 5,000 training images" in err


@pytest.mark.slow
def test_both_phases_train_and_report_on_tiny_settings(tmp_path, monkeypatch, cifar_dir):
    monkeypatch.chdir(REPO)
    tiny = ["--points", "2", "--pairs", "0", "--train-size", "256", "--epochs", "1",
            "--concurrency", "2", "--out", str(tmp_path)]
    assert tr.main(["--phase", "cifar", "--data-dir", str(cifar_dir), *tiny]) == 0
    assert tr.main(["--phase", "imagenette", *tiny]) == 0
    record = json.loads((tmp_path / "transfer.json").read_text())
    assert [p["role"] for p in record["points"]] == ["top", "bottom"]
    for phase, test_images in (("cifar", 1000), ("imagenette", 3925)):
        runs = [p[f"{phase}_runs"] for p in record["points"]]
        assert all(r and len(r["accs"]) == 1 for r in runs), phase
        assert record["cost"][phase]["test_images"] == test_images
        assert record["cost"][phase]["train_images"] == 256
    # a rerun trains nothing
    assert tr.main(["--phase", "cifar", "--data-dir", str(cifar_dir), *tiny]) == 0
    sessions = json.loads((tmp_path / tr.RUNS / "cifar" / tr.SESSIONS).read_text())
    assert len(sessions) == 1
    assert sessions[0]["trained"] == len(record["points"])  # counted from the landed runs


def test_every_run_trains_at_the_pinned_precision_whatever_the_cpu(tmp_path):
    """'auto' would mean bf16 on a CPU with native bf16 and fp32 elsewhere: runs of one study
    made on both kinds would then differ in more than the network."""
    bench_space = load_space(BENCH / "spectrum_bench_gamma1.toml")
    args = tr.parser().parse_args(["--phase", "cifar", "--data-dir", str(tmp_path)])
    assert args.precision == "fp32"
    assert tr.cifar_phase(args, bench_space).cfg.precision == "fp32"
    args = tr.parser().parse_args(["--phase", "cifar", "--data-dir", str(tmp_path),
                                   "--precision", "bf16"])
    assert tr.cifar_phase(args, bench_space).cfg.precision == "bf16"

"""The trainer: learning, reporting, early stop, divergence, determinism, config checks."""

from __future__ import annotations

import dataclasses
import io
import itertools
import math
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas import machine as machine_module
from nas.data import DataSpec, ImageSet, Splits, load_splits
from nas.machine import cpu_info, native_bf16_cpu, relevant_cpu_flags
from nas.train.augment import DeviceBatches
from nas.train.config import PRECISIONS, TrainConfig
from nas.train.device import autocast, cpu_threads, resolve_precision
from nas.train.latency import measure_latency
from nas.train.trainer import (
    EpochReport,
    Trainer,
    evaluate,
    fit,
    lr_factor,
    make_optimizer,
    param_groups,
)

# One intra-op thread: the suite shares two cores with other work, and oversubscribed
# OpenMP threads spin instead of computing.
FAST = TrainConfig(
    epochs=3,
    batch_size=64,
    lr=0.2,
    warmup_epochs=0.5,
    eval_batch_size=250,
    cpu_threads=1,
    device="cpu",
    precision=resolve_precision("auto", "cpu"),  # as a job on this machine resolves it
)


class TinyNet(nn.Module):
    """Two conv-BN-ReLU stages and a linear head: enough to learn CIFAR-10 above chance."""

    def __init__(self, width: int = 16, classes: int = 10) -> None:
        """Build the layers."""
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits."""
        return self.head(self.features(x))


class InfNet(TinyNet):
    """Outputs infinite logits, so every loss is NaN."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Infinite logits."""
        return super().forward(x) * math.inf


class DropNet(TinyNet):
    """TinyNet with dropout before the head, so training draws from torch's global RNG."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits from dropped-out features."""
        return self.head(nn.functional.dropout(self.features(x), 0.3, self.training))


def tiny_net(seed: int = 0) -> TinyNet:
    """A TinyNet with seeded initial weights."""
    torch.manual_seed(seed)
    return TinyNet()


@pytest.fixture(scope="module")
def cifar(cifar_dir: Path) -> Splits:
    """1,000 real CIFAR-10 training images and 500 validation images, stratified."""
    return load_splits(DataSpec(val_size=500, train_size=1000), cifar_dir)


def synthetic(n: int = 128) -> Splits:
    """Random images and labels: for tests that need batches, not learning."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    data = ImageSet(images=images, labels=labels, classes=tuple("abcdefghij"))
    return Splits(train=data, val=data, test=None, mean=(0.5,) * 3, std=(0.25,) * 3)


def test_fit_learns_and_reports_every_epoch(cifar):
    reports: list[EpochReport] = []
    result = fit(tiny_net(), cifar, FAST, report=reports.append)
    assert result.status == "completed" and result.epochs_run == 3
    assert tuple(reports) == result.history
    assert [r.epoch for r in reports] == [1, 2, 3]
    assert reports[-1].train_loss < reports[0].train_loss
    assert result.final_val_acc > 0.2  # chance is 0.1
    assert result.best_val_acc == max(r.val_acc for r in reports)
    for r in reports:
        assert math.isfinite(r.train_loss) and 0 <= r.val_acc <= 1
        assert r.epoch_seconds > 0 and r.images_per_s > 0 and r.lr > 0
    assert result.train_seconds == pytest.approx(sum(r.epoch_seconds for r in reports))
    assert result.wall_seconds >= result.train_seconds


def test_report_returning_true_stops_early():
    result = fit(tiny_net(), synthetic(), FAST, report=lambda r: r.epoch == 2)
    assert result.status == "stopped" and result.epochs_run == 2


def test_infinite_outputs_diverge_without_exception():
    torch.manual_seed(0)
    result = fit(InfNet(), synthetic(), FAST)
    assert result.status == "diverged" and result.epochs_run == 0
    assert math.isnan(result.best_val_acc) and math.isnan(result.final_val_acc)


def test_huge_learning_rate_diverges():
    result = fit(tiny_net(), synthetic(), dataclasses.replace(FAST, lr=1e30))
    assert result.status == "diverged"


def test_same_seed_gives_bitwise_identical_fits():
    data = synthetic(256)
    timing = {"epoch_seconds", "images_per_s"}

    def run(seed):
        model = tiny_net()
        result = fit(model, data, dataclasses.replace(FAST, epochs=2, seed=seed))
        history = [
            {k: v for k, v in dataclasses.asdict(r).items() if k not in timing}
            for r in result.history
        ]
        return model.state_dict(), history

    (w1, h1), (w2, h2), (w3, _) = run(7), run(7), run(8)
    assert h1 == h2
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert not all(torch.equal(w1[k], w3[k]) for k in w1)


def without_timing(history) -> list[dict]:
    """Epoch reports as dicts, minus the fields that measure wall-clock time."""
    return [
        {
            k: v
            for k, v in dataclasses.asdict(r).items()
            if k not in ("epoch_seconds", "images_per_s")
        }
        for r in history
    ]


def drop_net(seed: int) -> DropNet:
    """A DropNet with seeded initial weights."""
    torch.manual_seed(seed)
    return DropNet()


@pytest.mark.parametrize("extra", [
    {},
    {"alternate_flip": True, "crop_pad": 0},  # the resumed batches' flip parity: from history
    # 2 steps an epoch: the EMA's first move (step 3) comes after the snapshot
    {"lookahead": 0.95, "lookahead_every": 3},
], ids=["plain", "alternate_flip", "lookahead"])
def test_trainer_resumes_exactly_from_a_weights_only_snapshot(extra):
    data, cfg = synthetic(128), dataclasses.replace(FAST, epochs=2, seed=3, **extra)
    straight = Trainer(drop_net(0), data, cfg)
    straight.epoch(), straight.epoch()
    first = Trainer(drop_net(0), data, cfg)
    first.epoch()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = Trainer(drop_net(99), data, cfg)  # other weights: the snapshot must replace them
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    resumed.epoch()
    assert without_timing(resumed.history) == without_timing(straight.history)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_fit_kept_after_an_epoch_continues_to_the_same_result():
    data, cfg = synthetic(128), dataclasses.replace(FAST, epochs=2, seed=5)
    kept: list[bytes] = []

    def keep(state: dict) -> None:  # as a checkpoint file is written: at once
        buffer = io.BytesIO()
        torch.save(state, buffer)
        kept.append(buffer.getvalue())

    def load(snapshot: bytes) -> dict:  # and read back: weights only
        return torch.load(io.BytesIO(snapshot), weights_only=True)

    straight = fit(drop_net(0), data, cfg, keep=keep)
    assert straight.status == "completed"
    assert [len(load(k)["history"]) for k in kept] == [1, 2]
    again: list[bytes] = []
    resumed = fit(drop_net(99), data, cfg, resume=load(kept[0]), keep=again.append)
    assert len(again) == 1 and resumed.epochs_run == 2 and resumed.status == "completed"
    assert without_timing(resumed.history) == without_timing(straight.history)
    done = fit(drop_net(7), data, cfg, resume=load(kept[-1]))  # kept after the last epoch
    assert without_timing(done.history) == without_timing(straight.history)


def test_lockstep_trainers_match_solo_runs_and_leave_global_rng_alone():
    data, cfg = synthetic(128), dataclasses.replace(FAST, epochs=2)
    solo = []
    for seed in (1, 2):
        trainer = Trainer(drop_net(seed), data, dataclasses.replace(cfg, seed=seed))
        trainer.epoch(), trainer.epoch()
        solo.append(trainer.model.state_dict())
    torch.manual_seed(123)
    before = torch.get_rng_state()
    pair = [Trainer(drop_net(s), data, dataclasses.replace(cfg, seed=s)) for s in (1, 2)]
    torch.set_rng_state(before)
    for _ in range(2):
        for trainer in pair:
            trainer.epoch()
    assert torch.equal(torch.get_rng_state(), before)
    for trainer, weights in zip(pair, solo, strict=True):
        assert all(torch.equal(v, weights[k]) for k, v in trainer.model.state_dict().items())


def test_trainer_epoch_returns_none_on_divergence_and_refuses_extra_epochs():
    torch.manual_seed(0)
    assert Trainer(InfNet(), synthetic(), FAST).epoch() is None
    trainer = Trainer(tiny_net(), synthetic(), dataclasses.replace(FAST, epochs=1))
    assert trainer.epoch() is not None
    with pytest.raises(RuntimeError, match="epochs"):
        trainer.epoch()


def test_weight_decay_skips_batch_norm_and_biases():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 3, 5, 5))
    decayed, plain = param_groups(model, 0.1)
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert {id(p) for p in decayed["params"]} == {id(model[0].weight), id(model[3].weight)}
    assert {id(p) for p in plain["params"]} == {
        id(model[0].bias),
        id(model[1].weight),
        id(model[1].bias),
        id(model[3].bias),
    }
    for name in ("sgd", "adamw"):
        cfg = TrainConfig(optimizer=name, weight_decay=0.1)
        opt = make_optimizer(model, cfg, torch.device("cpu"))
        assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]


def test_sgd_is_nesterov_and_adamw_trains():
    opt = make_optimizer(TinyNet(), TrainConfig(), torch.device("cpu"))
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["nesterov"]
    assert opt.defaults["momentum"] == 0.9
    cfg = dataclasses.replace(FAST, optimizer="adamw", lr=2e-3, epochs=1, schedule="cosine")
    assert fit(tiny_net(), synthetic(), cfg).status == "completed"


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "linear"])
def test_schedules_warm_up_peak_and_anneal(schedule):
    total, warmup = 100, 10
    factors = [lr_factor(s, total, warmup, schedule) for s in range(total)]
    peak = max(range(total), key=factors.__getitem__)
    assert factors[peak] == pytest.approx(1.0, abs=0.02) and warmup - 1 <= peak <= warmup
    assert all(a <= b for a, b in itertools.pairwise(factors[: peak + 1]))
    assert all(a >= b for a, b in itertools.pairwise(factors[peak:]))
    assert factors[0] < 0.15 and factors[-1] < 0.05


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_linear_and_cosine_warm_up_from_lr_start_and_end_at_lr_end(schedule):
    total, warmup = 100, 23  # airbench94: from 0.2 to the peak at 23 %, then down to 0.07
    factors = [lr_factor(s, total, warmup, schedule, 0.2, 0.07) for s in range(total)]
    assert factors[0] == pytest.approx(0.2 + 0.8 / warmup)
    assert factors[warmup - 1] == pytest.approx(1.0) and factors[warmup] == pytest.approx(1.0)
    assert factors[-1] == pytest.approx(0.07, abs=0.02) and min(factors) > 0.07
    plain = [lr_factor(s, total, warmup, schedule) for s in range(total)]
    assert plain[0] == pytest.approx(1 / warmup) and plain[-1] < 0.02  # the old curve: 0 to 0


def test_lr_ends_are_refused_with_onecycle():
    with pytest.raises(ValueError, match=re.escape(
            "TrainConfig.lr_end must be 0 with schedule 'onecycle' (its curve fixes both ends)")):
        TrainConfig(schedule="onecycle", lr_end=0.07)
    assert TrainConfig(schedule="linear", lr_start=0.2, lr_end=0.07).lr_end == 0.07


def test_schedule_without_warmup_starts_at_peak():
    for schedule in ("onecycle", "cosine", "linear"):
        assert lr_factor(0, 50, 0, schedule) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("batch_size", 0),
        ("optimizer", "rmsprop"),
        ("lr", 0.0),
        ("lr", math.nan),
        ("momentum", 1.0),
        ("schedule", "step"),
        ("warmup_epochs", -1.0),
        ("weight_decay", -1e-4),
        ("label_smoothing", 1.0),
        ("crop_pad", -1),
        ("cpu_threads", 0),
        ("device", "tpu"),
        ("precision", "fp16"),
        ("eval_batch_size", 0),
    ],
)
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=re.escape(f"TrainConfig.{field} ")) as info:
        TrainConfig(**{field: value})
    assert "\n" not in str(info.value)


def test_warmup_longer_than_training_is_rejected():
    with pytest.raises(ValueError, match=r"TrainConfig\.warmup_epochs"):
        TrainConfig(epochs=2, warmup_epochs=3)


def test_evaluate_counts_correct_predictions_and_restores_mode():
    data = synthetic(100)

    class Constant(nn.Module):
        """Always predicts class 3."""

        def forward(self, x):
            """One-hot logits for class 3."""
            return nn.functional.one_hot(torch.full((x.shape[0],), 3), 10).float()

    model = Constant().train()
    expected = (data.val.labels == 3).float().mean().item()
    for tta in (False, True):
        acc = evaluate(
            model, data.val, data.mean, data.std, batch_size=32, device="cpu", flip_tta=tta
        )
        assert acc == pytest.approx(expected)
    assert model.training


def test_translate_tta_adds_airbench94s_shifted_views():
    data = synthetic(40)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))  # sees every pixel's place
    mean, std = torch.tensor(data.mean).view(1, 3, 1, 1), torch.tensor(data.std).view(1, 3, 1, 1)
    x = (data.val.images.float() / 255 - mean) / std

    def mirror(v):
        """airbench94's level 1: the mean of the view and its mirror."""
        return (model(v) + model(v.flip(-1))) / 2

    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    with torch.no_grad():  # airbench94's level 2, as its infer() writes it
        shifted = (mirror(padded[..., :32, :32]) + mirror(padded[..., 2:, 2:])) / 2
        level2 = (0.5 * mirror(x) + 0.5 * shifted).argmax(1)
        level1 = mirror(x).argmax(1)
    assert not torch.equal(level1, level2)  # the shifted views change some answers
    for translate, answers in ((False, level1), (True, level2)):
        expected = (answers == data.val.labels).float().mean().item()
        acc = evaluate(model, data.val, data.mean, data.std, batch_size=16, device="cpu",
                       flip_tta=True, translate_tta=translate, channels_last=False)
        assert acc == pytest.approx(expected)


def test_evaluate_empty_set_is_nan():
    empty = ImageSet(torch.zeros(0, 3, 32, 32, dtype=torch.uint8), torch.zeros(0).long(), ())
    acc = evaluate(TinyNet(), empty, (0.5,) * 3, (0.2,) * 3, batch_size=8, device="cpu")
    assert math.isnan(acc)


def test_cpu_threads_is_restored():
    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_cpu_trainers_keep_freed_memory_unless_told_not_to(monkeypatch):
    import nas.train.trainer as trainer_module

    calls = []
    monkeypatch.setattr(trainer_module, "keep_freed_memory", lambda: calls.append(1))
    Trainer(tiny_net(), synthetic(), FAST)
    Trainer(tiny_net(), synthetic(), dataclasses.replace(FAST, keep_freed_memory=False))
    assert calls == [1]


KEEP_OR_NOT = """
import sys, torch
from torch import nn
from nas.train.device import keep_freed_memory
from nas.train.trainer import Trainer
from nas.train.config import TrainConfig
from nas.data import ImageSet, Splits
keep = sys.argv[1] == "keep"
print(keep_freed_memory() if keep else None, keep_freed_memory() if keep else None)
g = torch.Generator().manual_seed(0)
images = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8, generator=g)
data = ImageSet(images, torch.randint(0, 10, (256,), generator=g), tuple("abcdefghij"))
splits = Splits(train=data, val=data, test=None, mean=(0.5,) * 3, std=(0.25,) * 3)
torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
cfg = TrainConfig(epochs=2, batch_size=64, warmup_epochs=0, device="cpu", precision="fp32",
                  keep_freed_memory=keep)
trainer = Trainer(model, splits, cfg)
losses = [trainer.epoch().train_loss for _ in range(2)]
print(*losses, float(sum(p.sum() for p in model.parameters())))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keeping_freed_memory_changes_no_number():
    def run(mode: str) -> list[str]:
        # child processes: the setting is process-wide and this one may hold it already
        done = subprocess.run([sys.executable, "-c", KEEP_OR_NOT, mode], capture_output=True,
                              text=True, timeout=300, check=True)
        return done.stdout.splitlines()

    keep, system = run("keep"), run("system")
    assert keep[0] in ("True True", "False False")  # idempotent; False where it is not glibc
    assert system[0] == "None None"
    assert keep[1] == system[1]  # the losses and the weights' sum, to the last digit


def test_measure_latency_is_positive_and_keeps_mode():
    model = TinyNet().train()
    ms = measure_latency(model, (3, 32, 32), "cpu", batch_size=2, warmup=1, iters=3)
    assert ms > 0 and model.training
    with pytest.raises(ValueError, match="iters"):
        measure_latency(model, (3, 32, 32), "cpu", iters=0)


X86_ZEN3 = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx fma avx2\n"
X86_BF16 = "model name\t: AMD EPYC 9B14\nflags\t\t: avx2 avx512f avx512_bf16 avx512_vnni\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd sve bf16\nCPU part\t: 0xd40\n"


def test_cpu_info_reads_model_and_flags_of_x86_and_arm_text():
    assert cpu_info(X86_ZEN3) == ("AMD EPYC 7B13", frozenset({"fpu", "sse2", "avx", "fma", "avx2"}))
    assert cpu_info(ARM) == (None, frozenset({"fp", "asimd", "sve", "bf16"}))
    assert cpu_info("") == (None, frozenset())
    assert relevant_cpu_flags(cpu_info(X86_BF16)[1]) == [
        "avx2", "avx512f", "avx512_vnni", "avx512_bf16"]


@pytest.mark.parametrize(
    ("flags", "auto"),
    [
        ({"avx2", "fma"}, "fp32"),  # this project's Zen 3 EPYC: bf16 would be emulated
        ({"avx2", "avx512f", "avx512_vnni"}, "fp32"),  # AVX-512 without bf16 (Skylake-X)
        ({"avx512f", "avx512_bf16"}, "bf16"),  # Zen 4, Cooper Lake
        ({"amx_tile", "amx_bf16"}, "bf16"),  # Sapphire Rapids
        (set(), "fp32"),
    ],
)
def test_auto_precision_on_cpu_follows_the_bf16_flags(flags, auto):
    assert native_bf16_cpu(flags) == (auto == "bf16")
    assert resolve_precision("auto", "cpu", flags) == auto
    assert resolve_precision("fp32", "cpu", flags) == "fp32"  # asked for: never overridden
    assert resolve_precision("bf16", "cpu", flags) == "bf16"


@pytest.mark.precision
def test_auto_precision_reads_this_machines_cpuinfo(tmp_path, monkeypatch):
    monkeypatch.delenv(machine_module.FAKE_CPU_ENV, raising=False)  # the file alone decides
    fake = tmp_path / "cpuinfo"
    monkeypatch.setattr(machine_module, "CPUINFO", fake)
    fake.write_text(X86_BF16)
    assert resolve_precision("auto", "cpu") == "bf16"
    fake.write_text(X86_ZEN3)
    assert resolve_precision("auto", "cpu") == "fp32"


@pytest.mark.parametrize(("kind", "auto"), [("bf16", "bf16"), ("avx2", "fp32")])
def test_the_fake_cpu_switch_passes_for_either_kind(tmp_path, monkeypatch, kind, auto):
    fake = tmp_path / "cpuinfo"
    fake.write_text(X86_BF16 if kind == "avx2" else X86_ZEN3)  # the machine is the other kind
    monkeypatch.setattr(machine_module, "CPUINFO", fake)
    monkeypatch.setenv(machine_module.FAKE_CPU_ENV, kind)
    model, flags = cpu_info()
    real = "AMD EPYC 9B14" if kind == "avx2" else "AMD EPYC 7B13"
    assert model == f"{real} [NAS_FAKE_CPU={kind}]"  # a record says the flags were faked
    assert set(relevant_cpu_flags(flags)) == set(machine_module.FAKE_CPUS[kind])
    assert native_bf16_cpu() == (auto == "bf16")
    assert resolve_precision("auto", "cpu") == auto
    assert cpu_info(X86_BF16)[1] >= {"avx512_bf16"}  # a text passed in is read as it is
    monkeypatch.setenv(machine_module.FAKE_CPU_ENV, "avx512")
    with pytest.raises(ValueError, match=r"\$NAS_FAKE_CPU='avx512': allowed are bf16, avx2"):
        cpu_info()


def test_auto_precision_without_cuda_and_bad_names(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_precision("auto", "cuda", {"avx512_bf16"}) == "fp32"
    with pytest.raises(ValueError, match="precision 'fp16' is not one of"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="resolved precision"):
        autocast(torch.device("cpu"), "auto")


def test_the_train_config_and_the_search_flags_load_no_torch():
    # the search flags take their precisions from the config: `--help` must not load torch
    probe = ("import sys, nas.train.config, nas.cli.flags;"
             " print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], check=True)
    assert done.stdout.strip() == "[]"
    assert PRECISIONS == ("auto", "fp32", "bf16")


def test_the_trainer_evaluation_and_latency_take_only_a_resolved_precision():
    cfg = dataclasses.replace(FAST, precision="auto")
    with pytest.raises(ValueError, match=r"resolved precision .* got 'auto'"):
        Trainer(tiny_net(), synthetic(), cfg)
    with pytest.raises(ValueError, match="resolved precision"):
        fit(tiny_net(), synthetic(), cfg)
    data = synthetic(64)
    with pytest.raises(ValueError, match="resolved precision"):
        evaluate(tiny_net(), data.val, data.mean, data.std, batch_size=32, device="cpu",
                 precision="auto")
    with pytest.raises(ValueError, match="resolved precision"):
        measure_latency(tiny_net(), (3, 32, 32), "cpu", precision="auto")


def conv_output_dtypes(model: nn.Module) -> tuple[list[torch.dtype], Callable[[], None]]:
    """Record the dtype of every Conv2d output; returns the list and a remover of the hooks."""
    seen: list[torch.dtype] = []
    handles = [
        m.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    return seen, lambda: [h.remove() for h in handles]


@pytest.mark.parametrize(
    ("precision", "dtype"), [("bf16", torch.bfloat16), ("fp32", torch.float32)]
)
def test_training_runs_convs_at_the_precision_and_keeps_fp32_state(precision, dtype):
    trainer = Trainer(tiny_net(), synthetic(), dataclasses.replace(FAST, precision=precision))
    seen, remove = conv_output_dtypes(trainer.model)
    x, y = next(iter(trainer.train_batches))
    loss = trainer.train_step(x, y)
    assert seen and set(seen) == {dtype}
    # autocast semantics: the loss, the weights, their gradients and BN statistics stay fp32
    assert loss.dtype == torch.float32
    for name, tensor in itertools.chain(trainer.model.named_parameters(),
                                        trainer.model.named_buffers()):
        if tensor.is_floating_point():
            assert tensor.dtype == torch.float32, name
    assert all(p.grad.dtype == torch.float32 for p in trainer.model.parameters())
    seen.clear()
    report = trainer.epoch()  # validation runs at the training's precision too
    remove()
    assert set(seen) == {dtype} and math.isfinite(report.train_loss)


@pytest.mark.precision
def test_auto_resolves_to_bf16_on_a_bf16_cpu(monkeypatch):
    monkeypatch.setattr(machine_module, "cpu_info", lambda: ("fake", frozenset({"amx_bf16"})))
    cfg = dataclasses.replace(FAST, precision=resolve_precision("auto", "cpu"))
    trainer = Trainer(tiny_net(), synthetic(), cfg)
    assert trainer.precision == "bf16"
    seen, remove = conv_output_dtypes(trainer.model)
    trainer.train_step(*next(iter(trainer.train_batches)))
    remove()
    assert set(seen) == {torch.bfloat16}


def test_evaluate_and_latency_use_the_precision_asked_for():
    model, data = tiny_net(), synthetic(64)
    for precision, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        seen, remove = conv_output_dtypes(model)
        acc = evaluate(model, data.val, data.mean, data.std, batch_size=32, device="cpu",
                       precision=precision)
        assert 0 <= acc <= 1 and set(seen) == {dtype}
        seen.clear()
        assert measure_latency(model, (3, 32, 32), "cpu", warmup=0, iters=1,
                               precision=precision) > 0
        remove()
        assert set(seen) == {dtype}


def reference_fit(model: nn.Module, data: Splits, cfg: TrainConfig) -> None:
    """The training loop as it was before precision was a setting (fp32, no autocast on CPU)."""
    device = torch.device("cpu")
    model.to(memory_format=torch.channels_last)
    batches = DeviceBatches(data.train, data.mean, data.std, batch_size=cfg.batch_size,
                            device=device, train=True, pad=cfg.crop_pad, hflip=cfg.hflip,
                            channels_last=True, seed=cfg.seed)
    optimizer = make_optimizer(model, cfg, device)
    total, warmup = cfg.epochs * len(batches), round(cfg.warmup_epochs * len(batches))
    step = 0
    with cpu_threads(cfg.cpu_threads):
        for _ in range(cfg.epochs):
            model.train()
            for x, y in batches:
                for group in optimizer.param_groups:
                    group["lr"] = cfg.lr * lr_factor(step, total, warmup, cfg.schedule)
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1


@pytest.mark.precision
def test_fp32_training_is_bit_identical_to_the_loop_without_precision(monkeypatch):
    monkeypatch.setattr(machine_module, "cpu_info", lambda: ("fake", frozenset({"avx2"})))
    data, cfg = synthetic(256), dataclasses.replace(FAST, epochs=2, seed=5)
    expected = tiny_net(1)
    reference_fit(expected, data, cfg)
    for precision in ("fp32", "auto"):  # auto is fp32 on a CPU without bf16
        model = tiny_net(1)
        asked = dataclasses.replace(cfg, precision=resolve_precision(precision, "cpu"))
        assert fit(model, data, asked).precision == "fp32"
        for key, value in expected.state_dict().items():
            assert torch.equal(value, model.state_dict()[key]), (precision, key)


def test_lr_50_explodes_finitely_and_is_diverged(cifar):
    # The case: with lr = 50 the loss stays finite (57 -> 5.8e7) yet training is lost.
    result = fit(tiny_net(), cifar, dataclasses.replace(FAST, lr=50.0))
    assert result.status == "diverged" and result.epochs_run == 1
    assert "is over 10x" in result.reason, result.reason
    assert math.isfinite(result.history[0].train_loss)


def test_divergence_rules_loss_growth_and_chance(cifar):
    trainer = Trainer(tiny_net(), cifar, dataclasses.replace(FAST, epochs=5, chance_epochs=3))
    counts = torch.bincount(cifar.val.labels)
    assert trainer.chance_acc == pytest.approx(float(counts.max()) / len(cifar.val))

    def epochs(*pairs):
        trainer.history = [EpochReport(i + 1, loss, acc, 1.0, 1.0, 0.1)
                           for i, (loss, acc) in enumerate(pairs)]
        return trainer.divergence()

    chance = trainer.chance_acc
    assert epochs((2.3, 0.3)) is None
    assert epochs((2.3, 0.3), (22.0, 0.3)) is None  # 9.6x: not yet
    assert "over 10x the first epoch's 2.3" in epochs((2.3, 0.3), (24.0, 0.3))
    assert epochs((2.3, chance), (2.3, chance)) is None  # chance is allowed early on
    assert "at chance" in epochs((2.3, chance), (2.3, chance), (2.3, chance))
    assert "over 10x ln(10) = 2.30" in epochs((57.5, 0.1))  # exploded from the first epoch on
    assert epochs((2.3, chance), (2.2, chance + 0.01), (2.1, chance)) is None
    trainer.cfg = dataclasses.replace(trainer.cfg, chance_epochs=0)
    assert epochs((2.3, chance), (2.3, chance), (2.3, chance)) is None  # rule turned off


def test_a_trial_builds_its_network_with_the_configured_residual_init():
    from nas.arch.zoo import preset
    from nas.search.trial import initial_model, make_trainer

    arch = preset("regular", depth=1)
    for zero, expected in ((True, 0.0), (False, 1.0)):
        cfg = TrainConfig(epochs=1, warmup_epochs=0, zero_init_residual=zero, device="cpu",
                          precision="fp32")
        # a trial's trainer, and a retrain's model (initial_model), are built the same way
        for model in (make_trainer(arch, synthetic(), cfg, seed=0).model,
                      initial_model(arch, cfg, seed=0)):
            gamma = model.s1.b1.bn2.weight
            assert torch.equal(gamma, torch.full_like(gamma, expected))


def test_biases_and_bn_train_at_bias_lr_scale_times_the_rate():
    trainer = Trainer(drop_net(0), synthetic(128), dataclasses.replace(FAST, bias_lr_scale=64))
    trainer.step = 5
    trainer.set_lr()
    decayed, plain = trainer.optimizer.param_groups
    assert decayed["lr"] > 0 and plain["lr"] == pytest.approx(64 * decayed["lr"])
    assert plain["weight_decay"] == 0.0


def test_lookahead_moves_the_weights_to_airbench94s_ema_and_ends_on_it():
    data = synthetic(128)  # batch 64: 2 steps an epoch, 8 in all
    cfg = dataclasses.replace(FAST, epochs=4, seed=1, lookahead=0.9, lookahead_every=2)
    plain = Trainer(drop_net(0), data, dataclasses.replace(cfg, lookahead=0.0))
    ahead = Trainer(drop_net(0), data, cfg)
    assert plain.lookahead is None
    start = {k: v.clone() for k, v in ahead.lookahead.items()}
    plain.epoch(), ahead.epoch()  # the same 2 steps; then one look-ahead, at step 2 of 8
    decay = 0.9 ** 2 * (2 / 8) ** 3  # hlb-CIFAR10 / airbench94: momentum^every x progress^3
    trained = plain.model.state_dict()
    for key, w0 in start.items():
        expected = w0 + (1 - decay) * (trained[key] - w0)
        assert torch.allclose(ahead.model.state_dict()[key], expected, atol=1e-6), key
    for _ in range(3):
        ahead.epoch()
    final = ahead.model.state_dict()
    assert all(torch.equal(final[k], ema) for k, ema in ahead.lookahead.items())


@pytest.mark.parametrize("field, value, rule", [
    ("lookahead", 1.0, "must be in [0, 1)"), ("lookahead_every", 0, "must be >= 1"),
    ("bias_lr_scale", 0.0, "must be a finite number > 0")])
def test_bad_lookahead_and_bias_scale_are_one_line(field, value, rule):
    with pytest.raises(ValueError, match=re.escape(f"TrainConfig.{field} {rule}")):
        TrainConfig(**{field: value})

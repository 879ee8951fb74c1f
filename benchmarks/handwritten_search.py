"""The search a user writes without spectrum-nas: Ray Tune + OptunaSearch + ASHA over a
tutorial-style Dataset / DataLoader trainable, Ray's defaults everywhere else.

It searches the default space's kind of network (per stage a grouped conv at a spectrum
position, op order, mid activation, residual, kernel) with the default space's training
settings, and imports nothing from this project, so `benchmarks.search_vs_handwritten` can
time it against `run_search.py`. It prints one JSON line: the best validation accuracy.

    python benchmarks/handwritten_search.py DATA_DIR --trials 6 --max-epochs 2
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

WIDTHS, STRIDES = (32, 64, 128), (1, 2, 2)
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # the usual CIFAR-10 values


def read_cifar(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """All training images (N, 3, 32, 32) uint8 and labels of a cifar-10-batches-bin folder."""
    raw = np.concatenate([np.fromfile(p, np.uint8).reshape(-1, 3073)
                          for p in sorted(folder.glob("data_batch_*.bin"))])
    return raw[:, 1:].reshape(-1, 3, 32, 32), raw[:, 0].astype(np.int64)


class Cifar(Dataset):
    """PyTorch's CIFAR-10 tutorial transforms, one image per __getitem__."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, train: bool) -> None:
        """Keep the uint8 images."""
        self.images, self.labels, self.train = torch.from_numpy(images), labels, train
        self.mean, self.std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)

    def __len__(self) -> int:
        """Number of images."""
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        """RandomCrop(32, padding=4) and RandomHorizontalFlip when training; Normalize."""
        img = self.images[i]
        if self.train:
            top, left = torch.randint(0, 9, (2,)).tolist()
            img = F.pad(img, (4, 4, 4, 4))[:, top:top + 32, left:left + 32]
            if torch.rand(1).item() < 0.5:
                img = img.flip(-1)
        return (img.float() / 255 - self.mean) / self.std, int(self.labels[i])


def groups_at(position: float, channels: int) -> int:
    """The divisor of `channels` nearest (log scale) to channels ** position."""
    divisors = [d for d in range(1, channels + 1) if channels % d == 0]
    return min(divisors, key=lambda d: abs(math.log(d) - position * math.log(channels)))


class Unit(nn.Sequential):
    """A grouped kxk conv and a 1x1 conv in either order, a mid activation, BN."""

    def __init__(self, cin: int, cout: int, stride: int, cfg: dict, stage: int) -> None:
        """Build the layers of one unit."""
        k, order = cfg[f"s{stage}_kernel"], cfg[f"s{stage}_order"]
        mid = {"none": nn.Identity(), "relu": nn.ReLU(), "elu": nn.ELU()}[cfg[f"s{stage}_mid_act"]]
        if order == "dw_pw":
            g = groups_at(cfg[f"s{stage}_spectrum"], cin)
            layers = [nn.Conv2d(cin, cin, k, stride, k // 2, groups=g, bias=False), mid,
                      nn.Conv2d(cin, cout, 1, bias=False)]
        else:
            g = groups_at(cfg[f"s{stage}_spectrum"], cout)
            layers = [nn.Conv2d(cin, cout, 1, bias=False), mid,
                      nn.Conv2d(cout, cout, k, stride, k // 2, groups=g, bias=False)]
        super().__init__(*layers, nn.BatchNorm2d(cout))


class Block(nn.Module):
    """Two units with ReLU between them and an optional residual shortcut."""

    def __init__(self, cin: int, cout: int, stride: int, cfg: dict, stage: int) -> None:
        """Build the units and the shortcut (a 1x1 projection where the shape changes)."""
        super().__init__()
        self.units = nn.Sequential(Unit(cin, cout, stride, cfg, stage), nn.ReLU(),
                                   Unit(cout, cout, 1, cfg, stage))
        self.residual = cfg[f"s{stage}_residual"] == "identity"
        self.shortcut = (nn.Identity() if cin == cout and stride == 1 else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Units, plus the shortcut when residual, then ReLU."""
        y = self.units(x)
        return F.relu(y + self.shortcut(x) if self.residual else y)


def network(cfg: dict) -> nn.Module:
    """Stem, three stages of one block each, global average pooling, linear classifier."""
    layers, cin = [nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU()], 32
    for stage, (width, stride) in enumerate(zip(WIDTHS, STRIDES, strict=True), start=1):
        layers.append(Block(cin, width, stride, cfg, stage))
        cin = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10))


def train_cifar(config: dict, data_dir: str, max_epochs: int) -> None:
    """The trainable: tutorial loop, one-cycle SGD as the default space trains, report per epoch."""
    from ray import tune

    images, labels = read_cifar(Path(data_dir))
    order = np.random.default_rng(0).permutation(len(labels))  # random_split-like, seeded
    val, train = order[:1000], order[1000:]
    train_loader = DataLoader(Cifar(images[train], labels[train], True), batch_size=128,
                              shuffle=True, drop_last=True)
    val_loader = DataLoader(Cifar(images[val], labels[val], False), batch_size=500)
    torch.manual_seed(0)
    model = network(config)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, nesterov=True,
                                weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=0.2, total_steps=max_epochs * len(train_loader),
        pct_start=1 / max(2, max_epochs))  # one warm-up epoch (half of two), as the default space
    for _ in range(max_epochs):
        model.train()
        for x, y in train_loader:
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in val_loader:
                correct += (model(x).argmax(1) == y).sum().item()
        tune.report({"val_acc": correct / len(val)})


def param_space() -> dict:
    """The default space's dimensions, per stage."""
    from ray import tune

    space = {}
    for s in (1, 2, 3):
        space |= {f"s{s}_spectrum": tune.choice([0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
                  f"s{s}_order": tune.choice(["dw_pw", "pw_dw"]),
                  f"s{s}_mid_act": tune.choice(["none", "relu", "elu"]),
                  f"s{s}_residual": tune.choice(["identity", "none"]),
                  f"s{s}_kernel": tune.choice([3, 5])}
    return space


def main() -> None:
    """Run the search; print the best validation accuracy as JSON."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir", help="a cifar-10-batches-bin folder")
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--max-epochs", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as storage:  # Ray's default is ~/ray_results
        tuner = tune.Tuner(
            tune.with_parameters(train_cifar, data_dir=args.data_dir, max_epochs=args.max_epochs),
            param_space=param_space(),
            tune_config=tune.TuneConfig(
                metric="val_acc", mode="max", search_alg=OptunaSearch(),
                scheduler=ASHAScheduler(max_t=args.max_epochs), num_samples=args.trials,
                max_concurrent_trials=args.concurrency),
            run_config=tune.RunConfig(storage_path=storage),
        )
        results = tuner.fit()
        accs = [float(r.metrics_dataframe["val_acc"].max()) for r in results
                if r.metrics_dataframe is not None and "val_acc" in r.metrics_dataframe]
        print(json.dumps({"best_val_acc": max(accs, default=math.nan), "trials": len(results),
                          "finished": len(accs)}))


if __name__ == "__main__":
    main()

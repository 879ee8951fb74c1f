"""What to load (DataSpec) and the one entry point that loads it (load_splits)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nas.data.batches import CIFAR_SIDE
from nas.data.cifar import load_cifar10
from nas.data.core import DATA_DIR_ENV, ClassSelection, DataError, Splits, is_int
from nas.data.imagefolder import DEFAULT_FOLDER_RESOLUTION, load_imagefolder
from nas.data.splits import make_splits

DATASETS = ("cifar10", "imagefolder")


@dataclass(frozen=True)
class DataSpec:
    """What to load: data set, class subset, split sizes and (image folders) decoding options."""

    dataset: str = "cifar10"  # "cifar10" | "imagefolder"
    root: Path | None = None  # imagefolder only: the folder holding train/ (and val/)
    val_size: int | float = 0.1  # count, or fraction of the training images
    train_size: int | float | None = None  # count or fraction of what val leaves; None = all
    classes: int | tuple[str, ...] | None = None  # None = all, N = first N, or names
    per_class: int | None = None  # imagefolder only: first N files of each class; None = all
    resolution: int | None = None  # imagefolder only; None = DEFAULT_FOLDER_RESOLUTION
    seed: int = 0

    def __post_init__(self) -> None:
        # Normalise the forms config files and CLIs produce (str paths, lists) so the spec
        # stays hashable; validate() judges the values.
        if isinstance(self.root, str | os.PathLike):
            object.__setattr__(self, "root", Path(self.root))
        if isinstance(self.classes, list):
            object.__setattr__(self, "classes", tuple(self.classes))

    def validate(self) -> None:
        """Raise DataError (one line, naming the field and what is allowed) for a bad spec."""
        problem = self._dataset_problem() or self._split_problem() or self._folder_problem()
        if problem:
            raise DataError(f"DataSpec.{problem}")

    def _dataset_problem(self) -> str | None:
        """What is wrong with dataset/root, if anything."""
        if self.dataset not in DATASETS:
            allowed = ", ".join(repr(d) for d in DATASETS)
            return f"dataset: expected one of {allowed}, got {self.dataset!r}"
        if self.dataset == "imagefolder" and not isinstance(self.root, Path):
            return (
                "root: dataset='imagefolder' needs a folder holding train/<class>/, "
                f"got {self.root!r}"
            )
        if self.dataset == "cifar10" and self.root is not None:
            return (
                "root: only for dataset='imagefolder'; CIFAR-10 comes from --data-dir, "
                f"${DATA_DIR_ENV} or the per-user cache"
            )
        return None

    def _split_problem(self) -> str | None:
        """What is wrong with val_size/train_size/classes/seed, if anything."""
        val, train, classes = self.val_size, self.train_size, self.classes
        if not (is_int(val) and val >= 0) and not (isinstance(val, float) and 0.0 <= val < 1.0):
            return f"val_size: expected an int >= 0 or a float in [0, 1), got {val!r}"
        int_ok = is_int(train) and train >= 1
        if (
            train is not None
            and not int_ok
            and not (isinstance(train, float) and 0.0 < train <= 1.0)
        ):
            return f"train_size: expected None, an int >= 1 or a float in (0, 1], got {train!r}"
        names_ok = (
            isinstance(classes, tuple)
            and len(classes) > 0
            and all(isinstance(c, str) and c for c in classes)
            and len(set(classes)) == len(classes)
        )
        if classes is not None and not (is_int(classes) and classes >= 1) and not names_ok:
            return (
                f"classes: expected None, an int >= 1 or a tuple of distinct names, got {classes!r}"
            )
        if not (is_int(self.seed) and self.seed >= 0):
            return f"seed: expected an int >= 0, got {self.seed!r}"
        return None

    def _folder_problem(self) -> str | None:
        """What is wrong with the imagefolder-only fields, if anything."""
        if self.dataset == "cifar10":
            if self.per_class is not None:
                return "per_class: only for dataset='imagefolder'; use train_size for CIFAR-10"
            if self.resolution not in (None, CIFAR_SIDE):
                side = f"{CIFAR_SIDE}x{CIFAR_SIDE}"
                return f"resolution: CIFAR-10 is {side} and is not resized; use None"
            return None
        if self.per_class is not None and not (is_int(self.per_class) and self.per_class >= 1):
            return f"per_class: expected None (all) or an int >= 1, got {self.per_class!r}"
        if self.resolution is not None and not (is_int(self.resolution) and self.resolution >= 1):
            return (
                f"resolution: expected None ({DEFAULT_FOLDER_RESOLUTION}) or an int >= 1, "
                f"got {self.resolution!r}"
            )
        return None


def load_splits(
    spec: DataSpec,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    workers: int | None = None,
    held_out: int = 0,
) -> Splits:
    """Load what `spec` describes as train/val/test splits; `data_dir` locates CIFAR-10;
    `held_out` images (stratified, seeded by spec.seed) from the training images left after
    val_size and train_size (HeldOutError when too few are left)."""
    spec.validate()
    if spec.dataset == "cifar10":
        train, test = load_cifar10(data_dir)
        classes: ClassSelection = spec.classes
    else:
        assert spec.root is not None  # validate() guarantees it
        folder = load_imagefolder(
            spec.root,
            classes=spec.classes,
            per_class=spec.per_class,
            resolution=spec.resolution or DEFAULT_FOLDER_RESOLUTION,
            workers=workers,
        )
        # Classes were already chosen (and relabelled) while listing the folders.
        train, test, classes = folder.train, folder.test, None
    return make_splits(
        train,
        test,
        val_size=spec.val_size,
        train_size=spec.train_size,
        classes=classes,
        held_out=held_out,
        seed=spec.seed,
    )

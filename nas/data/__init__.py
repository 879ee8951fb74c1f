"""Data sets as device-ready uint8 tensors: CIFAR-10 and ImageNet-style subsets."""

# What the rest of nas uses; everything else is imported from its own module.

from nas.data.cifar import load_cifar10
from nas.data.core import (
    DATA_DIR_ENV,
    DataError,
    HeldOutError,
    ImageSet,
    Splits,
    UnsafePickleError,
)
from nas.data.download import download_cifar10
from nas.data.imagefolder import load_imagefolder
from nas.data.spec import DataSpec, load_splits
from nas.data.splits import channel_stats

__all__ = [
    "DATA_DIR_ENV",
    "DataError",
    "DataSpec",
    "HeldOutError",
    "ImageSet",
    "Splits",
    "UnsafePickleError",
    "channel_stats",
    "download_cifar10",
    "load_cifar10",
    "load_imagefolder",
    "load_splits",
]

"""Data sets as device-ready uint8 tensors: CIFAR-10 and ImageNet-style subsets."""

# Everything is re-exported here so callers import from nas.data, not from its modules.
from nas.data.batches import (
    BIN_DIRNAME,
    CIFAR_NUM_CLASSES,
    CIFAR_PIXELS,
    CIFAR_RECORD,
    CIFAR_SIDE,
    CIFAR_TEST_BATCH,
    CIFAR_TRAIN_BATCHES,
    PY_DIRNAME,
    BatchesDir,
    find_batches_dir,
    read_cifar10,
    read_cifar_bin_batch,
    read_cifar_py_batch,
)
from nas.data.cifar import load_cifar10, locate_cifar10
from nas.data.core import (
    CACHE_SUBDIR,
    DATA_DIR_ENV,
    ClassSelection,
    DataError,
    ImageSet,
    Splits,
    UnsafePickleError,
    default_cache_dir,
)
from nas.data.decode import decode_image
from nas.data.download import CIFAR10_BINARY_MD5, CIFAR10_BINARY_URL, download_cifar10
from nas.data.imagefolder import (
    DEFAULT_FOLDER_RESOLUTION,
    IMAGE_EXTENSIONS,
    FolderData,
    load_imagefolder,
)
from nas.data.spec import DATASETS, DataSpec, load_splits
from nas.data.splits import (
    channel_stats,
    make_splits,
    resolve_classes,
    stratified_split,
    subset_classes,
)

__all__ = [
    "BIN_DIRNAME",
    "CACHE_SUBDIR",
    "CIFAR10_BINARY_MD5",
    "CIFAR10_BINARY_URL",
    "CIFAR_NUM_CLASSES",
    "CIFAR_PIXELS",
    "CIFAR_RECORD",
    "CIFAR_SIDE",
    "CIFAR_TEST_BATCH",
    "CIFAR_TRAIN_BATCHES",
    "DATASETS",
    "DATA_DIR_ENV",
    "DEFAULT_FOLDER_RESOLUTION",
    "IMAGE_EXTENSIONS",
    "PY_DIRNAME",
    "BatchesDir",
    "ClassSelection",
    "DataError",
    "DataSpec",
    "FolderData",
    "ImageSet",
    "Splits",
    "UnsafePickleError",
    "channel_stats",
    "decode_image",
    "default_cache_dir",
    "download_cifar10",
    "find_batches_dir",
    "load_cifar10",
    "load_imagefolder",
    "load_splits",
    "locate_cifar10",
    "make_splits",
    "read_cifar10",
    "read_cifar_bin_batch",
    "read_cifar_py_batch",
    "resolve_classes",
    "stratified_split",
    "subset_classes",
]

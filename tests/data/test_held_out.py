"""[verify].held_out's images: carved, stratified and seeded, from the training images neither
the train nor the validation split uses; too many asked for is one line naming the field."""

from __future__ import annotations

import numpy as np
import pytest

from nas.data import HeldOutError, ImageSet, load_cifar10
from nas.data.splits import make_splits, stratified_split, stratified_splits

# 10 classes of unequal size (100 .. 190 images), shuffled
LABELS = np.random.default_rng(7).permutation(np.repeat(np.arange(10), np.arange(100, 200, 10)))


def test_held_out_is_disjoint_stratified_and_leaves_train_and_val_as_they_were():
    train, val, held = stratified_splits(LABELS, val_size=200, train_size=600, held_out=300,
                                         seed=3)
    assert (len(train), len(val), len(held)) == (600, 200, 300)
    assert len(set(train) | set(val) | set(held)) == 1100  # disjoint
    # stratified: every class in proportion to its share of the data (within one image)
    share = np.bincount(LABELS, minlength=10) / LABELS.size
    assert np.abs(np.bincount(LABELS[held], minlength=10) - 300 * share).max() < 1
    # drawn last: train and val are those of the same spec without it
    plain_train, plain_val = stratified_split(LABELS, val_size=200, train_size=600, seed=3)
    assert np.array_equal(train, plain_train) and np.array_equal(val, plain_val)
    # deterministic from the seed, another seed another draw
    again = stratified_splits(LABELS, val_size=200, train_size=600, held_out=300, seed=3)[2]
    other = stratified_splits(LABELS, val_size=200, train_size=600, held_out=300, seed=4)[2]
    assert np.array_equal(held, again) and not np.array_equal(held, other)
    assert stratified_splits(LABELS, val_size=200, train_size=600, seed=3)[2].size == 0


def test_more_held_out_images_than_are_left_is_one_line_naming_the_field():
    with pytest.raises(HeldOutError) as err:
        stratified_splits(LABELS, val_size=200, train_size=600, held_out=10_000, seed=0)
    message = str(err.value)
    assert message == ("held_out: 10,000 images requested, only 650 training images are left"
                       " after val_size and train_size")
    with pytest.raises(HeldOutError, match="only 0 training images are left"):
        stratified_splits(LABELS, val_size=200, held_out=1, seed=0)  # train takes the rest


def test_make_splits_carves_it_from_the_training_images_never_the_test_batch(cifar_dir):
    train, test = load_cifar10(cifar_dir, download=False)
    splits = make_splits(train, test, val_size=300, train_size=600, held_out=300, seed=0)
    assert splits.held_out is not None and len(splits.held_out) == 300
    assert splits.test is test  # untouched: retrain's test score stays unseen

    def rows(part: ImageSet) -> set[bytes]:
        return {bytes(image.numpy().tobytes()) for image in part.images}

    held = rows(splits.held_out)
    assert not held & rows(splits.train) and not held & rows(splits.val)
    assert not held & rows(test)
    plain = make_splits(train, test, val_size=300, train_size=600, seed=0)
    assert plain.held_out is None
    assert bool((plain.train.images == splits.train.images).all())

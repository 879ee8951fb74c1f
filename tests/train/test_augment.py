"""Device-resident batches: layout, crop/flip correctness, normalization, determinism."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nas.data import ImageSet
from nas.train.augment import DeviceBatches, crop_flip, reflect_pad, sample_flips, sample_shifts

MEAN = (0.5, 0.4, 0.3)
STD = (0.25, 0.2, 0.1)


def image_set(n: int, seed: int = 0) -> ImageSet:
    """Random uint8 images whose labels are their indices, so batches reveal which were drawn."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    return ImageSet(images=images, labels=torch.arange(n), classes=tuple(str(i) for i in range(n)))


def batches(data: ImageSet, **overrides) -> DeviceBatches:
    """DeviceBatches on CPU with test defaults."""
    kwargs = {"batch_size": 16, "device": "cpu", "train": True, "seed": 0} | overrides
    return DeviceBatches(data, MEAN, STD, **kwargs)


def reference_crop_flip(batch, dy, dx, flips, pad):
    """Per-image reflect pad, crop and flip: the slow, obviously-correct version."""
    h, w = batch.shape[-2:]
    out = []
    for img, y, x, f in zip(batch, dy.tolist(), dx.tolist(), flips.tolist(), strict=True):
        padded = F.pad(img[None].float(), (pad, pad, pad, pad), mode="reflect")[0]
        crop = padded[:, y : y + h, x : x + w]
        out.append(crop.flip(-1) if f else crop)
    return torch.stack(out).to(torch.uint8)


def normalized(images: torch.Tensor) -> torch.Tensor:
    """(x / 255 - mean) / std per channel, in float32."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("train", [True, False])
def test_batch_shape_dtype_and_memory_format(train, channels_last):
    data = image_set(40)
    x, y = next(iter(batches(data, train=train, channels_last=channels_last)))
    assert x.shape == (16, 3, 32, 32)
    assert x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.shape == (16,)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert x.is_contiguous(memory_format=fmt)


def test_train_epoch_is_a_permutation_without_last_partial_batch():
    data = image_set(40)
    loader = batches(data)
    labels = torch.cat([y for _, y in loader])
    assert len(loader) == 2 and labels.numel() == 32
    assert labels.unique().numel() == 32
    assert not torch.equal(labels, torch.arange(32))


def test_eval_visits_every_image_in_order_unaugmented():
    data = image_set(40)
    loader = batches(data, train=False)
    xs, ys = zip(*loader, strict=True)
    assert len(loader) == 3 and [y.numel() for y in ys] == [16, 16, 8]
    assert torch.equal(torch.cat(ys), data.labels)
    torch.testing.assert_close(torch.cat(xs), normalized(data.images))


def test_no_augmentation_keeps_pixels():
    data = image_set(32)
    for x, y in batches(data, pad=0, hflip=False):
        torch.testing.assert_close(x, normalized(data.images[y]))


@pytest.mark.parametrize("pad", [1, 4])
def test_crop_flip_matches_reflect_pad_reference(pad):
    data = image_set(64)
    g = torch.Generator().manual_seed(1)
    dy, dx = sample_shifts(64, pad, g)
    flips = sample_flips(64, g)
    # Pin the extreme windows so both ends of the padded range are exercised.
    dy[:2], dx[:2] = torch.tensor([0, 2 * pad]), torch.tensor([2 * pad, 0])
    got = crop_flip(data.images, dy, dx, flips, pad)
    assert got.dtype == torch.uint8 and got.shape == data.images.shape
    assert torch.equal(got, reference_crop_flip(data.images, dy, dx, flips, pad))


@pytest.mark.parametrize("pad", [0, 1, 4])
def test_reflect_pad_matches_torch(pad):
    images = image_set(4).images
    expected = F.pad(images.float(), (pad, pad, pad, pad), mode="reflect").to(torch.uint8)
    assert torch.equal(reflect_pad(images, pad), expected)


def test_crop_offsets_stay_within_padding():
    g = torch.Generator().manual_seed(0)
    dy, dx = sample_shifts(5000, 4, g)
    for d in (dy, dx):
        assert d.min().item() == 0 and d.max().item() == 8


def test_augmented_pixels_come_from_the_reflect_padded_image():
    # Channel 0 stores each pixel's row (times 8 to fit uint8), channel 1 its column, so
    # every output pixel names the source pixel it was copied from.
    rows = torch.arange(32).view(32, 1).expand(32, 32)
    cols = torch.arange(32).view(1, 32).expand(32, 32)
    img = torch.stack([rows * 8, cols * 8, torch.zeros_like(rows)]).to(torch.uint8)
    data = ImageSet(images=img.expand(64, 3, 32, 32).clone(), labels=torch.arange(64), classes=())
    g = torch.Generator().manual_seed(3)
    dy, dx = sample_shifts(64, 4, g)
    out = crop_flip(data.images, dy, dx, torch.zeros(64, dtype=torch.bool), 4)
    src_rows = out[:, 0].long() // 8
    # Reflect padding maps padded row p to |p - 4| folded back at 31: rows shift by dy - 4.
    expected = (torch.arange(32).view(1, 32) + dy.view(-1, 1) - 4).abs()
    expected = torch.where(expected > 31, 62 - expected, expected)
    assert torch.equal(src_rows[:, :, 0], expected)
    assert src_rows.min() >= 0 and src_rows.max() <= 31


def test_flips_happen_about_half_the_time():
    g = torch.Generator().manual_seed(0)
    assert 0.46 < sample_flips(4000, g).float().mean().item() < 0.54


def test_flip_mirrors_columns():
    data = image_set(8)
    zero = torch.full((8,), 4)
    out = crop_flip(data.images, zero, zero, torch.ones(8, dtype=torch.bool), 4)
    assert torch.equal(out, data.images.flip(-1))


def test_same_seed_same_batches_and_epochs_differ():
    data = image_set(48)

    def two_epochs(seed):
        loader = batches(data, seed=seed)
        return [batch for _ in range(2) for batch in loader]

    first, again, other = two_epochs(5), two_epochs(5), two_epochs(6)
    for (x1, y1), (x2, y2) in zip(first, again, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(first[0][1], first[len(first) // 2][1])
    assert not torch.equal(first[0][0], other[0][0])


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="batch_size"):
        batches(image_set(8), batch_size=0)
    with pytest.raises(ValueError, match="pad"):
        batches(image_set(8), pad=-1)


def test_alternating_flips_invert_every_other_epoch_and_follow_the_seed():
    data = image_set(64)
    loader = batches(data, pad=0, alternate_flip=True, seed=3)

    def flipped(images, labels):
        """Which images of a batch came out mirrored (random pixels: never symmetric)."""
        return {int(i): torch.allclose(x, normalized(data.images[i : i + 1].flip(-1))[0], atol=1e-5)
                for x, i in zip(images, labels, strict=True)}

    epochs = [{k: v for x, y in loader for k, v in flipped(x, y).items()} for _ in range(3)]
    assert len(epochs[0]) == 64 and 20 < sum(epochs[0].values()) < 44  # about half at first
    assert all(epochs[1][i] != epochs[0][i] for i in epochs[0])  # then all the other way
    assert epochs[2] == epochs[0]
    again = batches(data, pad=0, alternate_flip=True, seed=3)
    assert torch.equal(again.base_flips, loader.base_flips)
    assert not torch.equal(batches(data, pad=0, alternate_flip=True, seed=4).base_flips,
                           loader.base_flips)
    assert batches(data, pad=0, alternate_flip=True, hflip=False).base_flips is None

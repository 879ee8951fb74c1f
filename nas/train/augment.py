"""Device-resident batches: a whole split on the training device, augmented per batch there."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from nas.data import ImageSet


def sample_shifts(
    n: int, pad: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw per-image vertical and horizontal crop offsets, each uniform in [0, 2 * pad]."""
    device = generator.device
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
    return dy, dx


def sample_flips(n: int, generator: torch.Generator) -> torch.Tensor:
    """Draw per-image horizontal-flip decisions, each true with probability 1/2."""
    return torch.randint(0, 2, (n,), generator=generator, device=generator.device).bool()


def reflect_pad(batch: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad an NCHW batch by `pad` pixels on each side, mirroring without repeating the edge.

    Reflect rather than zero padding: the border then continues the image instead of adding
    black bars, so a crop never shows the network an edge the test images lack, and the
    padding does not drag the per-channel batch-norm statistics towards black. Built from
    flip and cat, which every device supports for uint8 (CUDA's reflection_pad2d may not).
    """
    batch = torch.cat(
        [batch[:, :, 1 : pad + 1].flip(2), batch, batch[:, :, -pad - 1 : -1].flip(2)], 2
    )
    return torch.cat([batch[..., 1 : pad + 1].flip(3), batch, batch[..., -pad - 1 : -1].flip(3)], 3)


def crop_flip(
    batch: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flips: torch.Tensor, pad: int
) -> torch.Tensor:
    """Reflect-pad an NCHW batch, cut one HxW window per image at (dy, dx), mirror the flips."""
    n, c, h, w = batch.shape
    padded = reflect_pad(batch, pad)
    # Cropping at dx and then mirroring equals mirroring the padded image and cropping at
    # 2 * pad - dx, so mirrored copies let one window gather serve flipped and plain images.
    both = torch.cat([padded, padded.flip(-1)])
    sn, sc, sh, sw = both.stride()
    windows = both.as_strided((2 * n, 2 * pad + 1, 2 * pad + 1, c, h, w), (sn, sh, sw, sc, sh, sw))
    source = torch.arange(n, device=batch.device) + flips.long() * n
    return windows[source, dy, torch.where(flips, 2 * pad - dx, dx)]


def normalizer(
    mean: Sequence[float], std: Sequence[float], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel scale and shift that map uint8 pixels to (x / 255 - mean) / std."""
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return 1.0 / (255.0 * std_t), -mean_t / std_t


def to_float(
    batch: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, channels_last: bool
) -> torch.Tensor:
    """Convert a uint8 batch to normalized float32, in channels_last layout when asked."""
    if channels_last:
        # Reordering the 1-byte pixels is 4x cheaper than reordering the float32 result.
        batch = batch.contiguous(memory_format=torch.channels_last)
    return batch.to(torch.float32).mul_(scale).add_(shift)


class DeviceBatches:
    """Iterable of (images, labels) batches from one split held on one device, no DataLoader.

    Each iteration is one epoch. With `train=True` it visits a seeded random permutation,
    drops the last partial batch (tiny batches destabilise batch norm) and applies random
    crop and horizontal flip; with `train=False` it visits every image in order, unaugmented.
    `alternate_flip` (airbench94) draws each image's flip once and inverts them all in every
    odd `epoch`, so consecutive epochs show each image both ways instead of at random.
    """

    def __init__(
        self,
        data: ImageSet,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        batch_size: int,
        device: torch.device | str,
        train: bool,
        pad: int = 4,
        hflip: bool = True,
        alternate_flip: bool = False,
        channels_last: bool = True,
        seed: int = 0,
    ) -> None:
        """Copy the split to `device` once and prepare the seeded batch generator."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        self.device = torch.device(device)
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        self.batch_size = batch_size
        self.train = train
        self.pad = pad
        self.hflip = hflip
        self.channels_last = channels_last
        self.scale, self.shift = normalizer(mean, std, self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.base_flips = (sample_flips(len(self.labels), self.generator)
                           if alternate_flip and hflip else None)
        self.epoch = 0  # the next epoch, counted from 0 (the Trainer sets it when resuming)

    def __len__(self) -> int:
        """Number of batches one epoch yields."""
        n = int(self.labels.shape[0])
        return n // self.batch_size if self.train else -(-n // self.batch_size)

    @property
    def images_per_epoch(self) -> int:
        """Number of images one epoch yields."""
        return min(len(self) * self.batch_size, int(self.labels.shape[0]))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield one epoch of normalized float batches with their int64 labels."""
        n = int(self.labels.shape[0])
        if self.train:
            order = torch.randperm(n, generator=self.generator, device=self.device)
        else:
            order = torch.arange(n, device=self.device)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size]
            yield self._prepare(self.images[index], index), self.labels[index]
        self.epoch += 1

    def _prepare(self, batch: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Augment (training only) and normalize one uint8 batch, images `index` of the split."""
        if self.train and (self.pad > 0 or self.hflip):
            n = batch.shape[0]
            dy, dx = sample_shifts(n, self.pad, self.generator)
            if self.base_flips is not None:
                flips = self.base_flips[index] ^ bool(self.epoch % 2)
            elif self.hflip:
                flips = sample_flips(n, self.generator)
            else:
                flips = torch.zeros(n, dtype=torch.bool, device=self.device)
            batch = crop_flip(batch, dy, dx, flips, self.pad)
        return to_float(batch, self.scale, self.shift, self.channels_last)

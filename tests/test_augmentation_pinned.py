"""The train augmentation pinned to padding 4: over many draws the crop offsets of
random_crop_flip (default padding) and of seq-cifar10's train transform, tensor and PIL paths,
cover exactly {0, ..., 8}^2, extremes included, and every output equals the written-out crop of
the zero-padded image (the zero border where the reference puts it). seq-fmnist does not augment."""
import itertools

import numpy as np
import torch
from PIL import Image

from tests.reference_helpers import make_dataset
from utils.augment import random_crop_flip

PADDING = 4
ALL_OFFSETS = set(itertools.product(range(2 * PADDING + 1), repeat=2))
CIFAR_MEAN = torch.tensor((0.4914, 0.4822, 0.4465)).view(3, 1, 1)
CIFAR_STD = torch.tensor((0.2470, 0.2435, 0.2615)).view(3, 1, 1)


def coordinate_images(n: int, size: int, channels: int) -> torch.Tensor:
    """Channel 0: row + 1, channel 1: column + 1, further channels 255 (all in 1..255, never 0,
    so a zero is padding), as float pixel values 0..255."""
    rows = torch.arange(1, size + 1, dtype=torch.float).view(size, 1).expand(size, size)
    cols = rows.T
    planes = [rows, cols] + [torch.full((size, size), 255.0)] * (channels - 2)
    return torch.stack(planes).expand(n, channels, size, size).contiguous()


def reference_crop(image: torch.Tensor, top: int, left: int, flip: bool) -> torch.Tensor:
    """RandomCrop(size, padding=4) at (top, left) of the zero-padded image, then the mirror if ``flip``."""
    channels, height, width = image.shape
    padded = torch.zeros(channels, height + 2 * PADDING, width + 2 * PADDING, dtype=image.dtype)
    padded[:, PADDING:PADDING + height, PADDING:PADDING + width] = image
    out = padded[:, top:top + height, left:left + width]
    return out.flip(-1) if flip else out


def decode(out: torch.Tensor) -> list[tuple[int, int, bool]]:
    """(top, left, flip) in the padding-4 frame, from the centre pixel of coordinate images (pixel
    values 0..255); the centre always shows a source pixel, since shifts are at most 4."""
    size = out.shape[-1]
    c = size // 2
    row = out[:, 0, c, c].round().long() - 1
    col = out[:, 1, c, c].round().long() - 1
    flip = (out[:, 1, c, c + 1].round().long() - 1) < col
    top = row - c + PADDING
    left = torch.where(flip, col - (size - 1 - c) + PADDING, col - c + PADDING)
    return list(zip(top.tolist(), left.tolist(), flip.tolist(), strict=True))


def check_crops(images: torch.Tensor, out: torch.Tensor, atol: float = 0.0) -> None:
    """Offsets cover exactly {0..8}^2 (0 and 8 on both axes), both flips occur, every output is its
    reference crop, and the zero border has the reference's extent."""
    crops = decode(out)
    assert {(t, left) for t, left, _ in crops} == ALL_OFFSETS
    assert {f for *_, f in crops} == {False, True}
    for image, got, (top, left, flip) in zip(images, out, crops, strict=True):
        torch.testing.assert_close(got, reference_crop(image, top, left, flip), rtol=0, atol=atol)
        zero_rows = (got.abs() <= atol).all(0).all(1)  # rows of padding
        height = got.shape[1]
        expected = [i < PADDING - top or i >= height + PADDING - top for i in range(height)]
        assert zero_rows.tolist() == expected, (top, left, flip)


def test_random_crop_flip_default_padding_is_four():
    torch.manual_seed(0)
    images = coordinate_images(3000, 12, 2)
    check_crops(images, random_crop_flip(images))


def cifar10():
    return make_dataset("seq-cifar10", batch_size=4)


def test_seq_cifar10_tensor_train_transform():
    """The batched train transform: the crop and flip of padding 4, then normalisation with the
    CIFAR-10 mean and std (undone here to read the coordinates)."""
    torch.manual_seed(1)
    images = coordinate_images(3000, 32, 3) / 255
    out = cifar10().train_transform(images)
    pixels = (out * CIFAR_STD + CIFAR_MEAN) * 255
    check_crops(images * 255, pixels, atol=1e-3)


def test_seq_cifar10_pil_train_transform():
    """The released per-image torchvision pipeline (--loader pil) on one coordinate image."""
    torch.manual_seed(2)
    image = coordinate_images(1, 32, 3)[0]
    pil = Image.fromarray(image.permute(1, 2, 0).numpy().astype(np.uint8))
    transform = cifar10().pil_train_transform()
    out = torch.stack([transform(pil) for _ in range(1500)])
    pixels = (out * CIFAR_STD + CIFAR_MEAN) * 255
    check_crops(image.expand(1500, -1, -1, -1), pixels, atol=1e-3)


def test_seq_fmnist_does_not_augment():
    dataset = make_dataset("seq-fmnist", batch_size=4)
    torch.manual_seed(3)
    images = torch.rand(16, 1, 28, 28)
    assert torch.equal(dataset.train_transform(images), images)
    pil = Image.fromarray((images[0, 0] * 255).round().to(torch.uint8).numpy())
    expected = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255)[None]
    for _ in range(8):
        torch.testing.assert_close(dataset.pil_train_transform()(pil), expected)

"""Tests of utils/augment.py against torchvision's per-image transforms."""
import math

import pytest
import torch
from torchvision import transforms
from torchvision.transforms import functional as TF

from utils.augment import crop_flip, normalize, random_crop_flip


def _reference(image: torch.Tensor, top: int, left: int, flip: bool, padding: int) -> torch.Tensor:
    """RandomCrop(size, padding) at a fixed offset, then RandomHorizontalFlip, one image."""
    height, width = image.shape[-2:]
    out = TF.crop(TF.pad(image, [padding], fill=0), top, left, height, width)
    return TF.hflip(out) if flip else out


def test_crop_flip_matches_torchvision_for_every_offset():
    """All 9 x 9 offsets of padding 4, each with and without a flip, on 32x32 RGB images."""
    torch.manual_seed(0)
    padding = 4
    combos = [(t, left, f) for t in range(9) for left in range(9) for f in (False, True)]
    images = torch.rand(len(combos), 3, 32, 32)
    top = torch.tensor([c[0] for c in combos])
    left = torch.tensor([c[1] for c in combos])
    flip = torch.tensor([c[2] for c in combos])
    out = crop_flip(images, top, left, flip, padding)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert out.is_contiguous()  # NCHW, not a channels-last view: a plain network keeps its NCHW kernels
    for i, (t, lft, f) in enumerate(combos):
        assert torch.equal(out[i], _reference(images[i], t, lft, f, padding)), (t, lft, f)


@pytest.mark.parametrize("shape,padding", [((5, 1, 28, 28), 2), ((4, 2, 7, 11), 3)])
def test_crop_flip_other_shapes(shape, padding):
    torch.manual_seed(1)
    images = torch.rand(*shape)
    n = shape[0]
    top = torch.randint(0, 2 * padding + 1, (n,))
    left = torch.randint(0, 2 * padding + 1, (n,))
    flip = torch.arange(n) % 2 == 0
    out = crop_flip(images, top, left, flip, padding)
    assert out.shape == images.shape
    for i in range(n):
        assert torch.equal(out[i], _reference(images[i], int(top[i]), int(left[i]), bool(flip[i]), padding))


def test_crop_flip_centre_without_flip_is_identity():
    images = torch.rand(3, 3, 32, 32)
    same = crop_flip(images, torch.full((3,), 4), torch.full((3,), 4), torch.zeros(3, dtype=torch.bool), 4)
    assert torch.equal(same, images)
    mirrored = crop_flip(images, torch.full((3,), 4), torch.full((3,), 4), torch.ones(3, dtype=torch.bool), 4)
    assert torch.equal(mirrored, images.flip(-1))


def _decode(out: torch.Tensor, padding: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(top, left, flip) of every output of a coordinate image: channel 0 holds row + 1 and
    channel 1 column + 1 of the source pixel. The centre pixel always comes from the source
    (shifts are at most ``padding`` < half the size)."""
    size = out.shape[-1]
    c = size // 2
    row = out[:, 0, c, c].round().long() - 1
    col = out[:, 1, c, c].round().long() - 1
    col_next = out[:, 1, c, c + 1].round().long() - 1
    flip = col_next < col
    top = row - c + padding
    # unflipped: col = c + left - padding; flipped: output c shows crop column size - 1 - c
    left = torch.where(flip, col - (size - 1 - c) + padding, col - c + padding)
    return top, left, flip


def test_random_crop_flip_distribution():
    """18000 images of 12x12, padding 4: each offset in 0..8 has probability 1/9 on each axis
    (count ~ Binomial(18000, 1/9): mean 2000, sd 42.2) and a flip has probability 1/2
    (mean 9000, sd 67). We allow 5 sd; the decoded (top, left, flip) is checked to reproduce
    the output exactly through crop_flip, and the three draws to be independent (a 2x2 table
    of top < 4 vs flip)."""
    torch.manual_seed(0)
    n, size, padding = 18000, 12, 4
    rows = torch.arange(1, size + 1, dtype=torch.float).view(size, 1).expand(size, size)
    cols = torch.arange(1, size + 1, dtype=torch.float).view(1, size).expand(size, size)
    images = torch.stack((rows, cols)).expand(n, 2, size, size).contiguous()
    out = random_crop_flip(images, padding=padding)
    assert out.shape == images.shape
    top, left, flip = _decode(out, padding)
    assert torch.equal(out, crop_flip(images, top, left, flip, padding))
    sd = math.sqrt(n * (1 / 9) * (8 / 9))
    for offsets in (top, left):
        counts = torch.bincount(offsets, minlength=2 * padding + 1)
        assert len(counts) == 2 * padding + 1, "offset outside 0..2 * padding"
        assert (counts - n / 9).abs().max() < 5 * sd, counts.tolist()
    assert abs(int(flip.sum()) - n / 2) < 5 * math.sqrt(n / 4)
    both = int(((top < 4) & flip).sum())  # P = 4/9 * 1/2
    p = 4 / 18
    assert abs(both - n * p) < 5 * math.sqrt(n * p * (1 - p))
    same = int((top == left).sum())  # P = 1/9 when top and left are independent
    assert abs(same - n / 9) < 5 * sd


def test_random_crop_flip_default_padding_and_fresh_draws():
    torch.manual_seed(4)
    images = torch.rand(64, 3, 32, 32)
    first, second = random_crop_flip(images), random_crop_flip(images)
    assert first.shape == second.shape == images.shape
    assert not torch.equal(first, second)
    # each output is one of the 9 x 9 x 2 crops of its own image (padding 4 by default)
    for i in range(0, 64, 16):
        candidates = [_reference(images[i], t, lft, f, 4) for t in range(9) for lft in range(9) for f in (0, 1)]
        assert any(torch.equal(first[i], c) for c in candidates)


def test_normalize_matches_torchvision():
    torch.manual_seed(5)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2615)
    images = torch.rand(6, 3, 32, 32)
    original = images.clone()
    expected = transforms.Normalize(mean, std)(images.clone())
    out = normalize(images, mean, std)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    # by hand for one pixel
    assert out[2, 1, 3, 4].item() == pytest.approx((images[2, 1, 3, 4].item() - 0.4822) / 0.2435, rel=1e-5)
    assert torch.equal(images, original), "normalize must not modify its input"


def test_normalize_one_channel_double():
    images = torch.rand(2, 1, 5, 5, dtype=torch.float64)
    out = normalize(images, (0.5,), (0.25,))
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, (images - 0.5) / 0.25)

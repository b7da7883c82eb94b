"""Batched image transforms on the training device.

``random_crop_flip`` draws, for every image independently, the same distribution as
torchvision's ``RandomCrop(size, padding)`` followed by ``RandomHorizontalFlip()``:
a zero-padded image, a uniform crop offset in [0, 2 * padding] on each axis, and a
flip with probability 1/2.
"""
import functools

import torch


def crop_flip(images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor,
              padding: int) -> torch.Tensor:
    """Zero-pad ``images`` (N, C, H, W), crop each at (top, left) to H x W and mirror where ``flip``."""
    n, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    rows = top[:, None] + torch.arange(height, device=images.device)
    cols = left[:, None] + torch.arange(width, device=images.device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=images.device)[:, None, None]
    # Advanced indexing on (N, H', W') puts the channel axis last; move it back, and copy to the
    # contiguous layout: a channels-last view would switch a plain network's convolutions to the
    # channels-last kernels (one of which, oneDNN's strided 1x1 backward below 16 input channels,
    # corrupts memory on AVX-512 CPUs).
    cropped = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return cropped.permute(0, 3, 1, 2).contiguous()


def random_crop_flip(images: torch.Tensor, padding: int = 4) -> torch.Tensor:
    """Independent random crop (after zero padding) and horizontal flip of every image."""
    n = images.shape[0]
    offsets = torch.randint(0, 2 * padding + 1, (2, n), device=images.device)
    flip = torch.rand(n, device=images.device) < 0.5
    return crop_flip(images, offsets[0], offsets[1], flip, padding)


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Per-channel (x - mean) / std, as torchvision's Normalize."""
    mean_t, std_t = _channel_constants(mean, std, images.device, images.dtype)
    return (images - mean_t) / std_t


@functools.cache
def _channel_constants(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device,
                       dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std as (1, C, 1, 1) tensors on ``device``, made once (no copy per batch)."""
    shape = (1, -1, 1, 1)
    return (torch.tensor(mean, device=device, dtype=dtype).view(shape),
            torch.tensor(std, device=device, dtype=dtype).view(shape))

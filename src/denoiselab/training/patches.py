"""Random training patches from folders of clean images, kept in memory as uint8."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DenoiselabError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DenoiselabError(f"training folder {folder} does not exist or is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DenoiselabError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return files


def _to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """(H, W, C) float in [0, 1] -> (channels, H, W); colour to gray by ITU-R BT.601 luma."""
    if img.shape[2] == channels:
        return np.ascontiguousarray(img.transpose(2, 0, 1))
    if channels == 1:  # gray version of a colour image
        luma = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return luma[None]
    return np.repeat(img.transpose(2, 0, 1), 3, axis=0)  # gray replicated to RGB


def load_training_images(folders: list[str | Path], *, channels: int, min_side: int = 0) -> list[Tensor]:
    """Read every image of `folders` as a uint8 tensor (channels, H, W).

    Colour images become gray (BT.601 luma) when `channels` is 1, so gray priors can learn from
    colour sets too. Images whose shorter side is below `min_side` are skipped.
    """
    from ..io import read_image

    images = []
    for folder in folders:
        for path in list_images(folder):
            img = read_image(path).array
            if img.ndim != 3:
                raise DenoiselabError(f"{path}: training images must be single images, not stacks")
            chw = _to_channels(img, channels)
            if min(chw.shape[1:]) < min_side:
                continue
            images.append(torch.from_numpy(np.round(chw * 255).astype(np.uint8)))
    if not images:
        raise DenoiselabError(f"no training image of at least {min_side} px per side in {folders}")
    return images


class PatchSampler:
    """Draws batches of random square patches with random flips and 90° rotations.

    Parameters
    ----------
    images : list of uint8 Tensor (C, H, W)
        The clean training images.
    patch_size : int
        Side of the patches, in pixels (smaller than every image side).
    batch_size : int
        Patches per batch.
    generator : torch.Generator
        Source of all randomness, so a seeded run draws the same batches.
    """

    def __init__(self, images: list[Tensor], *, patch_size: int, batch_size: int, generator: torch.Generator):
        small = [tuple(im.shape[1:]) for im in images if min(im.shape[1:]) < patch_size]
        if small:
            raise DenoiselabError(f"patch_size={patch_size} is larger than {len(small)} training images (e.g. {small[0]})")
        self.images, self.patch_size, self.batch_size, self.generator = images, patch_size, batch_size, generator

    def sample(self) -> Tensor:
        """One batch (batch_size, C, patch, patch), float32 in [0, 1]."""
        g, p = self.generator, self.patch_size
        idx = torch.randint(len(self.images), (self.batch_size,), generator=g).tolist()
        transform = torch.randint(8, (self.batch_size,), generator=g).tolist()
        patches = []
        for i, t in zip(idx, transform):
            im = self.images[i]
            top = int(torch.randint(im.shape[1] - p + 1, (1,), generator=g))
            left = int(torch.randint(im.shape[2] - p + 1, (1,), generator=g))
            patch = im[:, top : top + p, left : left + p]
            if t & 4:
                patch = patch.flip(2)
            patches.append(torch.rot90(patch, t & 3, dims=(1, 2)))
        return torch.stack(patches).float().div_(255)

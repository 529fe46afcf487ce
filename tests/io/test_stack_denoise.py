"""A 16-bit gray TIFF stack goes through read_image -> denoise -> write_image with depth, pages and tags kept."""

import numpy as np
import tifffile

from denoiselab import denoise
from denoiselab.io import read_image, write_image


def test_16_bit_gray_stack_round_trips_through_denoise(tmp_path):
    rng = np.random.default_rng(0)
    ramp = np.add.outer(np.linspace(0.2, 0.5, 48), np.linspace(0.0, 0.3, 40))
    clean = np.stack([ramp * (1 + 0.2 * p) for p in range(3)])[..., None].astype(np.float32)  # (3, 48, 40, 1)
    noisy = np.clip(clean + rng.normal(0, 0.05, clean.shape), 0, 1).astype(np.float32)
    metadata = {"description": "3 focal planes, 0.5 um apart", "resolution": (20000.0, 20000.0),
                "resolution_unit": "centimeter"}
    src = write_image(tmp_path / "stack.tif", noisy, bit_depth=16, metadata=metadata)

    image = read_image(src)
    assert image.is_stack and image.bit_depth == 16 and image.array.shape == (3, 48, 40, 1)
    x_hat = denoise(image.array, "bfdncnn-gray", sigma=0.05, device="cpu")  # blind: sigma is only reported
    assert x_hat.shape == image.array.shape and x_hat.dtype == np.float32
    dst = write_image(tmp_path / "denoised.tif", x_hat, bit_depth=image.bit_depth, metadata=image.metadata,
                      protect=[src])

    with tifffile.TiffFile(dst) as tif:
        assert len(tif.pages) == 3 and all(page.dtype == np.uint16 for page in tif.pages)
    out = read_image(dst)
    assert out.is_stack and out.bit_depth == 16 and out.array.shape == (3, 48, 40, 1)
    for key, value in metadata.items():
        assert out.metadata[key] == value
    for p in range(3):  # each plane was denoised (MSE against the clean plane at least halved)
        assert np.mean((out.array[p] - clean[p]) ** 2) < np.mean((noisy[p] - clean[p]) ** 2) / 2

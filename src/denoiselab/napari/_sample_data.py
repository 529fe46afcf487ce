"""napari sample data (*File > Open Sample > denoiselab*): a real noisy photo and a 16-bit stack.

* ``sidd_photo``: the bundled SIDD validation block 18_1 (256×256 sRGB, real smartphone
  noise), the same file as ``examples/sidd_18_1_noisy.png``, under SIDD's terms (academic and
  research use; see ``examples/README.md``).
* ``fluorescence_stack``: a synthetic z-stack of fluorescent blobs with Poisson (shot) and
  Gaussian (read) noise, made on the fly with a fixed seed, so it ships no third-party data.

Each function returns napari's layer-data tuples ``[(data, metadata, "image")]`` and needs
neither napari nor Qt.
"""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import torch

from ..noise.models import add_poisson_gaussian_noise

__all__ = ["fluorescence_stack", "make_fluorescence_stack", "sidd_photo"]


def sidd_photo() -> list[tuple]:
    """The bundled noisy SIDD photo as an 8-bit RGB layer, (256, 256, 3) uint8."""
    from PIL import Image

    with Image.open(files(__package__) / "data" / "sidd_18_1_noisy.png") as image:
        data = np.asarray(image.convert("RGB"))
    return [(data, {"name": "SIDD 18_1 noisy"}, "image")]


def make_fluorescence_stack(*, planes: int = 3, size: int = 128, read_sigma: float = 0.01, shot_sigma: float = 0.06,
                            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A clean and a noisy synthetic fluorescence z-stack, uint16.

    Thirty Gaussian blobs (cells; 3-D, so each plane cuts them at another height) over a dim
    background, noised with :func:`denoiselab.noise.models.add_poisson_gaussian_noise`
    (exact Poisson counts plus Gaussian read noise).

    Parameters
    ----------
    planes : int, optional
        Number of z planes (>= 1).
    size : int, optional
        Side of each plane in pixels (>= 16).
    read_sigma, shot_sigma : float, optional
        Read-noise std and shot-noise coefficient on the [0, 1] scale, ``σ² = read² + shot²·x``.
    seed : int, optional
        Seed of the blobs and of the noise.

    Returns
    -------
    clean, noisy : np.ndarray, shape (planes, size, size), uint16
        Intensities scaled by 65535 (the brightest blob centre is about 0.6 of the range).

    Examples
    --------
    >>> clean, noisy = make_fluorescence_stack(planes=2, size=32)
    >>> noisy.shape, noisy.dtype
    ((2, 32, 32), dtype('uint16'))
    >>> bool(np.abs(noisy.astype(float) - clean).mean() > 500)
    True
    """
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(np.linspace(-1.0, 1.0, planes), np.arange(size), np.arange(size), indexing="ij")
    clean = np.full(z.shape, 0.05)
    for _ in range(30):
        cy, cx = rng.uniform(0, size, 2)
        cz = rng.uniform(-1.0, 1.0)
        radius = rng.uniform(0.03, 0.08) * size
        brightness = rng.uniform(0.2, 0.55)
        clean += brightness * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * radius**2) - (z - cz) ** 2 / 0.5)
    clean = np.clip(clean, 0.0, 1.0)
    generator = torch.Generator().manual_seed(seed)
    noisy = add_poisson_gaussian_noise(torch.from_numpy(clean), read_sigma, shot_sigma, exact=True,
                                       generator=generator).numpy()
    to_uint16 = lambda image: np.rint(np.clip(image, 0.0, 1.0) * 65535).astype(np.uint16)  # noqa: E731
    return to_uint16(clean), to_uint16(noisy)


def fluorescence_stack() -> list[tuple]:
    """The noisy synthetic fluorescence stack of :func:`make_fluorescence_stack` as a 16-bit layer."""
    _, noisy = make_fluorescence_stack()
    return [(noisy, {"name": "fluorescence stack (synthetic)", "colormap": "green"}, "image")]

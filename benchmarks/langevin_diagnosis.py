"""Why annealed Langevin draws flat images from our priors: the sampler, or the prior?

    python benchmarks/langevin_diagnosis.py          # about 2 minutes on one core

Two measurements, one table (``benchmarks/results/synthesis/<date>_<commit>_cpu_langevin.md``):

1. *The sampler on an exact prior.* A stationary Gaussian process with a 1/f²-like power
   spectrum, whose MMSE denoiser is the Wiener filter (exact, given σ or blind: σ estimated
   from the highest frequencies of its input, as a blind network does). If the sampler is
   right, its samples have the prior's power spectrum.
2. *The network's chain at one fixed level.* Start from a real CBSD68 crop plus noise of std
   σ (a sample of p_σ) and run Langevin at that σ with the network's score. With an exact score
   p_σ is stationary and the denoised state keeps the image's power; a chain that loses it is
   driven by the network's score.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch

from denoiselab.bench.tables import markdown_table, provenance, result_stem
from denoiselab.denoisers import load_denoiser
from denoiselab.io import atomic_write, read_image
from denoiselab.sampling.langevin import sample_annealed_langevin

ROOT = Path(__file__).resolve().parent.parent
N_CROPS = 6
LEVELS = (0.39, 0.2, 0.05, 0.02)
STEPS = (0, 10, 50, 100, 200)
BANDS = [(0.0, 0.02), (0.02, 0.05), (0.05, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.5), (0.5, 0.75)]


def _radius(n: int) -> torch.Tensor:
    f = torch.fft.fftfreq(n)
    return torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)


def band_power(x: torch.Tensor, bands=BANDS) -> list[float]:
    """Mean power of the mean-free image in each radial frequency band (cycles/pixel)."""
    spec = torch.fft.fft2(x - x.mean(dim=(-2, -1), keepdim=True), norm="ortho").abs() ** 2
    r = _radius(x.shape[-1])
    return [float(spec[..., (r >= a) & (r < b)].mean()) for a, b in bands]


def exact_prior_rows(n: int = 64, batch: int = 8) -> list[list[str]]:
    mean, var = 0.5, 0.04
    r2 = _radius(n) ** 2
    power = 1.0 / (r2 + 0.002)
    power = power / power.mean() * var  # per-pixel variance `var` (orthonormal FFT)
    high = r2.sqrt() > 0.45

    def wiener(x, sigma):
        spec = torch.fft.fft2(x - mean, norm="ortho")
        return mean + torch.fft.ifft2(spec * (power / (power + float(sigma) ** 2)), norm="ortho").real

    def blind_wiener(x, sigma):  # σ² from the highest frequencies, where the prior has little power
        spec = torch.fft.fft2(x - mean, norm="ortho")
        s2 = ((spec.abs() ** 2)[..., high].mean(-1) - power[high].mean()).clamp_min(1e-8)[..., None, None]
        return mean + torch.fft.ifft2(spec * (power / (power + s2)), norm="ortho").real

    g = torch.Generator().manual_seed(0)
    draws = mean + torch.fft.ifft2(torch.fft.fft2(torch.randn(batch, 1, n, n, generator=g), norm="ortho") * power.sqrt(),
                                   norm="ortho").real
    rows = [["exact prior: its own draws", *[f"{v:.2e}" for v in band_power(draws)]]]
    for name, fn in (("exact prior, Wiener denoiser", wiener), ("exact prior, blind Wiener denoiser", blind_wiener)):
        x = sample_annealed_langevin(fn, (batch, 1, n, n), seed=0)
        rows.append([f"{name}: Langevin (10 levels 1→0.01, T = 100, ε = 2e-5)", *[f"{v:.2e}" for v in band_power(x)]])
    return rows


def fixed_level_rows(data_root: Path, prior: str, steps=STEPS) -> list[list[str]]:
    den = load_denoiser(prior)
    files = sorted((data_root / "test" / "synthetic" / "CBSD68").iterdir())[:N_CROPS]
    crops = []
    for f in files:
        a = read_image(f).array
        a = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0)
        top, left = (a.shape[0] - 64) // 2, (a.shape[1] - 64) // 2
        crops.append(torch.from_numpy(np.ascontiguousarray(a[top:top + 64, left:left + 64])).permute(2, 0, 1))
    x0 = torch.stack(crops)
    clean_mid = band_power(x0, [(0.03, 0.125)])[0]
    rows = []
    g = torch.Generator().manual_seed(0)
    for sigma in LEVELS:
        alpha = 2e-5 * sigma**2 / 0.01**2  # Song & Ermon's step at this level
        x = x0 + sigma * torch.randn(x0.shape, generator=g)
        cells = []
        with torch.no_grad():
            for t in range(max(steps) + 1):
                d = den(x, sigma)
                if t in steps:
                    cells.append(f"{band_power(d, [(0.03, 0.125)])[0] / clean_mid:.2f}")
                x = x + alpha * (d - x) / sigma**2 + (2 * alpha) ** 0.5 * torch.randn(x.shape, generator=g)
        rows.append([f"σ = {sigma}", *cells])
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=Path(os.environ.get("DENOISELAB_DATA", ROOT.parent / "shared" / "data")))
    p.add_argument("--prior", default="bfdncnn-color-cbsd300")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "synthesis")
    args = p.parse_args()
    torch.set_num_threads(1)
    exact = exact_prior_rows()
    fixed = fixed_level_rows(args.data_root, args.prior)
    text = "\n".join([
        "# Annealed Langevin: sampler or prior?", "", provenance("cpu"), "",
        "## 1. The sampler on an exact Gaussian prior (64², 8 samples)", "",
        "Mean power per radial frequency band (cycles/pixel) of the samples, beside the prior's own draws.", "",
        markdown_table(["samples", *[f"{a}–{b}" for a, b in BANDS]], exact), "",
        f"## 2. `{args.prior}`: Langevin at one fixed level, started from real images", "",
        f"The centre 64² of the first {N_CROPS} CBSD68 images plus noise of std σ, then Langevin steps at that σ (α = 2e-5·σ²/0.01², "
        "Song & Ermon's step for that level). Cells: mid-frequency power (0.03–0.125 cycles/pixel) of "
        "the denoised state D(x, σ), averaged over the crops, relative to the clean crops' average "
        "(1.00 = kept; an exact score keeps it near 1 on average, since p_σ is stationary).", "",
        markdown_table(["level", *[f"step {t}" for t in STEPS]], fixed), "",
    ])
    stem = result_stem(args.out, "cpu")
    path = atomic_write(Path(f"{stem}_langevin.md"), lambda tmp: tmp.write_text(text))
    print(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

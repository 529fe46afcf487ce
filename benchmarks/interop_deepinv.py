"""Check once, against real deepinv, that denoiselab denoisers work as deepinv denoisers.

Question: does ``denoiselab.interop.DeepinvDenoiser`` pass deepinv's own type checks and run
inside its solvers? deepinv is not a dependency of denoiselab (it needs torchvision, which has no
CPU build for the torch pinned here), so this runs in a throwaway environment, never in CI::

    python3 -m venv /tmp/venv-deepinv
    /tmp/venv-deepinv/bin/pip install deepinv safetensors scipy scikit-image tifffile imageio PyWavelets
    PYTHONPATH=src /tmp/venv-deepinv/bin/python benchmarks/interop_deepinv.py

On a 64×64 RGB crop (scikit-image's astronaut, every 8th pixel) it (1) denoises AWGN σ = 0.1
through ``deepinv.physics.Denoising`` with two wrapped denoisers, (2) deblurs (Gaussian blur
σ = 1 px, noise 0.02) with deepinv's DPIR (PnP half-quadratic splitting) using the wrapped
BF-DnCNN as its denoiser, and prints PSNRs (deepinv's ``PSNR`` metric) and versions.
"""

from __future__ import annotations

import sys

import torch


def main() -> int:
    import deepinv as dinv
    from skimage.data import astronaut

    import denoiselab
    from denoiselab.interop import DeepinvDenoiser

    torch.manual_seed(0)
    x = torch.from_numpy(astronaut()[::8, ::8].copy()).permute(2, 0, 1)[None].float() / 255  # (1, 3, 64, 64)
    psnr = dinv.metric.PSNR()
    print(f"deepinv {dinv.__version__}, torch {torch.__version__}, denoiselab {denoiselab.__version__}")

    sigma = 0.1
    physics = dinv.physics.Denoising(dinv.physics.GaussianNoise(sigma=sigma))
    y = physics(x)
    print(f"denoising sigma={sigma}: noisy {psnr(y, x).item():.2f} dB")
    for name in ("bfdncnn-color", "tv"):
        den = DeepinvDenoiser(name)
        assert isinstance(den, dinv.models.Denoiser)
        with torch.no_grad():
            x_hat = den(y, sigma)
        print(f"  {name}: isinstance deepinv.models.Denoiser, {psnr(x_hat, x).item():.2f} dB")

    blur = dinv.physics.functional.blur.gaussian_blur(sigma=(1.0, 1.0))
    physics = dinv.physics.BlurFFT(img_size=(3, 64, 64), filter=blur,
                                   noise_model=dinv.physics.GaussianNoise(sigma=0.02))
    y = physics(x)
    model = dinv.optim.DPIR(sigma=0.02, denoiser=DeepinvDenoiser("bfdncnn-color"))
    with torch.no_grad():
        x_hat = model(y, physics)
    print(f"deblurring (Gaussian blur 1 px, noise 0.02): blurred {psnr(y, x).item():.2f} dB, "
          f"DPIR with bfdncnn-color {psnr(x_hat, x).item():.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

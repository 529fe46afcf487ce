"""Forward operators ``y = A(x)`` for inverse problems solved with a denoiser prior.

Each operator has ``A``, ``A_adjoint``, ``prox`` (the data step of PnP/RED) and
``initial_estimate``; :class:`DecomposableOperator` subclasses also expose their SVD.

========================================  ==========================  ===============  ======
operator                                  task                        prox             SVD
========================================  ==========================  ===============  ======
:class:`Identity`                         denoising                   exact            yes
:class:`Blur` ``boundary="circular"``     deblurring (periodic)       exact (FFT)      no
:class:`Blur` ``"replicate"``/``"valid"`` deblurring (real borders)   CG               no
:class:`BoxDownsample`                    ×f SR, block average        exact (SVD)      yes
:class:`BicubicDownsample`                ×f SR, bicubic (imresize)   CG               no
:class:`Inpainting`                       random pixels, boxes        exact (SVD)      yes
========================================  ==========================  ===============  ======

Check any operator with :func:`adjoint_gap` (≈ 1e-15 in float64 for an exact adjoint).
"""

from .base import DecomposableOperator, Identity, LinearOperator, adjoint_gap, solve_cg
from .blur import Blur, gaussian_kernel, uniform_kernel
from .downsample import BicubicDownsample, BoxDownsample
from .inpainting import Inpainting, box_mask, random_pixel_mask

__all__ = [
    "LinearOperator", "DecomposableOperator", "Identity", "adjoint_gap", "solve_cg",
    "Blur", "gaussian_kernel", "uniform_kernel",
    "BoxDownsample", "BicubicDownsample",
    "Inpainting", "random_pixel_mask", "box_mask",
]

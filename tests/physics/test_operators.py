"""Properties of the forward operators: exact adjoints, prox = solution of its normal equations, SVD = A."""

import pytest
import torch
import torch.nn.functional as F

from denoiselab.errors import DenoiselabError
from denoiselab.physics import (
    BicubicDownsample,
    Blur,
    BoxDownsample,
    DecomposableOperator,
    Identity,
    Inpainting,
    adjoint_gap,
    box_mask,
    random_pixel_mask,
    solve_cg,
)

torch.set_num_threads(1)

SHAPE = (2, 3, 24, 24)
ASYMMETRIC = torch.rand(3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _operators():
    g = torch.Generator().manual_seed(2)
    return {
        "identity": Identity(),
        "gauss-circular": Blur.gaussian(1.6),
        "uniform-circular": Blur.uniform(9),
        "gauss-replicate": Blur.gaussian(1.6, boundary="replicate"),
        "uniform-valid": Blur.uniform(9, boundary="valid"),
        "asym-circular": Blur(ASYMMETRIC),
        "asym-replicate": Blur(ASYMMETRIC, boundary="replicate"),
        "asym-valid": Blur(ASYMMETRIC, boundary="valid"),
        "box-x2": BoxDownsample(2),
        "box-x3": BoxDownsample(3),
        "box-x4": BoxDownsample(4),
        "bicubic-x2": BicubicDownsample(2),
        "bicubic-x3": BicubicDownsample(3),
        "bicubic-x4": BicubicDownsample(4),
        "inpaint-random": Inpainting(random_pixel_mask((2, 1, 24, 24), 0.6, generator=g)),
        "inpaint-box": Inpainting(box_mask((1, 3, 24, 24), (5, 7, 10, 8))),
    }


OPERATORS = _operators()
DECOMPOSABLE = {k: op for k, op in OPERATORS.items() if isinstance(op, DecomposableOperator)}


@pytest.mark.parametrize("name", OPERATORS)
def test_adjoint_is_exact(name):
    assert adjoint_gap(OPERATORS[name], SHAPE, generator=torch.Generator().manual_seed(0)) < 1e-12


@pytest.mark.parametrize("name", OPERATORS)
def test_prox_solves_its_normal_equations(name):
    op = OPERATORS[name]
    op.cg_tol = 1e-12  # instance setting, so the CG-based proxes are checked to rounding too
    g = torch.Generator().manual_seed(3)
    z = torch.rand(SHAPE, generator=g, dtype=torch.float64)
    y = torch.rand(op.A(z).shape, generator=g, dtype=torch.float64)
    gamma = torch.tensor([0.3, 5.0], dtype=torch.float64)  # one value per image
    x = op.prox(z, y, gamma)
    residual = op.A_adjoint(op.A(x) - y) + (x - z) / gamma.view(-1, 1, 1, 1)
    assert residual.abs().max() < 1e-8 * max(1.0, float(z.abs().max()))


@pytest.mark.parametrize("name", DECOMPOSABLE)
def test_svd_rebuilds_the_operator(name):
    op = DECOMPOSABLE[name]
    g = torch.Generator().manual_seed(4)
    x = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    c = op.V_adjoint(x)
    assert torch.allclose(op.V(c), x, atol=1e-12)                    # V orthogonal: V Vᵀ = I
    assert torch.allclose(c.norm(), x.norm(), atol=1e-12)           # ... and Vᵀ keeps norms
    s = op.singulars(x.shape, dtype=x.dtype)
    assert bool((s >= 0).all())
    assert torch.allclose(op.U(s * c), op.A(x), atol=1e-12)          # A = U Σ Vᵀ
    y = op.A(x)
    assert torch.allclose(op.U(op.U_adjoint(y)), y, atol=1e-12)     # U Uᵀ = I on measurements


def test_box_downsample_singular_values_are_one_over_factor():
    s = BoxDownsample(3).singulars((1, 1, 6, 6), dtype=torch.float64)
    assert torch.allclose(s[..., ::3, ::3], torch.full((1, 1, 2, 2), 1 / 3, dtype=torch.float64))
    assert int((s > 0).sum()) == 4


def test_boundaries_agree_away_from_the_border():
    """One convolution convention for all three boundaries, even with an asymmetric kernel."""
    x = torch.rand(1, 2, 30, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    circ, rep, valid = (Blur(ASYMMETRIC, boundary=b).A(x) for b in ("circular", "replicate", "valid"))
    assert torch.allclose(circ[..., 4:-4, 4:-4], rep[..., 4:-4, 4:-4], atol=1e-12)
    top, left = 1, 1  # = (kh - 1 - kh // 2, kw - 1 - kw // 2) for the 3×4 kernel
    assert valid.shape[-2:] == (28, 27)
    assert torch.allclose(rep[..., top:top + 28, left:left + 27], valid, atol=1e-12)


def test_circular_blur_is_a_true_convolution():
    """A delta at pixel (10, 10) becomes the kernel centred there (not flipped)."""
    x = torch.zeros(1, 1, 20, 20, dtype=torch.float64)
    x[..., 10, 10] = 1.0
    out = Blur(ASYMMETRIC).A(x)
    assert torch.allclose(out[0, 0, 9:12, 8:12], ASYMMETRIC)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_bicubic_matches_torch_antialias_inside_the_image(factor):
    """Away from the border (where MATLAB and torch extend differently) our matrix is torch's kernel."""
    x = torch.rand(1, 1, 48, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    ours = BicubicDownsample(factor).A(x)
    ref = F.interpolate(x, scale_factor=1 / factor, mode="bicubic", antialias=True)
    assert torch.allclose(ours[..., 3:-3, 3:-3], ref[..., 3:-3, 3:-3], atol=1e-12)


@pytest.mark.parametrize("op", [Blur.gaussian(1.0, boundary="valid"), BoxDownsample(2), BicubicDownsample(2),
                                Inpainting(box_mask((1, 1, 16, 16), (4, 4, 8, 8)))], ids=repr)
def test_initial_estimate_has_the_image_shape_and_keeps_constants(op):
    x = torch.full((1, 1, 16, 16), 0.4)
    assert torch.allclose(op.initial_estimate(op.A(x)), x, atol=1e-6)


def test_solve_cg_matches_a_direct_solve():
    g = torch.Generator().manual_seed(7)
    m = torch.randn(16, 16, generator=g, dtype=torch.float64)
    spd = m @ m.T + 16 * torch.eye(16, dtype=torch.float64)
    b = torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64)
    apply = lambda v: (v.reshape(3, 16) @ spd).reshape(3, 1, 4, 4)  # noqa: E731
    x = solve_cg(apply, b, tol=1e-13)
    assert torch.allclose(x.reshape(3, 16), torch.linalg.solve(spd, b.reshape(3, 16).T).T, atol=1e-10)


def test_user_errors_are_one_line_denoiselab_errors():
    with pytest.raises(DenoiselabError, match="not divisible by the factor 3"):
        BoxDownsample(3).A(torch.rand(1, 1, 16, 16))
    with pytest.raises(DenoiselabError, match="boundary"):
        Blur.gaussian(1.0, boundary="reflect")
    with pytest.raises(DenoiselabError, match="gamma"):
        Identity().prox(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4), 0.0)
    with pytest.raises(DenoiselabError, match=r"\(B, C, H, W\)"):
        Blur.gaussian(1.0).A(torch.rand(8, 8))
    with pytest.raises(DenoiselabError, match="does not fit"):
        Inpainting(torch.ones(1, 1, 8, 8)).A(torch.rand(1, 1, 16, 16))
    with pytest.raises(DenoiselabError, match="smaller than"):
        Blur.uniform(9, boundary="valid").A(torch.rand(1, 1, 5, 5))

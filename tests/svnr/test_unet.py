import pytest
import torch

from denoiselab.errors import DenoiselabError
from denoiselab.svnr import SVNRUNet, time_features


@pytest.mark.parametrize("channels, levels, size", [(3, 2, (17, 23)), (1, 3, (8, 40)), (3, 0, (5, 5)), (3, 2, (1, 1))])
def test_any_image_size_comes_back_cropped(channels, levels, size):
    net = SVNRUNet(channels, base_width=8, levels=levels)
    y = torch.rand(2, channels, *size)
    assert net(y, y, torch.rand(2, 1, *size) * 50).shape == y.shape


def test_time_map_reaches_every_block_and_is_used_per_pixel():
    torch.manual_seed(0)
    net = SVNRUNet(3, base_width=8, levels=2)
    y = torch.rand(1, 3, 16, 16)
    t = torch.full((1, 1, 16, 16), 10.0)
    net(y, y, t).square().sum().backward()
    projections = [m.emb_proj for m in net.modules() if hasattr(m, "emb_proj")]
    assert len(projections) == 2 * 2 + 2  # one block per level down (3), the middle one, one per level up (2)
    assert all(float(p.weight.grad.abs().sum()) > 0 for p in projections)
    with torch.no_grad():
        base = net(y, y, t)
        t2 = t.clone()
        t2[..., 12:, 12:] = 400.0  # change the time of one corner only
        diff = (net(y, y, t2) - base).abs().sum(1)[0]
    assert float(diff[12:, 12:].mean()) > 3 * float(diff[:4, :4].mean())  # GroupNorm spreads a little


def test_fractional_times_are_resolved():
    f = time_features(torch.tensor([3.0, 3.25]).view(1, 1, 1, 2), 16)
    assert float((f[..., 0] - f[..., 1]).abs().max()) > 0.1


def test_one_time_per_image_broadcasts():
    net = SVNRUNet(1, base_width=8, levels=1)
    y = torch.rand(2, 1, 6, 6)
    with torch.no_grad():
        a = net(y, y, torch.tensor([5.0, 9.0]))
        b = net(y, y, torch.tensor([5.0, 9.0]).view(2, 1, 1, 1).expand(2, 1, 6, 6))
    assert torch.allclose(a, b)
    assert net.config() == dict(channels=1, base_width=8, levels=1, time_pairs=16, emb_channels=16, T=1000)


@pytest.mark.parametrize("args, message", [
    ((torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)), r"\(B, 3, H, W\)"),
    ((torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9), torch.zeros(1, 1, 8, 8)), "differs"),
    ((torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)), "time map"),
])
def test_bad_network_inputs(args, message):
    with pytest.raises(DenoiselabError, match=message):
        SVNRUNet(3, base_width=8, levels=1)(*args)
    with pytest.raises(DenoiselabError, match="levels"):
        SVNRUNet(3, levels=-1)


def test_preconditioning_is_the_edm_mix_behind_the_eps_interface():
    """ε̂ = (x_t − x̂_0)/√γ with x̂_0 = c_skip x_t + c_out F(y, c_in x_t, t); finite at γ = 0; and
    loss_weight · |ε̂ − ε|² equals F's squared error against its own target."""
    from denoiselab.svnr import VESchedule
    from denoiselab.svnr.unet import Preconditioned

    torch.manual_seed(0)
    schedule, sd = VESchedule(lam=1.0, form="vp"), 0.5
    net = SVNRUNet(3, base_width=8, levels=1)
    model = Preconditioned(net, schedule, sd)
    x0, y = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    t = torch.tensor([0.0, 700.0]).view(2, 1, 1, 1)
    g = schedule.gamma(t.double()).float()
    eps = torch.randn(2, 3, 8, 8)
    x_t = x0 + g.sqrt() * eps
    with torch.no_grad():
        eps_hat = model(y, x_t, t)
        f = net(y, x_t / (sd**2 + g).sqrt(), t)
    assert bool(torch.isfinite(eps_hat).all())
    assert torch.allclose(eps_hat[0], -f[0], atol=1e-6)  # γ = 0: ε̂ = −F
    c_skip, c_out = sd**2 / (sd**2 + g), g.sqrt() * sd / (sd**2 + g).sqrt()
    x0_hat = c_skip * x_t + c_out * f
    assert torch.allclose(x_t[1:] - g[1:].sqrt() * eps_hat[1:], x0_hat[1:], rtol=1e-4, atol=1e-3)
    f_target = (x0 - c_skip * x_t) / c_out
    weighted = model.loss_weight(t)[1:] * (eps_hat[1:] - eps[1:]) ** 2
    assert torch.allclose(weighted, (f[1:] - f_target[1:]) ** 2, rtol=1e-3, atol=1e-4)
    assert model.channels == 3 and model.config() == net.config()
    with pytest.raises(DenoiselabError, match="sigma_data"):
        Preconditioned(net, schedule, 0.0)

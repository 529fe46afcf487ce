import pytest
import torch

from denoiselab.denoisers import BFDnCNN, list_denoisers, load_denoiser
from denoiselab.errors import DenoiselabError


def _trained_small(channels, depth=4, width=8):
    """An untrained BF-DnCNN with non-trivial BN statistics (one training-mode pass), in eval mode."""
    torch.manual_seed(0)
    m = BFDnCNN(channels, depth=depth, width=width)
    torch.nn.init.normal_(m.body[-1].weight, std=0.1)  # not the identity start, so the body matters
    with torch.no_grad():
        m.train()
        m(torch.rand(4, channels, 16, 16))
    return m.eval()


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("a", [0.1, 0.5, 3.0, 17.0])
def test_positively_homogeneous(channels, a, generator):
    m = _trained_small(channels)
    y = torch.rand(2, channels, 24, 24, generator=generator)
    with torch.no_grad():
        assert torch.allclose(m(a * y, None), a * m(y, None), rtol=1e-5, atol=1e-5 * a)


def test_maps_zero_to_zero():
    m = _trained_small(3)
    with torch.no_grad():
        assert torch.count_nonzero(m(torch.zeros(1, 3, 8, 8), 0.1)) == 0


def test_no_additive_constants_anywhere():
    m = BFDnCNN(3, depth=5, width=8)
    for name, _ in m.named_parameters():
        assert "bias" not in name
    for mod in m.modules():
        assert not isinstance(mod, torch.nn.BatchNorm2d)  # the standard BN subtracts a mean and adds a shift


def test_wrong_channels_is_a_clear_error():
    with pytest.raises(DenoiselabError, match="channels"):
        BFDnCNN(3, depth=3, width=4)(torch.rand(1, 1, 8, 8), 0.1)


def test_registry_lists_classic_and_trained():
    names = list_denoisers()
    for name in ["bm3d", "nlm", "tv", "wavelet", "bfdncnn-color", "bfdncnn-gray"]:
        assert name in names


@pytest.mark.parametrize("name", [n for n in list_denoisers() if n != "bm3d"] + ["bm3d"])
def test_protocol_contract_over_registry(name, generator):
    """Every registered denoiser: shape/dtype kept, per-image sigma equals one-image calls, it denoises."""
    d = load_denoiser(name)
    channels = 1 if "gray" in name else 3
    size = 24 if name == "bm3d" else 40
    t = torch.linspace(0.2, 0.8, size)
    x = (t[None, :] * 0.5 + t[:, None] * 0.5).expand(2, channels, size, size).contiguous()
    sigma = torch.tensor([0.05, 0.1])
    y = x + sigma.view(-1, 1, 1, 1) * torch.randn(x.shape, generator=generator)
    with torch.no_grad():
        out = d(y, sigma)
        assert out.shape == y.shape and out.dtype == y.dtype
        one = torch.cat([d(y[i : i + 1], sigma[i : i + 1]) for i in range(2)])
        # The bm3d package is not bit-reproducible (its compiled core differs by up to ~4e-5
        # between identical calls); swapping the two sigmas would move the output by >1e-2.
        atol = 5e-4 if name == "bm3d" else 1e-5
        assert torch.allclose(out, one, atol=atol)
        assert ((out - x) ** 2).mean() < ((y - x) ** 2).mean()


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(DenoiselabError, match="bm3d"):
        load_denoiser("no-such-denoiser")


def test_bad_weights_files(tmp_path):
    from denoiselab.denoisers.weights import save_weights

    path = save_weights(BFDnCNN(3, depth=3, width=4), tmp_path / "w.safetensors",
                        {"architecture": "bfdncnn", "channels": 3, "depth": 3, "width": 8})
    with pytest.raises(DenoiselabError, match="does not fit"):
        load_denoiser(str(path))
    (tmp_path / "w.json").unlink()
    with pytest.raises(DenoiselabError, match="card"):
        load_denoiser(str(path))
    missing = tmp_path / "missing.safetensors"
    (tmp_path / "missing.json").write_text('{"architecture": "bfdncnn", "channels": 3, "depth": 3, "width": 4}')
    with pytest.raises(DenoiselabError, match="not found"):
        load_denoiser(str(missing))
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file at all")
    (tmp_path / "garbage.json").write_text('{"architecture": "bfdncnn", "channels": 3, "depth": 3, "width": 4}')
    with pytest.raises(DenoiselabError, match="safetensors"):
        load_denoiser(str(garbage))


def test_untrained_network_is_the_identity(generator):
    """The last layer starts at zero, so training starts from output = input."""
    y = torch.rand(1, 3, 16, 16, generator=generator)
    with torch.no_grad():
        assert torch.equal(BFDnCNN(3, depth=4, width=8).eval()(y, None), y)

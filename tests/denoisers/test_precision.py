"""Precision of the networks: fp32 is exact (and channels-last changes nothing), bf16 stays close,
``auto`` never picks bf16 where the hardware would emulate it."""

import pytest
import torch

from denoiselab.denoisers import BFDnCNN
from denoiselab.denoisers import precision as prec
from denoiselab.denoisers.bfunet import BFUNet
from denoiselab.errors import DenoiselabError


def _net(cls, **kw):
    torch.manual_seed(0)
    net = cls(**kw)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1) if p.ndim == 4 else None
    return net.eval().requires_grad_(False)


@pytest.mark.parametrize("cls, kw", [(BFDnCNN, {"channels": 3, "depth": 5, "width": 8}), (BFUNet, {"channels": 1})])
def test_fp32_channels_last_is_the_plain_computation(cls, kw):
    net = _net(cls, **kw)
    y = torch.rand(2, net.channels, 21, 18)
    with torch.no_grad():
        plain = y - net.body(y) if cls is BFDnCNN else net._clean_estimate(y)
        fast = prec.prepare_network(net, "fp32", "cpu")(y, None)
    assert fast.is_contiguous() and torch.allclose(fast, plain, rtol=1e-4, atol=1e-5)  # summation order only


@pytest.mark.parametrize("cls, kw", [(BFDnCNN, {"channels": 3, "depth": 5, "width": 8}), (BFUNet, {"channels": 1})])
def test_bf16_is_close_to_fp32(cls, kw, monkeypatch):
    monkeypatch.setattr(prec, "native_bf16", lambda device: True)  # no warning about emulation
    y = torch.rand(1, kw["channels"], 16, 16)
    with torch.no_grad():
        exact = prec.prepare_network(_net(cls, **kw), "fp32", "cpu")(y, None)
        approx = prec.prepare_network(_net(cls, **kw), "bf16", "cpu")(y, None)
    assert approx.dtype == torch.float32 and approx.shape == exact.shape
    error = float((approx - exact).abs().max() / exact.abs().max())
    assert 0 < error < 0.02  # rounded, but only slightly


def test_bf16_plan_folds_batch_norm_and_keeps_first_and_last_in_float32():
    net = _net(BFDnCNN, channels=1, depth=5, width=8)
    plan = prec._folded_plan(net.body, "bf16", torch.device("cpu"))
    assert [w.dtype for _, w, _ in plan] == [torch.float32] + [torch.bfloat16] * 3 + [torch.float32]
    assert [relu for _, _, relu in plan] == [True] * 4 + [False]
    bn = net.body[3]
    folded = net.body[2].weight * (bn.weight / bn.running_sd).view(-1, 1, 1, 1)
    assert torch.allclose(plan[1][1].float(), folded, rtol=1e-2, atol=1e-4)


def test_auto_picks_bf16_only_where_native_and_cheap(monkeypatch):
    monkeypatch.setattr(prec, "native_bf16", lambda device: False)
    assert prec.resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(prec, "native_bf16", lambda device: True)
    monkeypatch.setattr(prec, "BF16_AUTO", False)
    assert prec.resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(prec, "BF16_AUTO", True)
    assert prec.resolve_precision("auto", "cpu") == "bf16"


def test_explicit_bf16_without_hardware_warns_and_unknown_is_an_error(monkeypatch):
    monkeypatch.setattr(prec, "native_bf16", lambda device: False)
    with pytest.warns(UserWarning, match="emulated"):
        assert prec.resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(DenoiselabError, match="fp16"):
        prec.resolve_precision("fp16", "cpu")

"""import-weights: published checkpoints become our networks, computing what their authors' layers compute;
anything that is not a plain weights file is refused with one line, exit 2, and nothing written."""

import argparse
import hashlib
import os
import pickle

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from denoiselab.cli.main import main
from denoiselab.denoisers import load_denoiser
from denoiselab.denoisers.importing import import_weights
from denoiselab.denoisers.weights import WEIGHTS_DIR
from denoiselab.errors import DenoiselabError

from ..conftest import DATA, needs_data

torch.manual_seed(0)


def _bfcnn_state(depth=4, width=8, channels=3):
    """A BF-CNN state dict as Kadkhodaie & Simoncelli / ScoreDVI release it."""
    state = {f"conv_layers.{i}.weight": 0.2 * torch.randn(width if i < depth - 1 else channels,
                                                          channels if i == 0 else width, 3, 3) for i in range(depth)}
    for j in range(depth - 2):
        state[f"gammas.{j}"] = 1 + 0.1 * torch.rand(1, width, 1, 1)
        state[f"running_sd.{j}"] = 0.5 + torch.rand(1, width, 1, 1)
    return state


def _bfcnn_reference(state, y, depth):
    """What the authors' evaluation computes: conv, then (conv, x / running_sd * gamma, ReLU)…, conv; y − that."""
    h = F.relu(F.conv2d(y, state["conv_layers.0.weight"], padding=1))
    for j in range(depth - 2):
        h = F.conv2d(h, state[f"conv_layers.{j + 1}.weight"], padding=1)
        h = F.relu(h / state[f"running_sd.{j}"] * state[f"gammas.{j}"])
    return y - F.conv2d(h, state[f"conv_layers.{depth - 1}.weight"], padding=1)


def _mohan_dncnn(depth=4, width=8):
    state = {"first_layer.weight": 0.2 * torch.randn(width, 1, 3, 3), "last_layer.weight": 0.2 * torch.randn(1, width, 3, 3)}
    for j in range(depth - 2):
        state[f"hidden_layer_list.{j}.weight"] = 0.2 * torch.randn(width, width, 3, 3)
        state[f"bn_layer_list.{j}.weight"] = 1 + 0.1 * torch.rand(width)
        state[f"bn_layer_list.{j}.bias"] = torch.rand(width)  # stored, unused without bias
        state[f"bn_layer_list.{j}.running_mean"] = torch.rand(width)
        state[f"bn_layer_list.{j}.running_var"] = 0.5 + torch.rand(width)
        state[f"bn_layer_list.{j}.num_batches_tracked"] = torch.tensor(10)
    args = argparse.Namespace(model="dncnn", in_channels=1, hidden_size=width, num_layers=depth, bias=False, seed=0,
                              data_path="../data/")
    return {"model": [state], "args": args, "step": 1}


def _mohan_reference(state, y, depth):
    """Mohan et al.'s bias-free BN in evaluation: x / (sqrt(running_var) + eps) * weight, no mean, no shift."""
    h = F.relu(F.conv2d(y, state["first_layer.weight"], padding=1))
    for j in range(depth - 2):
        h = F.conv2d(h, state[f"hidden_layer_list.{j}.weight"], padding=1)
        sd = state[f"bn_layer_list.{j}.running_var"].sqrt() + 1e-5
        h = F.relu(h / sd.view(1, -1, 1, 1) * state[f"bn_layer_list.{j}.weight"].view(1, -1, 1, 1))
    return y - F.conv2d(h, state["last_layer.weight"], padding=1)


def _mohan_unet():
    shapes = {"conv1": (32, 1, 5, 5), "conv2": (32, 32, 3, 3), "conv3": (64, 32, 3, 3), "conv4": (64, 64, 3, 3),
              "conv5": (64, 64, 3, 3), "conv6": (64, 64, 3, 3), "conv7": (64, 64, 4, 4), "conv8": (32, 96, 3, 3),
              "conv9": (1, 32, 5, 5)}
    state = {f"{k}.weight": 0.1 * torch.randn(s) for k, s in shapes.items()}
    return {"model": [state], "args": argparse.Namespace(model="unet", bias=False, residual=False)}


def _unet_reference(w, y):
    """The layer sequence the UNet's state dict implies: stride-2 down, dilations 2 and 4, transposed conv up."""
    h, wd = y.shape[-2:]
    x = F.pad(y, (0, wd % 2, 0, h % 2))
    a = F.relu(F.conv2d(x, w["conv1.weight"], padding=2))
    skip = F.relu(F.conv2d(a, w["conv2.weight"], padding=1))
    b = F.relu(F.conv2d(skip, w["conv3.weight"], stride=2, padding=1))
    b = F.relu(F.conv2d(b, w["conv4.weight"], padding=1))
    b = F.relu(F.conv2d(b, w["conv5.weight"], padding=2, dilation=2))
    b = F.relu(F.conv2d(b, w["conv6.weight"], padding=4, dilation=4))
    b = F.relu(F.conv_transpose2d(b, w["conv7.weight"], stride=2, padding=1))
    c = F.relu(F.conv2d(torch.cat([b, skip], 1), w["conv8.weight"], padding=1))
    return F.conv2d(c, w["conv9.weight"], padding=2)[..., :h, :wd]


def test_bfcnn_checkpoint_computes_what_the_authors_network_computes(tmp_path):
    state = _bfcnn_state()
    torch.save(state, tmp_path / "model.pt")
    out = import_weights(tmp_path / "model.pt", tmp_path / "net.safetensors")
    net = load_denoiser(str(out))
    y = torch.rand(2, 3, 20, 17)
    with torch.no_grad():
        assert torch.allclose(net(y, None), _bfcnn_reference(state, y, 4), atol=1e-5)
    assert (net.depth, net.width, net.channels) == (4, 8, 3)


def test_mohan_dncnn_checkpoint_computes_what_the_authors_network_computes(tmp_path):
    ckpt = _mohan_dncnn()
    torch.save(ckpt, tmp_path / "dncnn.pt")
    net = load_denoiser(str(import_weights(tmp_path / "dncnn.pt", tmp_path / "g.safetensors")))
    y = torch.rand(1, 1, 19, 22)
    with torch.no_grad():
        assert torch.allclose(net(y, None), _mohan_reference(ckpt["model"][0], y, 4), atol=1e-5)


@pytest.mark.parametrize("size", [(24, 24), (23, 18)])
def test_mohan_unet_checkpoint_computes_what_the_authors_network_computes(tmp_path, size):
    ckpt = _mohan_unet()
    torch.save(ckpt, tmp_path / "unet.pt")
    out = import_weights(tmp_path / "unet.pt", tmp_path / "u.safetensors")
    net = load_denoiser(str(out))
    y = torch.rand(1, 1, *size)
    with torch.no_grad():
        assert torch.allclose(net(y, None), _unet_reference(ckpt["model"][0], y), atol=1e-5)
        once = net(y, None)  # bias-free: f(3y) = 3 f(y), up to float32 rounding (outputs here reach ~50)
        assert torch.allclose(net(3 * y, None), 3 * once, rtol=1e-4, atol=1e-5 * float(once.abs().max()))


def test_imported_weights_load_by_name_from_a_user_folder(tmp_path, monkeypatch):
    torch.save(_bfcnn_state(), tmp_path / "model.pt")
    import_weights(tmp_path / "model.pt", tmp_path / "my-prior.safetensors", source="me @ abc", licence="MIT")
    monkeypatch.setenv("DENOISELAB_WEIGHTS", str(tmp_path))
    assert load_denoiser("my-prior").width == 8


def _exit_2_nothing_written(tmp_path, capsys, checkpoint, *extra):
    out = tmp_path / "out.safetensors"
    assert main(["import-weights", str(checkpoint), "-o", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("denoiselab: error:"), err
    assert not out.exists() and not out.with_suffix(".json").exists()
    assert [p.name for p in tmp_path.iterdir() if p.suffix in {".json", ".safetensors", ".tmp"}] == []
    return err[0]


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling this calls os.system: exactly what a hostile checkpoint does
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("container", ["torch", "pickle"])
def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, capsys, container):
    marker = tmp_path / "code-ran"
    payload = {**_bfcnn_state(), "extra": _RunsCode(marker)}
    path = tmp_path / "evil.pt"
    if container == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    line = _exit_2_nothing_written(tmp_path, capsys, path)
    assert not marker.exists(), "the checkpoint's code ran"
    assert "refused" in line or "not a PyTorch checkpoint" in line


def test_not_a_checkpoint(tmp_path, capsys):
    (tmp_path / "notes.pt").write_text("hello, this is not a checkpoint")
    assert "not a PyTorch checkpoint" in _exit_2_nothing_written(tmp_path, capsys, tmp_path / "notes.pt")


def test_missing_and_misshapen_tensors(tmp_path, capsys):
    state = _bfcnn_state()
    del state["gammas.1"]
    torch.save(state, tmp_path / "missing.pt")
    assert "gammas.1" in _exit_2_nothing_written(tmp_path, capsys, tmp_path / "missing.pt")
    state = _bfcnn_state()
    state["conv_layers.2.weight"] = torch.zeros(8, 8, 5, 5)
    torch.save(state, tmp_path / "shape.pt")
    assert "conv_layers.2.weight" in _exit_2_nothing_written(tmp_path, capsys, tmp_path / "shape.pt")


def test_mohan_format_needs_its_class_and_no_other(tmp_path, capsys):
    torch.save(_mohan_dncnn(), tmp_path / "m.pt")
    # --format bfcnn allows no class at all, so the Namespace inside is refused
    assert "argparse.Namespace" in _exit_2_nothing_written(tmp_path, capsys, tmp_path / "m.pt", "--format", "bfcnn")
    biased = _mohan_dncnn()
    biased["args"].bias = True
    torch.save(biased, tmp_path / "b.pt")
    assert "bias" in _exit_2_nothing_written(tmp_path, capsys, tmp_path / "b.pt")


def test_output_must_not_be_the_input(tmp_path):
    torch.save(_bfcnn_state(), tmp_path / "w.safetensors")
    with pytest.raises(DenoiselabError, match="never overwritten"):
        import_weights(tmp_path / "w.safetensors", tmp_path / "w.safetensors")


SHIPPED = {"scoredvi/model0.pt": "bfdncnn-color-cbsd300", "scoredvi/model1.pth": "bfdncnn-color-scoredvi1",
           "scoredvi/model2.pth": "bfdncnn-color-scoredvi2",
           "mohan2020_bf_dncnn/dncnn_bias_free_0-100.pt": "bfdncnn-gray-bsd400",
           "mohan2020_bf_dncnn/unet_bias_free_0-100.pt": "bfunet-gray-bsd400"}


@needs_data("published_weights")
@pytest.mark.parametrize("original, name", SHIPPED.items())
def test_shipped_priors_are_the_published_files_converted(tmp_path, capsys, original, name):
    """Re-importing each published file gives the shipped tensors exactly, and the card names its source."""
    src = DATA / "published_weights" / original
    assert main(["import-weights", str(src), "-o", str(tmp_path / f"{name}.safetensors")]) == 0
    assert name in capsys.readouterr().out
    ours, shipped = load_file(str(tmp_path / f"{name}.safetensors")), load_file(str(WEIGHTS_DIR / f"{name}.safetensors"))
    assert ours.keys() == shipped.keys() and all(torch.equal(ours[k], shipped[k]) for k in ours)
    card = (WEIGHTS_DIR / f"{name}.json").read_text()
    assert hashlib.sha256(src.read_bytes()).hexdigest() in card and "MIT" in card

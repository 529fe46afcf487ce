"""Import published denoiser checkpoints as our safetensors + JSON card.

Two published formats are understood:

- ``bfcnn``: the state dict of Kadkhodaie & Simoncelli's BF-CNN, as released with ScoreDVI
  (``conv_layers.{i}.weight``, ``gammas.{j}``, ``running_sd.{j}``; bias-free batch norm computes
  ``x / running_sd * gamma`` in evaluation). Becomes our :class:`~denoiselab.denoisers.BFDnCNN`.
- ``mohan2020``: Mohan et al.'s training checkpoints (a dict whose ``model`` is a list holding the
  state dict and whose ``args`` is an ``argparse.Namespace``): their bias-free DnCNN (batch norm
  without mean, ``x / (sqrt(running_var) + eps) * weight``) becomes a BFDnCNN, their bias-free
  UNet a :class:`~denoiselab.denoisers.BFUNet`.

Reading a pickle is reading code, so checkpoints are opened with ``torch.load(weights_only=True)``
and only the classes a format needs are allowed (``argparse.Namespace`` for ``mohan2020``, nothing
for ``bfcnn``). A file that asks for anything else is refused before any of it runs. Every
tensor is checked against the network it is meant for; nothing is written until the whole
conversion has succeeded, and then both files are written atomically.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import DenoiselabError
from .bfdncnn import BFDnCNN, BiasFreeBatchNorm2d
from .bfunet import BFUNet
from .weights import save_weights

__all__ = ["FORMATS", "import_weights", "read_checkpoint", "convert_checkpoint"]

# Classes each format's pickle may build besides tensors and plain containers.
FORMATS: dict[str, tuple[type, ...]] = {"bfcnn": (), "mohan2020": (argparse.Namespace,)}

_SCOREDVI = {"source": "alwaysuu/ScoreDVI @ 733f6795537b", "licence": "MIT, Copyright (c) 2024 Jun Cheng",
             "paper": "J. Cheng, T. Liu, S. Tan, Score priors guided deep variational inference for unsupervised "
                      "real-world single image denoising, ICCV 2023"}
_MOHAN = {"source": "LabForComputationalVision/bias_free_denoising @ 64930f028aec", "licence": "MIT, Copyright (c) 2022 LCV",
          "paper": "S. Mohan, Z. Kadkhodaie, E. P. Simoncelli, C. Fernandez-Granda, Robust and interpretable blind image "
                   "denoising via bias-free convolutional neural networks, ICLR 2020"}

# Provenance of the published files we know byte for byte (sha256 of the original file), so an
# import of one of them carries its source, paper and training data without being told.
KNOWN_CHECKPOINTS: dict[str, dict] = {
    "24254895bb92d929f6f8365e29fb89b41085685d0b1ee3759a5999c5617c1bab": {
        **_SCOREDVI, "source": _SCOREDVI["source"] + ", model_zoo/model0.pt",
        "paper": _SCOREDVI["paper"] + "; Z. Kadkhodaie, E. P. Simoncelli, Stochastic solutions for linear inverse "
                                      "problems using the prior implicit in a denoiser, NeurIPS 2021",
        "training_data": ["CBSD300 (BSD300 colour; byte-identical to Kadkhodaie & Simoncelli's "
                          "BF_CNN/BSD300_color/noise_range_0to100/model.pt)"],
        "noise": "AWGN, blind, sigma in [0, 100]/255"},
    "d15ed395dd15edfaf821a9092699c55dc557695198623afd39e25cc9c51872d1": {
        **_SCOREDVI, "source": _SCOREDVI["source"] + ", model_zoo/model1.pth",
        "training_data": ["one of DIV2K / ImageNet val / Waterloo Exploration (the paper, section 4.1, lists these; "
                          "the release does not say which)"],
        "noise": "AWGN, blind, sigma in [0, 100]/255 (as the paper states for its priors)"},
    "3b2c26ec1164615a2a295d5b14c7d576c2e3b540e763a14ab604788e26d05ad4": {
        **_SCOREDVI, "source": _SCOREDVI["source"] + ", model_zoo/model2.pth",
        "training_data": ["one of DIV2K / ImageNet val / Waterloo Exploration (the paper, section 4.1, lists these; "
                          "the release does not say which)"],
        "noise": "AWGN, blind, sigma in [0, 100]/255 (as the paper states for its priors)"},
    "a21e6541a39f3975f421142f5d3845bc858e89881118be647ad9208cb61126e5": {
        **_MOHAN, "source": _MOHAN["source"] + ", pretrained/dncnn/bias_free/0-100.pt",
        "training_data": ["BSD400"], "noise": "AWGN, blind, sigma in [0, 100]/255"},
    "328eef4122d31f377a3baf3f043698ffae64ea7b39328f96f33c5a57030452c1": {
        **_MOHAN, "source": _MOHAN["source"] + ", pretrained/unet/bias_free/0-100.pt",
        "training_data": ["BSD400"], "noise": "AWGN, blind, sigma in [0, 100]/255"},
}

_BFCNN_EPS = 0.0  # BF-CNN's evaluation divides by running_sd as stored
_MOHAN_BN_EPS = 1e-5  # Mohan et al.'s BN divides by sqrt(running_var) + eps


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checkpoint(path: str | Path, fmt: str = "auto"):
    """Unpickle checkpoint `path` safely: tensors and containers only, plus the classes of `fmt`.

    With ``fmt="auto"`` the file is first read allowing no class at all; only if it then asks
    for a class that one of the formats needs is it read again allowing exactly that format's
    classes.

    Raises
    ------
    DenoiselabError
        If the file is missing, is not a PyTorch checkpoint, or asks to build anything else
        (which is how a pickle runs code): it is refused and nothing of it runs.
    """
    path = Path(path)
    if not path.is_file():
        raise DenoiselabError(f"checkpoint {path} not found")
    if fmt != "auto" and fmt not in FORMATS:
        raise DenoiselabError(f"--format {fmt!r} is unknown; choose auto, {', '.join(FORMATS)}")
    tries = [FORMATS[fmt]] if fmt != "auto" else [()]
    while True:
        allowed = tries.pop(0)
        try:
            with torch.serialization.safe_globals(list(allowed)), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's notes on pickle protocols; errors are what count here
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            wanted = _asked_class(str(err))
            if wanted is None:  # a corrupt pickle, or opcodes no weights file needs: not a refusal of a class
                raise DenoiselabError(f"{path} is not a PyTorch checkpoint (its pickle stream is not one of tensors "
                                      f"and plain containers)") from None
            needed = [c for f, cs in FORMATS.items() for c in cs if f"{c.__module__}.{c.__qualname__}" == wanted]
            if fmt == "auto" and needed and not tries and allowed == ():
                tries.append(tuple(needed))
                continue
            what = f" (it asks for {wanted})" if wanted else ""
            raise DenoiselabError(f"refused {path}: a weights file may hold only tensors and plain containers, "
                                  f"this one asks to build other objects{what}, which can run code") from None
        except Exception as err:  # noqa: BLE001 - torch.load raises many types for a file that is not a checkpoint
            raise DenoiselabError(f"{path} is not a PyTorch checkpoint ({type(err).__name__}: "
                                  f"{' '.join(str(err).split())[:120]})") from None


def _asked_class(message: str) -> str | None:
    """The ``module.name`` a refused pickle asked for, from torch's weights-only error message."""
    match = re.search(r"(?:Unsupported global: |unsupported )GLOBAL ([\w.]+)", message)
    return match.group(1) if match else None


def _detect_format(obj) -> str:
    if isinstance(obj, Mapping) and "model" in obj and "args" in obj:
        return "mohan2020"
    if isinstance(obj, Mapping) and any(str(k).startswith("conv_layers.") for k in obj):
        return "bfcnn"
    raise DenoiselabError("not a BF-CNN state dict (conv_layers.*, gammas.*, running_sd.*) nor a Mohan et al. "
                          "checkpoint (model + args); nothing to import")


def _tensor(state: Mapping, key: str, shape: tuple[int, ...] | None = None) -> Tensor:
    """``state[key]`` as a float32 tensor of `shape` (if given), or a one-line error."""
    value = state.get(key)
    if not isinstance(value, Tensor):
        raise DenoiselabError(f"checkpoint lacks tensor {key!r}" if value is None else f"checkpoint entry {key!r} is not a tensor")
    if shape is not None and value.numel() != int(torch.tensor(shape).prod()):
        raise DenoiselabError(f"checkpoint tensor {key!r} has shape {tuple(value.shape)}, expected {shape}")
    if not value.is_floating_point() or not bool(torch.isfinite(value).all()):
        raise DenoiselabError(f"checkpoint tensor {key!r} is not finite floating point")
    return value.detach().float().reshape(shape if shape is not None else value.shape).clone()


def _fill_bfdncnn(model: BFDnCNN, convs: list[Tensor], scales: list[Tensor], sds: list[Tensor]) -> BFDnCNN:
    """Put conv weights, BN scales and BN standard deviations, in network order, into `model`."""
    conv_layers = [m for m in model.body if isinstance(m, nn.Conv2d)]
    bns = [m for m in model.body if isinstance(m, BiasFreeBatchNorm2d)]
    with torch.no_grad():
        for layer, w in zip(conv_layers, convs, strict=True):
            layer.weight.copy_(w)
        for bn, g, sd in zip(bns, scales, sds, strict=True):
            bn.weight.copy_(g.view_as(bn.weight))
            bn.running_sd.copy_(sd.view_as(bn.running_sd))
    return model


def _check_keys(state: Mapping, expected: set[str], ignorable: re.Pattern | None = None) -> None:
    extra = sorted(k for k in state if k not in expected and not (ignorable and ignorable.fullmatch(str(k))))
    if extra:
        raise DenoiselabError(f"checkpoint has tensors the network does not use: {', '.join(map(str, extra[:4]))}")


def _convert_bfcnn(state: Mapping) -> nn.Module:
    depth = sum(1 for k in state if re.fullmatch(r"conv_layers\.\d+\.weight", str(k)))
    if depth < 2:
        raise DenoiselabError(f"a BF-CNN needs at least 2 conv layers, the checkpoint has {depth}")
    first = _tensor(state, "conv_layers.0.weight")
    if first.ndim != 4 or first.shape[1] not in (1, 3):
        raise DenoiselabError(f"conv_layers.0.weight has shape {tuple(first.shape)}; expected (width, 1 or 3, 3, 3)")
    width, channels = first.shape[0], first.shape[1]
    model = BFDnCNN(channels, depth=depth, width=width)
    shapes = [tuple(m.weight.shape) for m in model.body if isinstance(m, nn.Conv2d)]
    convs = [_tensor(state, f"conv_layers.{i}.weight", shapes[i]) for i in range(depth)]
    scales = [_tensor(state, f"gammas.{j}", (1, width, 1, 1)) for j in range(depth - 2)]
    sds = [_tensor(state, f"running_sd.{j}", (1, width, 1, 1)) + _BFCNN_EPS for j in range(depth - 2)]
    _check_keys(state, {f"conv_layers.{i}.weight" for i in range(depth)} | {f"gammas.{j}" for j in range(depth - 2)}
                | {f"running_sd.{j}" for j in range(depth - 2)})
    if any(bool((sd <= 0).any()) for sd in sds):
        raise DenoiselabError("checkpoint has a batch-norm running_sd <= 0")
    return _fill_bfdncnn(model, convs, scales, sds)


def _mohan_state(ckpt: Mapping) -> tuple[Mapping, argparse.Namespace]:
    model, args = ckpt.get("model"), ckpt.get("args")
    state = model[0] if isinstance(model, list | tuple) and model else model
    if not isinstance(state, Mapping) or not isinstance(args, argparse.Namespace):
        raise DenoiselabError("a Mohan et al. checkpoint needs 'model' (a state dict, or a list holding one) and 'args'")
    if getattr(args, "bias", False):
        raise DenoiselabError("the checkpoint is a network with biases (args.bias is True); only bias-free networks import")
    return state, args


def _convert_mohan_dncnn(state: Mapping, args: argparse.Namespace) -> nn.Module:
    depth, width = int(getattr(args, "num_layers", 20)), int(getattr(args, "hidden_size", 64))
    channels = int(getattr(args, "in_channels", 1))
    if channels not in (1, 3) or depth < 3:
        raise DenoiselabError(f"args say {channels} channels and {depth} layers; expected 1 or 3 channels, >= 3 layers")
    model = BFDnCNN(channels, depth=depth, width=width)
    shapes = [tuple(m.weight.shape) for m in model.body if isinstance(m, nn.Conv2d)]
    names = ["first_layer.weight"] + [f"hidden_layer_list.{j}.weight" for j in range(depth - 2)] + ["last_layer.weight"]
    convs = [_tensor(state, k, s) for k, s in zip(names, shapes, strict=True)]
    scales = [_tensor(state, f"bn_layer_list.{j}.weight", (width,)) for j in range(depth - 2)]
    variances = [_tensor(state, f"bn_layer_list.{j}.running_var", (width,)) for j in range(depth - 2)]
    if any(bool((v < 0).any()) for v in variances):
        raise DenoiselabError("checkpoint has a negative batch-norm running_var")
    sds = [v.sqrt() + _MOHAN_BN_EPS for v in variances]
    # The mean and shift of their BN are stored but unused when the network is bias-free.
    _check_keys(state, set(names) | {f"bn_layer_list.{j}.{p}" for j in range(depth - 2) for p in ("weight", "running_var")},
                re.compile(r"bn_layer_list\.\d+\.(bias|running_mean|num_batches_tracked)"))
    return _fill_bfdncnn(model, convs, scales, sds)


# Mohan et al.'s UNet layer names -> ours, in network order.
_UNET_KEYS = {"conv1": "full_in.0", "conv2": "full_in.1", "conv3": "half_res.0", "conv4": "half_res.1", "conv5": "half_res.2",
              "conv6": "half_res.3", "conv7": "up", "conv8": "full_out.0", "conv9": "full_out.1"}


def _convert_mohan_unet(state: Mapping, args: argparse.Namespace) -> nn.Module:
    first = _tensor(state, "conv1.weight")
    model = BFUNet(int(first.shape[1]) if first.ndim == 4 else -1, residual=bool(getattr(args, "residual", False)))
    own = model.state_dict()
    new = {f"{ours}.weight": _tensor(state, f"{theirs}.weight", tuple(own[f"{ours}.weight"].shape))
           for theirs, ours in _UNET_KEYS.items()}
    _check_keys(state, {f"{k}.weight" for k in _UNET_KEYS})
    model.load_state_dict(new)
    return model


def convert_checkpoint(obj, fmt: str = "auto") -> tuple[nn.Module, str, dict]:
    """Build our network from an unpickled checkpoint: ``(module, format, extra card fields)``."""
    fmt = _detect_format(obj) if fmt == "auto" else fmt
    if fmt == "bfcnn":
        if not isinstance(obj, Mapping):
            raise DenoiselabError("a BF-CNN checkpoint is a state dict; this file holds something else")
        return _convert_bfcnn(obj), fmt, {}
    if not isinstance(obj, Mapping):
        raise DenoiselabError("a Mohan et al. checkpoint is a dict with 'model' and 'args'; this file holds something else")
    state, args = _mohan_state(obj)
    kind = getattr(args, "model", None)
    convert = {"dncnn": _convert_mohan_dncnn, "unet": _convert_mohan_unet}.get(kind)
    if convert is None:
        raise DenoiselabError(f"the checkpoint's network is {kind!r}; dncnn and unet import")
    stated = ("dataset", "model", "in_channels", "hidden_size", "num_layers", "bias", "residual", "noise_mode",
              "min_noise", "max_noise", "batch_size", "lr", "num_epochs", "seed")
    training = {k: getattr(args, k) for k in stated if isinstance(getattr(args, k, None), int | float | str | bool)}
    return convert(state, args), fmt, {"training": training}


def import_weights(checkpoint: str | Path, out: str | Path, *, fmt: str = "auto", source: str | None = None,
                   paper: str | None = None, licence: str | None = None, training_data: str | None = None) -> Path:
    """Convert a published checkpoint into ``out`` (``.safetensors``) and its JSON card.

    Parameters
    ----------
    checkpoint : path
        The original file (a PyTorch pickle, read with ``weights_only=True``).
    out : path
        Where to write; must end in ``.safetensors``; the card goes beside it as ``.json``.
    fmt : {"auto", "bfcnn", "mohan2020"}
        The checkpoint's layout; ``auto`` tells them apart by their keys.
    source, paper, licence, training_data : str, optional
        Provenance for the card. Files we know by their sha256 (the five published priors) fill
        these themselves; what you pass overrides. ``licence`` is a licence name; a ``LICENSE``
        file beside the checkpoint is copied into the card as well.

    Returns
    -------
    Path
        `out`.

    Raises
    ------
    DenoiselabError
        For a refused or unreadable checkpoint, missing or misshapen tensors, or a bad `out`;
        nothing is written then.
    """
    checkpoint, out = Path(checkpoint), Path(out)
    if out.suffix != ".safetensors":
        raise DenoiselabError(f"-o {out}: the output must be a .safetensors file (its card goes beside it as .json)")
    if out.resolve() == checkpoint.resolve():
        raise DenoiselabError("-o names the checkpoint itself; the input is never overwritten")
    if not out.parent.is_dir():
        raise DenoiselabError(f"-o {out}: folder {out.parent} does not exist")
    obj = read_checkpoint(checkpoint, fmt)
    model, fmt, extra = convert_checkpoint(obj, fmt)
    model.eval().requires_grad_(False)
    digest = sha256_of(checkpoint)
    known = KNOWN_CHECKPOINTS.get(digest, {})
    given = {"source": source, "paper": paper, "licence": licence,
             "training_data": [training_data] if training_data else None}
    facts = {**known, **{k: v for k, v in given.items() if v is not None}}
    card = {"name": out.stem, **model.config(), "training_data": facts.get("training_data", ["not stated"]),
            "noise": facts.get("noise", "not stated"), "source": facts.get("source", "not stated"),
            "paper": facts.get("paper", "not stated"), "licence": facts.get("licence", "not stated"),
            "imported_from": {"file": checkpoint.name, "sha256": digest, "format": fmt}, **extra}
    licence_file = checkpoint.parent / "LICENSE"
    if licence_file.is_file():
        card["licence_text"] = licence_file.read_text(errors="replace")
    return save_weights(model, out, card)

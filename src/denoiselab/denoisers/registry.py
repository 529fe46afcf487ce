"""Every denoiser by name: ``load_denoiser(name)`` and ``list_denoisers()``.

Trained networks are found by their weights files in ``denoiselab/weights`` (``<name>.safetensors``
+ ``<name>.json`` card); classical ones are built on demand. Aliases name the role, not the file:
``bfdncnn-color`` is the best colour prior shipped, ``bfdncnn-gray`` the gray one. A path to a
``.safetensors`` file with its card beside it loads too.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .._utils import resolve_device
from ..errors import DenoiselabError
from .bfdncnn import BFDnCNN
from .bfunet import BFUNet
from .precision import prepare_network
from .classic import bm3d_denoiser, nlm_denoiser, tv_denoiser, wavelet_denoiser
from .weights import WEIGHTS_DIR, load_state, read_card

CLASSIC = {
    "bm3d": (bm3d_denoiser, "BM3D / CBM3D (bm3d package), needs sigma; with sigma auto, correlated noise gets its estimated covariance"),
    "nlm": (nlm_denoiser, "non-local means (scikit-image), needs sigma"),
    "tv": (tv_denoiser, "total variation, Chambolle (scikit-image), needs sigma"),
    "wavelet": (wavelet_denoiser, "BayesShrink wavelet thresholding (scikit-image), needs sigma"),
}

# Role -> weights names in order of preference; the first one shipped wins.
# Measured (benchmarks/results/gaussian_denoisers/): the published CBSD300 prior is the best colour
# network shipped (CBSD68 σ = 25: 31.2 dB against 29.35 for our CPU-trained one), Mohan et al.'s
# BF-DnCNN the best gray one; the small CPU-trained networks stay available by name (≈ 9× fewer FLOPs).
ALIASES = {
    "bfdncnn-color": ["bfdncnn-color-cbsd300", "bfdncnn-color-s-imagenet"],
    "bfdncnn-gray": ["bfdncnn-gray-bsd400", "bfdncnn-gray-s"],
}


def weights_dirs() -> list[Path]:
    """Folders searched for ``<name>.safetensors``: the shipped weights, then each folder of the
    ``DENOISELAB_WEIGHTS`` environment variable (``os.pathsep``-separated), e.g. where
    ``denoiselab import-weights`` wrote yours. A shipped name wins over a user file of the same name."""
    extra = [Path(p) for p in os.environ.get("DENOISELAB_WEIGHTS", "").split(os.pathsep) if p]
    return [WEIGHTS_DIR, *extra]


def _trained() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in reversed(weights_dirs()):
        found.update({p.stem: p for p in sorted(folder.glob("*.safetensors"))})
    return found


def _resolve_alias(name: str) -> str:
    trained = _trained()
    for candidate in ALIASES.get(name, []):
        if candidate in trained:
            return candidate
    return name


def _weights_path(name: str) -> Path:
    """The weights file of a trained network: `name` itself if it is a ``.safetensors`` path, else
    the file of that name (or alias) in :func:`weights_dirs`."""
    path = Path(name) if name.endswith(".safetensors") else _trained().get(_resolve_alias(name))
    if path is None:
        raise DenoiselabError(f"unknown denoiser {name!r}; known: {', '.join(list_denoisers())}")
    if not path.is_file():  # before the card, so the message names the file that is missing
        raise DenoiselabError(f"weights file {path} not found; check the path (a .safetensors file with its .json card)")
    return path


def list_denoisers() -> list[str]:
    """Names accepted by :func:`load_denoiser`: trained networks, their aliases, classical methods."""
    trained = _trained()
    aliases = [a for a, targets in ALIASES.items() if any(t in trained for t in targets)]
    return sorted(trained) + sorted(aliases) + sorted(CLASSIC)


def describe_denoiser(name: str) -> str:
    """One line about denoiser `name` (what it is, how it was trained, its test PSNR)."""
    if name in CLASSIC:
        return CLASSIC[name][1]
    path = _weights_path(name)
    card = read_card(path)
    target = path.stem
    alias = f"= {target}: " if target != name and not name.endswith(".safetensors") else ""
    psnr = ", ".join(f"σ{s} {v:.2f}" for s, v in card.get("test_psnr_db", {}).items())
    net = (f"BF-DnCNN {card.get('depth')}×{card.get('width')}" if card.get("architecture") == "bfdncnn"
           else "bias-free UNet")
    origin = f"; {card['source']}" if "source" in card else ""
    tested = f"; {card.get('test_set')} PSNR {psnr} dB" if psnr else ""
    return (f"{alias}blind {net}, {card.get('channels')} ch, trained on "
            f"{'+'.join(card.get('training_data', ['?']))}{origin}{tested}")


def build_from_card(card: dict, path: Path) -> nn.Module:
    """An untrained network of the architecture and size that weights card `card` describes."""
    arch = card.get("architecture") if isinstance(card, dict) else None
    try:
        if arch == "bfdncnn":
            return BFDnCNN(int(card["channels"]), depth=int(card["depth"]), width=int(card["width"]))
        if arch == "bfunet":
            return BFUNet(int(card["channels"]), residual=bool(card.get("residual", False)))
    except (KeyError, TypeError, ValueError) as err:
        raise DenoiselabError(f"{path}: its model card needs integer channels (1 or 3), and for bfdncnn depth (>= 2) "
                              f"and width (>= 1); {type(err).__name__}: {err}") from err
    raise DenoiselabError(f"{path}: card names architecture {arch!r}, expected 'bfdncnn' or 'bfunet'")


def load_denoiser(name: str, device: str | torch.device = "cpu", precision: str = "fp32"):
    """Build the denoiser called `name`, ready to call as ``denoiser(y, sigma)``.

    Parameters
    ----------
    name : str
        One of :func:`list_denoisers`, or a path to a ``.safetensors`` file with its JSON card.
    device : str or torch.device
        Where a network runs: ``"cpu"``, ``"cuda"``, ``"auto"``. Classical methods run on the CPU
        and return tensors on the input's device.
    precision : {"fp32", "bf16", "auto"}
        Arithmetic of a network (classical methods ignore it): ``fp32`` is exact (and the
        default, so scale-equivariance holds to float precision); ``bf16`` computes the inner
        layers in bfloat16; ``auto`` picks bf16 only where the hardware runs it natively and it
        costs at most 0.02 dB (see :mod:`denoiselab.denoisers.precision`).

    Returns
    -------
    denoiser
        Networks come as ``nn.Module`` in eval mode with gradients switched off, channels-last.

    Raises
    ------
    DenoiselabError
        For an unknown name, a missing or mismatched weights file.
    """
    if name in CLASSIC:
        return CLASSIC[name][0]()
    path = _weights_path(name)
    model = build_from_card(read_card(path), path)
    load_state(model, path)
    return prepare_network(model, precision, resolve_device(device))


def load_denoiser_for(name: str, channels: int, device: str | torch.device = "cpu", precision: str = "fp32"):
    """:func:`load_denoiser` for images of `channels` channels: returns ``(name, denoiser)``.

    ``bfdncnn-color`` becomes ``bfdncnn-gray`` for gray images (the returned name says which
    was loaded); a network trained for the other channel count is a one-line error.

    Raises
    ------
    DenoiselabError
        As :func:`load_denoiser`, or if the network denoises gray images and the image is RGB
        (or the reverse).
    """
    if name == "bfdncnn-color" and channels == 1:
        name = "bfdncnn-gray"
    denoiser = load_denoiser(name, device=device, precision=precision)
    net_channels = getattr(denoiser, "channels", channels)  # classical methods take any channel count
    if net_channels != channels:
        kind = {1: "gray", 3: "RGB"}
        raise DenoiselabError(f"{name} denoises {kind[net_channels]} images, the image is {kind[channels]}; "
                              f"pick a {kind[channels]} denoiser from denoiselab.list_denoisers()")
    return name, denoiser

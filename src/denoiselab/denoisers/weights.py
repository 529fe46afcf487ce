"""Trained weights on disk: a safetensors file with a JSON model card beside it.

Weights are only ever read through safetensors (no pickles, so loading runs no code). The card
(``<name>.json``) says what the network is (architecture, channels, depth, width) and how it was
made (data, σ range, steps, seed, device, wall time, test PSNR).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..errors import DenoiselabError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def card_path(weights_path: Path) -> Path:
    return weights_path.with_suffix(".json")


def save_weights(module: nn.Module, path: str | Path, card: dict) -> Path:
    """Write `module`'s state dict as safetensors and `card` as JSON beside it, both atomically."""
    from safetensors.torch import save_file

    from ..io import atomic_write

    path = Path(path)
    state = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp)))
    text = json.dumps(card, indent=2, sort_keys=False) + "\n"
    atomic_write(card_path(path), lambda tmp: tmp.write_text(text))
    return path


def read_card(path: str | Path) -> dict:
    """The JSON model card beside weights file `path`."""
    cpath = card_path(Path(path))
    try:
        return json.loads(cpath.read_text())
    except FileNotFoundError as err:
        raise DenoiselabError(f"model card {cpath} is missing; every weights file needs its JSON card") from err
    except json.JSONDecodeError as err:
        raise DenoiselabError(f"model card {cpath} is not valid JSON ({err.msg} at line {err.lineno})") from err


def load_state(module: nn.Module, path: str | Path) -> nn.Module:
    """Load safetensors weights from `path` into `module`, with clear errors for missing or mismatched files."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise DenoiselabError(f"weights file {path} not found; reinstall denoiselab or train it with `denoiselab train-denoiser`")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise DenoiselabError(f"weights file {path} is not a readable safetensors file ({err})") from err
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise DenoiselabError(
            f"weights file {path} does not fit the network: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    wrong = [k for k in own if own[k].shape != state[k].shape]
    if wrong:
        k = wrong[0]
        raise DenoiselabError(
            f"weights file {path} does not fit the network: {k} has shape {tuple(state[k].shape)}, expected {tuple(own[k].shape)}"
        )
    module.load_state_dict(state)
    return module

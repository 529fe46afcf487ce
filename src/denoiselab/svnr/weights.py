"""The SVNR models shipped with denoiselab (``denoiselab/weights/svnr/<name>.safetensors`` + card).

They live in their own folder so the Gaussian-denoiser registry, which lists
``denoiselab/weights/*.safetensors``, never mistakes them for BF-DnCNNs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..denoisers.weights import WEIGHTS_DIR
from ..errors import DenoiselabError
from .train import SVNRModel, load_svnr

SVNR_WEIGHTS_DIR = WEIGHTS_DIR / "svnr"

#: Shipped weights by role: SVNR, the first SVNR model (training time maps from the clean image's true
#: variance instead of the estimated one; kept for comparison), its ablation without the correlation fix, the
#: conditioned baseline (EDM-preconditioned on DDPM's chain) and the first baseline (plain ε on SVNR's chain,
#: which did not learn at the CPU budget; kept so its committed benchmark stays reproducible), and the baseline
#: with 4× SVNR's training steps (how much of the gap is budget).
SHIPPED = {"svnr": "svnr-s", "svnr-truemap": "svnr-s-truemap", "svnr-uncorrelated": "svnr-uncorrelated-s",
           "conditional": "svnr-conditional-edm-lognormal-s", "conditional-eps": "svnr-conditional-s",
           "conditional-4x": "svnr-conditional-edm-4x-s"}


def load_shipped_svnr(kind: str = "svnr", *, device: str | torch.device = "cpu") -> SVNRModel:
    """The shipped model of `kind` (a key of :data:`SHIPPED`), or a path to other SVNR weights.

    Raises
    ------
    DenoiselabError
        For an unknown kind or missing weights.
    """
    if kind in SHIPPED:
        path = SVNR_WEIGHTS_DIR / f"{SHIPPED[kind]}.safetensors"
    elif str(kind).endswith(".safetensors"):
        path = Path(kind)
    else:
        raise DenoiselabError(f"unknown SVNR model {kind!r}; choose {', '.join(SHIPPED)} or a .safetensors path")
    if not path.is_file():
        raise DenoiselabError(f"SVNR weights {path} not found (train them with `denoiselab train-svnr`)")
    return load_svnr(path, device=device)

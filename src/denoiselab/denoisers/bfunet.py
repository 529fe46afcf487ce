"""Bias-free UNet of Mohan, Kadkhodaie, Simoncelli & Fernandez-Granda (ICLR 2020).

A small two-scale UNet with every additive constant removed (no biases, no normalisation), so
that, like the bias-free DnCNN, it is positively homogeneous: ``f(a·y) = a·f(y)`` for a > 0.
The layer sizes are those of the authors' released checkpoints (the state dict fixes them):

- full resolution: 5×5 conv (C → 32), 3×3 conv (32 → 32) whose output is kept as the skip;
- half resolution: 3×3 conv with stride 2 (32 → 64), 3×3 conv, 3×3 conv with dilation 2,
  3×3 conv with dilation 4 (64 → 64 each), then a 4×4 transposed conv with stride 2 back up;
- full resolution again: concatenate with the skip (96 channels), 3×3 conv (96 → 32), 5×5 conv
  (32 → C).

ReLU follows every layer but the last. The released gray models predict the clean image itself
(no residual connection). Odd heights and widths are zero-padded by one row/column at the
bottom/right and cropped back, so any size works.

Reference
---------
S. Mohan, Z. Kadkhodaie, E. P. Simoncelli, C. Fernandez-Granda, "Robust and interpretable blind
image denoising via bias-free convolutional neural networks", ICLR 2020.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .precision import autocast_for
from .protocol import check_image_batch


def _conv(cin: int, cout: int, k: int, *, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=dilation * (k // 2), dilation=dilation, bias=False)


class BFUNet(nn.Module):
    """Blind bias-free UNet; implements the ``denoiser(y, sigma)`` protocol (sigma is ignored).

    Parameters
    ----------
    channels : int
        Image channels in and out: 1 (gray) or 3 (RGB). The published models are gray.
    residual : bool
        If True the network predicts the noise and returns ``y - f(y)``; the published models
        predict the clean image (False).
    """

    blind = True
    precision = "fp32"  # "bf16" set by denoisers.precision.prepare_network

    def __init__(self, channels: int = 1, *, residual: bool = False):
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"BFUNet needs 1 or 3 channels, got {channels}")
        self.channels, self.residual = channels, residual
        self.full_in = nn.ModuleList([_conv(channels, 32, 5), _conv(32, 32, 3)])
        self.half_res = nn.ModuleList([
            _conv(32, 64, 3, stride=2), _conv(64, 64, 3), _conv(64, 64, 3, dilation=2), _conv(64, 64, 3, dilation=4),
        ])
        self.up = nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1, bias=False)
        self.full_out = nn.ModuleList([_conv(96, 32, 3), _conv(32, channels, 5)])

    def forward(self, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:  # noqa: ARG002 - blind
        """Denoise `y` (B, C, H, W) in [0, 1]; `sigma` is accepted for the protocol and ignored."""
        check_image_batch(y, channels=(self.channels,))
        with autocast_for(self.precision, y.device):
            out = self._clean_estimate(y.contiguous(memory_format=torch.channels_last))
        return out.to(y.dtype).contiguous()

    def _clean_estimate(self, y: Tensor) -> Tensor:
        h, w = y.shape[-2:]
        x = F.pad(y, (0, w % 2, 0, h % 2))  # even sizes, so down- and up-sampling meet again
        skip = F.relu(self.full_in[1](F.relu(self.full_in[0](x))))
        out = skip
        for conv in self.half_res:
            out = F.relu(conv(out))
        out = F.relu(self.up(out))
        out = F.relu(self.full_out[0](torch.cat([out, skip], dim=1)))
        out = self.full_out[1](out)[..., :h, :w]
        return y - out if self.residual else out

    def config(self) -> dict:
        return {"architecture": "bfunet", "channels": self.channels, "residual": self.residual}

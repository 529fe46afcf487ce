"""Does channels-last memory layout speed up the slow baselines (DIP, Self2Self, APBSN-single) on the CPU?

    python benchmarks/baseline_speed.py [--threads 1]

Each method runs a few iterations on the centre 256² crop of the first SIDD dev pair, seed 0,
with the allocator tuned as the CLI does, once in PyTorch's default (contiguous) layout and once
with the network's weights and input in channels-last. Reports seconds per iteration and the
PSNR of the output (which shows whether the result moved). bf16 is not tried: this CPU has no
native bf16 (see ``benchmarks/precision.py``). Writes ``benchmarks/results/baseline_speed/summary.md``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

import denoiselab.baselines.apbsn as apbsn_module
import denoiselab.baselines.dip as dip_module
import denoiselab.baselines.self2self as self2self_module
from denoiselab import tune_cpu_allocator
from denoiselab.bench.tables import write_table_summary
from denoiselab.datasets import center_crop, open_pairs
from denoiselab.metrics import psnr

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "baseline_speed"
# method: (module, function name, network class attribute, iterations)
METHODS = {"dip": (dip_module, "dip", "UNet", 20), "self2self": (self2self_module, "self2self", "_Self2SelfNet", 20),
           "apbsn-single": (apbsn_module, "apbsn", "BlindSpotNet", 2)}


def _channels_last(cls):
    """A factory for `cls` networks whose weights and inputs are channels-last."""
    class ChannelsLast(cls):
        def forward(self, x, *args, **kwargs):
            return super().forward(x.contiguous(memory_format=torch.channels_last), *args, **kwargs)

    return lambda *args, **kwargs: ChannelsLast(*args, **kwargs).to(memory_format=torch.channels_last)


def _run(method: str, layout: str, noisy: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    module, fn_name, net_name, iterations = METHODS[method]
    original = getattr(module, net_name)
    if layout == "channels-last":
        setattr(module, net_name, _channels_last(original))
    try:
        start = time.perf_counter()
        out = getattr(module, fn_name)(noisy, iterations=iterations, seed=0, device="cpu")
        seconds = (time.perf_counter() - start) / iterations
    finally:
        setattr(module, net_name, original)
    return seconds, float(psnr(np.clip(out, 0, 1), clean)[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-root", type=Path, default=Path(os.environ.get("DENOISELAB_DATA", ROOT.parent / "shared" / "data")))
    args = p.parse_args()
    tune_cpu_allocator()
    torch.set_num_threads(args.threads)
    noisy, clean = (center_crop(a, 256) for a in open_pairs(args.data_root / "real" / "sidd_val").head(1).pairs[0].load())
    rows = []
    for method, (_, _, _, iterations) in METHODS.items():
        (s0, p0), (s1, p1) = (_run(method, layout, noisy, clean) for layout in ("contiguous", "channels-last"))
        print(method, s0, p0, s1, p1, flush=True)
        rows.append([method, str(iterations), f"{s0:.2f}", f"{s1:.2f}", f"{s0 / s1:.2f}×", f"{p0:.4f}", f"{p1:.4f}"])
    head = ["method", "iterations", "s/it contiguous", "s/it channels-last", "speed-up", "PSNR contiguous", "PSNR channels-last"]
    print(write_table_summary(OUT / "summary.md", "Memory layout of the slow baselines (CPU)",
                              "Centre 256² crop of SIDD validation 10_1, seed 0, allocator tuned; PSNR (dB) of the output "
                              "after the iterations shown (early: only to see whether the result moves).", head, rows))


if __name__ == "__main__":
    main()

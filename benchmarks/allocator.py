"""What `tune_cpu_allocator` buys on the CPU: the same runs with glibc's default malloc and tuned.

    python benchmarks/allocator.py [--threads 1]

Each (workload, allocator) runs in its own process (the setting is process-wide and must come
before the first large allocation); workloads alternate plain / tuned. Outputs are compared bit
for bit. Workloads: the published colour BF-DnCNN on a 256² RGB crop (median of 5 calls after
one warm-up), ScoreDVI `fast` on the bundled photo (one run), and DIP, Self2Self and
APBSN-single on a 256² SIDD crop (a few iterations, seconds per iteration). Writes
``benchmarks/results/allocator/summary.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "allocator"
WORKLOADS = ["bfdncnn-256", "scoredvi-fast", "dip", "self2self", "apbsn-single"]
ITERATIONS = {"dip": 6, "self2self": 20, "apbsn-single": 2}


def _child(workload: str, tuned: bool, threads: int, data_root: Path) -> dict:
    """Run one workload in this process; return seconds (per unit) and a hash of the output."""
    import hashlib

    if tuned:
        from denoiselab import tune_cpu_allocator

        tune_cpu_allocator()
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from denoiselab.datasets import center_crop, open_pairs
    from denoiselab.io import read_image

    photo = read_image(ROOT / "examples" / "sidd_18_1_noisy.png").array
    if workload == "bfdncnn-256":
        from denoiselab import load_denoiser

        net = load_denoiser("bfdncnn-color-cbsd300", device="cpu")
        y = torch.from_numpy(photo).permute(2, 0, 1)[None]
        times = []
        with torch.no_grad():
            out = net(y, 0.0)
            for _ in range(5):
                t = time.perf_counter()
                out = net(y, 0.0)
                times.append(time.perf_counter() - t)
        seconds, out, unit = float(np.median(times)), out.numpy(), "s per call"
    elif workload == "scoredvi-fast":
        from denoiselab.scoredvi import scoredvi

        t = time.perf_counter()
        out = scoredvi(photo, preset="fast", progress=False, device="cpu").image
        seconds, unit = time.perf_counter() - t, "s per run"
    else:
        from denoiselab.baselines.apbsn import apbsn
        from denoiselab.baselines.dip import dip
        from denoiselab.baselines.self2self import self2self

        fn = {"dip": dip, "self2self": self2self, "apbsn-single": apbsn}[workload]
        noisy, _ = next(iter(open_pairs(data_root / "real" / "sidd_val").head(1))).load()
        n = ITERATIONS[workload]
        t = time.perf_counter()
        out = fn(center_crop(noisy, 256), iterations=n, seed=0, device="cpu")
        seconds, unit = (time.perf_counter() - t) / n, f"s per iteration ({n} run, with the output's inference)"
    digest = hashlib.sha256(np.ascontiguousarray(out, dtype=np.float32).tobytes()).hexdigest()[:16]
    return {"seconds": seconds, "unit": unit, "sha": digest}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-root", type=Path, default=Path(os.environ.get("DENOISELAB_DATA", ROOT.parent / "shared" / "data")))
    p.add_argument("--child", nargs=2, metavar=("WORKLOAD", "TUNED"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(_child(args.child[0], args.child[1] == "1", args.threads, args.data_root)))
        return
    import torch

    from denoiselab.bench.tables import write_table_summary

    torch.set_num_threads(args.threads)  # for the provenance line
    rows = []
    for workload in WORKLOADS:
        res = {}
        for tuned in (False, True):
            cmd = [sys.executable, __file__, "--threads", str(args.threads), "--data-root", str(args.data_root),
                   "--child", workload, str(int(tuned))]
            res[tuned] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            print(workload, "tuned" if tuned else "plain", res[tuned], flush=True)
        rows.append([workload, res[False]["unit"], f"{res[False]['seconds']:.3f}", f"{res[True]['seconds']:.3f}",
                     f"{res[False]['seconds'] / res[True]['seconds']:.2f}×", "yes" if res[False]["sha"] == res[True]["sha"] else "NO"])
    head = ["workload", "unit", "glibc default", "tuned", "speed-up", "identical output"]
    print(write_table_summary(OUT / "summary.md", "`tune_cpu_allocator`: glibc malloc keeping freed blocks (CPU)",
                              "Same process-wide setting the CLI applies at start; each cell is its own process.", head, rows))


if __name__ == "__main__":
    main()

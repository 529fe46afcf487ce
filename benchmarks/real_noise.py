"""The real-noise comparisons, each as one named protocol over `denoiselab bench`.

    python benchmarks/real_noise.py scoredvi-cpu   # ScoreDVI `fast` vs BM3D and PD-denoising: 256² centre crops of all 121 pairs
    python benchmarks/real_noise.py table1-cpu     # the paper's Table 1, CPU part: first 8 pairs per dataset, 256² crops
    python benchmarks/real_noise.py heldout-cpu    # the 8 pairs after Table 1's subset (CC has none left): a check on unseen images
    python benchmarks/real_noise.py table1-gpu     # Table 1, GPU part: the same pairs, whole images, the slow baselines
    python benchmarks/real_noise.py table1-cpu --quick   # 1 pair per dataset, 64² crops, cheap methods: seconds

Results go to benchmarks/results/<folder>/ (results.csv, summary.md, figure.png, images/);
a run resumes from its results.csv. `--methods` runs a subset of a protocol's methods and
`--shard I N` every N-th image: several processes may share one results folder, one per core;
a last run without them (nothing left to compute) writes the summary over everything, and
`--summary-only` writes it from the rows so far while other processes are still filling them in.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from denoiselab import tune_cpu_allocator
from denoiselab.bench.real import run_real_benchmark

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ["sidd_val", "polyu", "cc", "fmdd"]

PROTOCOLS = {
    "scoredvi-cpu": dict(folder="real_cpu_256", methods=["noisy", "bm3d", "pd-denoising", "scoredvi-fast"], limit=None, crop=256),
    # NN+BM3D, DIP, Self2Self and APBSN at the authors' budgets (hours per crop on a CPU) are left to the GPU run; the
    # CPU table has CPU budgets (about 20 min per crop each for the last three: ~31 h for all rows, filled over sessions)
    "table1-cpu": dict(folder="table1_cpu_v2", methods=["noisy", "bm3d", "bm3d-white", "pd-denoising", "nn-bm3d-cpu", "dip-cpu", "self2self-cpu",
                                                        "apbsn-single-cpu", "scoredvi-fast"], limit=8, crop=256),
    # images that neither the Table 1 subset nor the ScoreDVI ablation (its first pairs) uses
    "heldout-cpu": dict(folder="heldout_cpu", methods=["noisy", "bm3d", "bm3d-white", "pd-denoising", "scoredvi-fast"], limit=8, skip=8, crop=256),
    "table1-gpu": dict(folder="table1_gpu", methods=["noisy", "bm3d", "bm3d-white", "pd-denoising", "nn-bm3d", "dip", "dip-oracle",
                                                      "self2self", "apbsn-single", "scoredvi-paper"], limit=8, crop=None),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("protocol", choices=PROTOCOLS)
    p.add_argument("--data-root", type=Path, default=Path(os.environ.get("DENOISELAB_DATA", ROOT.parent / "shared" / "data")))
    p.add_argument("--out", type=Path, help="results folder (default benchmarks/results/<protocol folder>)")
    p.add_argument("--methods", nargs="+", help="run only these of the protocol's methods")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--shard", type=int, nargs=2, metavar=("I", "N"), help="every N-th image from I (one process per core)")
    p.add_argument("--reuse", nargs="+", type=Path, default=[], help="results.csv of earlier runs whose matching rows are taken over")
    p.add_argument("--quick", action="store_true", help="1 pair per dataset, 64×64 crops, noisy/bm3d/pd-denoising only")
    p.add_argument("--summary-only", action="store_true", help="compute nothing: summary and figure from the rows so far")
    args = p.parse_args()
    tune_cpu_allocator()  # as the CLI does: same results, ~1.5x faster CPU inference
    proto = dict(PROTOCOLS[args.protocol])
    if args.quick:
        proto.update(methods=["noisy", "bm3d", "bm3d-white", "pd-denoising"], limit=1, crop=64, folder=proto["folder"] + "_quick")
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = args.methods or proto["methods"]
    unknown = set(methods) - set(proto["methods"])
    if unknown:
        p.error(f"{', '.join(sorted(unknown))} not in protocol {args.protocol} ({', '.join(proto['methods'])})")
    out = args.out or ROOT / "benchmarks" / "results" / proto["folder"]
    paths = run_real_benchmark(methods, [args.data_root / "real" / d for d in DATASETS], out, device=args.device,
                               limit=proto["limit"], skip=proto.get("skip", 0), crop=proto["crop"], figure_images=2, reuse=args.reuse,
                               shard=tuple(args.shard) if args.shard else None, compute=not args.summary_only)
    print(paths["summary"].read_text())


if __name__ == "__main__":
    main()

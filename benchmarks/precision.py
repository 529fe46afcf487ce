"""Speed and PSNR of every shipped prior in each inference setting, measured in one run.

    python benchmarks/precision.py                     # the committed table
    python benchmarks/precision.py --quick             # one prior, 2 crops

Settings, all on the same noisy crops (σ = 25, CBSD68 for colour priors, BSD68 for gray):

- ``fp32 plain``: float32 in PyTorch's default (contiguous) layout: the baseline every ratio is against;
- ``fp32 denoiselab``: what ``fp32`` means in denoiselab: the same arithmetic, batch norm folded
  into the convolutions (BF-DnCNN) or channels-last layout (UNet);
- ``bf16 autocast``: the plain network under ``torch.autocast(bfloat16)``;
- ``bf16 mixed``: denoiselab's ``bf16``: batch norm folded into the convolutions, first and last
  convolution in float32, the rest bf16;
- ``fp32 compiled``: ``torch.compile`` of denoiselab's float32 network.

MP/s counts the denoiser calls alone: settings take turns for a few repeats after a warm-up, and
the fastest repeat counts (other processes can only slow a repeat down). Writes
benchmarks/results/precision/<date>_<commit>_<device>.{csv,md}.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from denoiselab.bench.gaussian import noisy_copy
from denoiselab.bench.tables import markdown_table, provenance, result_stem, write_csv
from denoiselab.denoisers import load_denoiser
from denoiselab.denoisers.precision import native_bf16
from denoiselab.io import atomic_write, read_image, to_tensor
from denoiselab.metrics import psnr
from denoiselab.training.patches import list_images

ROOT = Path(__file__).resolve().parent.parent
PRIORS = {"bfdncnn-color-cbsd300": "CBSD68", "bfdncnn-color-scoredvi1": "CBSD68", "bfdncnn-color-scoredvi2": "CBSD68",
          "bfdncnn-gray-bsd400": "BSD68", "bfunet-gray-bsd400": "BSD68", "bfdncnn-color-s-imagenet": "CBSD68",
          "bfdncnn-gray-s": "BSD68"}


def plain_fp32(net):
    """The network as PyTorch runs it by default: float32, contiguous weights and activations."""
    net = net.to(memory_format=torch.contiguous_format)
    body = net.body if hasattr(net, "body") else None
    return (lambda y: y - body(y)) if body is not None else (lambda y: net._clean_estimate(y))


def settings(name: str, device: str) -> dict:
    def with_precision(precision):
        return load_denoiser(name, device=device, precision=precision)

    def autocast_all(y, net=plain_fp32(with_precision("fp32"))):
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16):
            return net(y).float()

    with torch.autocast(device_type="cpu", enabled=False):
        compiled = torch.compile(with_precision("fp32"))
    return {"fp32 plain": plain_fp32(with_precision("fp32")), "fp32 denoiselab": with_precision("fp32"),
            "bf16 autocast": autocast_all, "bf16 mixed": with_precision("bf16"), "fp32 compiled": compiled}


SETTINGS = ("fp32 plain", "fp32 denoiselab", "bf16 autocast", "bf16 mixed", "fp32 compiled")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=Path(os.environ.get("DENOISELAB_DATA", ROOT.parent / "shared" / "data")))
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "precision")
    p.add_argument("--priors", nargs="+", default=list(PRIORS))
    p.add_argument("--crops", type=int, default=4, help="crops per prior (first images of the set)")
    p.add_argument("--size", type=int, default=128, help="crop side in pixels")
    p.add_argument("--sigma", type=float, default=25.0, help="0-255 scale")
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS, metavar="S",
                   help="which settings to run (fp32 plain always first: it is the baseline)")
    p.add_argument("--repeats", type=int, default=3, help="timed round-robin repeats; the fastest counts")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.priors, args.crops = args.priors[:1], 2
    rows = []
    for name in args.priors:
        files = list_images(args.data_root / "test" / "synthetic" / PRIORS[name])[: args.crops]
        xs = [to_tensor(read_image(f).array)[..., : args.size, : args.size] for f in files]
        ys = [noisy_copy(x, args.sigma, 0, i).to(args.device) for i, x in enumerate(xs)]
        nets = {k: v for k, v in settings(name, args.device).items() if k in args.settings}
        outs, best = {}, dict.fromkeys(nets, float("inf"))
        with torch.inference_mode():
            for setting, net in nets.items():
                outs[setting] = [net(y).float().cpu() for y in ys]  # warm-up (and compilation), and the PSNR
            # Round-robin repeats, fastest kept: other processes on a shared machine slow some
            # repeats down, never speed them up.
            for _ in range(args.repeats):
                for setting, net in nets.items():
                    start = time.perf_counter()
                    for y in ys:
                        net(y)
                    best[setting] = min(best[setting], time.perf_counter() - start)
        mp = sum(x.shape[-1] * x.shape[-2] for x in xs) / 1e6
        reference = None
        for setting in nets:
            value = float(sum(psnr(o.clamp(0, 1), x)[0] for o, x in zip(outs[setting], xs, strict=True)) / len(xs))
            reference = value if reference is None else reference
            rows.append({"prior": name, "setting": setting, "psnr": round(value, 4), "delta_db": round(value - reference, 4),
                         "mp_per_s": round(mp / best[setting], 4), "seconds": round(best[setting], 3)})
            print(rows[-1], flush=True)
    base = {r["prior"]: r["mp_per_s"] for r in rows if r["setting"] == "fp32 plain"}
    table = [[r["prior"], r["setting"], f"{r['psnr']:.3f}", f"{r['delta_db']:+.3f}", f"{r['mp_per_s']:.3f}",
              f"{r['mp_per_s'] / base[r['prior']]:.2f}×"] for r in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    stem = result_stem(args.out, args.device)
    write_csv(stem.with_suffix(".csv"), rows)
    text = (f"# Inference precision and layout: speed and PSNR of each prior\n\n{provenance(args.device)}\n"
            f"- {args.crops} crops of {args.size}² per prior (first images of CBSD68 / BSD68), AWGN σ = {args.sigma:g}, "
            f"{torch.get_num_threads()} threads; native bf16 on this device: {native_bf16(args.device)}\n"
            f"- ratio = MP/s against `fp32 plain` of the same prior, in this run\n\n"
            + markdown_table(["prior", "setting", "PSNR (dB)", "Δ vs fp32", "MP/s", "speed"], table) + "\n")
    atomic_write(stem.with_suffix(".md"), lambda tmp: tmp.write_text(text))
    print(text)


if __name__ == "__main__":
    main()

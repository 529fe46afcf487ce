"""``denoiselab`` command line: denoise, estimate-noise, list, train-denoiser, bench.

Every problem the user can fix (a bad path, an unreadable image, a value out of range) is a
`DenoiselabError`: printed as one line on stderr, exit code 2, no traceback, no output file.
Anything else is a bug and keeps its traceback (exit code 1). Noise levels on the command line
are on the 0–255 scale, as people quote them; the library works on [0, 1].
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import DenoiselabError

SIGMA_HELP = "noise std on the 0-255 scale (e.g. 25), or 'auto' to estimate it from the image"


def _sigma255(text: str) -> float | None:
    if text == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither 'auto' nor a number") from None
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError(f"{value} is outside 0..255 (sigma is on the 0-255 scale)")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="denoiselab", description="Single-image denoising on trained MMSE denoisers.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("denoise", help="denoise an image (PNG, JPEG, TIFF; 8/16-bit; gray/RGB; TIFF stacks)")
    d.add_argument("input", type=Path, help="noisy image")
    d.add_argument("-o", "--output", type=Path, required=True, help="where to write the result (never the input)")
    d.add_argument("--method", default="scoredvi",
                   help="scoredvi (real-world noise, the default) or a Gaussian denoiser from `denoiselab list` "
                        "(bfdncnn-color is swapped for bfdncnn-gray on gray images)")
    d.add_argument("--sigma", type=_sigma255, default="auto", help=SIGMA_HELP + "; blind networks and scoredvi ignore it")
    d.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda or cuda:N")
    d.add_argument("--bit-depth", type=int, choices=(8, 16, 32), help="bits per sample of the output (default: the input's)")
    s = d.add_argument_group("scoredvi")
    s.add_argument("--preset", default="fast", choices=("fast", "paper"),
                   help="fast: CPU-sized (about 30 s for 256x256 RGB on 2 cores); paper: the published setting (400 iterations, GPU advised)")
    s.add_argument("--iterations", type=int, help="override the preset's iteration count")
    s.add_argument("--beta", default="auto", help="Gamma hyperprior rate: 0.02 heavy noise, 0.01 medium, 0.005 light, or auto (from the estimated noise)")
    s.add_argument("--seed", type=int, default=0, help="seed of the networks and samples (same seed, same output)")
    s.add_argument("--uncertainty", type=Path, metavar="MAP",
                   help="also write the per-pixel posterior std (mean over channels): exact float32 in a .tif, "
                        "scaled to its maximum for viewing in a .png/.jpg (the scale is printed)")

    e = sub.add_parser("estimate-noise", help="estimate the noise level of an image")
    e.add_argument("input", type=Path)
    e.add_argument("--stride", type=int, default=4, help="pixel-shuffle stride for the signal-dependent estimate (1 = none)")

    sub.add_parser("list", help="list the denoisers")

    t = sub.add_parser("train-denoiser", help="train a blind bias-free DnCNN (MMSE) on folders of clean images")
    t.add_argument("--name", required=True, help="name of the weights (file <out>/<name>.safetensors)")
    t.add_argument("--train-dir", action="append", required=True, type=Path, help="folder of clean images (repeatable)")
    t.add_argument("--out", type=Path, required=True, help="run folder: checkpoint, final weights and card (resumes if a checkpoint is there)")
    t.add_argument("--channels", type=int, choices=(1, 3), default=3)
    t.add_argument("--depth", type=int, default=20)
    t.add_argument("--width", type=int, default=64)
    t.add_argument("--patch-size", type=int, default=40)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--steps", type=int, default=10_000)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--sigma-min", type=float, default=0.0, help="lowest training noise std, 0-255 scale")
    t.add_argument("--sigma-max", type=float, default=100.0, help="highest training noise std, 0-255 scale")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-minutes", type=float, help="wall-clock budget; the learning rate decays over it")
    t.add_argument("--checkpoint-minutes", type=float, default=5.0)
    t.add_argument("--test-dir", type=Path, help="clean test images for the PSNR in the model card")
    t.add_argument("--device", default="auto")

    b = sub.add_parser("bench", help="compare methods on folders of real noisy/clean pairs (resumes; writes results.csv, summary.md, figure.png)")
    b.add_argument("--method", action="append", required=True, metavar="M",
                   help="repeatable; one of: " + ", ".join(_bench_methods()))
    b.add_argument("--dataset", action="append", required=True, type=Path, metavar="PATH",
                   help="repeatable; noisy/ + clean/ folders, PolyU/CC *_real/*_mean files, SIDD .mat pair, or FMDD raw/gt")
    b.add_argument("--out", type=Path, required=True, help="results folder (a run resumes from its results.csv)")
    b.add_argument("--limit", type=int, help="first N pairs (sorted names) of each dataset")
    b.add_argument("--crop", type=int, help="side in pixels of the centre crop of each image (default: whole images)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--figure-images", type=int, default=1, help="images per dataset shown in figure.png")
    b.add_argument("--reuse", action="append", type=Path, default=[], metavar="CSV",
                   help="results.csv of an earlier run: matching rows (method, dataset, image, crop, seed) are taken over, not recomputed")
    b.add_argument("--shard", metavar="I/N", type=_shard, help="compute only every N-th image starting at I (0-based); "
                   "run N processes with I = 0..N-1 on one --out folder to use N cores")
    b.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    return p


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N, e.g. 0/2") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= I < N")
    return i, n


def _bench_methods() -> list[str]:
    from ..bench.methods import METHODS

    return list(METHODS)


def _output_depth(requested: int | None, input_depth: int, output: Path, channels: int) -> int:
    """The input's bit depth unless asked otherwise, lowered to what the output format holds."""
    if requested is not None:
        return requested
    suffix = output.suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        return 8
    if suffix == ".png":  # PNG holds 8 or 16 bits, and Pillow writes 16 bits for gray only
        return 16 if input_depth >= 16 and channels == 1 else 8
    return input_depth


def _cmd_denoise(args) -> int:
    import torch
    from tqdm.auto import tqdm

    from .._utils import resolve_device
    from ..denoisers import load_denoiser
    from ..io import from_tensor, read_image, same_file, to_tensor, write_image
    from ..noise import estimate_sigma

    for target in filter(None, [args.output, args.uncertainty]):
        if same_file(args.input, target):
            raise DenoiselabError(f"refusing to overwrite the input {args.input}; choose another output path")
    image = read_image(args.input)
    y = to_tensor(image.array)
    channels = y.shape[1]
    depth = _output_depth(args.bit_depth, image.bit_depth, args.output, channels)
    if args.method == "scoredvi":
        return _denoise_scoredvi(args, image, y, depth)
    method = args.method
    if method == "bfdncnn-color" and channels == 1:
        method = "bfdncnn-gray"
    device = resolve_device(args.device)
    denoiser = load_denoiser(method, device=device)
    start = time.perf_counter()
    sigma = estimate_sigma(y) if args.sigma is None else torch.full((y.shape[0],), args.sigma / 255)
    planes = []
    with torch.no_grad():
        quiet = y.shape[0] == 1 and isinstance(denoiser, torch.nn.Module)  # one fast network call
        for i in tqdm(range(y.shape[0]), desc=method, unit="plane", disable=quiet):
            planes.append(denoiser(y[i : i + 1].to(device), sigma[i : i + 1].to(device)).cpu())
    x_hat = torch.cat(planes)
    seconds = time.perf_counter() - start
    out = from_tensor(x_hat)
    write_image(args.output, out, bit_depth=depth, metadata=image.metadata, protect=[args.input])
    print(f"{args.output}: {method}, sigma {float(sigma.mean()) * 255:.1f}/255, {seconds:.1f} s on {device}")
    return 0


def _beta(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise DenoiselabError(f"--beta {text!r} is neither 'auto' nor a number (e.g. 0.02, 0.01, 0.005)") from None


def _denoise_scoredvi(args, image, y, depth: int) -> int:
    import numpy as np

    from ..io import from_tensor, write_image
    from ..scoredvi import scoredvi

    res = scoredvi(y, preset=args.preset, n_iter=args.iterations, beta=_beta(args.beta), seed=args.seed,
                   device=args.device, progress=True)
    write_image(args.output, from_tensor(res.image), bit_depth=depth, metadata=image.metadata, protect=[args.input])
    rec = res.record
    delta = ", ".join(str(int(d)) for d in np.atleast_1d(rec["delta255"]))
    lam = ", ".join(f"{v:g}" for v in np.atleast_1d(rec["lam"]))
    print(f"{args.output}: scoredvi {rec['preset']}, {rec['iterations']} iterations, noise delta {delta}/255, "
          f"lambda {lam}, {rec['seconds']:.1f} s")
    if args.uncertainty:
        std = from_tensor(res.variance.clamp_min(0).sqrt().mean(dim=1, keepdim=True))
        if args.uncertainty.suffix.lower() in (".tif", ".tiff"):
            write_image(args.uncertainty, std, bit_depth=32, protect=[args.input])
            print(f"{args.uncertainty}: posterior std, float32 on the [0, 1] scale")
        else:
            scale = float(std.max()) or 1.0
            write_image(args.uncertainty, std / scale, bit_depth=8, protect=[args.input])
            print(f"{args.uncertainty}: posterior std / {scale:.4g} (white = {scale * 255:.2f} on 0-255)")
    return 0


def _cmd_estimate(args) -> int:
    from ..io import read_image, to_tensor
    from ..noise import estimate_noise_function, estimate_sigma

    y = to_tensor(read_image(args.input).array)
    pca = estimate_sigma(y, method="pca") * 255
    mad = estimate_sigma(y, method="mad") * 255
    fit = estimate_noise_function(y, stride=args.stride)
    for i in range(y.shape[0]):
        a, b = fit.params[i].mean(dim=0).tolist()
        plane = f" plane {i}:" if y.shape[0] > 1 else ""
        print(f"{args.input}:{plane} AWGN sigma {pca[i]:.2f} (PCA), {mad[i]:.2f} (wavelet MAD) on 0-255; "
              f"signal-dependent (PD stride {args.stride}): sigma^2(x) = {a:.3g}*x + {b:.3g}, "
              f"mean sigma {fit.sigma[i] * 255:.2f}, delta {int(fit.delta255[i])}")
    return 0


def _cmd_list(args) -> int:  # noqa: ARG001
    from ..denoisers import describe_denoiser, list_denoisers

    for name in list_denoisers():
        print(f"{name:28s} {describe_denoiser(name)}")
    return 0


def _cmd_train(args) -> int:
    from ..training import TrainConfig, train_denoiser

    cfg = TrainConfig(
        name=args.name, train_dirs=[str(d) for d in args.train_dir], channels=args.channels, depth=args.depth,
        width=args.width, patch_size=args.patch_size, batch_size=args.batch_size, steps=args.steps, lr=args.lr,
        sigma_min255=args.sigma_min, sigma_max255=args.sigma_max, seed=args.seed, max_minutes=args.max_minutes,
        checkpoint_minutes=args.checkpoint_minutes, test_dir=str(args.test_dir) if args.test_dir else None,
        device=args.device,
    )
    print(train_denoiser(cfg, args.out))
    return 0


def _cmd_bench(args) -> int:
    from ..bench.real import run_real_benchmark

    if args.limit is not None and args.limit < 1:
        raise DenoiselabError(f"--limit {args.limit}: give a positive number of pairs")
    paths = run_real_benchmark(args.method, args.dataset, args.out, device=args.device, limit=args.limit,
                               crop=args.crop, seed=args.seed, figure_images=args.figure_images,
                               reuse=args.reuse, shard=args.shard)
    print(paths["summary"].read_text())
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


COMMANDS = {"denoise": _cmd_denoise, "estimate-noise": _cmd_estimate, "list": _cmd_list, "train-denoiser": _cmd_train,
            "bench": _cmd_bench}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except DenoiselabError as err:
        print(f"denoiselab: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("denoiselab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""``denoiselab`` command line: denoise, report, restore, sample, estimate-noise, list, import-weights,
train-denoiser, train-svnr, bench.

Every problem the user can fix (a bad path, an unreadable image, a value out of range) is a
`DenoiselabError`: printed as one line on stderr, exit code 2, no traceback, no output file.
Anything else is a bug and keeps its traceback (exit code 1). Noise levels on the command line
are on the 0–255 scale, as people quote them; the library works on [0, 1].
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

from .._utils import tune_cpu_allocator
from ..errors import DenoiselabError
from .denoise import add_denoise_parser, add_report_parser, cmd_denoise, cmd_report
from .restore import add_restore_parser, add_sample_parser, cmd_restore, cmd_sample


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="denoiselab", description="Single-image denoising on trained MMSE denoisers.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add_denoise_parser(sub)
    add_report_parser(sub)
    add_restore_parser(sub)
    add_sample_parser(sub)

    e = sub.add_parser("estimate-noise", help="estimate the noise level of an image")
    e.add_argument("input", type=Path)
    e.add_argument("--stride", type=int, default=4, help="pixel-shuffle stride for the signal-dependent estimate (1 = none)")

    sub.add_parser("list", help="list the denoisers")

    w = sub.add_parser("import-weights", help="convert a published denoiser checkpoint into safetensors + JSON card",
                       description="Reads the checkpoint with torch.load(weights_only=True), allowing only the classes its "
                                   "format needs; a file that would run code is refused. Load the result by path, or by "
                                   "name from a folder listed in DENOISELAB_WEIGHTS.")
    w.add_argument("checkpoint", type=Path, help="the published .pt/.pth file")
    w.add_argument("-o", "--output", type=Path, required=True, metavar="NAME.safetensors",
                   help="where to write the weights; the card goes beside it as NAME.json")
    w.add_argument("--format", choices=("auto", "bfcnn", "mohan2020"), default="auto",
                   help="bfcnn: Kadkhodaie & Simoncelli's / ScoreDVI's BF-CNN state dict; mohan2020: Mohan et al.'s "
                        "bias-free DnCNN or UNet checkpoint; auto: tell them apart by their keys")
    w.add_argument("--source", help="repository @ commit : path of the original, for the card")
    w.add_argument("--paper", help="the paper to cite, for the card")
    w.add_argument("--licence", help="licence name, for the card (a LICENSE file beside the checkpoint is copied in too)")
    w.add_argument("--training-data", help="training data as the source states it, for the card")

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
    t.add_argument("--teacher", help="distil: regress onto this trained denoiser's output (name or .safetensors path), "
                                     "e.g. bfdncnn-color-cbsd300")
    t.add_argument("--teacher-weight", type=float, default=1.0,
                   help="target = w·teacher(y) + (1 − w)·clean, w in [0, 1] (default 1: the teacher alone)")

    v = sub.add_parser("train-svnr", help="train an SVNR diffusion denoiser (or its ablation / the conditioned baseline) "
                                          "on folders of clean sRGB images")
    v.add_argument("--name", required=True, help="name of the weights (file <out>/<name>.safetensors)")
    v.add_argument("--kind", required=True, choices=("svnr", "svnr-uncorrelated", "conditional"),
                   help="svnr: correlation-aware pairs (Eq. 11); svnr-uncorrelated: the ablation without it; "
                        "conditional: the SR3-style baseline started from pure noise")
    v.add_argument("--parameterization", choices=("eps", "edm"), default="eps",
                   help="eps: the UNet predicts the noise (SVNR, SR3); edm: Karras et al.'s preconditioning and loss "
                        "weight around it (what the conditional baseline needs to learn on a small budget)")
    v.add_argument("--loss-weighting", choices=("natural", "x0"), default="natural",
                   help="natural: the parameterization's own loss (eps: MSE on the noise; edm: MSE on its output); "
                        "x0: MSE on the clean estimate")
    v.add_argument("--time-sampling", choices=("uniform", "lognormal"), default="uniform",
                   help="conditional kind: training times uniform over 1..T (SR3) or EDM's log-normal noise levels")
    v.add_argument("--time-map", choices=("estimated", "true"), default="estimated",
                   help="svnr kinds: training time maps from the variance estimated on the noisy image, as at test "
                        "time (default), or from the clean image's true variance")
    v.add_argument("--schedule", choices=("svnr", "vp"), default="svnr",
                   help="svnr: gamma_t = 5(1 - alpha_bar_t), SVNR's chain; vp: gamma_t = "
                        "(1 - alpha_bar_t)/alpha_bar_t, DDPM's chain in VE form, pure noise at T (for the baseline)")
    v.add_argument("--train-dir", action="append", required=True, type=Path, help="folder of clean images (repeatable)")
    v.add_argument("--val-dir", type=Path, help="clean images whose centre crops give the PSNR in the model card")
    v.add_argument("--out", type=Path, required=True, help="run folder: checkpoint, final weights and card (resumes if a checkpoint is there)")
    v.add_argument("--base-width", type=int, default=32, help="UNet channels at full resolution")
    v.add_argument("--levels", type=int, default=2, help="UNet downsamplings")
    v.add_argument("--patch-size", type=int, default=64)
    v.add_argument("--batch-size", type=int, default=16)
    v.add_argument("--steps", type=int, default=100_000)
    v.add_argument("--lr", type=float, default=2e-4)
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--max-minutes", type=float, help="wall-clock budget; the learning rate decays over it")
    v.add_argument("--checkpoint-every", type=int, default=1000, help="steps between checkpoints")
    v.add_argument("--amp", choices=("bf16", "fp16", "none"), default="bf16", help="mixed precision on CUDA (ignored on the CPU)")
    v.add_argument("--device", default="auto")

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


def _cmd_estimate(args) -> int:
    from ..io import read_image, to_tensor
    from ..noise import estimate_noise_function, estimate_real_noise, estimate_sigma

    y = to_tensor(read_image(args.input).array)
    pca = estimate_sigma(y, method="pca") * 255
    mad = estimate_sigma(y, method="mad") * 255
    fit = estimate_noise_function(y, stride=args.stride)
    auto = estimate_real_noise(y)  # what every ``auto`` (--sigma auto, --noise auto, bench) uses
    for i in range(y.shape[0]):
        a, b = fit.params[i].mean(dim=0).tolist()
        plane = f" plane {i}:" if y.shape[0] > 1 else ""
        kind = "correlated (camera)" if bool(auto.correlated[i]) else "white"
        gain = float(auto.shuffle_gain[i])  # NaN: not measured (the spectrum alone said white)
        gain_text = "" if math.isnan(gain) else f", stride-4/stride-1 std {gain:.2f}"
        print(f"{args.input}:{plane} auto: sigma {auto.sigma255[i]:.2f} on 0-255, {kind} noise "
              f"(spectrum correlation {float(auto.correlation[i]):.2f}{gain_text}), stride {int(auto.stride[i])}")
        print(f"{args.input}:{plane} AWGN sigma {pca[i]:.2f} (PCA), {mad[i]:.2f} (wavelet MAD) on 0-255; "
              f"signal-dependent (PD stride {args.stride}): sigma^2(x) = {a:.3g}*x + {b:.3g}, "
              f"mean sigma {fit.sigma[i] * 255:.2f}, delta {int(fit.delta255[i])}")
    return 0


def _cmd_import_weights(args) -> int:
    from ..denoisers.importing import import_weights
    from ..denoisers.registry import describe_denoiser

    out = import_weights(args.checkpoint, args.output, fmt=args.format, source=args.source, paper=args.paper,
                         licence=args.licence, training_data=args.training_data)
    print(f"{out}: {describe_denoiser(str(out))}")
    return 0


def _cmd_list(args) -> int:  # noqa: ARG001
    from ..denoisers import describe_denoiser, list_denoisers

    for name in list_denoisers():
        print(f"{name:28s} {describe_denoiser(name)}")
    return 0


def _cmd_train_svnr(args) -> int:
    from ..svnr.train import SVNRConfig, train_svnr

    cfg = SVNRConfig(name=args.name, kind=args.kind, parameterization=args.parameterization,
                     loss_weighting=args.loss_weighting, time_sampling=args.time_sampling, time_map=args.time_map,
                     schedule_form=args.schedule, lam=5.0 if args.schedule == "svnr" else 1.0,
                     train_dirs=[str(d) for d in args.train_dir],
                     val_dir=str(args.val_dir) if args.val_dir else None, base_width=args.base_width,
                     levels=args.levels, patch_size=args.patch_size, batch_size=args.batch_size, steps=args.steps,
                     lr=args.lr, lr_min=min(1e-6, args.lr), seed=args.seed,
                     max_minutes=args.max_minutes, checkpoint_every=args.checkpoint_every, amp=args.amp,
                     device=args.device)
    print(train_svnr(cfg, args.out))
    return 0


def _cmd_train(args) -> int:
    from ..training import TrainConfig, train_denoiser

    cfg = TrainConfig(
        name=args.name, train_dirs=[str(d) for d in args.train_dir], channels=args.channels, depth=args.depth,
        width=args.width, patch_size=args.patch_size, batch_size=args.batch_size, steps=args.steps, lr=args.lr,
        sigma_min255=args.sigma_min, sigma_max255=args.sigma_max, seed=args.seed, max_minutes=args.max_minutes,
        checkpoint_minutes=args.checkpoint_minutes, test_dir=str(args.test_dir) if args.test_dir else None,
        device=args.device, teacher=args.teacher, teacher_weight=args.teacher_weight,
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


COMMANDS = {"denoise": cmd_denoise, "report": cmd_report, "estimate-noise": _cmd_estimate, "list": _cmd_list,
            "import-weights": _cmd_import_weights, "train-denoiser": _cmd_train, "train-svnr": _cmd_train_svnr,
            "bench": _cmd_bench, "restore": cmd_restore, "sample": cmd_sample}


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ARG001
    """Print a warning as one line, like errors (no source file, line number or code)."""
    text = " ".join(str(message).split())
    print(f"denoiselab: warning: {text}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    """Run the command line with `argv` (default: ``sys.argv[1:]``) and return the exit code.

    0: done; 2: a problem the user can fix (one line on stderr); 1: a bug (traceback), or a
    batch in which an image failed on a bug; 130: interrupted. Usage errors exit through
    argparse with code 2.
    """
    args = _parser().parse_args(argv)
    tune_cpu_allocator()  # ~1.5x faster CPU inference, same results (see there)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return COMMANDS[args.command](args)
        except DenoiselabError as err:
            print(f"denoiselab: error: {' '.join(str(err).split())}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("denoiselab: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())

"""The ``denoise`` and ``report`` commands: a thin layer over :mod:`denoiselab.batch` and :mod:`denoiselab.report`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..errors import DenoiselabError

SIGMA_HELP = ("noise std on the 0-255 scale (e.g. 25: white noise), or 'auto' to estimate it from the image "
              "(where the noise is spatially correlated, as in camera photos, bm3d is told its estimated "
              "covariance and nlm, tv and wavelet run on pixel-shuffled sub-images)")

DENOISE_DESCRIPTION = """\
One input file and -o FILE: denoise that image into FILE (format from FILE's extension).

A batch - several inputs, a folder, a glob pattern, or -o an existing folder - writes into the
folder -o (created if missing):
  * one output per input, named like the input (same stem) with the input's extension in lower
    case (.png, .jpg/.jpeg, .tif/.tiff; inputs with another extension get .png), or the one
    --format asks for; two inputs with one output name, or an output that is an input, stop
    the batch before it starts;
  * OUT/manifest.jsonl: one JSON line per image, written as each finishes: input, output,
    method, settings, seconds, estimated noise, status (ok, or error with its one-line message).
Run the same command again and it resumes: images whose last manifest line is ok for the same
output and options are skipped, failed ones are tried again. A bad image is recorded and the
batch goes on; the exit code is 0 when every image is done, 2 when an image failed (1 when the
failure was a bug). Folders are not searched recursively; quote patterns ('raw/**/*.tif') so
that denoiselab, not the shell, expands them.

The output keeps the input's bit depth where the format holds it (JPEG is 8-bit; PNG is 16-bit
for gray only) unless --bit-depth says otherwise; every file is written atomically and never
over an input.

--method svnr is a diffusion denoiser for shot + read noise in RGB photos. It needs the noise:
--read-noise R --shot-noise S, stds on the LINEAR [0, 1] scale (a pixel of linear intensity x
has noise std sqrt(R^2 + S^2 x); typical R 0.001-0.2, S 0.0001-0.05), or --noise auto to
estimate them from the image (a rough estimate; printed). --samples K averages K posterior
samples (--uncertainty then writes their std, K >= 2); time and memory grow with K. The number
of network calls is set by the noise (1 for R 0.01/S 0.02, 12 for 0.1/0.05, 25 for 0.2/0.05)
unless --steps N sets it: every pixel then walks its own noise level down in N equal parts.
"""


def sigma255(text: str) -> float | None:
    """argparse type of ``--sigma``: 'auto' -> None, else a number in [0, 255]."""
    if text == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither 'auto' nor a number") from None
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError(f"{value} is outside 0..255 (sigma is on the 0-255 scale)")
    return value


def _beta(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise DenoiselabError(f"--beta {text!r} is neither 'auto' nor a number (e.g. 0.02, 0.01, 0.005)") from None


def add_method_options(p: argparse.ArgumentParser) -> None:
    """The options shared by ``denoise`` and ``report``: method, noise level, device, ScoreDVI, SVNR, tiling."""
    p.add_argument("--method", default="scoredvi",
                   help="scoredvi (real-world noise, the default), svnr (diffusion, shot + read noise, RGB), a Gaussian "
                        "denoiser from `denoiselab list` (bfdncnn-color is swapped for bfdncnn-gray on gray images) or "
                        "a .safetensors file with its JSON card beside it")
    p.add_argument("--sigma", type=sigma255, default="auto",
                   help=SIGMA_HELP + "; blind networks and scoredvi ignore it, svnr takes --read-noise/--shot-noise")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda or cuda:N")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="arithmetic of the networks: fp32 exact; bf16 faster where the hardware has it natively, "
                        "0.03-0.1 dB lower; auto picks bf16 only where native and within 0.02 dB (default; float32 today)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of scoredvi's networks and samples and of svnr's sampler (same seed, same output)")
    s = p.add_argument_group("scoredvi")
    s.add_argument("--preset", default="fast", choices=("fast", "paper"),
                   help="fast: CPU-sized (about 45 s for 256x256 RGB on 2 cores); paper: the published setting "
                        "(400 iterations, GPU advised)")
    s.add_argument("--iterations", type=int, help="override the preset's iteration count")
    s.add_argument("--beta", default="auto", help="Gamma hyperprior rate: 0.02 heavy noise, 0.01 medium, "
                                                  "0.005 light, or auto (the preset's rule: fast 0.02; paper from the estimated noise)")
    v = p.add_argument_group("svnr (noise on the LINEAR [0, 1] scale: std sqrt(R^2 + S^2 x) at linear intensity x)")
    v.add_argument("--read-noise", type=float, metavar="R",
                   help="read-noise std R, 0..1 (typical 0.001-0.2); with --shot-noise")
    v.add_argument("--shot-noise", type=float, metavar="S",
                   help="shot-noise coefficient S, 0..1 (typical 0.0001-0.05); with --read-noise")
    v.add_argument("--noise", choices=("auto",),
                   help="auto: estimate R and S from the image instead (rough; printed)")
    v.add_argument("--samples", type=int, default=1, metavar="K",
                   help="posterior samples to average (default 1); K >= 2 also gives --uncertainty; time and memory "
                        "grow with K")
    v.add_argument("--steps", type=int, metavar="N",
                   help="network calls per sample (default: set by the noise, 1 to 25 for typical noise); fewer is "
                        "faster")
    v.add_argument("--svnr-weights", metavar="FILE.safetensors",
                   help="SVNR weights of kind svnr with their JSON card (default: the shipped model)")
    t = p.add_argument_group("memory")
    t.add_argument("--tile", type=int, metavar="PX", help="denoise in overlapping square tiles of this side "
                   "(default: chosen from --max-memory-mb; whole image when it fits)")
    t.add_argument("--overlap", type=int, default=32, metavar="PX", help="tile overlap in pixels (default 32)")
    t.add_argument("--max-memory-mb", type=float, metavar="MB", help="memory budget of one image (default 2048)")


def add_denoise_parser(sub) -> None:
    """Add the ``denoise`` subcommand to `sub` (argparse subparsers)."""
    d = sub.add_parser("denoise", help="denoise images: one file, or a batch of files/folders/globs into a folder",
                       description=DENOISE_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="noisy image (PNG, JPEG, TIFF; 8/16-bit; gray/RGB; TIFF stacks), folder, or quoted glob pattern; "
                        "each may be a URL such as 's3://bucket/raw/*.tif' (pip install 'denoiselab[cloud]')")
    d.add_argument("-o", "--output", required=True,
                   help="the output file (one input) or the output folder (a batch; a URL such as s3://bucket/out/); "
                        "never an input")
    add_method_options(d)
    d.add_argument("--bit-depth", type=int, choices=(8, 16, 32), help="bits per sample of the output (default: the input's)")
    d.add_argument("--uncertainty", metavar="MAP",
                   help="scoredvi, or svnr with --samples 2 or more: also write the per-pixel posterior std (svnr: the std "
                        "of its samples; mean over channels): exact float32 in a .tif, "
                        "scaled to its maximum for viewing in a .png/.jpg (the scale is printed). In a batch MAP is a "
                        "folder (created if missing; may be the output folder) of float32 <name>_std.tif files")
    b = d.add_argument_group("batch")
    b.add_argument("--format", choices=("png", "jpg", "tif"), help="format of a batch's outputs (default: each input's own)")
    b.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: one image after the other in this process; ray: spread the images over a Ray cluster "
                        "(pip install 'denoiselab[ray]'; see the README)")
    b.add_argument("--ray-address", metavar="ADDR", help="Ray cluster to join: auto, HOST:6379 or ray://HOST:10001 "
                   "(default: $RAY_ADDRESS, else a new Ray instance on this machine)")
    b.add_argument("--gpus-per-task", type=float, metavar="N", help="GPUs per image with ray "
                   "(default: 1 if the cluster has GPUs and --device is not cpu, else 0)")
    b.add_argument("--cpus-per-task", type=float, default=1.0, metavar="N",
                   help="CPU cores per image with ray (also its torch threads; default 1)")
    b.add_argument("--ray-files", choices=("auto", "shared", "ship"), default="auto",
                   help="how ray workers reach LOCAL paths of this machine: shared (same paths on every node, e.g. NFS), "
                        "ship (inputs and outputs travel with the tasks through Ray's object store), auto (ship when "
                        "the cluster has another machine; default). URLs are always read and written by the workers")
    r = d.add_argument_group("report (one input only)")
    r.add_argument("--report", type=Path, metavar="PAGE.html",
                   help="also write a self-contained HTML report and its PNG figure (PAGE_figure.png)")
    r.add_argument("--figure", type=Path, metavar="FIG.png", help="where the report's figure goes")
    r.add_argument("--reference", type=Path, metavar="CLEAN",
                   help="clean image of the same scene: PSNR/SSIM printed and in the report")


def add_report_parser(sub) -> None:
    """Add the ``report`` subcommand to `sub` (argparse subparsers)."""
    r = sub.add_parser(
        "report", help="denoise one image and write a self-contained HTML report with a PNG figure",
        description="Denoise INPUT (or take an already denoised image with --denoised) and write an HTML page with "
                    "everything embedded (images as base64 PNG, no external links) and a PNG figure: noisy, denoised, "
                    "the posterior std with a colour bar (ScoreDVI, or svnr with --samples 2 or more; other methods have "
                    "none), |noisy - denoised|, zoomed "
                    "crops, and the numbers (method, estimated noise, seconds, PSNR/SSIM with --reference).")
    r.add_argument("input", type=Path, help="noisy image")
    r.add_argument("-o", "--output", type=Path, required=True, metavar="PAGE.html", help="the HTML report")
    r.add_argument("--figure", type=Path, metavar="FIG.png", help="the PNG figure (default: PAGE_figure.png)")
    r.add_argument("--reference", type=Path, metavar="CLEAN", help="clean image of the same scene, for PSNR/SSIM")
    r.add_argument("--denoised", type=Path, metavar="IMAGE", help="an image already denoised from INPUT: report on it "
                   "instead of denoising again (--method then only labels it)")
    r.add_argument("--std", type=Path, metavar="MAP.tif", help="with --denoised: the float32 posterior std map written "
                   "by `denoise --uncertainty MAP.tif`")
    add_method_options(r)


def _svnr_noise(args) -> tuple[float | None, float | None]:
    """``--read-noise``/``--shot-noise``/``--noise auto`` as (read, shot); (None, None) is auto."""
    given = args.read_noise is not None or args.shot_noise is not None
    if args.method != "svnr":
        if args.noise:
            raise DenoiselabError(f"--noise auto goes with --method svnr (for {args.method}, --sigma auto)")
        return args.read_noise, args.shot_noise  # refused by check_options, naming the flags
    if args.noise == "auto":
        if given:
            raise DenoiselabError("--noise auto estimates the read and shot noise; leave out --read-noise/--shot-noise, "
                                  "or give both and leave out --noise auto")
        return None, None
    if args.read_noise is None or args.shot_noise is None:
        raise DenoiselabError("svnr needs the noise: --read-noise R --shot-noise S (stds on the linear [0, 1] scale, "
                              "e.g. 0.05 and 0.02), or --noise auto to estimate them from the image")
    return args.read_noise, args.shot_noise


def _options(args, *, check_device: bool = True):
    from ..batch.job import DenoiseOptions, check_options

    read, shot = _svnr_noise(args)
    options = DenoiseOptions(method=args.method, sigma255=args.sigma, preset=args.preset, iterations=args.iterations,
                             beta=_beta(args.beta), seed=args.seed, device=args.device, precision=args.precision, tile=args.tile,
                             overlap=args.overlap, max_memory_mb=args.max_memory_mb,
                             bit_depth=getattr(args, "bit_depth", None), read_noise=read, shot_noise=shot,
                             samples=args.samples, steps=args.steps, svnr_weights=args.svnr_weights)
    check_options(options, check_device=check_device)
    return options


def _progress() -> bool:
    """Progress bars only on a terminal: in logs and pipes they are noise (and errors stay one line)."""
    return sys.stderr.isatty()


def describe(record: dict) -> str:
    """One line about a finished image (what ``denoise`` prints)."""
    run, noise = record.get("run", {}), record.get("noise") or {}
    if record["method"] == "scoredvi":
        delta = ", ".join(str(int(d)) for d in noise.get("delta255", []))
        lam = ", ".join(f"{v:g}" for v in noise.get("lam", []))
        return (f"{record['output']}: scoredvi {run.get('preset')}, {run.get('iterations')} iterations, "
                f"noise delta {delta}/255, lambda {lam}, {record['seconds']:.1f} s")
    if record["method"] == "svnr":
        def how(stride: int, k: float) -> str:  # the two adaptations of svnr.denoise, when they acted
            said = ([f"correlated, on stride-{stride} sub-images"] if stride > 1 else []) + \
                   ([f"darkened x{k:.3g} into the trained shot range"] if k < 1 else [])
            return f" ({'; '.join(said)})" if said else ""

        n = len(noise.get("read", []))
        pairs = "; ".join(f"read {r:.4g}, shot {s:.4g}{how(int(st), k)}" for r, s, st, k in
                          zip(noise.get("read", []), noise.get("shot", []), noise.get("stride", [1] * n),
                              noise.get("exposure", [1.0] * n)))
        k = run.get("samples")
        return (f"{record['output']}: svnr, {k} sample{'' if k == 1 else 's'}, {run.get('calls')} network calls, "
                f"noise {run.get('noise_source')} (linear [0, 1] scale): {pairs}, {record['seconds']:.1f} s on "
                f"{run.get('device')}")
    sigmas = noise.get("sigma255", [])
    sigma = f", sigma {sum(sigmas) / len(sigmas):.1f}/255" if sigmas else ""
    if noise.get("correlated_noise"):  # how the method met correlated noise (BM3D: its covariance; others: PD)
        sigma += f" (correlated noise: {noise['correlated_noise']})"
    return f"{record['output']}: {record['method']}{sigma}, {record['seconds']:.1f} s on {run.get('device')}"


def _read_same_size(path: Path, like: np.ndarray, what: str) -> np.ndarray:
    from ..io import read_image

    array = read_image(path).array
    if array.shape[:-1] != like.shape[:-1]:
        raise DenoiselabError(
            f"the {what} {path} is {'x'.join(map(str, array.shape))} but the input is {'x'.join(map(str, like.shape))}; "
            f"expected the same size"
        )
    return array


def cmd_denoise(args) -> int:
    """``denoiselab denoise``: one image, or a batch (see DENOISE_DESCRIPTION)."""
    from ..batch import is_batch

    if is_batch(args.inputs, args.output):
        return _denoise_batch(args)
    return _denoise_one(args)


def _denoise_one(args) -> int:
    from ..batch import denoise_file
    from ..batch.files import check_output
    from ..batch.storage import as_location, check_reachable, is_url, remove, staged_input
    from ..io import read_image
    from ..report import compare_to_reference, default_figure_path

    for flag, value in (("--format", args.format), ("--executor ray", args.executor == "ray" or None)):
        if value:
            raise DenoiselabError(f"{flag} is for batches (several inputs, a folder or a pattern, and -o a folder); "
                                  "with one input, -o's extension sets the format")
    if args.figure and not args.report:
        raise DenoiselabError("--figure goes with --report PAGE.html")
    source = as_location(args.inputs[0])
    options = _options(args)
    uncertainty = args.uncertainty
    protect = [source]
    check_output(as_location(args.output), protect=protect)
    if uncertainty is not None:
        check_output(as_location(uncertainty), protect=protect, what="uncertainty map")
    for url in filter(is_url, (source, as_location(args.output), *([as_location(uncertainty)] if uncertainty else []))):
        check_reachable(url, "bucket")  # a missing bucket, a denied key, no endpoint: one line, before any work
    figure = None
    if args.report:
        figure = args.figure or default_figure_path(args.report)
        _check_report_paths(args.report, figure, protect=[p for p in (source, as_location(args.output),
                                                                      *filter(None, [uncertainty])) if not is_url(p)])
    reference = None
    if args.reference is not None:  # read before the (possibly long) denoising, so a bad reference fails first
        with staged_input(source) as local_source:
            reference = _read_same_size(args.reference, read_image(local_source).array, "reference")
    done = denoise_file(source, args.output, options, uncertainty=uncertainty, progress=_progress())
    record = done.record
    written = [record["output"]]
    if record.get("uncertainty"):
        written.append(record["uncertainty"])
    print(describe(record))
    if record.get("uncertainty"):
        scale = record["uncertainty_scale"]
        what = "posterior std" if record["method"] != "svnr" else f"std of the {record['run']['samples']} posterior samples"
        if str(record["uncertainty"]).lower().endswith((".tif", ".tiff")):
            print(f"{record['uncertainty']}: {what}, float32 on the [0, 1] scale")
        else:
            print(f"{record['uncertainty']}: {what} / {scale:.4g} (white = {scale * 255:.2f} on 0-255)")
    noisy, result = done.image.array, done.result
    if reference is not None:
        scores = compare_to_reference(noisy, result.image, reference)
        print(f"PSNR {scores['psnr_noisy']:.2f} -> {scores['psnr_denoised']:.2f} dB, "
              f"SSIM {scores['ssim_noisy']:.4f} -> {scores['ssim_denoised']:.4f} (against {args.reference})")
    if args.report:
        try:
            paths = _write_report(args.report, figure, source, noisy, result, reference,
                                  protect=[p for p in (source, *written) if not is_url(p)])
        except BaseException:
            for path in written:  # the outputs of one command: all or none
                remove(path)
            raise
        print(f"{paths['html']}: report (figure {paths['figure']})")
    return 0


def _check_report_paths(page: Path, figure: Path, *, protect) -> None:
    from ..batch.files import check_folder_writable
    from ..io import same_file

    if page.suffix.lower() not in (".html", ".htm"):
        raise DenoiselabError(f"the report {page} must end in .html (it is a web page); e.g. {page.with_suffix('.html')}")
    if figure.suffix.lower() != ".png":
        raise DenoiselabError(f"the report figure {figure} must end in .png")
    for path in (page, figure):
        check_folder_writable(path)
        for other in protect:
            if same_file(path, other):
                raise DenoiselabError(f"the report file {path} would overwrite {other}; choose another path")


def _write_report(page: Path, figure: Path, source: Path, noisy, result, reference, *, protect):
    from ..report import write_report

    settings = {"method": result.method, **result.settings}
    return write_report(page, noisy, result.image, uncertainty=result.uncertainty, reference=reference,
                        method=result.method, noise=result.noise, seconds=result.seconds, settings=settings,
                        source=str(source), figure_path=figure, protect=protect)


def _denoise_batch(args) -> int:
    from ..batch import run_batch

    for flag in ("report", "reference", "figure"):
        if getattr(args, flag):
            raise DenoiselabError(f"--{flag} takes one input; for a batch, run `denoiselab report` on the images "
                                  "you want to look at")
    options = _options(args, check_device=args.executor == "local")
    executor_options = {}
    if args.executor == "ray":
        executor_options = {"address": args.ray_address, "gpus_per_task": args.gpus_per_task,
                            "cpus_per_task": args.cpus_per_task, "files": args.ray_files}
    elif args.ray_address or args.gpus_per_task is not None or args.ray_files != "auto":
        raise DenoiselabError("--ray-address, --gpus-per-task and --ray-files go with --executor ray")

    def on_plan(total: int, skipped: int) -> None:
        already = f", {skipped} already done (skipped)" if skipped else ""
        print(f"{total} images{already} -> {args.output}", flush=True)

    def on_record(record: dict, index: int, count: int) -> None:
        if record["status"] == "ok":
            print(f"[{index}/{count}] {describe(record)}", flush=True)
        else:
            message = record["message"]
            where = "" if record["input"] in message else f"{record['input']}: "
            print(f"denoiselab: error: {where}{message}", file=sys.stderr, flush=True)

    summary = run_batch(args.inputs, args.output, options, fmt=args.format, uncertainty_dir=args.uncertainty,
                        executor=args.executor, executor_options=executor_options, on_record=on_record,
                        on_plan=on_plan)
    print(f"{summary.done} denoised, {summary.skipped} already done, {len(summary.failed)} failed; "
          f"manifest {summary.manifest}")
    if summary.failed:
        print(f"denoiselab: error: {len(summary.failed)} of {summary.total} images failed (status \"error\" in "
              f"{summary.manifest}); fix them and run the same command again to redo only those",
              file=sys.stderr)
        return 1 if summary.has_bug else 2
    return 0


def cmd_report(args) -> int:
    """``denoiselab report``: denoise one image (or take --denoised) and write the HTML report and figure."""
    from ..io import read_image
    from ..report import default_figure_path

    source = args.input
    figure = args.figure or default_figure_path(args.output)
    if args.std is not None and args.denoised is None:
        raise DenoiselabError("--std goes with --denoised (a map written by an earlier `denoise --uncertainty`)")
    _check_report_paths(args.output, figure, protect=[p for p in (source, args.denoised, args.reference, args.std) if p])
    noisy = read_image(source).array
    reference = _read_same_size(args.reference, noisy, "reference") if args.reference is not None else None
    if args.denoised is not None:
        denoised = _read_same_size(args.denoised, noisy, "denoised image")
        std = None
        if args.std is not None:
            if args.std.suffix.lower() not in (".tif", ".tiff"):
                raise DenoiselabError(f"--std {args.std}: give the float32 .tif map (a .png map is scaled for viewing)")
            std = _read_same_size(args.std, noisy, "std map")
        from ..report import write_report

        paths = write_report(args.output, noisy, denoised, uncertainty=std, reference=reference,
                             method=f"{args.method} (from {args.denoised.name})", source=str(source),
                             figure_path=figure, protect=[source, args.denoised])
    else:
        from ..api import denoise
        from ..batch.job import api_options

        options = _options(args)
        result = denoise(noisy, options.method, **api_options(options), return_details=True, progress=_progress())
        paths = _write_report(args.output, figure, source, noisy, result, reference, protect=[source])
    print(f"{paths['html']}: report (figure {paths['figure']})")
    return 0


__all__ = ["add_denoise_parser", "add_report_parser", "cmd_denoise", "cmd_report", "describe", "sigma255"]

"""The ``restore`` and ``sample`` commands: a denoiser as the engine of inverse problems and of synthesis.

``restore`` solves ``y = A x + σ n`` for one image: `A` is built from the task options
(:mod:`denoiselab.physics`), the method is a PnP/RED solver (:mod:`denoiselab.optim`) or a
posterior sampler (:mod:`denoiselab.sampling`), and the prior is any denoiser by name. With
``--simulate CLEAN`` it first makes the measurement from a clean image (written next to the
output), restores it, and prints PSNR/SSIM against the clean image. ``sample`` draws images from
the prior implicit in a denoiser.

Every problem the user can fix is a `DenoiselabError` (one stderr line, exit code 2, no output):
task, method, kernel and factor are checked here rather than by argparse ``choices``, whose
errors print the usage as well. Noise levels are on the 0–255 scale, as in ``denoise``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..denoisers import is_blind, load_denoiser, load_denoiser_for
from ..errors import DenoiselabError

__all__ = ["add_restore_parser", "add_sample_parser", "cmd_restore", "cmd_sample", "Problem", "parse_problem",
           "check_method", "run_method"]

TASKS = ("deblur", "sr", "inpaint", "denoise")
METHODS = ("pnp-hqs", "pnp-admm", "red", "ddrm", "snips", "langevin")
SAMPLERS = ("langevin", "ks")
SR_FACTORS = (2, 3, 4)
BOUNDARIES = ("circular", "replicate")

#: Methods that work in the SVD coordinates of the operator (physics.DecomposableOperator).
SVD_METHODS = ("ddrm", "snips")
#: The tasks whose operator has an SVD, as the error message names them.
SVD_TASKS = "sr --kernel box, inpaint, denoise"
#: Iterations when --steps is not given (None: the sampler's own schedule, see _levels).
OPTIMISERS = ("pnp-hqs", "pnp-admm", "red")  # they choose the denoiser's level; the samplers' states carry it
BLIND_PRIOR = ("auto", "inject", "as-is")
# auto: inject for PnP, as is for RED. Measured (benchmarks/results/restoration, 192² crops):
# injection gives PnP-HQS +0.3/+0.8 dB on Gaussian deblurring (CBSD68/Set12) and +2.3/+0.3 dB on
# inpainting, but -0.3/-0.4 dB on x3 SR; RED-FP (σ_f 3-4/255) is 0-0.2 dB better without it.
INJECT_BY_DEFAULT = ("pnp-hqs", "pnp-admm")
# red: 10 fixed-point steps; measured with our priors, PSNR peaks at 5-10 steps and then drifts
# down (colour blur: 37.8 dB at 5, 34.7 at 50), see benchmarks/results/restoration.
DEFAULT_STEPS = {"pnp-hqs": 8, "pnp-admm": 20, "red": 10, "ddrm": 20, "snips": None, "langevin": None}

# The annealed samplers' step (NCSNv2's CelebA setting, the library default) and last level; _levels
# builds shorter schedules that end at the same level, so the step size per level is unchanged.
_NCSN_STEP_SCALE = 3.3e-6
_LAST_LEVEL = 0.01

RESTORE_DESCRIPTION = """\
Restore one image from a degraded measurement y = A x + noise, with a denoiser as the prior.

IN is the measurement; the task options describe the operator A that produced it:
  deblur   --kernel gaussian:STD | uniform:SIZE (default gaussian:1.6), --boundary circular|replicate
  sr       --factor 2|3|4, --kernel bicubic|box (default bicubic); OUT is factor x larger than IN
  inpaint  --mask MASK.png, white = observed, black = lost (same size as IN)
  denoise  A = identity (the only task for --method langevin)
Methods: pnp-hqs (DPIR), pnp-admm, red (fixed point), ddrm and snips (posterior samplers; they need
A's SVD: sr --kernel box, inpaint, denoise), langevin (annealed Langevin on p(x | y), denoise only).

--simulate CLEAN instead of IN: apply A and Gaussian noise of --sigma (seeded) to the clean image,
write the measurement to OUT_measurement.EXT (and a random mask of --missing lost pixels to
OUT_mask.png when inpainting without --mask), restore that file exactly as `restore
OUT_measurement.EXT` would, and print PSNR/SSIM of the measurement (or, for sr, of its upsampled
initial estimate) and of the result against CLEAN.
"""


@dataclass(frozen=True)
class Problem:
    """The forward model of ``restore``, as given on the command line (validated by :func:`parse_problem`).

    Attributes
    ----------
    task : {"deblur", "sr", "inpaint", "denoise"}
    kernel : str or None
        deblur: ``"gaussian:STD"`` or ``"uniform:SIZE"`` (pixels); sr: ``"bicubic"`` or ``"box"``.
    boundary : {"circular", "replicate"} or None
        deblur only.
    factor : int or None
        sr only: 2, 3 or 4.
    """

    task: str
    kernel: str | None = None
    boundary: str | None = None
    factor: int | None = None

    def describe(self) -> str:
        """A short label such as ``"deblur gaussian:1.6 circular"`` or ``"sr x2 bicubic"``."""
        if self.task == "deblur":
            return f"deblur {self.kernel} {self.boundary}"
        if self.task == "sr":
            return f"sr x{self.factor} {self.kernel}"
        return self.task

    @property
    def has_svd(self) -> bool:
        """Whether the operator is a DecomposableOperator (what ddrm and snips need)."""
        return self.task in ("inpaint", "denoise") or (self.task == "sr" and self.kernel == "box")

    def operator(self, mask: Tensor | None = None):
        """Build the ``denoiselab.physics`` operator; `mask` (1, 1, H, W), 1 = observed, for inpaint."""
        from ..physics import BicubicDownsample, Blur, BoxDownsample, Identity, Inpainting

        if self.task == "deblur":
            kind, value = self.kernel.split(":")
            if kind == "gaussian":
                return Blur.gaussian(float(value), boundary=self.boundary)
            return Blur.uniform(int(value), boundary=self.boundary)
        if self.task == "sr":
            return BoxDownsample(self.factor) if self.kernel == "box" else BicubicDownsample(self.factor)
        if self.task == "inpaint":
            return Inpainting(mask)
        return Identity()

    def image_size(self, measurement_hw: tuple[int, int]) -> tuple[int, int]:
        """Height and width of the image that a measurement of `measurement_hw` pixels comes from."""
        f = self.factor if self.task == "sr" else 1
        return measurement_hw[0] * f, measurement_hw[1] * f


def parse_problem(task: str, *, kernel: str | None = None, boundary: str | None = None,
                  factor: int | None = None, has_mask: bool = False) -> Problem:
    """Check the task and its options and fill in the defaults.

    Parameters
    ----------
    task : str
        One of ``TASKS``.
    kernel, boundary, factor : optional
        The command-line options; each must belong to the task it is given with.
    has_mask : bool, optional
        Whether an inpainting mask is given (--mask) or will be drawn (--simulate --missing).

    Returns
    -------
    Problem

    Raises
    ------
    DenoiselabError
        For an unknown task, a bad kernel, boundary or factor, an option of another task, or
        inpaint without a mask.

    Examples
    --------
    >>> parse_problem("deblur").describe()
    'deblur gaussian:1.6 circular'
    >>> parse_problem("sr", factor=3, kernel="box").has_svd
    True
    """
    if task not in TASKS:
        raise DenoiselabError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    foreign = {"--kernel": kernel is not None and task not in ("deblur", "sr"),
               "--boundary": boundary is not None and task != "deblur",
               "--factor": factor is not None and task != "sr",
               "--mask": has_mask and task != "inpaint"}
    for flag, misplaced in foreign.items():
        if misplaced:
            raise DenoiselabError(f"{flag} does not apply to --task {task}; see `denoiselab restore --help`")
    if task == "deblur":
        kernel = _blur_kernel(kernel or "gaussian:1.6")
        boundary = boundary or "circular"
        if boundary not in BOUNDARIES:
            raise DenoiselabError(f"--boundary {boundary!r}: choose {' or '.join(BOUNDARIES)}")
        return Problem(task, kernel=kernel, boundary=boundary)
    if task == "sr":
        if factor is None:
            raise DenoiselabError("--task sr needs --factor 2, 3 or 4")
        if factor not in SR_FACTORS:
            raise DenoiselabError(f"--factor {factor}: choose 2, 3 or 4")
        kernel = kernel or "bicubic"
        if kernel not in ("bicubic", "box"):
            raise DenoiselabError(f"--kernel {kernel!r} for sr: choose bicubic (MATLAB imresize) or box (block average)")
        return Problem(task, kernel=kernel, factor=factor)
    if task == "inpaint" and not has_mask:
        raise DenoiselabError("--task inpaint needs --mask MASK.png (white = observed), or --simulate CLEAN "
                              "with --missing FRACTION for a random mask")
    return Problem(task)


def _blur_kernel(text: str) -> str:
    """Normalise ``gaussian:STD`` / ``uniform:SIZE``; raise DenoiselabError on anything else."""
    kind, _, value = text.partition(":")
    try:
        if kind == "gaussian" and 0 < float(value) <= 50 and math.isfinite(float(value)):
            return f"gaussian:{float(value):g}"
        if kind == "uniform" and 1 <= int(value) <= 201:
            return f"uniform:{int(value)}"
    except ValueError:
        pass
    raise DenoiselabError(f"--kernel {text!r} for deblur: give gaussian:STD (std in pixels, 0 < STD <= 50, "
                          "e.g. gaussian:1.6) or uniform:SIZE (side in pixels, 1..201, e.g. uniform:9)")


def check_method(method: str, problem: Problem, sigma255: float) -> None:
    """Raise DenoiselabError unless `method` can solve `problem` at noise level `sigma255` (0–255)."""
    if method not in METHODS:
        raise DenoiselabError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if method in SVD_METHODS and not problem.has_svd:
        raise DenoiselabError(f"--method {method} needs an operator with an SVD ({SVD_TASKS}); "
                              f"{problem.describe()} has none: use pnp-hqs, pnp-admm or red")
    if method == "langevin" and problem.task != "denoise":
        raise DenoiselabError(f"--method langevin (annealed Langevin on p(x | y)) is implemented for --task denoise "
                              f"only; for {problem.task} use snips (annealed Langevin in the operator's SVD: "
                              f"{SVD_TASKS}) or pnp-hqs, pnp-admm, red")
    if sigma255 == 0 and method not in SVD_METHODS:
        raise DenoiselabError(f"--sigma 0: {method} needs the measurement's noise level > 0; for (nearly) "
                              "noise-free data give a small value such as --sigma 1")


def _sigma255(text: str) -> float:
    """argparse type of ``--sigma``: a number in [0, 255]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (noise std on the 0-255 scale)") from None
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError(f"{value} is outside 0..255 (sigma is on the 0-255 scale)")
    return value


def add_restore_parser(sub) -> None:
    """Add the ``restore`` subcommand to `sub` (argparse subparsers)."""
    r = sub.add_parser("restore", help="deblur, super-resolve, inpaint or denoise one image with a denoiser prior "
                                       "(PnP, RED, DDRM, SNIPS, Langevin)",
                       description=RESTORE_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("input", nargs="?", type=Path, metavar="IN", help="the degraded measurement (image file)")
    r.add_argument("-o", "--output", type=Path, required=True, help="the restored image; never an input")
    r.add_argument("--simulate", type=Path, metavar="CLEAN",
                   help="instead of IN: degrade this clean image, write OUT_measurement.EXT, restore it, print PSNR/SSIM")
    r.add_argument("--task", required=True, metavar="{" + ",".join(TASKS) + "}")
    r.add_argument("--method", default="pnp-hqs", metavar="{" + ",".join(METHODS) + "}", help="default pnp-hqs")
    r.add_argument("--denoiser", default="bfdncnn-color", metavar="NAME",
                   help="the prior: a name from `denoiselab list` (bfdncnn-color is swapped for bfdncnn-gray on gray "
                        "images) or a .safetensors file with its card")
    r.add_argument("--sigma", type=_sigma255, default=2.55, metavar="S",
                   help="noise std of the measurement on the 0-255 scale (default 2.55); with --simulate, the noise added")
    r.add_argument("--steps", type=int, metavar="N",
                   help="iterations: pnp-hqs 8, pnp-admm 20, red 10, ddrm 20 denoiser calls; snips and langevin: "
                        "N annealing levels down to 0.01, 5 steps each (default: the NCSNv2 grid, about 250 and 125 levels)")
    r.add_argument("--blind-prior", default="auto", choices=BLIND_PRIOR,
                   help="pnp-hqs, pnp-admm, red with a blind network: inject tells it the level the solver asks for "
                        "by adding noise of that std first; as-is calls it unchanged; auto (default) injects for "
                        "pnp-hqs and pnp-admm, not for red")
    r.add_argument("--seed", type=int, default=0, help="seed of the samplers, the injected noise, and --simulate's noise and mask")
    r.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda or cuda:N")
    r.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"), help="arithmetic of the prior network: fp32, bf16 (where native), auto (default)")
    t = r.add_argument_group("task options")
    t.add_argument("--kernel", help="deblur: gaussian:STD or uniform:SIZE (pixels; default gaussian:1.6); "
                                    "sr: bicubic or box (default bicubic)")
    t.add_argument("--boundary", help="deblur: circular (periodic, the default) or replicate (edge pixels repeated)")
    t.add_argument("--factor", type=int, help="sr: 2, 3 or 4")
    t.add_argument("--mask", type=Path, metavar="MASK", help="inpaint: image of IN's size, white = observed")
    t.add_argument("--missing", type=float, metavar="FRACTION",
                   help="inpaint with --simulate and no --mask: fraction of pixels lost at random (default 0.5)")


def add_sample_parser(sub) -> None:
    """Add the ``sample`` subcommand to `sub` (argparse subparsers)."""
    s = sub.add_parser("sample", help="draw images from the prior implicit in a denoiser (annealed Langevin, "
                                      "Kadkhodaie-Simoncelli)",
                       description="Synthesis from the prior implicit in a denoiser: --method langevin (annealed "
                                   "Langevin with Tweedie's score, Song & Ermon) or ks (Kadkhodaie & Simoncelli's "
                                   "coarse-to-fine ascent). --count K > 1 writes a grid of K samples, 2-pixel white "
                                   "gaps between them. Same seed, same image.")
    s.add_argument("-o", "--output", type=Path, required=True, help="the image (or grid) to write")
    s.add_argument("--method", default="langevin", metavar="{" + ",".join(SAMPLERS) + "}", help="default langevin")
    s.add_argument("--size", type=int, default=64, metavar="PX", help="side of each square sample (default 64)")
    s.add_argument("--channels", type=int, choices=(1, 3), help="1 (gray) or 3 (RGB); default the denoiser's, else 1")
    s.add_argument("--denoiser", metavar="NAME", help="the prior (default bfdncnn-gray, or bfdncnn-color for --channels 3)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--count", type=int, default=1, metavar="K", help="number of samples (default 1)")
    s.add_argument("--steps", type=int, metavar="N", help="langevin: steps per level (default 100); ks: at most N "
                                                           "steps (default 2000; it stops when the noise is gone)")
    s.add_argument("--levels", type=int, metavar="L", help="langevin: noise levels from 1 to 0.01 (default 10)")
    s.add_argument("--h0", type=float, help="ks: first step fraction in (0, 1] (default 0.01; larger is faster, coarser)")
    s.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda or cuda:N")
    s.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"), help="arithmetic of the prior network: fp32, bf16 (where native), auto (default)")


def _progress() -> bool:
    """Progress bars only on a terminal, as for ``denoise``."""
    return sys.stderr.isatty()


def _seeds(seed: int) -> tuple[int, int]:
    """Two independent seeds from one: (the simulation's noise and mask, the sampler's).

    Seeding both with `seed` itself would make the sampler's first draws equal the simulated noise.
    """
    simulation, sampler = np.random.SeedSequence(int(seed) & (2**63 - 1)).generate_state(2)
    return int(simulation), int(sampler)


def _read_one(path: Path, what: str):
    """Read one image (not a TIFF stack) as an ImageFile."""
    from ..io import read_image

    image = read_image(path)
    if image.is_stack:
        raise DenoiselabError(f"the {what} {path} is a TIFF stack of {image.array.shape[0]} pages; give one image")
    return image


def _read_mask(path: Path, hw: tuple[int, int], what: str) -> Tensor:
    """The inpainting mask (1, 1, H, W) from an image of size `hw`: 1 where the mean over channels >= 0.5."""
    array = _read_one(path, "mask").array
    if array.shape[:2] != tuple(hw):
        raise DenoiselabError(f"the mask {path} is {array.shape[0]}x{array.shape[1]} but the {what} is {hw[0]}x{hw[1]}; "
                              "expected the same size")
    mask = torch.from_numpy((array.mean(axis=-1) >= 0.5).astype(np.float32))[None, None]
    if not bool(mask.any()):
        raise DenoiselabError(f"the mask {path} observes no pixel (white = observed, black = lost)")
    return mask


def _companion(output: Path, tag: str, suffix: str | None = None) -> Path:
    """``OUT_tag.EXT`` next to the output (``OUT_measurement.png``, ``OUT_mask.png``)."""
    return output.with_name(f"{output.stem}_{tag}{suffix or output.suffix}")


def _levels(method: str, steps: int | None, sigma: float) -> Tensor | None:
    """The annealing levels of snips/langevin for ``--steps N``: N log-spaced levels ending at 0.01 (None: default).

    snips starts at 1 (its default grid's top); langevin at the highest level its chain is stable at
    below σ: the step ``α = ε s²/σ_L²`` must stay under ``(σ² − s²)/2`` (sample_posterior_denoising's rule).
    """
    if steps is None:
        return None
    from ..noise.schedules import sigmas_geometric

    if steps < 2:
        raise DenoiselabError(f"--steps {steps}: {method} needs at least 2 annealing levels")
    if method == "snips":
        return sigmas_geometric(steps, 1.0, _LAST_LEVEL)
    top = sigma / math.sqrt(1 + 2 * _NCSN_STEP_SCALE / _LAST_LEVEL**2)
    if top <= _LAST_LEVEL:
        raise DenoiselabError(f"--sigma {sigma * 255:g} is at or below the last annealing level "
                              f"{_LAST_LEVEL * 255:.2f}/255; the image is already as clean as langevin would make it")
    return sigmas_geometric(steps, top, _LAST_LEVEL)


def injects(method: str, blind_prior: str) -> bool:
    """Whether `method` tells a blind prior its level by noise injection under `blind_prior`."""
    if method not in OPTIMISERS or blind_prior == "as-is":
        return False
    return blind_prior == "inject" or method in INJECT_BY_DEFAULT


def run_method(method: str, y: Tensor, op, denoiser, *, sigma: float, steps: int | None, seed: int,
               progress: bool = False, blind_prior: str = "auto") -> Tensor:
    """Restore `y` with `method` (one of ``METHODS``); returns the estimate (B, C, H, W), not clamped.

    `sigma` is the measurement's noise std on [0, 1]; `steps` None takes ``DEFAULT_STEPS``.
    `blind_prior` ``"inject"`` tells a blind network the level a PnP/RED solver asks for by
    noise injection (:func:`~denoiselab.denoisers.with_noise_level`); ``"as-is"`` does not;
    ``"auto"`` injects for PnP-HQS/ADMM and not for RED (what measured best).
    """
    from ..denoisers import with_noise_level
    from ..optim import solve_pnp_admm, solve_pnp_hqs, solve_red_fixed_point
    from ..sampling import sample_ddrm, sample_posterior_denoising, sample_snips

    n_steps = DEFAULT_STEPS[method] if steps is None else steps
    if injects(method, blind_prior):
        denoiser = with_noise_level(denoiser, seed=seed)
    if method == "pnp-hqs":
        return solve_pnp_hqs(y, op, denoiser, sigma=sigma, n_steps=n_steps, progress=progress)
    if method == "pnp-admm":
        return solve_pnp_admm(y, op, denoiser, sigma=sigma, n_steps=n_steps, progress=progress)
    if method == "red":
        return solve_red_fixed_point(y, op, denoiser, sigma=sigma, n_steps=n_steps, progress=progress)
    if method == "ddrm":
        return sample_ddrm(y, op, denoiser, sigma=sigma, n_steps=n_steps, seed=seed, progress=progress)
    levels = _levels(method, steps, sigma)
    if method == "snips":
        return sample_snips(y, op, denoiser, sigma=sigma, sigmas=levels, step_scale=_NCSN_STEP_SCALE, seed=seed,
                            progress=progress)
    return sample_posterior_denoising(y, denoiser, sigma=sigma, sigmas=levels, step_scale=_NCSN_STEP_SCALE,
                                      seed=seed, progress=progress)


def _check_paths(args, measurement: Path | None, mask_out: Path | None) -> list[Path]:
    """Fail before any computing if an output cannot be written or would overwrite an input; return the inputs."""
    from ..batch.files import check_output

    inputs = [p for p in (args.input, args.simulate, args.mask) if p is not None]
    for path in inputs:
        if not path.exists():
            raise DenoiselabError(f"{path}: no such file")
    check_output(args.output, protect=inputs)
    for path, what in ((measurement, "measurement"), (mask_out, "mask")):
        if path is not None:
            check_output(path, protect=inputs, what=what)
    return inputs


def cmd_restore(args) -> int:
    """``denoiselab restore``: see RESTORE_DESCRIPTION."""
    from .._utils import resolve_device
    from ..io import from_tensor, to_tensor

    if (args.input is None) == (args.simulate is None):
        raise DenoiselabError("give the measurement IN, or --simulate CLEAN to make one from a clean image (not both)")
    if args.missing is not None and (args.simulate is None or args.mask is not None or args.task != "inpaint"):
        raise DenoiselabError("--missing makes a random mask for --task inpaint with --simulate; otherwise give --mask")
    makes_mask = args.simulate is not None and args.task == "inpaint" and args.mask is None
    problem = parse_problem(args.task, kernel=args.kernel, boundary=args.boundary, factor=args.factor,
                            has_mask=args.mask is not None or makes_mask)
    check_method(args.method, problem, args.sigma)
    if args.steps is not None:
        if args.steps < 1:
            raise DenoiselabError(f"--steps {args.steps}: give a positive number of iterations")
        if args.method in ("snips", "langevin"):
            _levels(args.method, args.steps, args.sigma / 255)  # checks the schedule before any work
    missing = 0.5 if args.missing is None else args.missing
    if makes_mask and not 0 <= missing < 1:
        raise DenoiselabError(f"--missing {missing}: give the fraction of lost pixels, 0 <= FRACTION < 1")
    measurement_path = _companion(args.output, "measurement") if args.simulate is not None else None
    mask_path = _companion(args.output, "mask", ".png") if makes_mask else None
    inputs = _check_paths(args, measurement_path, mask_path)
    device = resolve_device(args.device)
    simulation_seed, sampler_seed = _seeds(args.seed)

    written: list[Path] = []
    try:
        clean = None
        if args.simulate is not None:
            clean = _read_one(args.simulate, "clean image")
            mask = _simulation_mask(args, problem, clean.array.shape[:2], missing, simulation_seed, mask_path)
            if mask_path is not None:
                written.append(mask_path)
            y_array = _simulate(problem.operator(mask), clean.array, args.sigma / 255, simulation_seed)
            _write(measurement_path, y_array, clean.bit_depth, protect=inputs)
            written.append(measurement_path)
            source = _read_one(measurement_path, "measurement")
            print(f"{measurement_path}: measurement, {problem.describe()}, noise sigma {args.sigma:g}/255, "
                  f"seed {args.seed}")
        else:
            source = _read_one(args.input, "measurement")
            mask = None
            if problem.task == "inpaint":
                mask = _read_mask(args.mask, source.array.shape[:2], "measurement")
        y = to_tensor(source.array)
        op = problem.operator(mask)
        image_hw = problem.image_size(tuple(y.shape[-2:]))
        op.A(torch.zeros(1, y.shape[1], *image_hw))  # the kernel fits the image, the factor divides it: fail now
        name, denoiser = load_denoiser_for(args.denoiser, y.shape[1], device, precision=args.precision)
        start = time.perf_counter()
        x_hat = run_method(args.method, y.to(device), op, denoiser, sigma=args.sigma / 255, steps=args.steps,
                           seed=sampler_seed, progress=_progress(), blind_prior=args.blind_prior)
        seconds = time.perf_counter() - start
        result = from_tensor(x_hat.clamp(0, 1))
        _write(args.output, result, source.bit_depth, protect=inputs + written)
        written.append(args.output)
    except BaseException:
        for path in written:  # the outputs of one command: all or none
            path.unlink(missing_ok=True)
        raise
    steps = args.steps if args.steps is not None else DEFAULT_STEPS[args.method]
    steps_text = f"{steps} steps" if steps is not None else "default schedule"
    if injects(args.method, args.blind_prior) and is_blind(denoiser):
        name += " (blind; level told by noise injection)"
    print(f"{args.output}: {args.method} ({steps_text}) with {name}, {problem.describe()}, sigma {args.sigma:g}/255, "
          f"{seconds:.1f} s on {device}")
    if clean is not None:
        _print_scores(clean.array, source.array, result, op, problem, args.simulate)
    return 0


def _simulation_mask(args, problem: Problem, hw: tuple[int, int], missing: float, seed: int,
                     mask_path: Path | None) -> Tensor | None:
    """The inpainting mask of a simulation: read from --mask, or drawn at random and written to `mask_path`."""
    if problem.task != "inpaint":
        return None
    if mask_path is None:
        return _read_mask(args.mask, hw, "clean image")
    from ..physics import random_pixel_mask

    mask = random_pixel_mask((1, 1, *hw), missing, generator=torch.Generator().manual_seed(seed))
    _write(mask_path, mask[0, 0, :, :, None].numpy(), 8, protect=[args.simulate])
    print(f"{mask_path}: mask, {float(mask.mean()):.1%} of the pixels observed (white)")
    return mask


def _simulate(op, clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """``A x + σ n`` for the clean (H, W, C) image, n ~ N(0, I) drawn with `seed`; lost pixels stay 0."""
    from ..io import from_tensor, to_tensor
    from ..physics import Inpainting

    x = to_tensor(clean).double()
    y = op.A(x)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(y.shape, generator=generator, dtype=torch.float64)
    if isinstance(op, Inpainting):
        noise = op.A(noise)  # lost pixels carry no measurement, hence no noise
    return from_tensor(y + sigma * noise)


def _write(path: Path, array: np.ndarray, input_depth: int, *, protect) -> None:
    from ..batch.job import output_depth
    from ..io import write_image

    depth = output_depth(None, input_depth, path, array.shape[-1])
    write_image(path, array, bit_depth=depth, protect=protect)


def _print_scores(clean: np.ndarray, measurement: np.ndarray, result: np.ndarray, op, problem: Problem,
                  reference: Path) -> None:
    """PSNR/SSIM of the measurement (for sr: its upsampled initial estimate) and of the result against the clean image."""
    from ..io import from_tensor, to_tensor
    from ..metrics import psnr, ssim

    label = "measurement"
    if measurement.shape != clean.shape:
        measurement = from_tensor(op.initial_estimate(to_tensor(measurement)))
        label = f"{problem.kernel} x{problem.factor} upsampled measurement" if problem.kernel == "bicubic" else \
            f"x{problem.factor} nearest-neighbour upsampled measurement"
    p0, p1 = float(psnr(measurement, clean)[0]), float(psnr(result, clean)[0])
    s0, s1 = float(ssim(measurement, clean)[0]), float(ssim(result, clean)[0])
    print(f"PSNR {p0:.2f} -> {p1:.2f} dB, SSIM {s0:.4f} -> {s1:.4f} ({label} -> result, against {reference})")


def _grid(images: np.ndarray, gap: int = 2) -> np.ndarray:
    """Tile (K, H, W, C) images into one (rows·H + gaps, cols·W + gaps, C) image, white gaps, ⌈√K⌉ columns.

    Examples
    --------
    >>> _grid(np.zeros((3, 4, 4, 1))).shape
    (10, 10, 1)
    """
    k, h, w, c = images.shape
    cols = math.ceil(math.sqrt(k))
    rows = math.ceil(k / cols)
    out = np.ones((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap, c), dtype=np.float32)
    for i, image in enumerate(images):
        r, col = divmod(i, cols)
        out[r * (h + gap):r * (h + gap) + h, col * (w + gap):col * (w + gap) + w] = image
    return out


def cmd_sample(args) -> int:
    """``denoiselab sample``: K images from the prior of a denoiser, one file (a grid when K > 1)."""
    from .._utils import resolve_device
    from ..batch.files import check_output
    from ..io import from_tensor, write_image
    from ..sampling import sample_annealed_langevin, sample_implicit_prior

    if args.method not in SAMPLERS:
        raise DenoiselabError(f"unknown method {args.method!r}; choose langevin or ks")
    for flag, value, low in (("--size", args.size, 8), ("--count", args.count, 1), ("--steps", args.steps, 1),
                             ("--levels", args.levels, 1)):
        if value is not None and value < low:
            raise DenoiselabError(f"{flag} {value}: give a whole number >= {low}")
    for flag, value, method in (("--levels", args.levels, "langevin"), ("--h0", args.h0, "ks")):
        if value is not None and args.method != method:
            raise DenoiselabError(f"{flag} is for --method {method}")
    if args.h0 is not None and not 0 < args.h0 <= 1:
        raise DenoiselabError(f"--h0 {args.h0}: give a step fraction in (0, 1]")
    check_output(args.output)
    device = resolve_device(args.device)
    name = args.denoiser or ("bfdncnn-color" if args.channels == 3 else "bfdncnn-gray")
    if args.channels is None:  # the denoiser's own channels (a classical one: gray)
        denoiser = load_denoiser(name, device=device, precision=args.precision)
        channels = getattr(denoiser, "channels", 1)
    else:
        channels = args.channels
        name, denoiser = load_denoiser_for(name, channels, device, precision=args.precision)
    shape = (args.count, channels, args.size, args.size)
    taken = []  # one entry per step, to report how many the chain took

    def count_step(state: dict) -> None:
        taken.append(state["i"])

    start = time.perf_counter()
    if args.method == "langevin":
        x = sample_annealed_langevin(denoiser, shape, n_levels=args.levels or 10, n_steps_each=args.steps or 100,
                                     seed=args.seed, device=device, progress=_progress(), callback=count_step)
    else:
        x = sample_implicit_prior(denoiser, shape, h0=args.h0 or 0.01, max_steps=args.steps or 2000, seed=args.seed,
                                  device=device, progress=_progress(), callback=count_step)
    seconds = time.perf_counter() - start
    images = from_tensor(x.clamp(0, 1))
    image = _grid(images) if args.count > 1 else images
    write_image(args.output, image)
    what = f"{args.count} samples" if args.count > 1 else "1 sample"
    print(f"{args.output}: {what} of {args.size}x{args.size}, {channels} channel{'s' if channels > 1 else ''}, "
          f"{args.method} with {name}, {len(taken)} steps, seed {args.seed}, {seconds:.1f} s on {device}")
    return 0

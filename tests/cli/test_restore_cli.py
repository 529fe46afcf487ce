"""``denoiselab restore`` and ``denoiselab sample``: every task through the command line on 48x48 crops.

Each run uses --simulate (a measurement made from a crop of the bundled clean SIDD photo) and a
fast prior (the small BF-DnCNNs or TV) with few iterations, so the whole file takes seconds.
"""

import re
from pathlib import Path

import numpy as np
import pytest

from denoiselab.cli.main import main
from denoiselab.io import read_image, write_image

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sidd_18_1_clean.png"


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    """A 48x48 RGB crop of the clean example and its gray version, as PNG files."""
    folder = tmp_path_factory.mktemp("crops")
    rgb = read_image(EXAMPLE).array[100:148, 100:148]
    paths = {"rgb": folder / "clean_rgb.png", "gray": folder / "clean_gray.png"}
    write_image(paths["rgb"], rgb)
    write_image(paths["gray"], rgb.mean(axis=-1, keepdims=True))
    return paths


def _scores(out: str) -> tuple[float, float]:
    """(PSNR of the measurement, PSNR of the result) from the printed line."""
    match = re.search(r"PSNR ([\d.]+) -> ([\d.]+) dB", out)
    assert match, out
    return float(match.group(1)), float(match.group(2))


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("denoiselab: error:"), err
    return err[0]


def _size(path: Path) -> tuple[int, ...]:
    return read_image(path).array.shape


@pytest.mark.parametrize("kernel,boundary,method,denoiser", [
    ("gaussian:1.6", "circular", "red", "bfdncnn-color"),
    ("gaussian:1.6", "circular", "pnp-hqs", "tv"),
    ("uniform:9", "replicate", "pnp-admm", "tv"),
])
def test_deblurring_improves_psnr(crops, tmp_path, capsys, kernel, boundary, method, denoiser):
    out = tmp_path / "out.png"
    assert main(["restore", "--simulate", str(crops["rgb"]), "-o", str(out), "--task", "deblur", "--kernel", kernel,
                 "--boundary", boundary, "--method", method, "--denoiser", denoiser, "--steps", "8"]) == 0
    measured, restored = _scores(capsys.readouterr().out)
    assert _size(out) == (48, 48, 3) and _size(tmp_path / "out_measurement.png") == (48, 48, 3)
    assert restored > measured + 1.0


@pytest.mark.parametrize("factor,kernel,method", [(2, "box", "ddrm"), (3, "bicubic", "pnp-admm"), (4, "box", "red")])
def test_super_resolution_writes_a_factor_times_larger_image(crops, tmp_path, capsys, factor, kernel, method):
    out = tmp_path / "sr.png"
    assert main(["restore", "--simulate", str(crops["gray"]), "-o", str(out), "--task", "sr", "--factor", str(factor),
                 "--kernel", kernel, "--method", method, "--steps", "5"]) == 0
    assert _size(tmp_path / "sr_measurement.png") == (48 // factor, 48 // factor, 1)
    assert _size(out) == (48, 48, 1)
    measured, restored = _scores(capsys.readouterr().out)  # against the upsampled measurement
    assert restored > 20 and measured > 20


def test_inpainting_with_a_random_mask_writes_the_mask(crops, tmp_path, capsys):
    out = tmp_path / "inp.png"
    assert main(["restore", "--simulate", str(crops["gray"]), "-o", str(out), "--task", "inpaint",
                 "--missing", "0.3", "--method", "pnp-hqs"]) == 0
    mask = read_image(tmp_path / "inp_mask.png").array
    assert mask.shape == (48, 48, 1) and 0.6 < mask.mean() < 0.8
    measured, restored = _scores(capsys.readouterr().out)
    assert _size(out) == (48, 48, 1) and restored > measured + 10  # the lost pixels are filled in


def test_inpainting_with_a_given_mask_and_a_sampler(crops, tmp_path, capsys):
    mask = np.ones((48, 48, 1), dtype=np.float32)
    mask[16:32, 16:32] = 0
    write_image(tmp_path / "mask.png", mask)
    out = tmp_path / "inp.png"
    assert main(["restore", "--simulate", str(crops["rgb"]), "-o", str(out), "--task", "inpaint",
                 "--mask", str(tmp_path / "mask.png"), "--method", "ddrm", "--steps", "10"]) == 0
    assert _size(out) == (48, 48, 3) and not (tmp_path / "inp_mask.png").exists()
    measured, restored = _scores(capsys.readouterr().out)
    assert restored > measured


def test_snips_runs_its_shortened_schedule(crops, tmp_path, capsys):
    """SNIPS needs hundreds of levels to converge; five only check the wiring (output size, the steps used)."""
    out = tmp_path / "snips.png"
    assert main(["restore", "--simulate", str(crops["rgb"]), "-o", str(out), "--task", "inpaint",
                 "--method", "snips", "--steps", "5"]) == 0
    assert _size(out) == (48, 48, 3)
    assert "snips (5 steps)" in capsys.readouterr().out


def test_denoising_by_posterior_langevin(crops, tmp_path, capsys):
    out = tmp_path / "den.png"
    assert main(["restore", "--simulate", str(crops["gray"]), "-o", str(out), "--task", "denoise",
                 "--method", "langevin", "--sigma", "25", "--steps", "10"]) == 0
    measured, restored = _scores(capsys.readouterr().out)
    assert restored > measured + 5


def test_restoring_the_written_measurement_gives_the_same_image(crops, tmp_path):
    """--simulate restores exactly what it wrote: the same command on the measurement file agrees byte for byte."""
    options = ["--task", "sr", "--factor", "2", "--kernel", "box", "--method", "ddrm", "--steps", "5", "--seed", "3"]
    simulated = tmp_path / "sim.png"
    assert main(["restore", "--simulate", str(crops["rgb"]), "-o", str(simulated), *options]) == 0
    again = tmp_path / "again.png"
    assert main(["restore", str(tmp_path / "sim_measurement.png"), "-o", str(again), *options]) == 0
    assert again.read_bytes() == simulated.read_bytes()


@pytest.mark.parametrize("argv,message", [
    (["--task", "dehaze"], "unknown task 'dehaze'"),
    (["--task", "sr", "--factor", "5"], "--factor 5: choose 2, 3 or 4"),
    (["--task", "deblur", "--method", "ddrm"], "needs an operator with an SVD"),
    (["--task", "deblur", "--method", "langevin"], "--task denoise only"),
    (["--task", "deblur", "--kernel", "gaussian:-1"], "gaussian:STD"),
    (["--task", "deblur", "--factor", "2"], "--factor does not apply to --task deblur"),
    (["--task", "sr", "--factor", "2", "--method", "magic"], "unknown method 'magic'"),
])
def test_bad_options_are_one_line_and_write_nothing(crops, tmp_path, capsys, argv, message):
    out = tmp_path / "out.png"
    assert main(["restore", "--simulate", str(crops["gray"]), "-o", str(out), *argv]) == 2
    assert message in _one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_mask_of_another_size_is_refused(crops, tmp_path, capsys):
    write_image(tmp_path / "mask.png", np.ones((40, 40, 1), dtype=np.float32))
    out = tmp_path / "out.png"
    assert main(["restore", str(crops["gray"]), "-o", str(out), "--task", "inpaint", "--mask",
                 str(tmp_path / "mask.png")]) == 2
    assert "40x40 but the measurement is 48x48" in _one_error_line(capsys)
    assert not out.exists()


def test_output_over_the_input_is_refused(crops, capsys):
    before = crops["gray"].read_bytes()
    assert main(["restore", str(crops["gray"]), "-o", str(crops["gray"]), "--task", "deblur"]) == 2
    assert "overwrite" in _one_error_line(capsys)
    assert crops["gray"].read_bytes() == before


def test_a_failure_after_the_measurement_removes_it(crops, tmp_path, capsys):
    """The outputs of one command are all or none: a gray prior on an RGB image fails after the simulation."""
    out = tmp_path / "out.png"
    assert main(["restore", "--simulate", str(crops["rgb"]), "-o", str(out), "--task", "deblur",
                 "--denoiser", "bfdncnn-gray-s"]) == 2
    assert "gray" in _one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [
    ["--method", "langevin", "--levels", "3", "--steps", "5"],
    ["--method", "ks", "--h0", "0.2", "--channels", "3"],
])
def test_sample_is_reproducible(tmp_path, argv):
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    for out in (first, second):
        assert main(["sample", "-o", str(out), "--size", "16", "--seed", "7", *argv]) == 0
    assert first.read_bytes() == second.read_bytes()
    assert _size(first)[:2] == (16, 16)
    assert main(["sample", "-o", str(tmp_path / "c.png"), "--size", "16", "--seed", "8", *argv]) == 0
    assert (tmp_path / "c.png").read_bytes() != first.read_bytes()


def test_sample_count_writes_a_grid(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["sample", "-o", str(out), "--method", "ks", "--h0", "0.2", "--size", "16", "--count", "4"]) == 0
    assert _size(out) == (34, 34, 1)  # 2 x 2 samples, 2-pixel gaps
    assert "4 samples" in capsys.readouterr().out


def test_sample_unknown_method_is_one_line(tmp_path, capsys):
    assert main(["sample", "-o", str(tmp_path / "s.png"), "--method", "ddpm"]) == 2
    assert "unknown method 'ddpm'" in _one_error_line(capsys)
    assert not (tmp_path / "s.png").exists()


def test_blind_prior_option_tells_the_network_its_level_or_not(crops, tmp_path, capsys):
    """--blind-prior auto (inject for PnP) and as-is both run; only injection says so, and the images differ."""
    outs = {}
    for mode in ("auto", "as-is"):
        outs[mode] = tmp_path / f"{mode}.png"
        assert main(["restore", "--simulate", str(crops["rgb"]), "-o", str(outs[mode]), "--task", "deblur",
                     "--method", "pnp-hqs", "--blind-prior", mode]) == 0
        said = capsys.readouterr().out
        assert ("noise injection" in said) == (mode == "auto")
    assert outs["auto"].read_bytes() != outs["as-is"].read_bytes()
    assert main(["restore", "--simulate", str(crops["rgb"]), "-o", str(tmp_path / "red.png"), "--task", "deblur",
                 "--method", "red", "--steps", "2"]) == 0
    assert "noise injection" not in capsys.readouterr().out     # auto: RED keeps the blind prior as it is
    with pytest.raises(SystemExit) as exc:  # argparse's usage error
        main(["restore", "--simulate", str(crops["rgb"]), "-o", str(tmp_path / "x.png"), "--task", "deblur",
              "--blind-prior", "sometimes"])
    assert exc.value.code == 2

"""The command line: a missing file or bad value is one stderr line and exit code 2; outputs are real."""

from pathlib import Path

import numpy as np
import pytest

from denoiselab.cli.main import main
from denoiselab.io import read_image, write_image


@pytest.fixture
def noisy_png(tmp_path):
    rng = np.random.default_rng(0)
    t = np.linspace(0.2, 0.8, 48, dtype=np.float32)
    img = np.stack([np.outer(t, np.ones_like(t))] * 3, axis=-1) + rng.normal(0, 0.05, (48, 48, 3)).astype(np.float32)
    path = tmp_path / "noisy.png"
    write_image(path, np.clip(img, 0, 1))
    return path


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("denoiselab: error:"), err
    return err[0]


def test_missing_file_is_exit_2_and_one_line(tmp_path, capsys):
    assert main(["denoise", str(tmp_path / "nope.png"), "-o", str(tmp_path / "out.png")]) == 2
    assert "nope.png" in _one_error_line(capsys)
    assert not (tmp_path / "out.png").exists()


def test_refuses_to_overwrite_the_input(noisy_png, capsys):
    before = noisy_png.read_bytes()
    assert main(["denoise", str(noisy_png), "-o", str(noisy_png), "--method", "tv"]) == 2
    assert "overwrite" in _one_error_line(capsys)
    assert noisy_png.read_bytes() == before


def test_unknown_method(noisy_png, tmp_path, capsys):
    assert main(["denoise", str(noisy_png), "-o", str(tmp_path / "o.png"), "--method", "magic"]) == 2
    assert "unknown denoiser" in _one_error_line(capsys)


def test_sigma_out_of_range_is_a_usage_error(noisy_png, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["denoise", str(noisy_png), "-o", str(tmp_path / "o.png"), "--sigma", "300"])
    assert exc.value.code == 2


@pytest.mark.parametrize("method,sigma", [("bfdncnn-color", "auto"), ("wavelet", "12.75")])
def test_denoise_writes_a_better_image(noisy_png, tmp_path, method, sigma):
    out = tmp_path / "out.png"
    assert main(["denoise", str(noisy_png), "-o", str(out), "--method", method, "--sigma", sigma]) == 0
    t = np.linspace(0.2, 0.8, 48, dtype=np.float32)
    clean = np.stack([np.outer(t, np.ones_like(t))] * 3, axis=-1)
    err_in = np.mean((read_image(noisy_png).array - clean) ** 2)
    err_out = np.mean((read_image(out).array - clean) ** 2)
    assert err_out < err_in / 2


def test_16_bit_gray_tiff_keeps_its_depth_and_gray_uses_the_gray_prior(tmp_path, capsys):
    rng = np.random.default_rng(1)
    img = np.clip(0.5 + rng.normal(0, 0.05, (32, 32, 1)), 0, 1).astype(np.float32)
    src = tmp_path / "in.tif"
    write_image(src, img, bit_depth=16)
    out = tmp_path / "out.tif"
    assert main(["denoise", str(src), "-o", str(out), "--method", "bfdncnn-color"]) == 0
    assert "bfdncnn-gray" in capsys.readouterr().out
    result = read_image(out)
    assert result.bit_depth == 16 and result.array.shape == (32, 32, 1)


def test_estimate_noise_prints_the_estimates(noisy_png, capsys):
    assert main(["estimate-noise", str(noisy_png)]) == 0
    out = capsys.readouterr().out
    assert "PCA" in out and "delta" in out
    assert "auto: sigma" in out and ("white noise" in out or "correlated (camera) noise" in out)


def test_estimate_noise_reports_the_auto_decision_on_the_bundled_camera_photo(capsys):
    photo = Path(__file__).resolve().parents[2] / "examples" / "sidd_18_1_noisy.png"
    assert main(["estimate-noise", str(photo)]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if "auto:" in l)
    assert "correlated (camera) noise" in line and "stride 4" in line and "stride-4/stride-1 std" in line


def test_list_names_the_denoisers(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ["bfdncnn-color", "bfdncnn-gray", "bm3d", "nlm", "tv", "wavelet"]:
        assert name in out


def test_scoredvi_writes_image_and_uncertainty_map(noisy_png, tmp_path, capsys):
    out, unc = tmp_path / "out.png", tmp_path / "unc.tif"
    assert main(["denoise", str(noisy_png), "-o", str(out), "--iterations", "3", "--uncertainty", str(unc)]) == 0
    assert "scoredvi" in capsys.readouterr().out
    assert read_image(out).array.shape == (48, 48, 3)
    std = read_image(unc)
    assert std.bit_depth == 32 and std.array.shape == (48, 48, 1) and (std.array >= 0).all()


def test_auto_sigma_says_how_correlated_noise_was_met(tmp_path, capsys):
    """A camera-like (correlated) noise: tv runs pixel-shuffled, bm3d is told the covariance, and both say so."""
    import torch

    from denoiselab.noise import add_correlated_noise

    yy, xx = torch.meshgrid(torch.linspace(0, 1, 128), torch.linspace(0, 1, 128), indexing="ij")
    clean = torch.stack([0.3 + 0.4 * xx, 0.5 + 0.2 * yy, 0.4 + 0.1 * xx * yy])[None]
    noisy = add_correlated_noise(clean, 0.05, correlation_px=0.8, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "camera.png"
    write_image(path, noisy.clamp(0, 1)[0].permute(1, 2, 0).numpy())
    assert main(["denoise", str(path), "-o", str(tmp_path / "tv.png"), "--method", "tv"]) == 0
    assert "correlated noise: denoised on stride-2 pixel-shuffled sub-images" in capsys.readouterr().out
    assert main(["denoise", str(path), "-o", str(tmp_path / "tv10.png"), "--method", "tv", "--sigma", "10"]) == 0
    assert "correlated noise" not in capsys.readouterr().out  # a given σ means white noise
    assert main(["denoise", str(path), "-o", str(tmp_path / "bm3d.png"), "--method", "bm3d"]) == 0
    assert "correlated noise: its estimated covariance used" in capsys.readouterr().out

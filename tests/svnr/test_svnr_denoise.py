"""SVNR behind denoiselab.denoise and `denoiselab denoise --method svnr`, on a tiny model trained here."""

import re
import warnings

import numpy as np
import math

import pytest
import torch

from denoiselab import denoise
from denoiselab.batch.job import DenoiseOptions
from denoiselab.cli.main import main
from denoiselab.errors import DenoiselabError
from denoiselab.io import read_image, write_image
from denoiselab.svnr import SVNRConfig, add_svnr_noise, load_svnr, to_linear, to_srgb, train_svnr
from denoiselab.svnr.denoise import denoise_svnr, estimate_svnr_noise, exposure_scale

READ, SHOT = 0.08, 0.04  # linear [0, 1] scale; 9 network calls


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A tiny SVNR (width 8) trained for a few seconds on smooth synthetic images."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("svnr_clean")
    t = np.linspace(0, 1, 40, dtype=np.float32)
    for i in range(3):
        edge = 0.25 * (np.add.outer(t, t) > 0.6 + 0.2 * i)
        img = np.stack([np.outer(t, t) * (0.5 + 0.2 * c) + 0.1 * rng.random() + edge for c in range(3)], axis=-1)
        write_image(folder / f"{i}.png", img.clip(0, 1))
    cfg = SVNRConfig(name="tiny-svnr", train_dirs=[str(folder)], base_width=8, levels=2, patch_size=32, batch_size=4,
                     steps=30, lr=2e-3, lr_min=1e-4, log_every=10, checkpoint_every=10**6)
    return str(train_svnr(cfg, tmp_path_factory.mktemp("svnr_run"), progress=False))


def _pair(h=40, w=36, seed=0):
    """A smooth clean sRGB image (H, W, 3) and its copy with linear shot + read noise (READ, SHOT), as in a file."""
    t = np.linspace(0, 1, w, dtype=np.float32)
    s = np.linspace(0, 1, h, dtype=np.float32)
    clean = np.stack([np.outer(s, t) * (0.5 + 0.2 * c) + 0.2 for c in range(3)], -1).clip(0, 1).astype(np.float32)
    x = torch.from_numpy(clean).permute(2, 0, 1)[None]
    y, _ = add_svnr_noise(to_linear(x), READ, SHOT, generator=torch.Generator().manual_seed(seed))
    return clean, to_srgb(y)[0].permute(1, 2, 0).numpy().astype(np.float32)


def _mse(a, b):
    return float(np.mean((a - b) ** 2))


def _svnr(image, weights, **kw):
    return denoise(image, "svnr", **{"read_noise": READ, "shot_noise": SHOT, "svnr_weights": weights, **kw})


def test_shape_dtype_range_and_same_seed_same_output(weights):
    _, noisy = _pair()
    a = _svnr(noisy, weights, seed=3)
    assert a.shape == noisy.shape and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 1  # sRGB of a clipped linear image
    assert np.array_equal(a, _svnr(noisy, weights, seed=3))
    assert not np.array_equal(a, _svnr(noisy, weights, seed=4))


def test_details_samples_and_uncertainty(weights):
    _, noisy = _pair()
    one = _svnr(noisy, weights, return_details=True)
    assert one.uncertainty is None and one.method == "svnr"
    assert one.noise == {"read": [READ], "shot": [SHOT], "stride": [1], "exposure": [1.0]}
    assert one.settings["samples"] == 1 and one.settings["calls"] == 9 and one.settings["noise_source"] == "given"
    two = _svnr(noisy, weights, samples=2, return_details=True)
    u = two.uncertainty
    assert u.shape == noisy.shape and u.dtype == np.float32 and np.isfinite(u).all()
    assert u.min() >= 0 and u.max() > 0 and (u > 0).mean() > 0.9  # the two samples differ almost everywhere


def test_mean_of_samples_is_closer_to_the_clean_image_than_single_samples(weights):
    clean, noisy = _pair(48, 48)
    singles = [_mse(_svnr(noisy, weights, seed=s), clean) for s in range(3)]
    mean4 = _mse(_svnr(noisy, weights, samples=4, seed=0), clean)
    assert mean4 < 0.8 * np.mean(singles), (mean4, singles)


def test_stack_planes_are_denoised_like_single_images(weights):
    _, noisy = _pair()
    stack = np.stack([noisy, noisy[::-1].copy()])
    res = _svnr(stack, weights, samples=2, return_details=True)
    assert res.image.shape == stack.shape and res.uncertainty.shape == stack.shape
    assert np.array_equal(res.image[0], _svnr(noisy, weights, samples=2))
    assert res.noise == {"read": [READ, READ], "shot": [SHOT, SHOT], "stride": [1, 1], "exposure": [1.0, 1.0]}


def test_tiles_cover_the_image_and_keep_the_quality(weights):
    clean, noisy = _pair(56, 56)
    whole = _svnr(noisy, weights, samples=2, return_details=True)
    tiled = _svnr(noisy, weights, samples=2, tile=32, overlap=8, return_details=True)
    assert whole.settings["n_tiles"] == 1 and tiled.settings["n_tiles"] == 4 and tiled.settings["tile"] == 32
    assert tiled.uncertainty.shape == noisy.shape and tiled.uncertainty.min() >= 0
    assert _mse(tiled.image, clean) < 1.25 * _mse(whole.image, clean)


def test_estimate_recovers_read_and_shot_on_a_ramp():
    g = torch.Generator().manual_seed(0)
    x = torch.linspace(0.02, 0.8, 256).repeat(1, 3, 256, 1)  # linear ramp, flat along columns, not clipped at 1
    y, _ = add_svnr_noise(x, 0.05, 0.04, generator=g)
    r, s = estimate_svnr_noise(to_srgb(y))  # as it would come from a file
    # the noise std curve is what SVNR uses; the split between read and shot is looser (the
    # darkest class loses noise to clipping at 0): measured r -6 %, s +17 % here
    for level in (0.1, 0.4, 0.8):
        assert abs(math.sqrt(r * r + s * s * level) / math.sqrt(0.05**2 + 0.04**2 * level) - 1) < 0.05, (r, s)
    assert abs(r - 0.05) < 0.01 and abs(s - 0.04) < 0.01, (r, s)
    crop = estimate_svnr_noise(to_srgb(y), max_pixels=128 * 128)  # central 128² crop
    assert crop == estimate_svnr_noise(to_srgb(y)[..., 64:192, 64:192])


@pytest.mark.filterwarnings("ignore::UserWarning")  # small image: few patches, a poor estimate
def test_auto_noise_is_estimated_reported_and_used(weights):
    _, noisy = _pair(64, 64)
    res = denoise(noisy, "svnr", svnr_weights=weights, return_details=True)
    r, s, stride = estimate_svnr_noise(torch.from_numpy(noisy).permute(2, 0, 1)[None], return_stride=True)
    assert res.settings["noise_source"] == "estimated" and stride == 1  # white noise: no pixel-shuffle
    assert res.noise == {"read": [r], "shot": [s], "stride": [1], "exposure": [1.0]}
    assert np.array_equal(res.image, _svnr(noisy, weights, read_noise=r, shot_noise=s))


def test_exposure_scale_brings_the_shot_noise_into_the_trained_range():
    card = {"noise": {"shot_range": [1e-4, 0.05]}}
    assert exposure_scale(0.05, card) == 1.0 and exposure_scale(0.01, card) == 1.0
    k = exposure_scale(0.2, card)
    assert k == pytest.approx(1 / 16) and 0.2 * math.sqrt(k) == pytest.approx(0.05)
    assert exposure_scale(0.1, {}) == pytest.approx(0.25)  # no range in the card: the default training range


def test_exposure_scaling_is_an_exact_symmetry_of_the_noise_model():
    """k·y has the noise (k·read, √k·shot) on k·x: the same variance map, scaled by k²."""
    from denoiselab.svnr.noise import svnr_variance

    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    k, r, s = 0.2, 0.03, 0.12
    assert torch.allclose(svnr_variance(k * x, k * r, math.sqrt(k) * s), k * k * svnr_variance(x, r, s))


def test_auto_on_the_bundled_camera_photo_pixel_shuffles_darkens_and_gains():
    """The bundled SIDD photo: correlated noise with shot ≈ 0.13, above the shipped model's range (measured +3.3 dB)."""
    from pathlib import Path

    from skimage.metrics import peak_signal_noise_ratio

    examples = Path(__file__).resolve().parents[2] / "examples"
    noisy, clean = (read_image(examples / f"sidd_18_1_{n}.png").array for n in ("noisy", "clean"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # above the training range: said, and handled
        res = denoise(noisy, "svnr", return_details=True)
    assert res.noise["stride"] == [4] and 0 < res.noise["exposure"][0] < 0.5
    gain = peak_signal_noise_ratio(clean, res.image, data_range=1) - peak_signal_noise_ratio(clean, noisy, data_range=1)
    assert gain > 3.0, gain


def test_denoise_svnr_function_on_tensors(weights):
    _, noisy = _pair()
    y = torch.from_numpy(noisy).permute(2, 0, 1)[None].repeat(2, 1, 1, 1)
    mean, std, info = denoise_svnr(y, load_svnr(weights), read_sigma=READ, shot_sigma=SHOT, samples=3, seed=0)
    assert mean.shape == std.shape == y.shape and info["calls"] == 9 and info["samples"] == 3
    assert info["read"] == [READ, READ] and info["noise_source"] == "given"
    assert not torch.equal(mean[0], mean[1])  # the two images get different samples


def test_warns_above_the_training_range(weights):
    _, noisy = _pair(24, 24)
    with pytest.warns(UserWarning, match=r"read_noise=0\.3 is above the model's training range") as record:
        _svnr(noisy, weights, read_noise=0.3)
    assert record[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _svnr(noisy, weights)  # inside the range: silent


@pytest.mark.parametrize("kwargs,match", [
    ({"read_noise": -0.1}, "read_noise=-0.1 is negative"),
    ({"shot_noise": None}, "give both read_noise and shot_noise"),
    ({"read_noise": 20.0}, "linear [0, 1] scale"),
    ({"read_noise": float("nan")}, "finite"),
    ({"samples": 0}, "samples=0 must be an integer >= 1"),
    ({"samples": 2.5}, "samples=2.5"),
    ({"steps": 0}, "steps=0 must be an integer >= 1"),
    ({"sigma": 0.1}, "sigma is for the Gaussian denoisers"),
    ({"svnr_weights": "/nonexistent/w.safetensors"}, "not found"),
    ({"image": np.full((32, 32), 0.5, dtype=np.float32)}, "svnr needs an RGB image"),
])
def test_user_errors_raise_one_line(weights, kwargs, match):
    args = {"image": _pair()[1], **kwargs}
    with pytest.raises(DenoiselabError, match=re.escape(match)) as err:
        _svnr(args.pop("image"), weights, **args)
    assert "\n" not in str(err.value)


def test_svnr_options_are_refused_for_other_methods():
    with pytest.raises(DenoiselabError, match=re.escape("samples is for method='svnr'; tv does not take it")):
        denoise(_pair()[1], "tv", samples=2)
    with pytest.raises(DenoiselabError, match=re.escape("steps is for method='svnr'")):
        denoise(_pair()[1], "tv", steps=2)


def test_steps_set_the_network_calls_and_still_denoise():
    """On the shipped model (the tiny one barely denoises): 1 or 3 calls instead of the noise's 9."""
    clean, noisy = _pair(48, 48)
    for steps in (1, 3):
        few = _svnr(noisy, None, steps=steps, return_details=True)
        assert few.settings["calls"] == steps
        assert _mse(few.image, clean) < 0.1 * _mse(noisy, clean)
    assert _svnr(noisy, None, return_details=True).settings["calls"] == 9


def test_manifest_settings_hold_svnr_options_only_for_svnr():
    assert "samples" not in DenoiseOptions(method="tv").to_dict()  # old manifests still resume
    d = DenoiseOptions(method="svnr", read_noise=0.1, shot_noise=0.02, samples=2).to_dict()
    assert (d["read_noise"], d["shot_noise"], d["samples"], d["svnr_weights"]) == (0.1, 0.02, 2, None)
    assert "steps" not in d  # SVNR batches from before --steps still resume
    assert DenoiseOptions(method="svnr", read_noise=0.1, shot_noise=0.02, steps=4).to_dict()["steps"] == 4


# ---------------------------------------------------------------------------------------------- CLI


@pytest.fixture
def noisy_png(tmp_path):
    path = tmp_path / "noisy.png"
    write_image(path, _pair(48, 48)[1])
    return path


def test_cli_writes_the_mean_and_the_std_map_and_prints_the_noise(weights, noisy_png, tmp_path, capsys):
    out, std = tmp_path / "out.png", tmp_path / "std.tif"
    assert main(["denoise", str(noisy_png), "-o", str(out), "--method", "svnr", "--read-noise", str(READ),
                 "--shot-noise", str(SHOT), "--samples", "2", "--seed", "1", "--svnr-weights", weights,
                 "--uncertainty", str(std)]) == 0
    printed = capsys.readouterr().out
    assert "svnr, 2 samples, 9 network calls" in printed and f"read {READ:g}, shot {SHOT:g}" in printed
    assert "std of the 2 posterior samples" in printed
    assert read_image(out).array.shape == (48, 48, 3)
    m = read_image(std)
    assert m.bit_depth == 32 and m.array.shape == (48, 48, 1) and (m.array >= 0).all() and m.array.max() > 0


def test_cli_steps_set_the_calls(weights, noisy_png, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert main(["denoise", str(noisy_png), "-o", str(out), "--method", "svnr", "--read-noise", str(READ),
                 "--shot-noise", str(SHOT), "--steps", "2", "--svnr-weights", weights]) == 0
    assert "svnr, 1 sample, 2 network calls" in capsys.readouterr().out and out.exists()


def test_cli_noise_auto_prints_the_estimate(weights, noisy_png, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert main(["denoise", str(noisy_png), "-o", str(out), "--method", "svnr", "--noise", "auto",
                 "--svnr-weights", weights]) == 0
    assert re.search(r"noise estimated \(linear \[0, 1\] scale\): read [0-9.e-]+, shot [0-9.e-]+", capsys.readouterr().out)
    assert out.exists()


@pytest.mark.parametrize("extra,match", [
    (["--read-noise", "-0.1", "--shot-noise", "0.01"], "--read-noise -0.1 is negative"),
    (["--read-noise", "0.1"], "svnr needs the noise"),
    ([], "svnr needs the noise"),
    (["--noise", "auto", "--shot-noise", "0.01"], "--noise auto estimates"),
    (["--noise", "auto", "--samples", "0"], "--samples 0 must be an integer >= 1"),
    (["--noise", "auto", "--steps", "0"], "--steps 0 must be an integer >= 1"),
    (["--noise", "auto", "--uncertainty", "{tmp}/std.tif"], "only with 2 or more samples"),
    (["--noise", "auto", "--svnr-weights", "{tmp}/missing.safetensors"], "not found"),
    (["--noise", "auto", "--input-gray"], "svnr needs an RGB image"),
])
def test_cli_bad_input_is_one_line_exit_2_and_no_output(weights, noisy_png, tmp_path, capsys, extra, match):
    source = noisy_png
    if "--input-gray" in extra:
        extra = [a for a in extra if a != "--input-gray"]
        source = tmp_path / "gray.png"
        write_image(source, read_image(noisy_png).array[..., :1])
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    if "--svnr-weights" not in extra:
        extra += ["--svnr-weights", weights]
    out = tmp_path / "out.png"
    assert main(["denoise", str(source), "-o", str(out), "--method", "svnr", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("denoiselab: error:") and match in err[0], err
    assert not out.exists() and not (tmp_path / "std.tif").exists()


def test_cli_refuses_svnr_flags_with_another_method(noisy_png, tmp_path, capsys):
    assert main(["denoise", str(noisy_png), "-o", str(tmp_path / "o.png"), "--method", "tv", "--samples", "3"]) == 2
    assert "--samples is for --method svnr; tv does not take it" in capsys.readouterr().err


def test_identical_samples_of_a_one_call_chain_are_said():
    """Darkened into range, the bundled photo needs one network call: K samples would agree exactly."""
    from pathlib import Path

    noisy = read_image(Path(__file__).resolve().parents[2] / "examples" / "sidd_18_1_noisy.png").array[:96, :96]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = denoise(noisy, "svnr", read_noise=0.01, shot_noise=0.01, samples=2, return_details=True)
    assert res.settings["calls"] == 1 and float(res.uncertainty.max()) == 0.0
    assert any("spread is 0" in str(w.message) for w in caught)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = denoise(noisy, "svnr", read_noise=0.01, shot_noise=0.01, samples=2, steps=2, return_details=True)
    assert float(res.uncertainty.max()) > 0 and not any("spread is 0" in str(w.message) for w in caught)

"""The napari plugin's computation, without napari: layer data checks, units, planes, dtypes."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import denoiselab
import denoiselab.api
from denoiselab.errors import DenoiselabError
from denoiselab.napari._jobs import (denoise_planes, list_methods, parse_sigma, prepare_image, supports_precision,
                                     to_layer_dtype)
from denoiselab.napari._sample_data import fluorescence_stack, make_fluorescence_stack, sidd_photo

ROOT = Path(__file__).resolve().parents[2]


def run_all(generator):
    """Drain a denoise_planes generator: (list of yielded counts, returned value)."""
    counts = []
    while True:
        try:
            counts.append(next(generator))
        except StopIteration as stop:
            return counts, stop.value


@pytest.fixture(scope="module")
def stack16():
    """A noisy 3 x 48 x 48 16-bit fluorescence stack and its clean version."""
    clean, noisy = make_fluorescence_stack(planes=3, size=48, seed=1)
    return clean, noisy


@pytest.mark.parametrize("data, rgb, words", [
    (np.zeros((16, 16, 4), np.uint8), True, "4 colour channels"),
    (np.zeros(16, np.uint8), False, "two spatial axes"),
    (np.zeros((0, 16), np.uint8), False, "empty"),
    (np.zeros((16, 16), np.int32), False, "dtype int32"),
    (np.full((16, 16), np.nan, np.float32), False, "NaN"),
    (np.full((2, 16, 16), 200.0, np.float32), False, "floats in [0, 1]"),
])
def test_bad_layer_data_is_one_sentence_naming_the_layer(data, rgb, words):
    with pytest.raises(DenoiselabError) as caught:
        prepare_image(data, rgb=rgb, name="cells")
    message = str(caught.value)
    assert words in message and "'cells'" in message and "\n" not in message


def test_prepare_scales_by_the_dtype_range_and_flattens_leading_axes():
    data = np.arange(2 * 3 * 4 * 5, dtype=np.uint16).reshape(2, 3, 4, 5) * 500
    prepared = prepare_image(data, rgb=False, name="volume")
    planes = np.stack([prepared.plane(i) for i in range(prepared.n_planes)])
    assert planes.shape == (6, 4, 5, 1) and planes.dtype == np.float32
    np.testing.assert_allclose(planes.reshape(data.shape) * 65535, data, rtol=1e-6)
    assert np.shares_memory(prepared.source, data)  # no copy of the layer until a plane is denoised
    rgb = prepare_image(np.full((4, 5, 3), 51, np.uint8), rgb=True, name="photo")
    assert rgb.source.shape == (1, 4, 5, 3) and rgb.data_range == 255 and np.allclose(rgb.plane(0), 0.2)


def test_noise_level_is_typed_in_the_layers_gray_levels():
    assert parse_sigma(" Auto ", 65535.0) is None and parse_sigma("", 255.0) is None
    assert parse_sigma("655.35", 65535.0) == pytest.approx(0.01)
    assert parse_sigma("0.05", 1.0) == pytest.approx(0.05)
    for bad in ("abc", "-1", "nan", "300"):
        with pytest.raises(DenoiselabError, match="must be 'auto' or a number from 0 to 255"):
            parse_sigma(bad, 255.0)


def test_to_layer_dtype_keeps_the_range():
    x = np.array([[-0.5, 0.25, 2.0]], np.float32)
    assert to_layer_dtype(x, np.dtype(np.uint8), 255.0).tolist() == [[0, 64, 255]]
    assert to_layer_dtype(x, np.dtype(np.float32), 1.0).tolist() == [[0.0, 0.25, 1.0]]


def test_planes_match_denoise_on_the_whole_stack(stack16):
    clean, noisy = stack16
    prepared = prepare_image(noisy, rgb=False, name="stack")
    counts, (x_hat, std) = run_all(denoise_planes(prepared, "bm3d", sigma=0.02))
    assert counts == [1, 2, 3] and std is None and x_hat.shape == noisy.shape
    whole = denoiselab.denoise(noisy[..., None].astype(np.float32) / 65535, "bm3d", sigma=0.02, device="cpu")
    np.testing.assert_allclose(x_hat, whole[..., 0], atol=1e-6)
    assert np.abs(x_hat - clean / 65535).mean() < np.abs(noisy / 65535 - clean / 65535).mean()


def test_scoredvi_gives_an_uncertainty_in_gray_levels(stack16):
    _, noisy = stack16
    prepared = prepare_image(noisy[:1], rgb=False, name="stack")
    _, (x_hat, std) = run_all(denoise_planes(prepared, "scoredvi-fast", iterations=2))
    reference = denoiselab.denoise(noisy[0].astype(np.float32) / 65535, "scoredvi", iterations=2, device="cpu",
                                   return_details=True)
    assert std.shape == (1, 48, 48) and std.dtype == np.float32 and (std >= 0).all()
    np.testing.assert_allclose(std[0], reference.uncertainty * 65535, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(x_hat[0], reference.image, atol=1e-5)


def test_rgb_uncertainty_is_the_mean_over_channels():
    rgb = sidd_photo()[0][0][:40, :40]
    prepared = prepare_image(rgb, rgb=True, name="photo")
    _, (x_hat, std) = run_all(denoise_planes(prepared, "scoredvi-fast", iterations=1))
    assert x_hat.shape == (40, 40, 3) and std.shape == (40, 40)


def test_baselines_run_through_the_bench_registry(stack16):
    _, noisy = stack16
    prepared = prepare_image(noisy[:2], rgb=False, name="stack")
    counts, (x_hat, std) = run_all(denoise_planes(prepared, "pd-denoising"))
    assert counts == [1, 2] and x_hat.shape == (2, 48, 48) and std is None
    with pytest.raises(DenoiselabError, match="unknown method"):
        run_all(denoise_planes(prepared, "no-such-method"))


@pytest.mark.parametrize("with_precision", [False, True])
def test_precision_is_passed_only_where_denoise_takes_it(monkeypatch, with_precision):
    calls = []

    def fake_denoise(image, method="scoredvi", *, sigma=None, preset="fast", iterations=None, device="auto", seed=0,
                     return_details=False, **extra):
        calls.append(extra)
        return denoiselab.DenoiseResult(image=image, uncertainty=None)

    if with_precision:
        def fake(image, method="scoredvi", *, precision="auto", **options):
            return fake_denoise(image, method, precision=precision, **options)
    else:
        fake = fake_denoise
    monkeypatch.setattr(denoiselab.api, "denoise", fake)
    assert supports_precision() is with_precision
    prepared = prepare_image(np.zeros((2, 8, 8), np.uint8), rgb=False, name="z")
    run_all(denoise_planes(prepared, "tv", precision="bf16"))
    assert calls == ([{"precision": "bf16"}] * 2 if with_precision else [{}] * 2)


def test_methods_offered_cover_the_issue():
    methods = list_methods()
    for name in ("scoredvi-fast", "scoredvi-paper", "bm3d", "pd-denoising", "nn-bm3d", "nn-bm3d-cpu", "bfdncnn-color"):
        assert name in methods
    assert len(set(methods)) == len(methods)


def test_sample_data_layers():
    [(photo, meta, kind)] = sidd_photo()
    assert photo.shape == (256, 256, 3) and photo.dtype == np.uint8 and kind == "image" and meta["name"]
    from PIL import Image

    assert np.array_equal(photo, np.asarray(Image.open(ROOT / "examples" / "sidd_18_1_noisy.png").convert("RGB")))
    [(stack, _, _)] = fluorescence_stack()
    assert stack.shape == (3, 128, 128) and stack.dtype == np.uint16
    assert np.array_equal(stack, fluorescence_stack()[0][0])  # seeded


def test_denoiselab_does_not_import_napari_and_the_widget_names_the_install():
    code = ("import sys; import denoiselab, denoiselab.cli.main, denoiselab.napari, denoiselab.napari._jobs, "
            "denoiselab.napari._sample_data; assert 'napari' not in sys.modules, 'napari imported'; "
            "sys.modules['napari'] = None\n"
            "try:\n    import denoiselab.napari._widget\nexcept ImportError as err:\n    print(err)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert 'pip install -c constraints.txt "denoiselab[napari]"' in done.stdout

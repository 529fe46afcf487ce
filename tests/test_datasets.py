"""Dataset loaders: every distributed layout, and one-line errors for broken ones."""

from pathlib import Path

import numpy as np
import pytest

from denoiselab.datasets import benchmark_key, center_crop, open_pairs
from denoiselab.errors import DenoiselabError
from denoiselab.io import write_image

from .conftest import DATA, needs_data


def _img(seed: int, size=(20, 24), channels=3) -> np.ndarray:
    return np.random.default_rng(seed).random((*size, channels)).astype(np.float32)


def _write(path: Path, seed: int, **kw) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = _img(seed, **kw)
    write_image(path, arr)
    return np.round(arr * 255) / 255


def test_noisy_clean_folders_pair_by_name_and_sort(tmp_path):
    for i, name in enumerate(["b.png", "a.png"]):
        _write(tmp_path / "noisy" / name, i)
        _write(tmp_path / "clean" / name, 10 + i)
    ds = open_pairs(tmp_path)
    assert (ds.layout, [p.name for p in ds]) == ("folders", ["a", "b"])
    noisy, clean = ds.pairs[0].load()
    assert noisy.shape == clean.shape == (20, 24, 3)
    np.testing.assert_allclose(clean, np.round(_img(11) * 255) / 255, atol=1e-6)
    assert len(ds.head(1)) == 1 and ds.name == tmp_path.name


def test_fmdd_test_mix_form_raw_gt(tmp_path):
    _write(tmp_path / "raw" / "x.png", 0, channels=1)
    _write(tmp_path / "gt" / "x.png", 1, channels=1)
    noisy, clean = open_pairs(tmp_path).pairs[0].load()
    assert noisy.shape == (20, 24, 1)


def test_polyu_and_cc_suffix_pairs(tmp_path):
    _write(tmp_path / "Canon_1_real.png", 0)
    _write(tmp_path / "Canon_1_mean.png", 1)
    _write(tmp_path / "Nikon_2_real.png", 2)
    _write(tmp_path / "Nikon_2_mean.png", 3)
    ds = open_pairs(tmp_path)
    assert ds.layout == "suffix" and [p.name for p in ds] == ["Canon_1", "Nikon_2"]
    noisy, _ = ds.pairs[1].load()
    np.testing.assert_allclose(noisy, np.round(_img(2) * 255) / 255, atol=1e-6)


def test_sidd_mat_blocks(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)
    clean = rng.integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)
    savemat(tmp_path / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": noisy})
    savemat(tmp_path / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": clean})
    ds = open_pairs(tmp_path / "ValidationNoisyBlocksSrgb.mat")
    assert ds.layout == "sidd-mat" and len(ds) == 6 and ds.pairs[0].name == "1_1"
    pair = {p.name: p for p in ds}["2_3"]
    n, c = pair.load()
    np.testing.assert_array_equal(n, noisy[1, 2] / np.float32(255))
    np.testing.assert_array_equal(c, clean[1, 2] / np.float32(255))


def test_fmdd_release_layout(tmp_path):
    for frame in ("HV110_P0500510000.png", "HV110_P0500510001.png"):
        _write(tmp_path / "Confocal_FISH" / "raw" / "1" / frame, 0, channels=1)
    _write(tmp_path / "Confocal_FISH" / "gt" / "1" / "avg50.png", 1, channels=1)
    ds = open_pairs(tmp_path)
    assert ds.layout == "fmdd" and [p.name for p in ds][0] == "Confocal_FISH_1_HV110_P0500510000"


@pytest.mark.parametrize("case", ["orphan", "missing_gt_mat", "nothing", "absent", "fmdd_no_gt", "only_real"])
def test_broken_layouts_give_one_line_errors(tmp_path, case):
    target = tmp_path
    if case == "orphan":
        _write(tmp_path / "noisy" / "a.png", 0)
        _write(tmp_path / "clean" / "b.png", 1)
    elif case == "missing_gt_mat":
        (tmp_path / "ValidationNoisyBlocksSrgb.mat").write_bytes(b"")
    elif case == "nothing":
        (tmp_path / "readme.txt").write_text("hello")
    elif case == "absent":
        target = tmp_path / "nope"
    elif case == "fmdd_no_gt":
        _write(tmp_path / "C" / "raw" / "1" / "f.png", 0, channels=1)
        (tmp_path / "C" / "gt" / "1").mkdir(parents=True)
    elif case == "only_real":
        _write(tmp_path / "x_real.png", 0)
    with pytest.raises(DenoiselabError) as err:
        open_pairs(target)
    assert "\n" not in str(err.value) and str(err.value)


def test_shape_mismatch_is_reported_at_load(tmp_path):
    _write(tmp_path / "noisy" / "a.png", 0)
    _write(tmp_path / "clean" / "a.png", 1, size=(10, 10))
    with pytest.raises(DenoiselabError, match="differ in shape"):
        open_pairs(tmp_path).pairs[0].load()


def test_center_crop_and_benchmark_keys():
    a = np.arange(10 * 12).reshape(10, 12)
    np.testing.assert_array_equal(center_crop(a, 4), a[3:7, 4:8])
    assert center_crop(a, 50).shape == (10, 12) and center_crop(a, None) is a
    assert [benchmark_key(n) for n in ["SIDD_Val", "polyu", "CC15", "fmdd", "kodak"]] == ["sidd", "polyu", "cc", "fmdd", None]


@needs_data("real")
def test_shared_real_data_opens():
    sizes = {name: len(open_pairs(DATA / "real" / name)) for name in ["sidd_val", "polyu", "cc", "fmdd"]}
    assert sizes == {"sidd_val": 40, "polyu": 50, "cc": 7, "fmdd": 24}


def test_head_can_skip_the_first_pairs(tmp_path):
    for i in range(5):
        for sub in ("noisy", "clean"):
            _write(tmp_path / sub / f"im{i}.png", i, size=(4, 4))
    pairs = open_pairs(tmp_path)
    assert [p.name for p in pairs.head(2, skip=3)] == ["im3", "im4"]
    assert [p.name for p in pairs.head(None, skip=4)] == ["im4"]
    assert pairs.head(None) is pairs

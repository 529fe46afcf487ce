"""The HTML report and its figure: content, self-containment, both-or-neither writes, the CLI, a real browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from denoiselab.cli.main import main
from denoiselab.errors import DenoiselabError
from denoiselab.io import read_image, write_image
from denoiselab.metrics import psnr
from denoiselab.report import choose_crop, compare_to_reference, make_figure, render_html, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _scene(size: int = 48, channels: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.linspace(0.2, 0.8, size, dtype=np.float32)
    clean = np.repeat(np.outer(t, np.ones_like(t))[..., None], channels, axis=-1)
    clean[size // 3 : size // 2, size // 4 : size // 2] = 0.9  # an edge for the crop to find
    noisy = clean + rng.normal(0, 0.08, clean.shape).astype(np.float32)
    denoised = 0.5 * noisy + 0.5 * clean
    return noisy, denoised, clean


def _external_references(page: str) -> list[str]:
    """Every src/href/url() in the page that is not a data: URL."""
    targets = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page) + re.findall(r"url\(([^)]*)\)", page)
    return [t for t in targets if not t.startswith("data:")]


def test_page_is_self_contained_and_holds_the_numbers(tmp_path):
    noisy, denoised, clean = _scene()
    std = np.full_like(denoised, 0.02)
    paths = write_report(tmp_path / "r.html", noisy, denoised, uncertainty=std, reference=clean, method="oracle-mix",
                         noise={"sigma": [20 / 255]}, seconds=1.234, settings={"device": "cpu"}, source="a/noisy.png")
    page = paths["html"].read_text(encoding="utf-8")
    assert paths["figure"] == tmp_path / "r_figure.png"
    assert _external_references(page) == [] and "<script" not in page and "<link" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert page.count("data:image/png;base64,") == 3  # figure, noisy, denoised
    scores = compare_to_reference(noisy, denoised, clean)
    assert f"{scores['psnr_noisy']:.2f} → {scores['psnr_denoised']:.2f} dB" in page
    assert scores["psnr_denoised"] == pytest.approx(float(psnr(denoised, clean)[0]))
    for text in ("oracle-mix", "noise σ, 0–255", "20", "1.23", "posterior std, 0–255", "mean 5.10", "noisy.png"):
        assert text in page, text
    figure = read_image(paths["figure"]).array
    assert figure.shape[0] > 400 and figure.shape[1] > 1000 and figure.std() > 0.05


def test_figure_has_the_uncertainty_column_only_when_given():
    noisy, denoised, clean = _scene()
    titles = lambda fig: [ax.get_title() for ax in fig.axes if ax.get_title() and "zoom" not in ax.get_title()]  # noqa: E731
    plain = titles(make_figure(noisy, denoised))
    assert [t.split("\n")[0] for t in plain] == ["noisy", "denoised", "|noisy − denoised|"]
    full = titles(make_figure(noisy, denoised, uncertainty=np.zeros_like(noisy[..., :1]), reference=clean))
    assert [t.split("\n")[0] for t in full] == ["noisy", "denoised", "posterior std", "|noisy − denoised|",
                                               "clean reference"]


def test_crop_goes_where_the_detail_is():
    flat = np.zeros((64, 64, 1), np.float32)
    assert choose_crop(flat) == (0, 0, 16, 16)
    flat[40:60, 44:60] = 1.0
    top, left, h, w = choose_crop(flat)
    assert 40 - h < top < 60 and 44 - w < left < 60 and (h, w) == (16, 16)  # on the block's edges
    assert choose_crop(np.zeros((3, 5))) == (0, 0, 3, 5)  # tiny images: the whole image


def test_gray_stacks_and_tiny_images_render():
    rng = np.random.default_rng(1)
    stack = rng.random((3, 20, 30, 1)).astype(np.float32)
    page = render_html(stack, stack * 0.9, method="x")
    assert "3 pages (figure: page 1)" in page
    one = np.full((1, 1, 3), 0.5, np.float32)
    assert "1 × 1, RGB" in render_html(one, one)


def test_bad_arguments_write_nothing(tmp_path):
    noisy, denoised, clean = _scene()
    with pytest.raises(DenoiselabError, match=r"\.html"):
        write_report(tmp_path / "r.png", noisy, denoised)
    with pytest.raises(DenoiselabError, match="same size"):
        write_report(tmp_path / "r.html", noisy, denoised[:10])
    with pytest.raises(DenoiselabError, match="NaN"):
        write_report(tmp_path / "r.html", noisy, denoised * np.nan)
    src = tmp_path / "in.png"
    src.write_bytes(b"input")
    with pytest.raises(DenoiselabError, match="overwrite"):
        write_report(tmp_path / "r.html", noisy, denoised, figure_path=src, protect=[src])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"] and src.read_bytes() == b"input"


def test_a_failed_page_write_removes_the_figure(tmp_path, monkeypatch):
    noisy, denoised, _ = _scene()
    real = Path.write_text

    def full_disk(self, *args, **kwargs):
        if self.name.startswith(".r.html."):
            raise OSError(28, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(DenoiselabError, match="disk full"):
        write_report(tmp_path / "r.html", noisy, denoised)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def files(tmp_path):
    noisy, _, clean = _scene(64)
    write_image(tmp_path / "noisy.png", np.clip(noisy, 0, 1))
    write_image(tmp_path / "clean.png", clean)
    return tmp_path / "noisy.png", tmp_path / "clean.png"


def test_report_command_and_denoise_report_option(files, tmp_path, capsys):
    noisy, clean = files
    assert main(["report", str(noisy), "-o", str(tmp_path / "a.html"), "--method", "tv", "--sigma", "20",
                 "--reference", str(clean)]) == 0
    assert "a.html: report" in capsys.readouterr().out
    page = (tmp_path / "a.html").read_text()
    assert "PSNR noisy → denoised" in page and "tv" in page and (tmp_path / "a_figure.png").is_file()

    out = tmp_path / "den.png"
    assert main(["denoise", str(noisy), "-o", str(out), "--method", "tv", "--sigma", "20", "--reference", str(clean),
                 "--report", str(tmp_path / "b.html"), "--figure", str(tmp_path / "fig.png")]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"PSNR \d+\.\d\d -> \d+\.\d\d dB", printed)
    assert (tmp_path / "b.html").is_file() and (tmp_path / "fig.png").is_file() and out.is_file()

    # An earlier result, reported without denoising again
    assert main(["report", str(noisy), "-o", str(tmp_path / "c.html"), "--denoised", str(out), "--method", "tv"]) == 0
    assert "tv (from den.png)" in (tmp_path / "c.html").read_text()


def test_report_options_need_one_input(files, tmp_path, capsys):
    noisy, clean = files
    assert main(["denoise", str(noisy), str(clean), "-o", str(tmp_path / "out"), "--method", "tv",
                 "--report", str(tmp_path / "r.html")]) == 2
    assert "one input" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "r.html").exists()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run tries)")
def test_page_renders_in_a_headless_browser(tmp_path):
    """Chromium opens the page from disk with no network and draws it: the screenshot has the
    window's size and is far from a blank page (it holds the embedded images)."""
    from PIL import Image

    noisy, denoised, clean = _scene(96)
    paths = write_report(tmp_path / "r.html", noisy, denoised, uncertainty=np.abs(noisy - denoised), reference=clean,
                         method="mix", seconds=0.5)
    shot = tmp_path / "shot.png"
    profile = tmp_path / "profile"
    profile.mkdir()
    width, height = 1200, 1400
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", f"--screenshot={shot}", f"--window-size={width},{height}",
         paths["html"].as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert shot.is_file(), f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-500:]}"
    with Image.open(shot) as im:
        assert im.size == (width, height)
        pixels = np.asarray(im.convert("RGB"), dtype=np.float32)
    background = pixels[5, 5]  # the page's background colour (top-left margin)
    differs = np.abs(pixels - background).max(axis=-1) > 16
    assert differs.mean() > 0.15, "the page looks blank"
    colours = len(np.unique(pixels.reshape(-1, 3).astype(np.uint8), axis=0))
    assert colours > 2000, f"only {colours} colours: the embedded images did not render"
    # the figure (the first image) is drawn as wide as the page allows, not as a broken-image icon
    top_band = differs[int(0.35 * height) : int(0.6 * height)]
    assert top_band.any(axis=0).mean() > 0.6

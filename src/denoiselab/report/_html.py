"""The report page: one HTML file with everything embedded (base64 PNG, inline CSS, no links)."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from ..errors import DenoiselabError
from ._common import as_stack, check_same_size, gray_map, png_bytes
from ._figure import make_figure

#: Longest side of the full-view images embedded in the page, in pixels (larger ones are downscaled).
MAX_EMBED_SIDE = 1024
FIGURE_DPI = 110

# Nothing may load from outside the page: images are data: URLs, the style is inline, no script.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1.5em; color: #1d1d1f; background: #fafafa; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.8em; }
.meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; background: #fff; }
th, td { text-align: left; padding: 0.35em 1em; border-bottom: 1px solid #e3e3e3; vertical-align: top; }
th { font-weight: 600; color: #333; white-space: nowrap; }
td.num { font-variant-numeric: tabular-nums; }
figure { margin: 0; } figure img { max-width: 100%; height: auto; background: #fff; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; margin-top: 0.3em; }
.pair { display: flex; gap: 1em; flex-wrap: wrap; } .pair figure { flex: 1 1 400px; }
.pixels img { image-rendering: pixelated; }
footer { color: #888; font-size: 0.85em; margin-top: 2.5em; }
"""

_NOISE_LABELS = {
    "sigma": ("noise σ, 0–255", 255.0),
    "delta255": ("noise δ (ScoreDVI estimate), 0–255", 1.0),
    "lam": ("prior weight λ", 1.0),
    "beta": ("Gamma rate β", 1.0),
    "read": ("read noise σ_r, linear [0, 1]", 1.0),
    "shot": ("shot noise σ_s, linear [0, 1]", 1.0),
}


def compare_to_reference(noisy: np.ndarray, denoised: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """PSNR (dB) and SSIM of the noisy and the denoised image against a clean reference.

    Parameters
    ----------
    noisy, denoised, reference : np.ndarray, shape (H, W), (H, W, C) or (P, H, W, C)
        Images in [0, 1] of one size; estimates are clipped to [0, 1] first
        (:mod:`denoiselab.metrics`, data range 1). For a stack, the mean over pages.

    Returns
    -------
    dict
        ``psnr_noisy``, ``psnr_denoised``, ``ssim_noisy``, ``ssim_denoised``.

    Raises
    ------
    DenoiselabError
        If the sizes differ or an array is malformed.
    """
    from ..metrics import psnr, ssim

    y, x_hat, x = as_stack("noisy", noisy), as_stack("denoised", denoised), as_stack("reference", reference)
    check_same_size("reference", x, {"noisy": y, "denoised": x_hat})
    if y.shape != x.shape or x_hat.shape != x.shape:
        raise DenoiselabError(
            f"report: the reference has {x.shape[-1]} channel(s) but the images have {y.shape[-1]}; "
            "give a reference of the same kind (gray or RGB)"
        )
    small = min(x.shape[1:3]) < 7  # SSIM's 7x7 window needs 7x7 pixels
    return {
        "psnr_noisy": float(psnr(y, x).mean()),
        "psnr_denoised": float(psnr(x_hat, x).mean()),
        "ssim_noisy": float("nan") if small else float(ssim(y, x).mean()),
        "ssim_denoised": float("nan") if small else float(ssim(x_hat, x).mean()),
    }


def _values(values: Iterable[float], scale: float) -> str:
    numbers = [float(v) * scale for v in np.atleast_1d(np.asarray(list(values), dtype=np.float64))]
    if not numbers:
        return "–"
    if len(numbers) > 6:
        return f"mean {np.mean(numbers):.3g} (min {min(numbers):.3g}, max {max(numbers):.3g}) over {len(numbers)} pages"
    return ", ".join(f"{v:.3g}" for v in numbers)


def _rows(y: np.ndarray, x_hat: np.ndarray, std: np.ndarray | None, scores: dict | None, *, source: str | None,
          method: str | None, noise: Mapping | None, seconds: float | None) -> list[tuple[str, str]]:
    p, h, w, c = y.shape
    rows = []
    if source:
        rows.append(("input", source))
    rows.append(("size", f"{w} × {h}, {'gray' if c == 1 else 'RGB'}" + (f", {p} pages (figure: page 1)" if p > 1 else "")))
    if method:
        rows.append(("method", method))
    for key, values in (noise or {}).items():
        label, scale = _NOISE_LABELS.get(key, (key, 1.0))
        rows.append((label, _values(values, scale)))
    if seconds is not None:
        rows.append(("seconds", f"{seconds:.2f}"))
    if scores:
        rows.append(("PSNR noisy → denoised", f"{scores['psnr_noisy']:.2f} → {scores['psnr_denoised']:.2f} dB"))
        if np.isfinite(scores["ssim_noisy"]):
            rows.append(("SSIM noisy → denoised", f"{scores['ssim_noisy']:.4f} → {scores['ssim_denoised']:.4f}"))
    difference = gray_map(np.abs(y - x_hat)) * 255
    rows.append(("|noisy − denoised|, 0–255", f"mean {difference.mean():.2f}, max {difference.max():.2f}"))
    if std is not None:
        s = gray_map(std) * 255
        rows.append(("posterior std, 0–255", f"mean {s.mean():.2f}, max {s.max():.2f}"))
    return rows


def _img(data: bytes, alt: str, width: int | None = None) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    size = f' width="{width}"' if width else ""
    return f'<img src="data:image/png;base64,{encoded}" alt="{html.escape(alt)}"{size}>'


def _table(rows: Iterable[tuple[str, str]], numeric: bool = True) -> str:
    cls = ' class="num"' if numeric else ""
    body = "\n".join(f"<tr><th>{html.escape(k)}</th><td{cls}>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>\n{body}\n</table>"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("denoiselab")
    except PackageNotFoundError:
        return "(not installed)"


def figure_png(fig) -> bytes:
    """Render a matplotlib figure to PNG bytes at the report's resolution."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=FIGURE_DPI)
    return buffer.getvalue()


def render_html(
    noisy: np.ndarray,
    denoised: np.ndarray,
    *,
    uncertainty: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    method: str | None = None,
    noise: Mapping[str, Iterable[float]] | None = None,
    seconds: float | None = None,
    settings: Mapping[str, object] | None = None,
    source: str | None = None,
    figure: bytes | None = None,
) -> str:
    """The report page as one self-contained HTML string (UTF-8, no external resources).

    Parameters
    ----------
    noisy, denoised : np.ndarray, shape (H, W), (H, W, C) or (P, H, W, C)
        Images in [0, 1], C in {1, 3}, one size; for a stack the figure shows page 1 and the
        numbers cover all pages.
    uncertainty : np.ndarray, optional
        Per-pixel posterior standard deviation on [0, 1] (ScoreDVI), same size as `denoised`.
    reference : np.ndarray, optional
        The clean image: adds PSNR/SSIM and a reference column to the figure.
    method : str, optional
        The method's name, shown in the title and the table.
    noise : mapping of str to sequence of float, optional
        Noise levels per page, as in ``DenoiseResult.noise``: ``sigma`` (std on [0, 1], shown
        on 0–255), ``delta255``, ``lam``, ``beta``; other keys are shown as they are.
    seconds : float, optional
        Wall time of the denoising.
    settings : mapping, optional
        Shown as a table (e.g. ``DenoiseResult.settings`` and the preset).
    source : str, optional
        Where the noisy image came from (title and table).
    figure : bytes, optional
        The figure as PNG bytes; default: built here with :func:`make_figure`.

    Returns
    -------
    str
        The page.

    Raises
    ------
    DenoiselabError
        If an array is malformed or the sizes differ.
    """
    y, x_hat = as_stack("noisy", noisy), as_stack("denoised", denoised)
    std = as_stack("uncertainty", uncertainty, channels=tuple(range(1, 65)))
    check_same_size("noisy", y, {"denoised": x_hat, "uncertainty": std})
    scores = compare_to_reference(y, x_hat, reference) if reference is not None else None
    if figure is None:
        figure = figure_png(_figure_for(y, x_hat, std, reference, scores, method=method, source=source))
    name = Path(source).name if source else "image"
    title = f"denoiselab report: {name}" + (f" ({method})" if method else "")
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = _rows(y, x_hat, std, scores, source=source, method=method, noise=noise, seconds=seconds)
    h, w = y.shape[1:3]
    shown = f"{w} × {h}" if max(h, w) <= MAX_EMBED_SIDE else f"downscaled to at most {MAX_EMBED_SIDE} pixels, from {w} × {h}"
    # Small images are shown at least 256 pixels wide (pixelated), larger ones at their own size.
    width = 256 if max(h, w) < 256 else None
    map_note = ("posterior std (per-pixel uncertainty: ScoreDVI's, or the spread of SVNR's samples) and " if std is not None
                else "no uncertainty map (ScoreDVI and SVNR with several samples give one); ")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">generated {stamp} by denoiselab {html.escape(_version())}</p>',
        "<h2>Numbers</h2>",
        _table(rows),
        "<h2>Figure</h2>",
        "<figure>",
        _img(figure, f"noisy, denoised and difference maps of {name}"),
        f"<figcaption>Top: whole image; bottom: the zoomed window outlined in red. Maps: {map_note}"
        "|noisy − denoised| (the noise removed), both averaged over channels, on the 0–255 scale; "
        "colours top out at the 99.5th percentile.</figcaption>",
        "</figure>",
        "<h2>Images</h2>",
        '<div class="pair pixels">',
        f"<figure>{_img(png_bytes(y[0], max_side=MAX_EMBED_SIDE), 'noisy', width)}"
        f"<figcaption>noisy ({shown})</figcaption></figure>",
        f"<figure>{_img(png_bytes(np.clip(x_hat[0], 0, 1), max_side=MAX_EMBED_SIDE), 'denoised', width)}"
        f"<figcaption>denoised ({shown}, 8-bit)</figcaption></figure>",
        "</div>",
    ]
    if settings:
        parts += ["<h2>Settings</h2>", _table(((str(k), str(v)) for k, v in settings.items()), numeric=False)]
    parts += [
        "<footer>One self-contained file: the images are embedded; nothing is loaded from elsewhere.</footer>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


def _figure_for(y, x_hat, std, reference, scores, *, method, source):
    captions = {}
    if scores:
        captions["noisy"] = f"{scores['psnr_noisy']:.2f} dB" + (
            f" / {scores['ssim_noisy']:.3f}" if np.isfinite(scores["ssim_noisy"]) else "")
        captions["denoised"] = f"{scores['psnr_denoised']:.2f} dB" + (
            f" / {scores['ssim_denoised']:.3f}" if np.isfinite(scores["ssim_denoised"]) else "")
    if method:
        captions["denoised"] = f"{method}" + (f", {captions['denoised']}" if "denoised" in captions else "")
    title = Path(source).name if source else None
    return make_figure(y, x_hat, uncertainty=std, reference=reference, title=title, captions=captions)


def default_figure_path(report_path: str | os.PathLike[str]) -> Path:
    """``report.html`` -> ``report_figure.png`` (beside it; never the name of a denoised output)."""
    path = Path(report_path)
    return path.with_name(f"{path.stem}_figure.png")


def write_report(
    path: str | os.PathLike[str],
    noisy: np.ndarray,
    denoised: np.ndarray,
    *,
    uncertainty: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    method: str | None = None,
    noise: Mapping[str, Iterable[float]] | None = None,
    seconds: float | None = None,
    settings: Mapping[str, object] | None = None,
    source: str | None = None,
    figure_path: str | os.PathLike[str] | None = None,
    protect: Iterable[str | os.PathLike[str]] = (),
) -> dict[str, Path]:
    """Write the HTML report and its PNG figure, atomically, both or neither.

    Parameters
    ----------
    path : str or path-like
        The page, ending in .html or .htm; its folder must exist.
    noisy, denoised, uncertainty, reference, method, noise, seconds, settings, source
        As in :func:`render_html`.
    figure_path : str or path-like, optional
        Where the PNG figure goes; default ``<stem>_figure.png`` beside `path`.
    protect : iterable of str or path-like, optional
        Files never to overwrite (the input image, the denoised output).

    Returns
    -------
    dict
        ``{"html": Path, "figure": Path}``.

    Raises
    ------
    DenoiselabError
        For a path without .html/.htm, a figure path without .png, a target in `protect`, a
        malformed array, or any write problem (missing or read-only folder, full disk). Each
        file is written atomically, the figure first; if the page then fails, the figure just
        written is removed, so no report is left half made.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> rng = np.random.default_rng(0)
    >>> clean = np.tile(np.linspace(0.2, 0.8, 32, dtype=np.float32), (32, 1))
    >>> noisy = clean + rng.normal(0, 0.05, clean.shape).astype(np.float32)
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "report.html"
    >>> paths = write_report(out, noisy, (noisy + clean) / 2, method="average", reference=clean)
    >>> sorted(p.name for p in paths.values())
    ['report.html', 'report_figure.png']
    """
    from ..io import atomic_write, same_file

    page = Path(os.fspath(path)).expanduser()
    if page.suffix.lower() not in (".html", ".htm"):
        raise DenoiselabError(f"report path {page} must end in .html (it is a web page); e.g. {page.with_suffix('.html')}")
    fig_path = Path(os.fspath(figure_path)).expanduser() if figure_path is not None else default_figure_path(page)
    if fig_path.suffix.lower() != ".png":
        raise DenoiselabError(f"figure path {fig_path} must end in .png")
    if isinstance(protect, (str, os.PathLike)):
        protect = [protect]
    for target in (page, fig_path):
        for other in protect:
            if same_file(target, other):
                raise DenoiselabError(f"refusing to overwrite {other} with the report {target}; choose another path")
    if same_file(page, fig_path):
        raise DenoiselabError(f"the report and its figure would both be {page}; choose another figure path")
    y, x_hat = as_stack("noisy", noisy), as_stack("denoised", denoised)
    std = as_stack("uncertainty", uncertainty, channels=tuple(range(1, 65)))
    check_same_size("noisy", y, {"denoised": x_hat, "uncertainty": std})
    scores = compare_to_reference(y, x_hat, reference) if reference is not None else None
    fig = _figure_for(y, x_hat, std, reference, scores, method=method, source=source)
    png = figure_png(fig)
    text = render_html(y, x_hat, uncertainty=std, reference=reference, method=method, noise=noise, seconds=seconds,
                       settings=settings, source=source, figure=png)
    atomic_write(fig_path, lambda tmp: tmp.write_bytes(png))
    try:
        atomic_write(page, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    except BaseException:
        fig_path.unlink(missing_ok=True)  # both or neither
        raise
    return {"html": page, "figure": fig_path}

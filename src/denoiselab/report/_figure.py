"""The report figure: noisy / denoised / posterior std / |difference| (/ clean), full and zoomed."""

from __future__ import annotations

import numpy as np

from ._common import as_stack, check_same_size, gray_map

#: Longest side of the zoomed crop, in pixels of the image.
MAX_CROP = 128
MIN_CROP = 16


def choose_crop(image: np.ndarray, *, side: int | None = None) -> tuple[int, int, int, int]:
    """The square window with the most detail, where a zoomed crop shows the method at work.

    Detail is the summed squared gradient inside the window, of the image averaged over channels
    and smoothed by a 5×5 box filter first (so that leftover pixel noise counts less than
    edges); the window with the largest sum wins, the first one in row-major order on ties (so
    a flat image gives the top-left corner).

    Parameters
    ----------
    image : np.ndarray, shape (H, W), (H, W, C) or (P, H, W, C)
        The image to look at (the denoised one is best: its gradients are structure, not
        noise). Only the first page of a stack is used.
    side : int, optional
        Side of the window in pixels. Default: a quarter of the shorter side, kept within
        [16, 128] pixels and within the image.

    Returns
    -------
    top, left, height, width : int
        The window, in pixels; height and width are `side` clipped to the image.

    Examples
    --------
    >>> img = np.zeros((64, 64)); img[40:50, 8:20] = 1.0
    >>> choose_crop(img, side=16)
    (36, 6, 16, 16)
    """
    from scipy.ndimage import uniform_filter

    plane = uniform_filter(gray_map(as_stack("image", image))[0].astype(np.float64), size=5, mode="nearest")
    h, w = plane.shape
    if side is None:
        side = min(max(min(h, w) // 4, MIN_CROP), MAX_CROP)
    ch, cw = max(1, min(int(side), h)), max(1, min(int(side), w))
    energy = np.zeros((h, w))
    if h > 1:
        energy[:-1, :] += np.diff(plane, axis=0) ** 2
    if w > 1:
        energy[:, :-1] += np.diff(plane, axis=1) ** 2
    # Window sums through a summed-area table: s[i, j] = energy[:i, :j].sum().
    s = np.zeros((h + 1, w + 1))
    s[1:, 1:] = energy.cumsum(axis=0).cumsum(axis=1)
    sums = s[ch:, cw:] - s[:-ch, cw:] - s[ch:, :-cw] + s[:-ch, :-cw]
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(top), int(left), ch, cw


def make_figure(
    noisy: np.ndarray,
    denoised: np.ndarray,
    *,
    uncertainty: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    title: str | None = None,
    captions: dict[str, str] | None = None,
    crop: tuple[int, int, int, int] | None = None,
):
    """Build the report figure (a matplotlib Figure; nothing is drawn on screen).

    Columns: noisy, denoised, posterior std (only when `uncertainty` is given), absolute
    difference ``|noisy - denoised|``, clean reference (only when `reference` is given). Row 1
    shows whole images, row 2 the zoomed `crop` (outlined in row 1), both at nearest-neighbour
    interpolation so pixels stay visible. Maps are the mean over channels, shown on the 0-255
    scale with a colour bar; the colour scale tops out at the 99.5th percentile of the map, so a
    few extreme pixels do not wash the rest out (the bar's arrow marks clipped values).

    Parameters
    ----------
    noisy, denoised : np.ndarray, shape (H, W), (H, W, C) or (P, H, W, C)
        Images in [0, 1] (clipped for display), C in {1, 3}; for a stack, page 0 is shown.
    uncertainty : np.ndarray, optional
        Per-pixel posterior standard deviation on the [0, 1] scale, same size as `denoised`
        (any channel count; averaged over channels), e.g. ``DenoiseResult.uncertainty``.
    reference : np.ndarray, optional
        The clean image, same size as `noisy`.
    title : str, optional
        The figure's title (e.g. the file name).
    captions : dict of str to str, optional
        Extra text under a column's title, keyed by column: ``"noisy"``, ``"denoised"``,
        ``"std"``, ``"difference"``, ``"reference"`` (e.g. PSNR / SSIM).
    crop : (top, left, height, width), optional
        The zoomed window; default :func:`choose_crop` on `denoised`.

    Returns
    -------
    matplotlib.figure.Figure
        Save it with ``fig.savefig(path, format="png")``.

    Raises
    ------
    DenoiselabError
        If an array has the wrong shape, NaN/inf values, or a size different from `noisy`.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    y = as_stack("noisy", noisy)
    x_hat = as_stack("denoised", denoised)
    std = as_stack("uncertainty", uncertainty, channels=tuple(range(1, 65)))
    clean = as_stack("reference", reference)
    check_same_size("noisy", y, {"denoised": x_hat, "uncertainty": std, "reference": clean})
    captions = captions or {}
    top, left, ch, cw = crop if crop is not None else choose_crop(x_hat)

    columns: list[tuple[str, str, np.ndarray, str]] = [("noisy", "noisy", y[0], "image"),
                                                       ("denoised", "denoised", x_hat[0], "image")]
    if std is not None:
        columns.append(("std", "posterior std", gray_map(std)[0] * 255, "map"))
    columns.append(("difference", "|noisy − denoised|", gray_map(np.abs(y - x_hat))[0] * 255, "map"))
    if clean is not None:
        columns.append(("reference", "clean reference", clean[0], "image"))

    h, w = y.shape[1:3]
    aspect = min(max(h / w, 0.25), 4.0)
    panel = 3.0
    crop_aspect = ch / cw
    fig = Figure(figsize=(panel * len(columns) + 0.6, panel * aspect + panel * crop_aspect + 1.4), layout="constrained")
    if title:
        fig.suptitle(title, fontsize=11)
    axes = fig.subplots(2, len(columns), squeeze=False,
                        gridspec_kw={"height_ratios": [aspect, crop_aspect]})
    for j, (key, label, data, kind) in enumerate(columns):
        full, zoom = axes[0, j], axes[1, j]
        if kind == "image":
            shown = np.clip(data, 0.0, 1.0)
            shown = shown[..., 0] if shown.shape[-1] == 1 else shown
            style = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}
        else:
            shown = data
            top_value = float(np.percentile(data, 99.5))
            vmax = top_value if top_value > 0 else float(data.max()) or 1.0
            style = {"cmap": "magma" if key == "std" else "viridis", "vmin": 0.0, "vmax": vmax}
        im = full.imshow(shown, interpolation="nearest", **style)
        zoom.imshow(shown[top : top + ch, left : left + cw], interpolation="nearest", **style)
        full.add_patch(Rectangle((left - 0.5, top - 0.5), cw, ch, fill=False, edgecolor="#ff3030", linewidth=1.2))
        text = label + (f"\n{captions[key]}" if captions.get(key) else "")
        full.set_title(text, fontsize=9)
        zoom.set_title(f"zoom {cw}×{ch} at ({left}, {top})", fontsize=8)
        for ax in (full, zoom):
            ax.set_xticks([])
            ax.set_yticks([])
        if kind == "map":
            clipped = float(data.max()) > style["vmax"]
            bar = fig.colorbar(im, ax=[full, zoom], shrink=0.9, extend="max" if clipped else "neither")
            bar.set_label("0–255 scale", fontsize=8)
            bar.ax.tick_params(labelsize=7)
    return fig

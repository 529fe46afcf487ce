"""A look at one denoising result: a self-contained HTML page and a PNG figure.

The figure shows the noisy image, the denoised image, the per-pixel posterior standard
deviation when there is one (ScoreDVI's, or the spread of SVNR's samples; other methods have
none, so the figure shows only the next map),
the absolute difference ``|noisy - denoised|`` (the noise the method removed), each with a
colour bar, and a second row with the same panels zoomed on the most detailed part of the
image. The HTML page embeds that figure and the two images as base64 PNG, with the numbers
(method, estimated noise, seconds, PSNR/SSIM against a clean reference when one is given); it
loads nothing from anywhere else (a Content-Security-Policy forbids it), so it can be mailed or
archived as one file.

Public functions::

    paths = write_report("report.html", noisy, denoised, uncertainty=std, method="scoredvi", seconds=27.3)
    fig = make_figure(noisy, denoised)               # a matplotlib Figure, to show or save
    numbers = compare_to_reference(noisy, denoised, clean)
"""

from ._figure import choose_crop, make_figure
from ._html import compare_to_reference, default_figure_path, render_html, write_report

__all__ = ["choose_crop", "compare_to_reference", "default_figure_path", "make_figure", "render_html", "write_report"]

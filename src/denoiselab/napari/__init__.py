"""denoiselab's napari plugin: a dock widget that denoises image layers, and sample data.

Install with ``pip install -c constraints.txt "denoiselab[napari]"``; napari finds it through
the ``napari.manifest`` entry point (``napari.yaml`` in this folder). In napari: *Plugins >
Denoise*, and *File > Open Sample > denoiselab*.

Modules
-------
_jobs         layer data -> float planes -> denoised planes -> layer data; no napari needed
_widget       the dock widget (:class:`DenoiseWidget`); needs napari
_sample_data  the bundled SIDD photo and a synthetic 16-bit fluorescence stack

Nothing else in denoiselab imports this package, and this package imports napari only in
``_widget``, which fails with an ImportError naming the install command when napari is missing.
"""

__all__ = ["DenoiseWidget"]


def __getattr__(name: str):
    if name == "DenoiseWidget":
        from ._widget import DenoiseWidget

        return DenoiseWidget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

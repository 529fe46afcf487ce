"""The napari dock widget: denoise an image layer with any denoiselab method, off the GUI thread.

It adds ``<name> denoised`` (the input's dtype, scale, translate and contrast limits) and, for
ScoreDVI, ``<name> uncertainty`` (posterior std in the input's gray levels). The work runs in
a napari thread worker, one plane at a time: the progress bar counts planes (busy for a single
plane) and Cancel stops before the next plane. Input the methods cannot take is reported as one
napari error notification, never a traceback. The computation lives in
:mod:`denoiselab.napari._jobs`; this module only builds the controls and shows the results.
"""

from __future__ import annotations

try:
    import napari
    from magicgui.widgets import ComboBox, Container, LineEdit, ProgressBar, PushButton, SpinBox
    from napari.qt.threading import create_worker
    from napari.utils.notifications import show_error, show_info
except ImportError as err:  # pragma: no cover - exercised by a subprocess test
    raise ImportError(f"denoiselab's napari plugin needs napari ({err}); install it with: "
                      'pip install -c constraints.txt "denoiselab[napari]"') from err

import numpy as np

from ..errors import DenoiselabError
from ._jobs import (PRECISIONS, SCOREDVI_METHODS, denoise_planes, list_methods, method_uses_sigma, parse_sigma,
                    prepare_image, supports_precision, to_layer_dtype)

__all__ = ["DenoiseWidget"]


def _run_job(prepared, method: str, **options):
    """The worker's generator: plane counts while it runs, then the results or the user error."""
    try:
        return (yield from denoise_planes(prepared, method, **options))
    except DenoiselabError as err:  # bad settings found mid-run: a notification, not a traceback
        return err


class DenoiseWidget(Container):
    """Dock widget: image layer, method, noise level, ScoreDVI iterations, precision (where ``denoise`` has it), seed.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose layers it reads and to which it adds the results (napari passes it).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._worker = None
        self.image = ComboBox(label="image", choices=self._layer_choices, nullable=True,
                              tooltip="A 2-D image, an RGB image or a stack / volume "
                                      "(8- or 16-bit, or floats in [0, 1])")
        self.method = ComboBox(label="method", choices=list_methods(), value="scoredvi-fast",
                               tooltip="scoredvi-* also gives a posterior-std (uncertainty) layer")
        self.noise = LineEdit(label="noise σ", value="auto",
                              tooltip="auto, or the noise std in the layer's gray levels (0-255 for 8-bit, "
                                      "0-65535 for 16-bit); used by the Gaussian denoisers")
        self._has_precision = supports_precision()  # denoise(precision=...) is newer than this widget
        self.precision = ComboBox(label="precision", choices=list(PRECISIONS), value="auto",
                                  visible=None if self._has_precision else False)
        self.iterations = SpinBox(label="iterations", value=0, min=0, max=10000,
                                  tooltip="ScoreDVI's iterations; 0 keeps the preset's (fast 40, paper 400)")
        self.seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1)
        self.run_button = PushButton(text="Denoise")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", value=0, min=0, max=1)
        self.extend([self.image, self.method, self.noise, self.iterations, self.precision, self.seed, self.run_button,
                     self.cancel_button, self.progress])
        self.method.changed.connect(self._on_method_changed)
        self.run_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        layer_events = napari_viewer.layers.events
        for event in (layer_events.inserted, layer_events.removed, layer_events.reordered):
            event.connect(self._refresh_layers)
        self._refresh_layers()
        self._on_method_changed(self.method.value)

    def _layer_choices(self, _widget=None):
        return [(layer.name, layer) for layer in self._viewer.layers]

    def _refresh_layers(self, _event=None):
        current = self.image.value
        self.image.reset_choices()
        if current is None or current not in self._viewer.layers:
            selected = self._viewer.layers.selection.active
            images = [layer for layer in self._viewer.layers if isinstance(layer, napari.layers.Image)]
            pick = selected if isinstance(selected, napari.layers.Image) else (images[-1] if images else None)
            if pick is not None:
                self.image.value = pick

    def _on_method_changed(self, method: str):
        self.noise.enabled = method_uses_sigma(method)
        self.iterations.enabled = method in SCOREDVI_METHODS

    @property
    def worker(self):
        """The running thread worker, or None."""
        return self._worker

    def start(self, _value=None):
        """Check the choices and start denoising in a thread worker; a problem becomes a notification."""
        if self._worker is not None:
            return
        layer = self.image.value
        try:
            job = self._job(layer)
        except DenoiselabError as err:
            show_error(str(err))
            return
        prepared = job["prepared"]
        self.progress.max = prepared.n_planes if prepared.n_planes > 1 else 0  # 0: busy indicator
        self.progress.value = 0
        worker = create_worker(_run_job, _start_thread=False, **job)
        worker.yielded.connect(self._on_plane_done)
        worker.returned.connect(lambda result: self._show_result(layer, prepared, result))
        worker.aborted.connect(lambda: show_info(f"denoising '{layer.name}' was cancelled"))
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        worker.start()

    def _job(self, layer) -> dict:
        """The worker's arguments for `layer`; DenoiselabError for anything it cannot take."""
        if layer is None:
            raise DenoiselabError("no image layer chosen; open an image (File > Open) and pick it in 'image'")
        if not isinstance(layer, napari.layers.Image):
            kind = type(layer).__name__.lower()
            raise DenoiselabError(f"layer '{layer.name}' is a {kind} layer; denoiselab denoises image layers only")
        if layer.multiscale:
            raise DenoiselabError(f"layer '{layer.name}' is multiscale; denoise its full-resolution level as an "
                                  "image layer of its own")
        prepared = prepare_image(layer.data, rgb=layer.rgb, name=layer.name)
        method = self.method.value
        sigma = parse_sigma(self.noise.value, prepared.data_range) if method_uses_sigma(method) else None
        precision = self.precision.value if self._has_precision else None
        iterations = int(self.iterations.value) if method in SCOREDVI_METHODS and self.iterations.value else None
        return {"prepared": prepared, "method": method, "sigma": sigma, "seed": int(self.seed.value),
                "iterations": iterations, "precision": precision}

    def cancel(self, _value=None):
        """Ask the running worker to stop before its next plane."""
        if self._worker is not None:
            self._worker.quit()
            self.cancel_button.enabled = False

    def _on_plane_done(self, done: int):
        if self.progress.max > 0:
            self.progress.value = done

    def _on_finished(self):
        self._worker = None
        self.run_button.enabled = True
        self.cancel_button.enabled = False
        self.progress.max = max(self.progress.max, 1)

    def _show_result(self, layer, prepared, result):
        if isinstance(result, DenoiselabError):
            show_error(str(result))
            return
        x_hat, uncertainty = result
        self.progress.value = self.progress.max
        place = {"scale": layer.scale, "translate": layer.translate}
        denoised = to_layer_dtype(x_hat, prepared.dtype, prepared.data_range)
        colormap = None if layer.rgb else layer.colormap
        self._put_layer(f"{layer.name} denoised", denoised, rgb=layer.rgb, colormap=colormap,
                        contrast_limits=layer.contrast_limits, **place)
        if uncertainty is not None:
            low, high = (float(v) for v in np.percentile(uncertainty, [1.0, 99.5]))
            self._put_layer(f"{layer.name} uncertainty", uncertainty, rgb=False, colormap="magma",
                            contrast_limits=(low, high if high > low else low + 1.0), **place)

    def _put_layer(self, name: str, data: np.ndarray, **properties):
        """Replace the data of the image layer called `name` (a rerun), or add one."""
        if name in self._viewer.layers:
            existing = self._viewer.layers[name]
            if isinstance(existing, napari.layers.Image) and existing.rgb == properties["rgb"] \
                    and existing.data.shape == data.shape:
                existing.data = data
                for key in ("contrast_limits", "scale", "translate"):
                    setattr(existing, key, properties[key])
                return
        properties = {key: value for key, value in properties.items() if value is not None}
        self._viewer.add_image(data, name=name, **properties)

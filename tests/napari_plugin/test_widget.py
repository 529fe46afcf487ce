"""The napari plugin in a real viewer (napari's make_napari_viewer fixture; needs a display).

Locally these tests skip without napari + pytest-qt (``pip install -c constraints.txt -e
".[napari-test]"``) or without a display (run ``xvfb-run -a python -m pytest ...``). CI sets
DENOISELAB_REQUIRE_NAPARI=1, which turns that skip into a failure, so they always run there.
"""

import os
import sys
from importlib.util import find_spec

import numpy as np
import pytest

from denoiselab.napari._sample_data import make_fluorescence_stack


def _why_not_runnable() -> str | None:
    if find_spec("napari") is None or find_spec("pytestqt") is None:
        return 'napari and pytest-qt are not installed (pip install -c constraints.txt -e ".[napari-test]")'
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display for a napari window; run under a virtual X server: xvfb-run -a python -m pytest ..."
    return None


_REASON = _why_not_runnable()
if _REASON and os.environ.get("DENOISELAB_REQUIRE_NAPARI") == "1":
    pytest.fail(f"DENOISELAB_REQUIRE_NAPARI=1 but {_REASON}", pytrace=False)
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")

PLUGIN, WIDGET = "denoiselab", "Denoise"


@pytest.fixture
def plugin(npe2pm):
    """napari's test plugin manager (it blocks discovery) with our manifest as installed, from its entry point."""
    from npe2 import PluginManifest

    npe2pm.register(PluginManifest.from_distribution(PLUGIN))
    return npe2pm


@pytest.fixture
def viewer_and_widget(make_napari_viewer, plugin):
    """A viewer with the plugin's dock widget, opened the way a user does (Plugins menu)."""
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    yield viewer, widget
    if widget.worker is not None:  # never leave a thread behind
        widget.worker.quit()
        widget.worker.await_workers(msecs=60_000)


def errors_shown():
    """Messages of the error notifications napari has shown so far."""
    from napari.utils.notifications import NotificationSeverity, notification_manager

    return [n.message for n in notification_manager.records if n.severity == NotificationSeverity.ERROR]


def run_widget(qtbot, widget, timeout_ms=120_000):
    """Press Denoise and wait for the worker to finish; returns main-thread timer ticks seen meanwhile."""
    from qtpy.QtCore import QTimer

    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(20)
    widget.run_button.native.click()
    assert widget.worker is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout_ms)
    timer.stop()
    return len(ticks)


def test_napari_discovers_the_plugin_and_its_sample_data(make_napari_viewer, plugin):
    import npe2

    discovering = npe2.PluginManager()  # a real one, as napari builds at start-up
    discovering.discover()
    manifest = discovering.get_manifest(PLUGIN)
    assert [w.display_name for w in manifest.contributions.widgets] == [WIDGET]
    assert {s.key for s in manifest.contributions.sample_data} == {"sidd_photo", "fluorescence_stack"}
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "fluorescence_stack")
    viewer.open_sample(PLUGIN, "sidd_photo")
    stack, photo = viewer.layers
    assert stack.data.dtype == np.uint16 and stack.data.shape == (3, 128, 128)
    assert photo.rgb and photo.data.shape == (256, 256, 3)


def test_widget_denoises_a_16bit_stack_with_bm3d(viewer_and_widget, qtbot):
    viewer, widget = viewer_and_widget
    clean, noisy = make_fluorescence_stack(planes=3, size=64, seed=2)
    layer = viewer.add_image(noisy, name="cells", scale=(2.0, 0.5, 0.5), translate=(1.0, 10.0, 20.0),
                             contrast_limits=(1000, 40000))
    widget.image.value = layer
    widget.method.value = "bm3d"
    widget.noise.value = "auto"
    run_widget(qtbot, widget)
    out = viewer.layers["cells denoised"]
    assert out.data.dtype == np.uint16 and out.data.shape == noisy.shape
    assert np.allclose(out.scale, layer.scale) and np.allclose(out.translate, layer.translate)
    assert tuple(out.contrast_limits) == (1000, 40000)
    assert np.abs(out.data.astype(float) - clean).mean() < np.abs(noisy.astype(float) - clean).mean()
    assert "cells uncertainty" not in viewer.layers
    assert widget.progress.value == 3 and widget.run_button.enabled and not widget.cancel_button.enabled


def test_widget_adds_the_scoredvi_uncertainty_and_stays_responsive(viewer_and_widget, qtbot):
    viewer, widget = viewer_and_widget
    _, noisy = make_fluorescence_stack(planes=2, size=48, seed=3)
    layer = viewer.add_image(noisy, name="z", scale=(3.0, 0.2, 0.2))
    widget.image.value = layer
    widget.method.value = "scoredvi-fast"
    widget.iterations.value = 2
    ticks = run_widget(qtbot, widget)
    denoised, std = viewer.layers["z denoised"], viewer.layers["z uncertainty"]
    assert denoised.data.dtype == np.uint16 and std.data.shape == noisy.shape and std.data.dtype == np.float32
    assert (std.data >= 0).all() and std.data.max() > 0 and np.allclose(std.scale, layer.scale)
    assert ticks > 10  # the GUI thread kept handling events while the planes were denoised
    run_widget(qtbot, widget)  # a rerun replaces the layers' data instead of adding more
    assert len(viewer.layers) == 3


def test_cancel_stops_before_the_next_plane(viewer_and_widget, qtbot):
    from napari.utils.notifications import notification_manager

    viewer, widget = viewer_and_widget
    _, noisy = make_fluorescence_stack(planes=8, size=64, seed=4)
    widget.image.value = viewer.add_image(noisy, name="long")
    widget.method.value = "bm3d"
    widget.run_button.native.click()
    worker = widget.worker
    done = []
    worker.yielded.connect(lambda count: (done.append(count), widget.cancel()))
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    # the worker may finish a plane or two before the GUI thread handles the first report; it stops at the next
    assert done[0] == 1 and done[-1] < 8 and worker.abort_requested
    assert "long denoised" not in viewer.layers and widget.run_button.enabled
    assert any("cancelled" in n.message for n in notification_manager.records)


@pytest.mark.parametrize("make_layer, expected", [
    (lambda v: v.add_labels(np.zeros((32, 32), np.uint8), name="mask"), "'mask' is a labels layer"),
    (lambda v: v.add_image(np.zeros((32, 32, 4), np.uint8), name="rgba", rgb=True), "4 colour channels"),
    (lambda v: v.add_image(np.full((32, 32), np.nan, np.float32), name="holes"), "NaN"),
    (lambda v: v.add_image(np.zeros((32, 32), np.int32), name="counts"), "dtype int32"),
])
def test_bad_input_is_one_notification_and_no_traceback(viewer_and_widget, capsys, make_layer, expected):
    viewer, widget = viewer_and_widget
    widget.image.value = make_layer(viewer)
    before = len(errors_shown())
    widget.run_button.native.click()
    shown = errors_shown()[before:]
    assert len(shown) == 1 and expected in shown[0] and "\n" not in shown[0]
    assert widget.worker is None and len(viewer.layers) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_a_bad_noise_level_is_a_notification(viewer_and_widget):
    viewer, widget = viewer_and_widget
    widget.image.value = viewer.add_image(np.zeros((32, 32), np.uint8), name="flat")
    widget.method.value = "nlm"
    widget.noise.value = "lots"
    before = len(errors_shown())
    widget.run_button.native.click()
    assert errors_shown()[before:] == ["noise level 'lots' must be 'auto' or a number from 0 to 255 in the layer's "
                                       "gray levels"]
    assert widget.worker is None


def test_precision_is_offered_and_passed_once_denoise_takes_it(make_napari_viewer, plugin, monkeypatch):
    import denoiselab.napari._widget as widget_module

    viewer = make_napari_viewer()
    for has_precision in (False, True):
        monkeypatch.setattr(widget_module, "supports_precision", lambda: has_precision)
        widget = widget_module.DenoiseWidget(viewer)
        widget.image.value = viewer.add_image(np.zeros((16, 16), np.uint8), name=f"p{has_precision}")
        widget.precision.value = "bf16"
        assert widget._job(widget.image.value)["precision"] == ("bf16" if has_precision else None)
        assert widget.precision.native.isHidden() is not has_precision

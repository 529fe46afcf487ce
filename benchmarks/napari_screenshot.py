"""The napari plugin at work: a real noisy fluorescence stack, its denoised and uncertainty layers.

Opens a napari viewer, loads noisy FMDD frames of one field of view as a stack (research-use
data from the shared data folder; not shipped with denoiselab), opens the plugin's dock widget
from the Plugins menu's entry, denoises through the widget exactly as a user would, shows the
three layers side by side (grid mode) and saves a screenshot of the whole window. It also
measures what a user feels: seconds until the layers appear, the longest stall of the GUI thread
while the worker ran (a 20 ms timer's largest gap), and PSNR of each frame against FMDD's
50-frame average.

    xvfb-run -a python benchmarks/napari_screenshot.py            # the committed screenshot (CPU, a few minutes)
    xvfb-run -a python benchmarks/napari_screenshot.py --quick    # 2 frames of 96², 2 iterations, seconds

Needs ``pip install -c constraints.txt -e ".[napari]"`` and a display (Xvfb is enough).
Writes benchmarks/results/napari/<date>_<commit>_<device>.{png,md}.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from denoiselab.bench.tables import markdown_table, provenance, result_stem
from denoiselab.io import atomic_write
from denoiselab.metrics import psnr

ROOT = Path(__file__).resolve().parent.parent


def read_frames(folder: Path, names: list[str], crop: int) -> np.ndarray:
    """The central `crop`² of each 8-bit gray frame, stacked: (len(names), crop, crop) uint8."""
    frames = [np.asarray(Image.open(folder / f"{name}.png").convert("L")) for name in names]
    top, left = (frames[0].shape[0] - crop) // 2, (frames[0].shape[1] - crop) // 2
    return np.stack([frame[top:top + crop, left:left + crop] for frame in frames])


def run_in_viewer(noisy: np.ndarray, args) -> dict:
    """Denoise `noisy` through the plugin's widget in a napari window; returns layers, timings, window."""
    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(title="denoiselab in napari")
    viewer.window.resize(args.width, args.height)
    layer = viewer.add_image(noisy, name=args.name, colormap="gray")
    _, widget = viewer.window.add_plugin_dock_widget("denoiselab", "Denoise")
    widget.image.value = layer
    widget.method.value = args.method
    widget.iterations.value = args.iterations
    stamps: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: stamps.append(time.perf_counter()))
    timer.start(20)
    start = time.perf_counter()
    widget.run_button.native.click()
    planes_done: list[float] = []
    widget.worker.yielded.connect(lambda _count: planes_done.append(time.perf_counter()))
    while widget.worker is not None:
        QApplication.processEvents()
        time.sleep(0.005)
    seconds = time.perf_counter() - start
    timer.stop()
    stamps = np.array([start, *stamps])
    gaps = np.diff(stamps)
    computing = gaps[stamps[1:] <= planes_done[-1]]  # gaps that ended before the last plane was reported
    viewer.grid.enabled = True
    viewer.grid.shape = (1, -1)
    viewer.reset_view()
    from napari._qt.dialogs.qt_notification import NapariQtNotification  # napari's toasts (PyQt5 deprecation)

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()
    for _ in range(20):
        QApplication.processEvents()
    return {"viewer": viewer, "seconds": seconds, "stall_computing_ms": 1000 * float(computing.max()),
            "median_gap_ms": 1000 * float(np.median(computing)),
            "stall_ms": 1000 * float(gaps.max()),
            "denoised": viewer.layers[f"{args.name} denoised"].data,
            "uncertainty": viewer.layers[f"{args.name} uncertainty"].data}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path,
                   default=Path(os.environ.get("DENOISELAB_DATA", ROOT.parent / "shared" / "data")))
    p.add_argument("--fov", default="Confocal_BPAE_G",
                   help="FMDD configuration: frames <fov>_1.png ... in real/fmdd/noisy")
    p.add_argument("--frames", type=int, default=3)
    p.add_argument("--crop", type=int, default=256, help="central crop side in pixels")
    p.add_argument("--method", default="scoredvi-fast")
    p.add_argument("--iterations", type=int, default=0, help="ScoreDVI iterations; 0 keeps the preset's")
    p.add_argument("--width", type=int, default=1500)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "napari")
    p.add_argument("--quick", action="store_true", help="2 frames of 96², 2 iterations")
    args = p.parse_args()
    if args.quick:
        args.frames, args.crop, args.iterations = 2, 96, 2
    args.name = f"FMDD {args.fov}"
    fmdd = args.data_root / "real" / "fmdd"
    names = [f"{args.fov}_{i}" for i in range(1, args.frames + 1)]
    noisy = read_frames(fmdd / "noisy", names, args.crop)
    clean = read_frames(fmdd / "clean", names, args.crop).astype(np.float32) / 255

    result = run_in_viewer(noisy, args)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = result_stem(args.out, "cpu")
    png = stem.with_suffix(".png")
    picture = result["viewer"].screenshot(canvas_only=False, flash=False)
    atomic_write(png, lambda tmp: Image.fromarray(picture).save(tmp, format="PNG"))

    def db(image: np.ndarray, frame: int) -> str:
        return f"{float(psnr(image[frame].astype(np.float32) / 255, clean[frame])[0]):.2f}"

    header = ["frame", "noisy PSNR (dB)", "denoised PSNR (dB)", "mean posterior std (gray levels)"]
    rows = [[name, db(noisy, i), db(result["denoised"], i), f"{float(result['uncertainty'][i].mean()):.2f}"]
            for i, name in enumerate(names)]
    text = "\n".join([
        f"# napari plugin: {args.method} on {args.frames} FMDD frames ({args.fov}, {args.crop}² central crops)", "",
        provenance("cpu"), "",
        f"![screenshot]({png.name})", "",
        f"- seconds from pressing Denoise to the layers appearing: {result['seconds']:.1f}",
        "- longest gap of a 20 ms GUI-thread timer (how long the viewer stopped responding): "
        f"{result['stall_computing_ms']:.0f} ms while the planes were denoised, {result['stall_ms']:.0f} ms in all "
        "(with napari adding the result layers on the GUI thread); median gap while denoising "
        f"{result['median_gap_ms']:.0f} ms",
        "- PSNR against FMDD's 50-frame average (8-bit frames, data range 255):", "",
        markdown_table(header, rows), "",
    ])
    md = stem.with_suffix(".md")
    atomic_write(md, lambda tmp: tmp.write_text(text))
    print(text)
    result["viewer"].close()


if __name__ == "__main__":
    main()

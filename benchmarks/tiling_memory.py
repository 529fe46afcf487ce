"""Peak memory of ``denoiselab.denoise`` on a 24-megapixel photo, every method, CPU.

Question: does every method denoise a 6000×4000 RGB photo within the memory budget that
``denoise`` picks its tiles for (``max_memory_mb``, default 2048 MiB), and how much working
memory does one tile take per pixel (the constants behind ``denoiselab.api.plan_tile``)?

How it measures. Each case runs in a fresh Python process: it loads the image from a cached
``.npy``, warms the method up on a 64×64 image (weights, libraries, thread pools), resets the
kernel's peak-RSS counter (``/proc/self/clear_refs``, Linux), reads the resident memory, calls
``denoise`` once and reads the peak (``VmHWM``). "call peak" is peak minus that baseline: the
memory the call allocated, which the budget bounds; "process peak" is the whole process.

Bounded time. BM3D runs at about 0.004 megapixels/s per core and ScoreDVI ``fast`` at about
0.002, so a whole 24 MP photo takes hours. For every method but the bias-free DnCNN at the
default budget (which runs on the whole photo), the case stops computing after ``--max-tiles``
tiles (default 1): the remaining tiles return their input unchanged, but go through the same
blending into the same full-size output. Every tile has the same size, so the first tile
already reaches the per-tile peak; the full-size arrays (output, ScoreDVI's uncertainty map and
accumulators, the noise estimate on the whole plane) are all allocated. ScoreDVI runs 2
iterations per tile instead of 40 (its memory per iteration is constant). The output arrays
are touched before the first tile (``denoise`` does so), so the first tile is at the plateau
of the whole run. BM3D and BF-DnCNN also run at a 1024 MiB budget. On the 24 MP photo
sigma is estimated (the default), in the calibration cases it is given.

The calibration cases run one untiled call on centre crops of two sizes; "work B/px" =
(call peak - outputs) / pixels is the per-tile constant the budget rule uses
(it is the same at both sizes: the working memory is linear in the pixel count).

Usage::

    python benchmarks/tiling_memory.py [--quick] [--data-root DIR] [--threads 2]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MIB = 2.0**20
SIGMA = 25 / 255
WIDTH, HEIGHT = 6000, 4000
NET = "bfdncnn-color"


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def _limit_tiles(method: str, n: int) -> None:
    """After `n` tiles, let the method return its input (see the module docstring)."""
    import torch

    if method == "scoredvi":
        import denoiselab.scoredvi.core as core

        fit = core.fit_scoredvi

        def limited_fit(y, priors, *, preset, **kw):
            limited_fit.calls += 1
            if limited_fit.calls <= n:
                return fit(y, priors, preset=preset, **kw)
            b = y.shape[0]
            return y.clone(), torch.zeros_like(y), torch.zeros(preset.n_iter, b), torch.zeros(b)

        limited_fit.calls = 0
        core.fit_scoredvi = limited_fit
        return
    from denoiselab.denoisers.bfdncnn import BFDnCNN
    from denoiselab.denoisers.classic import NumpyDenoiser

    cls, name = (BFDnCNN, "forward") if method.startswith("bfdncnn") else (NumpyDenoiser, "__call__")
    call = getattr(cls, name)

    def limited_call(self, y, sigma=None):
        limited_call.calls += 1
        return call(self, y, sigma) if limited_call.calls <= n else y.clone()

    limited_call.calls = 0
    setattr(cls, name, limited_call)


def _worker(spec: dict) -> dict:
    import gc

    import numpy as np
    import torch

    torch.set_num_threads(spec["threads"])
    from denoiselab import denoise

    image = np.load(spec["path"])
    kw = {"iterations": spec["iterations"]} if spec["method"] == "scoredvi" else {}
    # calibration: the true sigma, so the call is the method alone; 24 MP: estimated, as by default
    sigma = SIGMA if spec["kind"] == "calibration" and spec["method"] != "scoredvi" else None
    warm = np.ascontiguousarray(image[:64, :64])
    denoise(warm, spec["method"], sigma=SIGMA if spec["method"] != "scoredvi" else None, device="cpu", **kw)
    if spec["max_tiles"]:
        _limit_tiles(spec["method"], spec["max_tiles"])
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    base = _status_kib("VmRSS")
    t0 = time.perf_counter()
    res = denoise(image, spec["method"], sigma=sigma, device="cpu", tile=spec["tile"],
                  max_memory_mb=spec["max_memory_mb"], return_details=True, **kw)
    seconds = time.perf_counter() - t0
    peak = _status_kib("VmHWM")
    n_tiles = res.settings["n_tiles"]
    return {"base_mib": base / 1024, "peak_mib": peak / 1024, "call_mib": (peak - base) / 1024,
            "tile": res.settings["tile"], "n_tiles": n_tiles, "seconds": seconds,
            "tiles_run": min(n_tiles, spec["max_tiles"]) if spec["max_tiles"] else n_tiles,
            "finite": bool(np.isfinite(res.image).all())}


def _make_images(data_root: Path, cache: Path, sizes: list[int]) -> dict[str, Path]:
    """The 24 MP noisy photo (a training image resized with Lanczos) and centre crops of it."""
    import numpy as np
    from PIL import Image

    src = data_root / "train" / "color" / "100007.jpg"
    clean = Image.open(src).convert("RGB").resize((WIDTH, HEIGHT), Image.Resampling.LANCZOS)
    x = np.asarray(clean, dtype=np.float32) / 255
    rng = np.random.default_rng(0)
    y = np.clip(x + rng.normal(0, SIGMA, x.shape).astype(np.float32), 0, 1)  # as an 8-bit photo would be
    paths = {"24mp": cache / "noisy_24mp.npy"}
    np.save(paths["24mp"], y)
    for s in sizes:
        r, c = (HEIGHT - s) // 2, (WIDTH - s) // 2
        paths[str(s)] = cache / f"noisy_{s}.npy"
        np.save(paths[str(s)], np.ascontiguousarray(y[r:r + s, c:c + s]))
    return paths


def _cases(part: str, quick: bool, max_tiles: int, iterations: int) -> list[dict]:
    big = 1e6  # MiB: no tiling
    cal = [(NET, "512"), (NET, "1024"), ("bm3d", "256"), ("bm3d", "512"), ("nlm", "512"), ("nlm", "1024"),
           ("tv", "512"), ("tv", "1024"), ("wavelet", "512"), ("wavelet", "1024"), ("scoredvi", "256"),
           ("scoredvi", "512")]
    # (method, budget in MiB (None: the default), tiles computed (0: all))
    full = [(NET, None, 0), (NET, 1024, max_tiles), ("bm3d", None, max_tiles), ("bm3d", 1024, max_tiles),
            ("nlm", None, max_tiles),
            ("tv", None, max_tiles), ("wavelet", None, max_tiles), ("scoredvi", None, max_tiles)]
    if quick:
        cal, full = [(NET, "512"), ("tv", "512")], [(NET, 1024, 1), ("tv", None, 1)]
    cases = []
    if part in ("all", "calibration"):
        cases += [{"kind": "calibration", "method": m, "image": s, "max_memory_mb": big, "max_tiles": 0} for m, s in cal]
    if part in ("all", "24mp"):
        cases += [{"kind": "24 MP", "method": m, "image": "24mp", "max_memory_mb": b, "max_tiles": n} for m, b, n in full]
    for c in cases:
        c["iterations"], c["tile"] = iterations, None
    return cases


def _select(cases: list[dict], only: list[str] | None) -> list[dict]:
    if not only:
        return cases

    def wanted(case: dict, spec: str) -> bool:
        method, _, budget = spec.partition("@")
        mib = case["max_memory_mb"]
        return case["method"] == method and (not budget or str(mib if mib is not None else "default") == budget)

    return [c for c in cases if any(wanted(c, s) for s in only)]


def _commit() -> str:
    try:
        res = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
    except OSError:
        return "unknown"
    return res.stdout.strip() + ("-dirty" if dirty.strip() else "") if res.returncode == 0 else "none"


def _unique(path: Path) -> Path:
    k, out = 2, path
    while out.exists():
        out = path.with_name(f"{path.stem}_{k}{path.suffix}")
        k += 1
    return out


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    default_root = os.environ.get("DENOISELAB_DATA", str((REPO / ".." / "shared" / "data").resolve()))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=default_root, help="folder holding train/color")
    ap.add_argument("--quick", action="store_true", help="bfdncnn-color and tv only")
    ap.add_argument("--threads", type=int, default=2, help="torch threads per case")
    ap.add_argument("--max-tiles", type=int, default=1, help="tiles computed in the bounded cases")
    ap.add_argument("--iterations", type=int, default=2, help="ScoreDVI iterations per tile")
    ap.add_argument("--part", choices=("all", "calibration", "24mp"), default="all")
    ap.add_argument("--only", action="append", metavar="METHOD[@MIB]",
                    help="run only the cases of this method (and budget in MiB; 'default' for the default); repeatable")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "tiling_memory"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return 0

    import numpy as np
    import torch

    from denoiselab.api import DEFAULT_MEMORY_MB

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = _make_images(Path(args.data_root), Path(tmp), [256, 512, 1024])
        for case in _select(_cases(args.part, args.quick, args.max_tiles, args.iterations), args.only):
            spec = {**case, "path": str(paths[case["image"]]), "threads": args.threads}
            env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
            proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True,
                                  text=True, env=env)
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return 1
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            shape = np.load(spec["path"], mmap_mode="r").shape
            plane_mib = shape[0] * shape[1] * shape[2] * 4 / MIB
            outputs = 2 if case["method"] == "scoredvi" else 1
            row = {"kind": case["kind"], "method": case["method"], "image": f"{shape[1]}x{shape[0]} RGB",
                   "max_memory_mb": case["max_memory_mb"] or DEFAULT_MEMORY_MB, "tile": res["tile"],
                   "n_tiles": res["n_tiles"], "tiles_run": res["tiles_run"],
                   "iterations": case["iterations"] if case["method"] == "scoredvi" else "",
                   "base_mib": round(res["base_mib"], 1), "call_peak_mib": round(res["call_mib"], 1),
                   "process_peak_mib": round(res["peak_mib"], 1), "seconds": round(res["seconds"], 1),
                   "work_bytes_per_px": "", "finite": res["finite"]}
            if case["kind"] == "calibration":
                work = res["call_mib"] - outputs * plane_mib
                row["work_bytes_per_px"] = round(work * MIB / (shape[0] * shape[1]), 1)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{dt.date.today().isoformat()}_{_commit()}_cpu" + ("_quick" if args.quick else "")
    stem += "" if args.part == "all" else f"_{args.part}"
    md_path = _unique(out_dir / f"{stem}.md")
    with open(md_path.with_suffix(".csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cols = ["kind", "method", "image", "max_memory_mb", "tile", "n_tiles", "tiles_run", "iterations", "base_mib",
            "call_peak_mib", "process_peak_mib", "seconds", "work_bytes_per_px"]
    lines = [
        "# Peak memory of denoiselab.denoise on a 24-megapixel photo (CPU)",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, commit {_commit()}",
        f"- device: CPU only, {_cpu_name()}, {os.cpu_count()} cores (shared with other jobs), "
        f"{args.threads} torch threads per case; torch {torch.__version__}",
        f"- command: `{' '.join(shlex.quote(a) for a in ['python', *sys.argv])}`",
        "- image: train/color/100007.jpg resized to 6000x4000 (Lanczos) + AWGN σ = 25/255 clipped to [0, 1], float32; "
        "calibration crops are its centre",
        "- one fresh process per row; `base_mib`: resident memory after imports, weights, warm-up and the "
        "image (≈ 288 MiB); `call_peak_mib`: peak RSS during `denoise` minus base (what `max_memory_mb` "
        "bounds); `process_peak_mib`: peak RSS of the whole process",
        f"- `tiles_run` < `n_tiles`: the rest returned their input (bounded time; see the script); ScoreDVI "
        f"at {args.iterations} iterations per tile",
        "- `work_bytes_per_px` (calibration, untiled, sigma given): (call peak - output arrays) / pixels",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    md_path.write_text("\n".join(lines) + "\n")
    print(md_path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

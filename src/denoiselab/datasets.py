"""Noisy/clean benchmark pairs, in the forms the real-noise benchmarks are distributed in.

One loader, :func:`open_pairs`, recognises the layout of a path and returns a
:class:`PairedDataset`: a sorted list of named pairs whose images are read lazily
(float32, (H, W, C), [0, 1]; see :func:`denoiselab.io.read_image`). Recognised layouts:

===================  ===================================================================
layout               what the path holds
===================  ===================================================================
``folders``          ``noisy/`` + ``clean/`` (or ``GT/``, ``gt/``, ``mean/``) with the same
                     file names; also FMDD's ``test_mix`` form, ``raw/`` + ``gt/``
``suffix``           one folder of ``<name>_real.<ext>`` + ``<name>_mean.<ext>`` files:
                     PolyU (``.JPG``) and CC, Nam et al. (``.png``)
``sidd-mat``         ``ValidationNoisyBlocksSrgb.mat`` + ``ValidationGtBlocksSrgb.mat``
                     (the path is either file or their folder): 40 scenes × 32 blocks of
                     256×256, pairs named ``<scene>_<block>`` counted from 1, as in the
                     PNG block folders
``fmdd``             FMDD as released: ``<config>/raw/<fov>/*.png`` noisy frames and
                     ``<config>/gt/<fov>/avg50.png`` (one ground truth per field of view);
                     pairs named ``<config>_<fov>_<frame>``
===================  ===================================================================

Everything that can be checked before a long run is checked when the dataset is opened:
missing folders, files without a partner, an empty dataset. Each problem raises
:class:`~denoiselab.errors.DenoiselabError` with one line that says what was found and what
was expected.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DenoiselabError
from .io import read_image
from .io._common import EXTENSIONS

__all__ = ["Pair", "PairedDataset", "open_pairs", "center_crop", "KNOWN_BENCHMARKS", "benchmark_key"]

NOISY_DIRS = ("noisy", "raw", "input")
CLEAN_DIRS = ("clean", "gt", "GT", "mean", "target")
SIDD_MATS = ("ValidationNoisyBlocksSrgb.mat", "ValidationGtBlocksSrgb.mat")

#: Folder-name patterns -> the key under which the ScoreDVI paper reports a benchmark.
KNOWN_BENCHMARKS = {
    "sidd": re.compile(r"sidd", re.I),
    "polyu": re.compile(r"polyu", re.I),
    "cc": re.compile(r"(^|[^a-z])cc(15)?([^a-z]|$)|nam", re.I),
    "fmdd": re.compile(r"fmd", re.I),
}


def benchmark_key(name: str) -> str | None:
    """Which paper benchmark (``sidd``, ``polyu``, ``cc``, ``fmdd``) a dataset name refers to, if any.

    >>> benchmark_key("sidd_val"), benchmark_key("PolyU"), benchmark_key("cc"), benchmark_key("my_photos")
    ('sidd', 'polyu', 'cc', None)
    """
    for key, pattern in KNOWN_BENCHMARKS.items():
        if pattern.search(name):
            return key
    return None


@dataclass(frozen=True)
class Pair:
    """One noisy/clean pair; ``load()`` returns ``(noisy, clean)`` float32 (H, W, C) arrays."""

    name: str
    loader: Callable[[], tuple[np.ndarray, np.ndarray]]
    source: str

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        noisy, clean = self.loader()
        if noisy.shape != clean.shape:
            raise DenoiselabError(f"{self.source}: noisy {noisy.shape} and clean {clean.shape} differ in shape")
        return noisy, clean


@dataclass(frozen=True)
class PairedDataset:
    """A named, sorted list of :class:`Pair` (``name`` is the folder's name unless given)."""

    name: str
    layout: str
    root: Path
    pairs: tuple[Pair, ...]

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[Pair]:
        return iter(self.pairs)

    def head(self, n: int | None, skip: int = 0) -> PairedDataset:
        """The first `n` pairs by sorted name after the first `skip` (all when `n` is None)."""
        if n is None and not skip:
            return self
        return PairedDataset(self.name, self.layout, self.root, self.pairs[skip:None if n is None else skip + n])


def center_crop(image: np.ndarray, size: int | None) -> np.ndarray:
    """The central ``size × size`` window of an (H, W, ...) array (the whole side if smaller)."""
    if size is None:
        return image
    h, w = image.shape[:2]
    top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
    return image[top:top + size, left:left + size]


def _images_in(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in EXTENSIONS}


def _read_pair(noisy: Path, clean: Path) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    return lambda: (read_image(noisy).array, read_image(clean).array)


def _mismatch(what: str, only_a: list[str], only_b: list[str], a: str, b: str) -> DenoiselabError:
    parts = []
    if only_a:
        parts.append(f"{len(only_a)} in {a} without a partner (e.g. {only_a[0]})")
    if only_b:
        parts.append(f"{len(only_b)} in {b} without a partner (e.g. {only_b[0]})")
    return DenoiselabError(f"{what}: " + "; ".join(parts))


def _folder_pairs(root: Path, noisy_dir: Path, clean_dir: Path) -> tuple[Pair, ...]:
    noisy, clean = _images_in(noisy_dir), _images_in(clean_dir)
    # the same name, or the same stem with another extension (PNG ground truth beside JPEG input)
    clean_by_stem = {Path(n).stem: p for n, p in clean.items()}
    pairs, unmatched = [], []
    for name, path in noisy.items():
        partner = clean.get(name) or clean_by_stem.get(Path(name).stem)
        if partner is None:
            unmatched.append(name)
        else:
            pairs.append(Pair(Path(name).stem, _read_pair(path, partner), str(path)))
    used = {Path(p.source).stem for p in pairs}
    orphans = [n for n in clean if Path(n).stem not in used]
    if unmatched or orphans:
        raise _mismatch(str(root), unmatched, orphans, noisy_dir.name + "/", clean_dir.name + "/")
    return tuple(pairs)


def _suffix_pairs(root: Path) -> tuple[Pair, ...]:
    files = _images_in(root)
    split = {}
    for name, path in files.items():
        m = re.fullmatch(r"(.+)_(real|mean)", Path(name).stem)
        if m:
            split.setdefault(m.group(1), {})[m.group(2)] = path
    only_real = [b for b, d in split.items() if "mean" not in d]
    only_mean = [b for b, d in split.items() if "real" not in d]
    if only_real or only_mean:
        raise _mismatch(str(root), [b + "_real" for b in only_real], [b + "_mean" for b in only_mean], "*_real", "*_mean")
    return tuple(Pair(base, _read_pair(d["real"], d["mean"]), str(d["real"])) for base, d in sorted(split.items()))


def _sidd_mat_pairs(folder: Path) -> tuple[Pair, ...]:
    from scipy.io import loadmat

    noisy_path, clean_path = (folder / n for n in SIDD_MATS)
    for p in (noisy_path, clean_path):
        if not p.is_file():
            raise DenoiselabError(f"{folder}: {p.name} is missing; SIDD validation needs both {SIDD_MATS[0]} and {SIDD_MATS[1]}")
    cache: dict[str, np.ndarray] = {}

    def blocks(path: Path) -> np.ndarray:
        if path.name not in cache:
            try:
                mat = loadmat(path)
            except (ValueError, NotImplementedError, OSError) as err:
                raise DenoiselabError(f"{path}: not a readable MATLAB file ({' '.join(str(err).split())})") from err
            arrays = [v for k, v in mat.items() if not k.startswith("__") and isinstance(v, np.ndarray) and v.ndim == 5]
            if len(arrays) != 1 or arrays[0].dtype != np.uint8 or arrays[0].shape[-1] != 3:
                raise DenoiselabError(f"{path}: expected one uint8 array of shape (scenes, blocks, H, W, 3)")
            cache[path.name] = arrays[0]
        return cache[path.name]

    shape = blocks(noisy_path).shape
    if blocks(clean_path).shape != shape:
        raise DenoiselabError(f"{folder}: noisy blocks {shape} and ground truth {blocks(clean_path).shape} differ in shape")

    def loader(i: int, j: int):
        return lambda: (blocks(noisy_path)[i, j].astype(np.float32) / 255, blocks(clean_path)[i, j].astype(np.float32) / 255)

    pairs = [Pair(f"{i + 1}_{j + 1}", loader(i, j), f"{noisy_path}[{i}, {j}]") for i in range(shape[0]) for j in range(shape[1])]
    return tuple(sorted(pairs, key=lambda p: p.name))


def _fmdd_pairs(root: Path) -> tuple[Pair, ...]:
    pairs = []
    for config in sorted(d for d in root.iterdir() if (d / "raw").is_dir() and (d / "gt").is_dir()):
        for fov in sorted(d for d in (config / "raw").iterdir() if d.is_dir()):
            gt = config / "gt" / fov.name / "avg50.png"
            if not gt.is_file():
                raise DenoiselabError(f"{root}: {gt.relative_to(root)} is missing (FMDD keeps one avg50.png per field of view)")
            for frame in _images_in(fov).values():
                pairs.append(Pair(f"{config.name}_{fov.name}_{frame.stem}", _read_pair(frame, gt), str(frame)))
    return tuple(sorted(pairs, key=lambda p: p.name))


def _find_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def open_pairs(path: str | Path, *, name: str | None = None) -> PairedDataset:
    """Open a folder (or SIDD ``.mat`` file) of noisy/clean pairs; the layout is detected.

    Parameters
    ----------
    path : str or Path
        A dataset in one of the layouts of the module docstring.
    name : str, optional
        Name used in result tables; default: the folder's name.

    Returns
    -------
    PairedDataset
        Pairs sorted by name; images are read only when ``pair.load()`` is called.

    Raises
    ------
    DenoiselabError
        If the path does not exist, matches no layout, holds no pairs, or has files without a
        partner.
    """
    root = Path(path).expanduser()
    if root.is_file() and root.suffix.lower() == ".mat":
        root = root.parent
    if not root.exists():
        raise DenoiselabError(f"{root}: no such dataset folder")
    if not root.is_dir():
        raise DenoiselabError(f"{root}: expected a folder of noisy/clean pairs or a SIDD .mat file")
    noisy_dir, clean_dir = _find_dir(root, NOISY_DIRS), _find_dir(root, CLEAN_DIRS)
    if any((root / n).exists() for n in SIDD_MATS):
        layout, pairs = "sidd-mat", _sidd_mat_pairs(root)
    elif noisy_dir and clean_dir:
        layout, pairs = "folders", _folder_pairs(root, noisy_dir, clean_dir)
    elif any(re.search(r"_(real|mean)$", p.stem) for p in root.iterdir() if p.is_file()):
        layout, pairs = "suffix", _suffix_pairs(root)
    elif any((d / "raw").is_dir() and (d / "gt").is_dir() for d in root.iterdir() if d.is_dir()):
        layout, pairs = "fmdd", _fmdd_pairs(root)
    else:
        raise DenoiselabError(
            f"{root}: not a dataset layout I know; expected noisy/ + clean/ folders, *_real/*_mean "
            f"files (PolyU, CC), {SIDD_MATS[0]} (SIDD) or FMDD's <config>/raw + <config>/gt")
    if not pairs:
        raise DenoiselabError(f"{root}: no image pairs found (layout {layout})")
    return PairedDataset(name or root.name, layout, root, pairs)

"""Writing benchmark results: raw rows to CSV, summaries to Markdown, with a provenance header."""

from __future__ import annotations

import csv
import io
import platform
import subprocess
import sys
from datetime import date
from pathlib import Path

import torch

from ..io import atomic_write


def commit_id(repo: Path | None = None) -> str:
    """Short git commit of the working tree (``+dirty`` when it has changes), or ``unknown``."""
    cwd = repo or Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def device_label(device: torch.device | str) -> str:
    """``cpu`` or the GPU's name, for file names and headers."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device).replace(" ", "-")
    return "cpu"


def result_stem(out_dir: Path, device: torch.device | str) -> Path:
    """``out_dir/<date>_<commit>_<device>``: results are never overwritten, each run gets its own name."""
    stem = f"{date.today().isoformat()}_{commit_id().replace('+', '-')}_{device_label(device)}"
    path, n = out_dir / stem, 1
    while path.with_suffix(".csv").exists() or path.with_suffix(".md").exists():
        n += 1
        path = out_dir / f"{stem}_{n}"
    return path


def provenance(device: torch.device | str) -> str:
    """Markdown lines: date, commit, device, threads, torch, command line."""
    return "\n".join([
        f"- date: {date.today().isoformat()}, commit: {commit_id()}",
        f"- device: {device_label(device)} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads), torch {torch.__version__}",
        f"- command: `{' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}`",
    ])


def write_csv(path: Path, rows: list[dict]) -> Path:
    """All `rows` (dicts with the same keys) to `path`, atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write(path, lambda tmp: tmp.write_text(buf.getvalue()))


def append_row(path: Path, row: dict, fieldnames: list[str] | None = None) -> None:
    """Append one row to the CSV at `path` (its header first if the file is new), flushed at once.

    For measurements kept as they finish: a killed run loses at most the row being measured,
    and a rerun reads the file back (:func:`read_csv`) to skip what is done.
    """
    new = not path.is_file()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fieldnames or list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def read_csv(path: Path, text: tuple[str, ...] = ()) -> list[dict]:
    """Rows written by :func:`write_csv`, numbers parsed back to float where they parse.

    Columns named in `text` stay strings (image names such as ``"007"`` must not become 7.0).
    """
    def parse(k: str, v: str):
        if k in text:
            return v
        try:
            return float(v)
        except ValueError:
            return v

    with open(path, newline="") as f:
        return [{k: parse(k, v) for k, v in row.items()} for row in csv.DictReader(f)]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def write_table_summary(path: Path, title: str, intro: str, header: list[str], rows: list[list[str]],
                        device: torch.device | str = "cpu") -> str:
    """Write (atomically) and return a one-table Markdown summary: title, provenance, intro, table."""
    text = "\n".join([f"# {title}", "", provenance(device), "", intro, "", markdown_table(header, rows), ""])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(text))
    return text

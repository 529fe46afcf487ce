import numpy as np

from denoiselab.bench.gaussian import Dataset, noisy_copy, run_gaussian_benchmark, summarize
from denoiselab.bench.tables import read_csv, write_csv
from denoiselab.io import write_image


def test_runs_summarizes_and_round_trips(tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    t = np.linspace(0.1, 0.9, 32, dtype=np.float32)
    for i in range(3):
        write_image(folder / f"{i}.png", np.outer(t, t[::-1] if i else t)[..., None])
    rows = run_gaussian_benchmark([Dataset("Tiny", folder, 1)], {1: ["tv", "wavelet"]}, [25.0], bm3d_limit=1,
                                  limit=2, progress=False)
    assert len(rows) == 4 and {r["method"] for r in rows} == {"tv", "wavelet"}
    noisy_psnr = 10 * np.log10(1 / (25 / 255) ** 2)
    assert all(r["psnr"] > noisy_psnr for r in rows)  # both denoise
    text = summarize(rows)
    assert "Tiny" in text and "tv" in text and "σ=25" in text
    write_csv(tmp_path / "r.csv", rows)
    back = read_csv(tmp_path / "r.csv")
    assert back[0]["psnr"] == rows[0]["psnr"] and back[0]["method"] == rows[0]["method"]


def test_every_method_sees_the_same_noise():
    import torch

    x = torch.zeros(1, 1, 8, 8)
    assert torch.equal(noisy_copy(x, 25, 0, 3), noisy_copy(x, 25, 0, 3))
    assert not torch.equal(noisy_copy(x, 25, 0, 3), noisy_copy(x, 25, 0, 4))

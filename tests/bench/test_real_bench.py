"""`denoiselab bench` on real-noise pairs: rows, resume, summary beside the paper, figure."""

import numpy as np
import pytest

from denoiselab.bench import methods as bench_methods
from denoiselab.bench.real import TEXT_COLUMNS, run_real_benchmark
from denoiselab.bench.tables import read_csv
from denoiselab.cli.main import main
from denoiselab.errors import DenoiselabError
from denoiselab.io import write_image


@pytest.fixture
def sidd_like(tmp_path):
    """A folder named like SIDD with three 64x64 pairs: a smooth image plus white noise."""
    root = tmp_path / "sidd_tiny"
    t = np.linspace(0.2, 0.8, 64, dtype=np.float32)
    clean = np.stack([np.add.outer(t, t) / 2] * 3, -1)
    rng = np.random.default_rng(0)
    for sub in ("clean", "noisy"):
        (root / sub).mkdir(parents=True)
    for i in range(3):
        write_image(root / "clean" / f"{i}.png", clean)
        write_image(root / "noisy" / f"{i}.png", clean + 0.08 * rng.standard_normal(clean.shape).astype(np.float32))
    return root


@pytest.fixture
def counting_method(monkeypatch):
    calls = []

    def run(noisy, clean, seed, device):
        calls.append(seed)
        return np.full_like(noisy, 0.5)

    method = bench_methods.BenchMethod("flat", run, "BM3D", "a flat grey image (test)")
    monkeypatch.setitem(bench_methods.METHODS, "flat", method)
    return calls


def test_rows_resume_summary_and_figure(tmp_path, sidd_like, counting_method):
    out = tmp_path / "out"
    paths = run_real_benchmark(["noisy", "flat"], [sidd_like], out, device="cpu", limit=2, crop=32, progress=False)
    rows = read_csv(paths["results"], TEXT_COLUMNS)
    assert [(r["method"], r["image"]) for r in rows] == [("noisy", "0"), ("flat", "0"), ("noisy", "1"), ("flat", "1")]
    assert set(rows[0]) >= {"method", "dataset", "image", "psnr", "ssim", "seconds", "device"}
    assert all(r["crop"] == 32 and r["dataset"] == "sidd_tiny" for r in rows)
    assert rows[0]["psnr"] == pytest.approx(-10 * np.log10(0.08**2), abs=0.6)  # the noisy input's PSNR
    assert len(counting_method) == 2
    summary = paths["summary"].read_text()
    assert "paper 25.65/0.475" in summary  # the "flat" method claims the BM3D row; SIDD column
    assert paths["figure"].stat().st_size > 1000
    # a second run with one more image computes only the missing rows
    paths = run_real_benchmark(["noisy", "flat"], [sidd_like], out, device="cpu", limit=3, crop=32, progress=False)
    assert len(counting_method) == 3 and len(read_csv(paths["results"], TEXT_COLUMNS)) == 6
    assert "(3)" in paths["summary"].read_text()


def test_summary_only_computes_nothing_and_lists_budgets(tmp_path, sidd_like, counting_method):
    """compute=False (real_noise.py --summary-only): a table from the rows so far while other
    processes still fill in the missing ones; the summary names each method with its budget."""
    out = tmp_path / "out"
    run_real_benchmark(["flat"], [sidd_like], out, device="cpu", limit=1, crop=32, progress=False)
    paths = run_real_benchmark(["flat", "dip-cpu"], [sidd_like], out, device="cpu", limit=3, crop=32, progress=False,
                               compute=False)
    assert len(counting_method) == 1 and len(read_csv(paths["results"], TEXT_COLUMNS)) == 1
    summary = paths["summary"].read_text()
    table = {}
    for line in summary.splitlines():  # the first table (PSNR / SSIM)
        if line.startswith("| "):
            table.setdefault(line.split(" | ")[0], line)
    assert "(1)" in table["| flat"] and "–" in table["| dip-cpu"]  # one row so far; none for dip-cpu
    assert "- `dip-cpu`: deep image prior on a CPU budget: 450 of the authors' 1800 iterations" in summary


def test_unknown_method_and_bad_dataset_fail_before_any_work(tmp_path, sidd_like):
    with pytest.raises(DenoiselabError, match="unknown bench method"):
        run_real_benchmark(["nope"], [sidd_like], tmp_path / "o", progress=False)
    with pytest.raises(DenoiselabError, match="no such dataset"):
        run_real_benchmark(["noisy"], [tmp_path / "missing"], tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()


def test_cli_bench_runs_cpu_methods(tmp_path, sidd_like, capsys):
    out = tmp_path / "cli"
    rc = main(["bench", "--method", "bm3d", "--method", "pd-denoising", "--dataset", str(sidd_like), "--out", str(out),
               "--limit", "1", "--device", "cpu"])
    assert rc == 0
    rows = {r["method"]: r for r in read_csv(out / "results.csv", TEXT_COLUMNS)}
    noisy_psnr = -10 * np.log10(0.08**2)
    assert rows["pd-denoising"]["psnr"] > noisy_psnr + 3 and rows["bm3d"]["psnr"] > noisy_psnr + 3, rows
    assert "Real-noise benchmark" in capsys.readouterr().out


def test_cli_bench_bad_input_is_one_line(tmp_path, capsys):
    assert main(["bench", "--method", "noisy", "--dataset", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("denoiselab: error:") and err.count("\n") == 1


def test_reuse_takes_over_matching_rows(tmp_path, sidd_like, counting_method):
    first = run_real_benchmark(["flat"], [sidd_like], tmp_path / "all", device="cpu", crop=32, progress=False)
    assert len(counting_method) == 3
    paths = run_real_benchmark(["flat"], [sidd_like], tmp_path / "sub", device="cpu", limit=2, crop=32,
                               reuse=[first["results"]], progress=False)
    assert len(counting_method) == 3  # nothing recomputed
    assert [r["image"] for r in read_csv(paths["results"], TEXT_COLUMNS)] == ["0", "1"]
    assert (tmp_path / "sub" / "images" / "sidd_tiny" / "0" / "flat.png").is_file()  # pictures for the figure
    run_real_benchmark(["flat"], [sidd_like], tmp_path / "other_crop", device="cpu", limit=1, crop=40,
                       reuse=[first["results"]], progress=False)
    assert len(counting_method) == 4  # a different crop is a different row


def test_shards_split_the_work_and_share_one_folder(tmp_path, sidd_like, counting_method):
    out = tmp_path / "shared"
    run_real_benchmark(["flat"], [sidd_like], out, device="cpu", crop=32, shard=(1, 2), progress=False)
    assert [r["image"] for r in read_csv(out / "results.csv", TEXT_COLUMNS)] == ["1"]
    run_real_benchmark(["flat"], [sidd_like], out, device="cpu", crop=32, shard=(0, 2), progress=False)
    assert sorted(r["image"] for r in read_csv(out / "results.csv", TEXT_COLUMNS)) == ["0", "1", "2"]
    assert len(counting_method) == 3
    with pytest.raises(DenoiselabError, match="shard"):
        run_real_benchmark(["flat"], [sidd_like], out, crop=32, shard=(2, 2), progress=False)


def test_cli_runs_the_cpu_budget_baselines_with_their_budgets_and_resumes(tmp_path, sidd_like, monkeypatch):
    """dip-cpu / self2self-cpu / apbsn-single-cpu: the authors' function with only the iteration
    count cut (and its progress bar on); a second run finds every row done and calls nothing."""
    from denoiselab.baselines import apbsn, dip, self2self

    calls = []

    def fake(name):
        def run(noisy, **kw):
            calls.append((name, kw))
            return noisy

        return run

    monkeypatch.setattr(dip, "dip", fake("dip"))
    monkeypatch.setattr(self2self, "self2self", fake("self2self"))
    monkeypatch.setattr(apbsn, "apbsn", fake("apbsn"))
    args = ["bench", "--method", "dip-cpu", "--method", "self2self-cpu", "--method", "apbsn-single-cpu",
            "--dataset", str(sidd_like), "--out", str(tmp_path / "o"), "--limit", "1", "--device", "cpu"]
    assert main(args) == 0
    got = {name: kw for name, kw in calls}
    assert got["dip"]["iterations"] == bench_methods.DIP_CPU["iterations"] == 450
    assert got["self2self"]["iterations"] == bench_methods.SELF2SELF_CPU["iterations"] == 1700
    assert {k: got["apbsn"][k] for k in ("iterations", "width", "lr")} == bench_methods.APBSN_CPU == {
        "iterations": 500, "width": 32, "lr": 1e-3}
    assert all(kw["progress"] is True for kw in got.values())
    assert set(got["dip"]) == set(got["self2self"]) == {"iterations", "progress", "seed", "device"}
    assert set(got["apbsn"]) == {"iterations", "width", "lr", "progress", "seed", "device"}
    rows = read_csv(tmp_path / "o" / "results.csv", TEXT_COLUMNS)
    assert sorted(r["method"] for r in rows) == ["apbsn-single-cpu", "dip-cpu", "self2self-cpu"]
    assert main(args) == 0 and len(calls) == 3  # resumed: nothing recomputed

import json
import math

import numpy as np
import pytest
import torch

from denoiselab.errors import DenoiselabError
from denoiselab.io import write_image
from denoiselab.svnr import (SVNRConfig, add_svnr_noise, estimate_variance, load_svnr, sample_conditional, sample_svnr,
                             time_map, to_linear, train_svnr)


@pytest.fixture(scope="module")
def clean_folder(tmp_path_factory):
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("svnr") / "clean"
    folder.mkdir()
    t = np.linspace(0, 1, 40, dtype=np.float32)
    for i in range(3):
        edge = 0.25 * (np.add.outer(t, t) > 0.6 + 0.2 * i)
        img = np.stack([np.outer(t, t) * (0.5 + 0.2 * c) + 0.1 * rng.random() + edge for c in range(3)], axis=-1)
        write_image(folder / f"{i}.png", img.clip(0, 1))
    return folder


def _cfg(folder, **kw):
    base = dict(name="tiny", train_dirs=[str(folder)], base_width=8, levels=2, patch_size=32, batch_size=4, steps=100,
                lr=2e-3, lr_min=1e-4, log_every=20, checkpoint_every=10**6, val_dir=str(folder), val_crops=2,
                val_conditional_steps=4)
    return SVNRConfig(**(base | kw))


@pytest.fixture(scope="module")
def trained(clean_folder, tmp_path_factory):
    torch.set_num_threads(1)
    return train_svnr(_cfg(clean_folder), tmp_path_factory.mktemp("run"), progress=False)


def test_tiny_svnr_trains_its_loss_down_and_writes_a_card(trained):
    card = json.loads(trained.with_suffix(".json").read_text())
    losses = [v for _, v in card["loss_log"]]
    assert len(losses) == 5 and losses[-1] < 0.8 * losses[0], losses
    assert card["kind"] == "svnr" and card["steps"] == 100 and card["seed"] == 0
    assert card["noise"]["read_range"] == [1e-3, 0.2] and card["noise"]["shot_range"] == [1e-4, 0.05]
    assert card["schedule"] == {"T": 1000, "lam": 5.0, "beta_start": 1e-4, "beta_end": 0.02, "form": "svnr"}
    assert card["parameterization"] == {"name": "eps", "sigma_data": 0.5}
    results = card["validation"]["results"]
    assert len(results) == 2 and all(math.isfinite(r["psnr"]) and r["calls"] >= 1 for r in results.values())


def test_trained_model_loads_and_samples_reproducibly(trained):
    m = load_svnr(trained)
    assert m.kind == "svnr" and m.model.config()["base_width"] == 8 and not m.model.training
    g = torch.Generator().manual_seed(0)
    x = to_linear(torch.rand(1, 3, 20, 28, generator=g), 0.7)
    y, _ = add_svnr_noise(x, 0.1, 0.03, generator=g)
    s2 = estimate_variance(y, 0.1, 0.03, white_level=0.7)
    calls = []
    counted = lambda *a: calls.append(1) or m.model(*a)
    out, n = sample_svnr(counted, y, s2, schedule=m.schedule, seed=3, return_calls=True)
    assert out.shape == y.shape and bool(torch.isfinite(out).all())
    assert n == len(calls) == math.ceil(float(time_map(s2).max()))
    assert torch.equal(out, sample_svnr(m.model, y, s2, schedule=m.schedule, seed=3))
    base = sample_conditional(m.model, y, steps=3, seed=0)
    assert base.shape == y.shape and bool(torch.isfinite(base).all())


@pytest.mark.parametrize("kind", ["svnr-uncorrelated", "conditional"])
def test_other_kinds_train(clean_folder, tmp_path, kind):
    path = train_svnr(_cfg(clean_folder, kind=kind, steps=2, log_every=1), tmp_path, progress=False)
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["kind"] == kind and len(card["loss_log"]) == 2
    assert all(r["calls"] == (4 if kind == "conditional" else r["calls"]) for r in card["validation"]["results"].values())


def test_resume_continues_exactly(clean_folder, tmp_path):
    from safetensors.torch import load_file

    cfg = _cfg(clean_folder, steps=6, val_dir=None, log_every=2)
    straight = train_svnr(cfg, tmp_path / "a", progress=False)
    assert train_svnr(cfg, tmp_path / "b", progress=False, stop_at_step=3) is None
    resumed = train_svnr(cfg, tmp_path / "b", progress=False)
    a, b = load_file(str(straight)), load_file(str(resumed))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    card_a, card_b = (json.loads(p.with_suffix(".json").read_text()) for p in (straight, resumed))
    np.testing.assert_allclose(card_a["loss_log"], card_b["loss_log"], rtol=1e-5)


def test_resume_refuses_a_different_recipe_but_not_a_longer_run(clean_folder, tmp_path):
    train_svnr(_cfg(clean_folder, steps=1, val_dir=None), tmp_path, progress=False)
    with pytest.raises(DenoiselabError, match="different training configuration"):
        train_svnr(_cfg(clean_folder, steps=2, val_dir=None, kind="conditional"), tmp_path, progress=False)
    assert train_svnr(_cfg(clean_folder, steps=2, val_dir=None, val_crops=1), tmp_path, progress=False) is not None


def test_time_map_setting_reaches_the_card_and_old_checkpoints_resume_as_true(clean_folder, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    weights = train_svnr(_cfg(clean_folder, steps=1, val_dir=None), tmp_path / "new", progress=False)
    assert json.loads(weights.with_suffix(".json").read_text())["noise"]["time_map"] == "estimated"
    old = tmp_path / "old"
    assert train_svnr(_cfg(clean_folder, steps=2, val_dir=None, time_map="true"), old, progress=False,
                      stop_at_step=1) is None
    ckpt = old / "checkpoint.safetensors"
    with safe_open(str(ckpt), framework="pt") as f:
        meta = f.metadata()
    stored = json.loads(meta["meta"])
    del stored["config"]["time_map"]  # as written before the setting existed
    save_file(load_file(str(ckpt)), str(ckpt), metadata=meta | {"meta": json.dumps(stored)})
    with pytest.raises(DenoiselabError, match="different training configuration"):
        train_svnr(_cfg(clean_folder, steps=2, val_dir=None), old, progress=False)
    assert train_svnr(_cfg(clean_folder, steps=2, val_dir=None, time_map="true"), old, progress=False) is not None


@pytest.mark.parametrize("kw, message", [
    (dict(kind="ddpm"), "kind"),
    (dict(time_map="clean"), "time_map"),
    (dict(amp="int8"), "amp"),
    (dict(batch_size=0), "batch_size"),
    (dict(val_noise=[[0.1, 0.01]]), "val_noise"),
    (dict(read_range=[0.3, 0.1]), "read_range"),
])
def test_bad_training_configurations(clean_folder, tmp_path, kw, message):
    with pytest.raises(DenoiselabError, match=message):
        train_svnr(_cfg(clean_folder, steps=1, **kw), tmp_path, progress=False)


def test_load_refuses_other_weights(tmp_path):
    with pytest.raises(DenoiselabError, match="model card"):
        load_svnr(tmp_path / "missing.safetensors")
    (tmp_path / "w.json").write_text(json.dumps({"name": "bfdncnn", "depth": 20}))
    with pytest.raises(DenoiselabError, match="not an SVNR model"):
        load_svnr(tmp_path / "w.safetensors")


def test_each_kind_feeds_its_own_training_pair():
    """SVNR's x_t descends from y (close to it), the ablation's does not, the baseline has one time per image."""
    from denoiselab.svnr import DEFAULT_SCHEDULE
    from denoiselab.svnr.train import training_loss

    x = torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    seen = {}
    for kind in ("svnr", "svnr-uncorrelated", "conditional"):
        model = lambda y, x_t, t: seen.setdefault(kind, (y, x_t, t)) and torch.zeros_like(y)
        loss = training_loss(model, kind, x, cfg=SVNRConfig(name="k", train_dirs=[]), schedule=DEFAULT_SCHEDULE,
                             generator=torch.Generator().manual_seed(1))
        assert float(loss) == pytest.approx(1.0, abs=0.15)  # ε̂ = 0: the loss is the target's variance
    gap = {k: float(((x_t - y) ** 2).mean()) for k, (y, x_t, _) in seen.items()}
    assert gap["svnr"] < 0.6 * gap["svnr-uncorrelated"], gap
    t_svnr, t_cond = seen["svnr"][2], seen["conditional"][2]
    assert float(t_svnr.flatten(1).std(1).min()) > 0 and float(t_cond.flatten(1).std(1).max()) == 0


def test_preconditioned_vp_baseline_trains_and_loads_back_as_trained(clean_folder, tmp_path):
    from denoiselab.svnr.unet import Preconditioned

    cfg = _cfg(clean_folder, kind="conditional", parameterization="edm", schedule_form="vp", lam=1.0, steps=2,
               log_every=1, val_crops=1)
    path = train_svnr(cfg, tmp_path, progress=False)
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["parameterization"] == {"name": "edm", "sigma_data": 0.5}
    assert card["schedule"]["form"] == "vp" and "EDM" in card["loss"]
    m = load_svnr(path)
    assert isinstance(m.model, Preconditioned) and m.schedule.gamma_max > 2e4
    y = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    out = sample_conditional(m.model, y, steps=3, schedule=m.schedule, seed=0)
    assert bool(torch.isfinite(out).all()) and float(out.abs().max()) < 10  # started at std 157, ended near the data
    with pytest.raises(DenoiselabError, match="parameterization"):
        train_svnr(_cfg(clean_folder, parameterization="v"), tmp_path / "bad", progress=False)
    with pytest.raises(DenoiselabError, match="form"):
        train_svnr(_cfg(clean_folder, schedule_form="cosine"), tmp_path / "bad", progress=False)


def test_cards_without_the_newer_fields_load_as_eps_on_svnr_schedule(trained, tmp_path):
    """Weights trained before `parameterization` and the schedule's `form` existed keep their meaning."""
    import shutil

    card = json.loads(trained.with_suffix(".json").read_text())
    card.pop("parameterization")
    card["schedule"].pop("form")
    shutil.copy(trained, tmp_path / "old.safetensors")
    (tmp_path / "old.json").write_text(json.dumps(card))
    old, new = load_svnr(tmp_path / "old.safetensors"), load_svnr(trained)
    assert type(old.model) is type(new.model) and old.schedule == new.schedule


def test_baseline_time_sampling_and_loss_weighting_options():
    """lognormal: EDM's ln σ ~ N(−1.2, 1.2²) as fractional times; x0: the loss is the MSE on x̂_0 / σ_d²."""
    from denoiselab.svnr import VESchedule
    from denoiselab.svnr.train import training_loss

    schedule = VESchedule(lam=1.0, form="vp")
    x = torch.rand(2000, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    seen = {}
    spy = lambda y, x_t, t: seen.update(x_t=x_t, t=t) or torch.zeros_like(y)
    cfg = SVNRConfig(name="k", train_dirs=[], kind="conditional", time_sampling="lognormal")
    training_loss(spy, "conditional", x, cfg=cfg, schedule=schedule, generator=torch.Generator().manual_seed(1))
    log_sigma = 0.5 * schedule.gamma(seen["t"][:, 0, 0, 0].double()).log()
    assert float(log_sigma.mean()) == pytest.approx(-1.2, abs=0.1) and float(log_sigma.std()) == pytest.approx(1.2, abs=0.1)
    assert (seen["t"] != seen["t"].round()).float().mean() > 0.9
    # ε̂ = 0 means x̂_0 = x_t, so the x0-weighted loss is mean((x_t − x_0)²)/σ_d² = mean(γ_t ε²)/σ_d²
    cfg = SVNRConfig(name="k", train_dirs=[], kind="conditional", loss_weighting="x0")
    loss = training_loss(spy, "conditional", x[:200], cfg=cfg, schedule=schedule, generator=torch.Generator().manual_seed(2))
    expected = float(schedule.gamma(seen["t"].double()).mean()) / 0.25  # E ε² = 1
    assert float(loss) == pytest.approx(expected, rel=0.1)
    with pytest.raises(DenoiselabError, match="time_sampling"):
        train_svnr(SVNRConfig(name="k", train_dirs=["."], kind="svnr", time_sampling="lognormal"), ".", progress=False)


def test_cli_trains_the_preconditioned_baseline_and_refuses_bad_recipes(clean_folder, tmp_path, capsys):
    from denoiselab.cli.main import main

    common = ["train-svnr", "--train-dir", str(clean_folder), "--base-width", "8", "--levels", "1", "--patch-size",
              "32", "--batch-size", "2", "--steps", "2", "--device", "cpu"]
    assert main(common + ["--name", "b", "--out", str(tmp_path / "b"), "--kind", "conditional", "--parameterization",
                          "edm", "--schedule", "vp", "--time-sampling", "lognormal"]) == 0
    card = json.loads((tmp_path / "b" / "b.json").read_text())
    assert card["parameterization"]["name"] == "edm" and card["time_sampling"] == "lognormal"
    assert card["schedule"]["form"] == "vp" and card["schedule"]["lam"] == 1.0
    capsys.readouterr()  # the first run's progress bar
    assert main(common + ["--name", "c", "--out", str(tmp_path / "c"), "--kind", "svnr", "--time-sampling",
                          "lognormal"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "time_sampling='lognormal' is for the conditional kind" in err[0]
    assert not (tmp_path / "c" / "c.safetensors").exists()

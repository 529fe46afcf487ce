import json

import numpy as np
import pytest
import torch

from denoiselab.errors import DenoiselabError
from denoiselab.io import write_image
from denoiselab.training import TrainConfig, train_denoiser
from denoiselab.training.patches import PatchSampler


@pytest.fixture
def clean_folder(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "clean"
    folder.mkdir()
    t = np.linspace(0, 1, 48, dtype=np.float32)
    for i in range(3):
        img = np.stack([np.outer(t, t) * (0.5 + 0.2 * c) + 0.1 * rng.random() for c in range(3)], axis=-1)
        write_image(folder / f"{i}.png", img)
    return folder


def _cfg(folder, **kw):
    base = dict(name="tiny", train_dirs=[str(folder)], channels=3, depth=3, width=8, patch_size=16,
                batch_size=4, steps=6, checkpoint_minutes=1e9, test_dir=str(folder), test_sigmas255=[25.0])
    return TrainConfig(**(base | kw))


def test_tiny_training_run_writes_weights_and_card(clean_folder, tmp_path):
    path = train_denoiser(_cfg(clean_folder), tmp_path / "run", progress=False)
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["steps"] == 6 and card["channels"] == 3 and card["seed"] == 0
    assert set(card["test_psnr_db"]) == {"25"}
    from denoiselab.denoisers import load_denoiser

    d = load_denoiser(str(path))
    assert d(torch.rand(1, 3, 16, 16), None).shape == (1, 3, 16, 16)


def test_resume_continues_exactly(clean_folder, tmp_path):
    """6 steps straight equal 3 steps, stop, resume to 6 (same batches, same optimiser state)."""
    from safetensors.torch import load_file

    straight = train_denoiser(_cfg(clean_folder, test_dir=None), tmp_path / "a", progress=False)
    assert train_denoiser(_cfg(clean_folder, test_dir=None), tmp_path / "b", progress=False, stop_at_step=3) is None
    resumed = train_denoiser(_cfg(clean_folder, test_dir=None), tmp_path / "b", progress=False)
    a, b = load_file(str(straight)), load_file(str(resumed))
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_resume_refuses_a_different_recipe(clean_folder, tmp_path):
    train_denoiser(_cfg(clean_folder, steps=1, test_dir=None), tmp_path / "c", progress=False)
    with pytest.raises(DenoiselabError, match="different training configuration"):
        train_denoiser(_cfg(clean_folder, width=16, test_dir=None), tmp_path / "c", progress=False)


def test_gray_prior_learns_from_colour_images(clean_folder, tmp_path):
    path = train_denoiser(_cfg(clean_folder, channels=1, steps=2, test_dir=None), tmp_path / "g", progress=False)
    assert json.loads(path.with_suffix(".json").read_text())["channels"] == 1


def test_patch_sampler_is_seeded_and_augments():
    img = torch.arange(3 * 20 * 20, dtype=torch.int64).remainder(256).to(torch.uint8).view(3, 20, 20)
    draw = lambda s: PatchSampler([img], patch_size=8, batch_size=16, generator=torch.Generator().manual_seed(s)).sample()
    assert torch.equal(draw(1), draw(1)) and not torch.equal(draw(1), draw(2))
    with pytest.raises(DenoiselabError, match="patch_size"):
        PatchSampler([img], patch_size=32, batch_size=1, generator=torch.Generator())


def test_missing_training_folder(tmp_path):
    with pytest.raises(DenoiselabError, match="does not exist"):
        train_denoiser(_cfg(tmp_path / "nope"), tmp_path / "run", progress=False)


def test_distillation_weight_zero_is_plain_training_and_the_card_names_the_teacher(clean_folder, tmp_path):
    """w = 0 regresses onto the clean patch: the teacher's forward draws nothing, so the run equals plain training."""
    from safetensors.torch import load_file

    teacher = train_denoiser(_cfg(clean_folder, test_dir=None), tmp_path / "t", progress=False)
    plain = train_denoiser(_cfg(clean_folder, test_dir=None), tmp_path / "p", progress=False)
    zero = train_denoiser(_cfg(clean_folder, test_dir=None, teacher=str(teacher), teacher_weight=0.0),
                          tmp_path / "z", progress=False)
    distilled = train_denoiser(_cfg(clean_folder, test_dir=None, teacher=str(teacher)), tmp_path / "d", progress=False)
    a, z, d = load_file(str(plain)), load_file(str(zero)), load_file(str(distilled))
    assert all(torch.equal(a[k], z[k]) for k in a)
    assert any(not torch.allclose(a[k], d[k]) for k in a)  # the teacher's target changes what is learnt
    card = json.loads(distilled.with_suffix(".json").read_text())
    assert card["teacher"] == str(teacher) and "teacher(y)" in card["loss"]


def test_distilled_target_mixes_teacher_and_clean():
    from denoiselab.training.train import _distilled_target

    teacher = lambda y, sigma: 2 * y  # noqa: E731 - a stand-in network
    y, x = torch.full((1, 1, 2, 2), 0.5), torch.zeros(1, 1, 2, 2)
    off = torch.autocast("cpu", enabled=False)
    assert torch.allclose(_distilled_target(teacher, y, torch.ones(1), x, 0.25, off), torch.full_like(y, 0.25))
    assert torch.equal(_distilled_target(teacher, y, torch.ones(1), x, 1.0, off), 2 * y)


def test_distillation_refuses_a_bad_teacher(clean_folder, tmp_path):
    with pytest.raises(DenoiselabError, match="teacher_weight"):
        train_denoiser(_cfg(clean_folder, teacher="bfdncnn-color-s-bsd", teacher_weight=1.5), tmp_path / "w", progress=False)
    with pytest.raises(DenoiselabError, match="not a network"):
        train_denoiser(_cfg(clean_folder, teacher="bm3d"), tmp_path / "b", progress=False)
    with pytest.raises(DenoiselabError):  # a gray network cannot teach an RGB student
        train_denoiser(_cfg(clean_folder, teacher="bfdncnn-gray-s"), tmp_path / "g", progress=False)

import warnings

import numpy as np
import pytest
import torch

from denoiselab.errors import DenoiselabError
from denoiselab.svnr import DEFAULT_SCHEDULE, VESchedule, gamma, time_map


def test_table_matches_the_notes(ref):
    table = DEFAULT_SCHEDULE.table.numpy()
    assert table.shape == (1001,) and table[0] == 0.0
    np.testing.assert_allclose(table, ref.table, rtol=1e-12, atol=0)
    assert table[1] == pytest.approx(5 * 1e-4, rel=1e-12)  # γ_1 = λ β_1
    assert np.all(np.diff(table) > 0)


def test_gamma_interpolates_fractional_times(ref):
    t = torch.tensor([0.0, 0.25, 1.0, 1.5, 23.7, 500.01, 999.5, 1000.0], dtype=torch.float64)
    np.testing.assert_allclose(gamma(t).numpy(), ref.gamma(t.numpy()), rtol=1e-12, atol=1e-15)
    assert gamma(torch.tensor([2.0], dtype=torch.float32)).dtype == torch.float32


def test_time_map_inverts_gamma_on_random_variances(ref):
    g = torch.Generator().manual_seed(0)
    # log-uniform over the valid range, from the σ floor (1e-6) to γ_T, plus exact table values
    s2 = 10 ** (torch.rand(2, 1, 16, 16, generator=g, dtype=torch.float64) * (np.log10(4.99) + 6) - 6)
    s2[0, 0, 0, :4] = torch.tensor([0.0, 5e-4, float(DEFAULT_SCHEDULE.table[37]), DEFAULT_SCHEDULE.gamma_max],
                                    dtype=torch.float64)
    t = time_map(s2)
    assert t.shape == (2, 1, 16, 16) and t.dtype == torch.float64
    np.testing.assert_allclose(gamma(t).numpy(), s2.numpy(), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(t.numpy(), ref.time(s2.numpy()), rtol=1e-9, atol=1e-9)
    assert t[0, 0, 0, :4].tolist() == pytest.approx([0.0, 1.0, 37.0, 1000.0], abs=1e-9)
    assert (t != t.round()).float().mean() > 0.9  # mostly fractional times


def test_time_map_round_trips_fractional_times():
    t = torch.linspace(0, 1000, 4001, dtype=torch.float64).view(1, 1, 1, -1)
    assert torch.allclose(time_map(gamma(t)), t, atol=1e-8)


def test_rgb_time_is_the_max_over_channels():
    s2 = torch.tensor([0.01, 0.04, 0.02]).view(1, 3, 1, 1)
    assert torch.allclose(time_map(s2), time_map(torch.full((1, 1, 1, 1), 0.04)))


def test_variance_beyond_gamma_T_raises_or_clamps_with_a_warning():
    s2 = torch.tensor([0.1, 6.0]).view(1, 1, 1, 2)
    with pytest.raises(DenoiselabError, match="exceeds the schedule's largest"):
        time_map(s2)
    with pytest.warns(RuntimeWarning, match="start at t = T"):
        t = time_map(s2, clamp=True)
    assert float(t[0, 0, 0, 1]) == 1000.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        time_map(torch.full((1, 1, 1, 1), DEFAULT_SCHEDULE.gamma_max))  # exactly γ_T is fine


@pytest.mark.parametrize("bad, message", [
    (torch.tensor([-1e-3]).view(1, 1, 1, 1), ">= 0"),
    (torch.tensor([float("nan")]).view(1, 1, 1, 1), "finite"),
    (torch.ones(4, 4), r"\(B, C, H, W\)"),
])
def test_time_map_rejects_bad_variances(bad, message):
    with pytest.raises(DenoiselabError, match=message):
        time_map(bad)


def test_gamma_rejects_times_outside_the_schedule():
    with pytest.raises(DenoiselabError, match=r"\[0, T=1000\]"):
        gamma(torch.tensor([1000.5]))
    with pytest.raises(DenoiselabError, match=r"\[0, T=1000\]"):
        gamma(torch.tensor([-0.1]))


def test_schedule_parameters_are_checked_and_recorded():
    with pytest.raises(DenoiselabError, match="lam"):
        VESchedule(lam=0.0)
    with pytest.raises(DenoiselabError, match="beta_start"):
        VESchedule(beta_start=0.03)
    s = VESchedule(T=10, lam=2.0)
    assert VESchedule(**s.to_dict()) == s and s.table.shape == (11,)


def test_vp_form_is_ddpm_in_ve_coordinates():
    """γ_t = (1 − ᾱ_t)/ᾱ_t: scaling x_0 + √γ_t n by √ᾱ_t gives DDPM's √ᾱ_t x_0 + √(1 − ᾱ_t) n."""
    s = VESchedule(lam=1.0, form="vp")
    alpha_bar = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
    np.testing.assert_allclose(s.table.numpy()[1:], (1 - alpha_bar) / alpha_bar, rtol=1e-12)
    assert s.gamma_max > 2e4  # std > 140: nothing of an image in [0, 1] is left at T
    t = torch.linspace(0, 1000, 2001, dtype=torch.float64).view(1, 1, 1, -1)
    assert torch.allclose(s.time_map(s.gamma(t)), t, atol=1e-7)
    assert VESchedule(**s.to_dict()) == s and s != VESchedule(lam=1.0)
    with pytest.raises(DenoiselabError, match="form"):
        VESchedule(form="cosine")

"""Gradient sensitivity, occlusion and significance against known answers: hand-built linear steps,
uncoupled controls, hand-computed false-discovery rates. (The planted-source checks on trained models sit
in test_analysis.py, beside its trained fixtures.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

import gridvit
from gridvit import analysis
from gridvit.data import describe
from gridvit.examples import planted_teleconnection
from gridvit.solvers import simulate

SOURCE = {"lat": (0.0, 40.0), "lon": (40.0, 80.0)}
TARGET = {"lat": (-40.0, 0.0), "lon": (175.0, 220.0)}
TINY = dict(patch=4, dim=16, depth=1, heads=2, epochs=1, calendar=False, climatology=None, progress=False,
            val_fraction=0.0)

pytestmark = pytest.mark.usefixtures("one_thread")


class LinearStep(torch.nn.Module):
    """``out = Σ_k a_k·x_k + b·x_{T−1}[src]`` everywhere: known weights for the network (x: (B, T, H, W))."""

    def __init__(self, a: list[float], b: float, src: tuple[int, int], cfg):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(a))
        self.b, self.src, self.cfg = b, src, cfg

    def forward(self, x: torch.Tensor, grid) -> torch.Tensor:
        out = torch.einsum("k,bkhw->bhw", self.a, x) + self.b * x[:, -1, self.src[0], self.src[1]][:, None, None]
        return out[:, None]  # (B, 1, H, W)


def _area_weights(sur: gridvit.Surrogate, region: dict) -> np.ndarray:
    w = sur.spec.grid.area_weights() * analysis.region_mask(sur.spec, region)
    return w / w.sum()


def test_sensitivity_of_a_hand_built_linear_surrogate_is_its_weights():
    ds = planted_teleconnection(n_time=40, seed=0)
    sur = gridvit.train(ds, history=2, **TINY)
    sur.model = LinearStep([0.25, -0.75], 2.0, src=(5, 6), cfg=sur.model.cfg)
    s = analysis.sensitivity(sur, ds, region=TARGET, inits=5)
    w = _area_weights(sur, TARGET)
    expected = np.stack([0.25 * w, 0.75 * w])  # (T, H, W): |dF/dx_k| = |a_k| w inside the region
    expected[1, 5, 6] += 2.0  # the remote source cell, last step only (outside the region: no overlap)
    assert_allclose(s.per_step.values, expected, rtol=1e-5, atol=1e-7)
    assert_allclose(s.sensitivity.values, expected.sum(0), rtol=1e-5, atol=1e-7)
    assert s.lag.values.tolist() == [-1, 0] and s.sensitivity.dims == ("lat", "lon")
    assert s.sensitivity.attrs["units"] == "1" and s.attrs["samples"] == 5
    assert s.lat.attrs["units"] == "degrees_north"


def test_sensitivity_of_a_solver_step_is_its_stencil_summed_over_the_region():
    ds = simulate("heat", shape=(12, 16), t_end=2e-3, save_every=1e-3, diffusivity=0.1, dtype="float64")
    scale = torch.tensor([1.0, 0.5, 0.25])  # out = u + 0.5 roll_x(u) + 0.25 roll_y(u)

    def step(u: torch.Tensor) -> torch.Tensor:
        return scale[0] * u + scale[1] * torch.roll(u, 1, -1) + scale[2] * torch.roll(u, 1, -2)

    region = {"y": (0.0, 0.1), "x": (0.0, 0.1)}
    s = analysis.sensitivity(step, ds, region=region, inits=2)
    w = describe(ds).grid.area_weights() * analysis.region_mask(describe(ds), region)
    w = w / w.sum()
    expected = w + 0.5 * np.roll(w, -1, -1) + 0.25 * np.roll(w, -1, -2)  # dF/du = adjoint of the step on w
    assert_allclose(s.sensitivity.values, expected, rtol=1e-12)


def test_occlusion_of_a_hand_built_link_finds_the_source_and_uses_the_reference():
    ds = planted_teleconnection(n_time=40, seed=0)
    sur = gridvit.train(ds, history=1, **TINY)
    sur.model = LinearStep([0.0], 1.0, src=(5, 6), cfg=sur.model.cfg)  # every cell = the normalised value at (5, 6)
    o = analysis.occlusion(sur, ds, region=TARGET, inits=4)
    assert o.attrs["reference"] == "training mean" and o.occlusion.attrs["units"] == "1"
    tile = (slice(4, 8), slice(4, 8))  # the 4 × 4 tile holding (5, 6)
    x = ds.field.values[[int(t) for t in np.unique(np.linspace(4, 39, 4).round())], 5, 6]  # the 4 starts
    assert_allclose(o.occlusion.values[tile], np.abs(x - sur.normaliser.mean[0]).mean(), rtol=1e-5)
    outside = np.ones(o.occlusion.shape, bool)
    outside[tile] = False
    assert_allclose(o.occlusion.values[outside], 0.0, atol=1e-6)
    o8 = analysis.occlusion(sur, ds, region=TARGET, patch=8, inits=2)
    assert o8.attrs["patch"] == 8 and float(o8.occlusion[4, 6]) > 0


def test_plane_surrogate_maps_have_grid_coordinates():
    ds = simulate("heat", shape=(16, 16), t_end=8e-3, save_every=1e-3, diffusivity=0.1, samples=2)
    sur = gridvit.train(ds, history=1, patch=4, dim=16, depth=1, heads=2, epochs=1, progress=False, val_fraction=0.0)
    region = {"y": (0.4, 0.6), "x": (0.4, 0.6)}
    s = analysis.sensitivity(sur, ds, region=region, inits=2)
    o = analysis.occlusion(sur, ds, region=region, inits=2)
    assert s.sensitivity.dims == o.occlusion.dims == ("y", "x")
    assert s.attrs["samples"] == 4 and np.isfinite(s.sensitivity).all()  # 2 starts × 2 samples
    assert float(o.occlusion.max()) >= 0 and o.attrs["reference"] == "training mean"


def test_masked_cells_are_nan_and_bad_inputs_raise():
    ds = planted_teleconnection(n_time=20, seed=0)
    ds["field"] = ds.field.where(~((ds.lat < 0) & (ds.lon > 300)))  # "land" in the south-east
    sur = gridvit.train(ds, history=1, **TINY)
    s = analysis.sensitivity(sur, ds, region=TARGET, inits=2)
    land = (ds.lat < 0) & (ds.lon > 300)
    assert s.sensitivity.where(land).isnull().all() and np.isfinite(s.sensitivity.where(~land, 0)).all()
    with pytest.raises(ValueError, match="no unmasked cell"):
        analysis.sensitivity(sur, ds, region={"lat": (-80, -10), "lon": (310, 350)})
    with pytest.raises(ValueError, match="holds no grid cell"):
        analysis.occlusion(sur, ds, region={"lat": (1.0, 2.0)})
    with pytest.raises(TypeError, match="region must be a mapping"):
        analysis.sensitivity(sur, ds, region=[0, 1])
    with pytest.raises(ValueError, match="variable 'sst'"):
        analysis.sensitivity(sur, ds, region=TARGET, variable="sst")
    with pytest.raises(ValueError, match="inits"):
        analysis.sensitivity(sur, ds, region=TARGET, inits=0)
    with pytest.raises(TypeError, match="Surrogate or a step"):
        analysis.sensitivity("model", ds, region=TARGET)
    with pytest.raises(TypeError, match="occlusion needs a gridvit.Surrogate"):
        analysis.occlusion(lambda u: u, ds, region=TARGET)
    with pytest.raises(ValueError, match="larger than the grid"):
        analysis.occlusion(sur, ds, region=TARGET, patch=64)
    with pytest.raises(TypeError, match="autograd"):
        analysis.sensitivity(lambda u: u.detach() * 2, ds.fillna(0.0), region=TARGET, inits=2)


# ---------------------------------------------------------------- significance


def test_uncoupled_control_is_not_significant_at_the_source():
    """The control (no link) gives p > 0.05 at every source cell after FDR control for >= 90 % of seeds;
    the coupled field is significant there in every seed."""
    quiet, found = 0, 0
    for seed in range(20):
        for coupled in (False, True):
            ds = planted_teleconnection(coupled=coupled, seed=seed)
            c = analysis.correlation_significance(ds, region=TARGET, lag=-1, n_null=200, seed=seed)
            in_a = analysis.region_mask(describe(ds), SOURCE)
            if coupled:
                found += bool(c.significant.values[in_a].all())
            else:
                quiet += bool((c.p_fdr.values[in_a] > 0.05).all())
    assert quiet >= 18 and found == 20, (quiet, found)
    assert c.attrs["null"].startswith("region index phase-randomised") and c.r.dims == ("lat", "lon")


def test_phase_randomised_series_keep_their_spectrum():
    x = np.random.default_rng(0).standard_normal((3, 64)).cumsum(-1)  # red series
    s = analysis.phase_randomise(x, 5, seed=1)
    assert s.shape == (5, 3, 64)
    assert_allclose(np.abs(np.fft.rfft(s, axis=-1)), np.broadcast_to(np.abs(np.fft.rfft(x, axis=-1)), s.shape[:-1] + (33,)),
                    rtol=1e-9, atol=1e-9)
    assert not np.allclose(s[0], x)
    with pytest.raises(ValueError, match="length >= 3"):
        analysis.phase_randomise(np.ones(2), 3)


def test_benjamini_hochberg_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.2, np.nan])
    adjusted, reject = analysis.benjamini_hochberg(p, alpha=0.05)
    assert_allclose(adjusted, [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.2, np.nan])
    assert reject.tolist() == [True, False, False, False, False]
    with pytest.raises(ValueError, match="alpha"):
        analysis.benjamini_hochberg(p, alpha=1.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        analysis.benjamini_hochberg(np.array([1.5]))


def test_block_bootstrap_and_empirical_pvalues():
    rng = np.random.default_rng(0)
    assert analysis.bootstrap_pvalue(rng.normal(1.0, 1.0, 64)) < 0.01
    null = [analysis.bootstrap_pvalue(rng.normal(0.0, 1.0, 32), seed=k) for k in range(40)]
    assert np.mean(np.array(null) <= 0.05) <= 0.15
    assert_allclose(analysis.empirical_pvalues(np.array(2.0), np.array([1.0, 3.0, 2.0])), 3 / 4)
    with pytest.raises(ValueError, match="does not match"):
        analysis.empirical_pvalues(np.zeros(2), np.zeros((3, 4)))

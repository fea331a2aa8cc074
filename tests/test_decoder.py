"""The conv decoder: persistence at initialisation, padding as the grid continues, no patch seams."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gridvit.geometry import Grid
from gridvit.model import GridViT, ModelConfig
from gridvit.model.decoder import pad_grid


def _plane(h: int, w: int, periodic: bool = True) -> Grid:
    return Grid("plane", np.arange(h) + 0.5, np.arange(w) + 0.5, periodic_y=periodic, periodic_x=periodic)


def test_pad_grid_wraps_periodic_axes_and_repeats_bounded_edges():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    p = pad_grid(x, (False, True))  # (1, 1, 5, 6)
    assert p.shape == (1, 1, 5, 6)
    torch.testing.assert_close(p[0, 0, 1:-1, 0], x[0, 0, :, -1])  # x wraps
    torch.testing.assert_close(p[0, 0, 1:-1, -1], x[0, 0, :, 0])
    torch.testing.assert_close(p[0, 0, 0, 1:-1], x[0, 0, 0])  # y repeats its edge row
    torch.testing.assert_close(p[0, 0, -1, 1:-1], x[0, 0, -1])


def test_conv_decoder_starts_as_persistence_and_learns_across_patch_borders():
    cfg = ModelConfig(history=2, channels=2, patch=4, dim=32, depth=1, heads=2, decoder="conv", decoder_width=8)
    torch.manual_seed(0)
    model = GridViT(cfg)
    x = torch.randn(3, 4, 12, 16)
    out = model(x, _plane(12, 16))
    torch.testing.assert_close(out, x[:, 2:4])  # zero last conv: the last state
    torch.nn.init.normal_(model.refine.conv2.weight, std=0.1)
    probe = torch.zeros(1, 4, 12, 16, requires_grad=True)
    model(probe, _plane(12, 16))[0, 0, 5, 3].backward()  # a cell at the right border of patch column 0
    reach = probe.grad.abs().sum(dim=(0, 1)) > 0  # (H, W) cells that influence it
    assert reach[5, 4:].any()  # the neighbouring patch column reaches it through the convolutions


def test_conv_decoder_runs_on_odd_grids_and_is_translation_equivariant_on_a_torus():
    cfg = ModelConfig(history=1, channels=1, patch=1, dim=16, depth=1, heads=2, decoder="conv", decoder_width=4)
    torch.manual_seed(1)
    model = GridViT(cfg)
    torch.nn.init.normal_(model.refine.conv2.weight, std=0.1)
    x = torch.randn(2, 1, 7, 9)
    grid = _plane(7, 9)
    shifted = model(torch.roll(x, (2, 3), dims=(-2, -1)), grid)
    torch.testing.assert_close(shifted, torch.roll(model(x, grid), (2, 3), dims=(-2, -1)), atol=1e-5, rtol=1e-5)


def test_skip_decoder_starts_as_persistence_and_sees_input_cells_directly():
    cfg = ModelConfig(history=1, channels=1, extra_channels=1, patch=4, dim=16, depth=1, heads=2,
                      decoder="conv_skip", decoder_width=4)
    torch.manual_seed(2)
    model = GridViT(cfg)
    assert model.refine.conv1.in_channels == 4 + 2  # features + the input's T*C + E channels
    x = torch.randn(2, 2, 8, 8)
    torch.testing.assert_close(model(x, _plane(8, 8)), x[:, :1])  # zero last conv: the last state
    torch.nn.init.normal_(model.refine.conv2.weight, std=0.1)
    torch.nn.init.zeros_(model.head.weight)  # cut the token path: only the skip carries the input
    probe = torch.zeros(1, 2, 8, 8, requires_grad=True)
    model(probe, _plane(8, 8))[0, 0, 3, 3].backward()
    reach = probe.grad.abs().sum(dim=(0, 1)) > 0  # (H, W): the 5×5 cells two 3×3 convolutions see
    assert reach[1:6, 1:6].all() and not reach[6:].any() and not reach[:, 6:].any()


def test_bad_decoder_is_refused():
    with pytest.raises(ValueError, match="decoder"):
        ModelConfig(decoder="pixelshuffle")
    with pytest.raises(ValueError, match="decoder_width"):
        ModelConfig(decoder="conv", decoder_width=0)


def test_training_options_of_the_pde_surrogates_are_validated_and_take_effect():
    from gridvit import TrainConfig
    from gridvit.examples import toy_climate
    import gridvit

    with pytest.raises(ValueError, match="input_noise"):
        TrainConfig(input_noise=-0.1)
    with pytest.raises(TypeError, match="pushforward"):
        TrainConfig(pushforward="yes")
    with pytest.raises(ValueError, match="decoder"):
        TrainConfig(decoder="unet")
    with pytest.raises(ValueError, match="decoder_width"):
        TrainConfig(decoder="conv", decoder_width=0)
    ds = toy_climate(n_time=16, shape=(8, 16), seed=0)
    opts = dict(epochs=1, dim=16, depth=1, heads=2, patch=4, batch_size=4, progress=False, decoder="conv", seed=0)
    clean, noisy = gridvit.train(ds, **opts), gridvit.train(ds, input_noise=0.1, **opts)
    assert clean.model.refine is not None
    assert not torch.equal(clean.model.embed.weight, noisy.model.embed.weight)  # the noise reached training


def test_skip_decoder_model_saves_and_loads_bit_identically(tmp_path):
    import gridvit
    from gridvit.examples import toy_climate

    ds = toy_climate(n_time=16, shape=(8, 16), seed=0)
    sur = gridvit.train(ds, epochs=1, dim=16, depth=1, heads=2, patch=4, batch_size=4, progress=False,
                        decoder="conv_skip", decoder_width=6, seed=0)
    assert sur.model.refine.conv1.out_channels == 6
    sur.save(tmp_path / "m.gvt")
    back = gridvit.load(tmp_path / "m.gvt")
    assert (back.model.cfg.decoder, back.model.cfg.decoder_width) == ("conv_skip", 6)
    xr_a, xr_b = sur.rollout(ds.isel(time=slice(0, 4)), steps=2), back.rollout(ds.isel(time=slice(0, 4)), steps=2)
    np.testing.assert_array_equal(xr_a["t2m"].values, xr_b["t2m"].values)


def test_conv_stem_keeps_persistence_at_start_and_feeds_the_tokens():
    cfg = ModelConfig(history=1, channels=1, patch=4, dim=16, depth=1, heads=2, decoder="linear", stem_width=3)
    torch.manual_seed(3)
    model = GridViT(cfg)
    assert model.embed.in_features == 4 * 4 * (1 + 3)  # raw inputs and the stem's features per cell
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(model(x, _plane(8, 8)), x)  # zero head: the last state
    torch.nn.init.normal_(model.head.weight, std=0.1)
    with torch.no_grad():
        model.embed.weight[:, : 4 * 4] = 0.0  # cut the raw inputs: only the stem carries the fields
    probe = torch.randn(1, 1, 8, 8, requires_grad=True)
    model(probe, _plane(8, 8))[0, 0, 0, 0].backward()  # a cell of patch (0, 0)
    assert (probe.grad.abs()[0, 0] > 0).all()  # every cell still reaches it: through the stem, then attention


def test_conv_stem_width_is_validated_and_saved(tmp_path):
    import gridvit
    from gridvit.examples import toy_climate

    with pytest.raises(ValueError, match="stem_width"):
        ModelConfig(stem_width=-1)
    with pytest.raises(ValueError, match="stem_width"):
        gridvit.TrainConfig(stem_width=1.5)
    ds = toy_climate(n_time=16, shape=(8, 16), seed=0)
    sur = gridvit.train(ds, epochs=1, dim=16, depth=1, heads=2, patch=4, batch_size=4, progress=False,
                        stem_width=5, seed=0)
    assert sur.model.stem.conv2.out_channels == 5
    sur.save(tmp_path / "m.gvt")
    back = gridvit.load(tmp_path / "m.gvt")
    assert back.model.cfg.stem_width == 5
    a, b = sur.rollout(ds.isel(time=slice(0, 4)), steps=2), back.rollout(ds.isel(time=slice(0, 4)), steps=2)
    np.testing.assert_array_equal(a["t2m"].values, b["t2m"].values)

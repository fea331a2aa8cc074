"""Surrogate.history: one row per epoch, kept by save/load and resume, refused when malformed; plot_history."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import gridvit
from gridvit.checkpoint import CheckpointError, load_checkpoint, load_model_file, save_checkpoint, save_model_file
from gridvit.examples import toy_climate
from gridvit.history import history_dataset

TINY = dict(dim=16, depth=1, heads=2, patch=4, batch_size=4, progress=False)
FIXTURES = Path(__file__).resolve().parent / "fixtures"
COLUMNS = ["loss", "val_loss", "lr", "samples"]  # wall_time differs between runs


@pytest.fixture(scope="module")
def data() -> xr.Dataset:
    return toy_climate(n_time=40, shape=(16, 32), seed=2)


@pytest.fixture(scope="module")
def model(data):
    return gridvit.train(data, epochs=3, seed=1, **TINY)


def test_history_has_one_row_per_epoch(model, data):
    h = model.history
    assert h.sizes["epoch"] == 3 and list(h["epoch"].values) == [1, 2, 3]
    assert set(h.data_vars) == {"loss", "val_loss", "lr", "wall_time", "samples"}
    assert np.isfinite(h[["loss", "val_loss", "lr", "wall_time"]].to_array().values).all()
    n_train = len(gridvit.data.prepare(data, history=2, val_fraction=0.1).windows("train"))
    np.testing.assert_array_equal(h["samples"].values, n_train * np.arange(1, 4))
    assert (np.diff(h["wall_time"].values) > 0).all() and h["wall_time"].attrs["units"] == "s"
    assert h["lr"].values[-1] < h["lr"].values[0]  # cosine decay


def test_history_survives_save_and_load(model, tmp_path):
    again = gridvit.load(model.save(tmp_path / "m.gvt"))
    xr.testing.assert_identical(again.history, model.history)


def test_an_old_file_loads_with_an_empty_history():
    h = gridvit.load(FIXTURES / "tiny_v1.gvt").history
    assert h.sizes["epoch"] == 0 and "loss" in h


def test_without_a_validation_split_val_loss_is_nan(data):
    m = gridvit.train(data, epochs=1, val_fraction=0.0, **TINY)
    assert np.isnan(m.history["val_loss"].values).all() and np.isfinite(m.history["loss"].values).all()


@pytest.mark.parametrize("change, match", [
    (lambda h: h.update(loss=h["loss"][:-1]), "one length"),
    (lambda h: h.update(extra=[1, 2, 3]), "exactly the keys"),
    (lambda h: h["loss"].__setitem__(1, -1.0), "'loss' values must each be a finite number >= 0"),
    (lambda h: h["lr"].__setitem__(0, None), "'lr' values"),
    (lambda h: h["samples"].__setitem__(2, 0), "must not decrease"),
    (lambda h: h["epoch"].__setitem__(0, 5), "1, 2, 3"),
    (lambda h: h.__setitem__("loss", "x"), "lists"),
])
def test_a_malformed_history_is_refused(model, tmp_path, change, match):
    tensors, meta = load_model_file(model.save(tmp_path / "m.gvt"))
    meta = json.loads(json.dumps(meta))
    change(meta["history"])
    save_model_file(tmp_path / "bad.gvt", tensors, meta)
    with pytest.raises(CheckpointError, match=f"'history' is refused.*{match}"):
        gridvit.load(tmp_path / "bad.gvt")


def test_resumed_history_equals_the_uninterrupted_one(model, data, tmp_path, crash_in_third_epoch):
    crash_in_third_epoch(data, seed=1, checkpoint_dir=tmp_path, **TINY)
    resumed = gridvit.train(data, epochs=3, seed=1, checkpoint_dir=tmp_path, resume=True, **TINY)
    for name in COLUMNS:
        np.testing.assert_allclose(resumed.history[name].values, model.history[name].values, rtol=1e-5, err_msg=name)
    xr.testing.assert_identical(gridvit.load(tmp_path).history, resumed.history)


def test_resume_refuses_a_malformed_log(data, tmp_path):
    gridvit.train(data, epochs=1, checkpoint_dir=tmp_path, **TINY)
    state = load_checkpoint(tmp_path / "last.pt")
    state["log"][0]["samples"] = -4
    save_checkpoint(tmp_path / "last.pt", state)
    with pytest.raises(CheckpointError, match="counters, log or random state"):
        gridvit.train(data, epochs=2, checkpoint_dir=tmp_path, resume=True, **TINY)


def test_history_dataset_refuses_missing_fields():
    with pytest.raises(ValueError, match="entry 0 must be a mapping"):
        history_dataset([{"epoch": 1, "loss": 1.0}])


def test_plot_history_draws_losses(model, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    ax = gridvit.analysis.plot_history(model)
    assert [line.get_label() for line in ax.get_lines()] == ["training loss", "validation loss"]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), model.history["loss"].values)
    ax.figure.savefig(tmp_path / "history.png")
    with pytest.raises(ValueError, match="no epochs"):
        gridvit.analysis.plot_history(gridvit.load(FIXTURES / "tiny_v1.gvt"))


def test_resume_continues_a_checkpoint_written_before_samples_were_logged(data, tmp_path):
    gridvit.train(data, epochs=1, checkpoint_dir=tmp_path, **TINY)
    state = load_checkpoint(tmp_path / "last.pt")
    for entry in state["log"]:
        entry.pop("samples")  # the log an older gridvit wrote
    save_checkpoint(tmp_path / "last.pt", state)
    resumed = gridvit.train(data, epochs=2, checkpoint_dir=tmp_path, resume=True, **TINY)
    assert resumed.history.sizes["epoch"] == 2
    assert resumed.history["samples"].values[1] == 2 * resumed.history["samples"].values[0] > 0

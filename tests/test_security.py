"""Hostile files: pickles that would run code are refused unread; names from metadata never become paths."""

from __future__ import annotations

import builtins
import json
import os
import pickle
from pathlib import Path

import pytest
import torch

import gridvit
from gridvit.checkpoint import CheckpointError, load_checkpoint, load_model_file, save_checkpoint, save_model_file
from gridvit.examples import toy_climate

TINY = dict(dim=16, depth=1, heads=2, patch=4, batch_size=4, progress=False, seed=0)


class _Shell:
    """Unpickling this would run a shell command creating ``path``."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


class _Open:
    """Unpickling this would create (truncate) ``path`` through builtins.open."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (builtins.open, (str(self.path), "w"))


def _hostile_files(folder: Path, proof: Path) -> dict[str, Path]:
    """A .gvt and a last.pt each, holding the payloads as torch.save'd zips and as bare pickles."""
    files = {}
    for name, payload in (("shell", _Shell(proof)), ("open", _Open(proof))):
        for kind in ("torch", "pickle"):
            for target in ("model.gvt", "last.pt"):
                path = folder / f"{name}-{kind}-{target.split('.')[0]}" / target
                path.parent.mkdir(parents=True)
                state = {"model": {"w": payload}, "epoch": 3, "meta": "{}"}
                if kind == "torch":
                    torch.save(state, path)
                else:
                    path.write_bytes(pickle.dumps(state, protocol=2))
                files[f"{name}-{kind}-{target}"] = path
    return files


@pytest.fixture
def data():
    return toy_climate(n_time=16, shape=(8, 16), seed=3)


def test_malicious_pickles_are_refused_and_never_run(tmp_path, data, monkeypatch):
    monkeypatch.chdir(tmp_path)
    proof = tmp_path / "pwned"
    for label, path in _hostile_files(tmp_path / "evil", proof).items():
        if path.suffix == ".gvt":
            with pytest.raises(CheckpointError, match="not a gridvit model file .*holds a pickle.*never unpickles"):
                gridvit.load(path)
            with pytest.raises(CheckpointError, match="not a gridvit model file"):
                gridvit.load(path.parent)  # a run folder holding it
        else:
            with pytest.raises(CheckpointError, match="refusing to load .*never unpickles"):
                load_checkpoint(path)
            with pytest.raises(CheckpointError, match="refusing to load"):  # the resume path
                gridvit.train(data, epochs=1, checkpoint_dir=path.parent, resume=True, **TINY)
        assert not proof.exists(), label
    # the payloads are live: unpickling them unguarded would have created the file
    pickle.loads(pickle.dumps(_Open(proof), protocol=2)).close()
    assert proof.exists()


def test_names_from_metadata_never_become_paths(tmp_path, data):
    sandbox = tmp_path / "a" / "b" / "c"
    run = sandbox / "run"
    model = gridvit.train(data, epochs=1, checkpoint_dir=run, **TINY)
    tensors, meta = load_model_file(run / "model.gvt")
    evil = "../../evil"
    meta["spec"]["variables"][0]["name"] = meta["spec"]["channels"][0]["name"] = evil
    meta["spec"]["channels"][0]["variable"] = evil
    meta["spec"]["attrs"]["filename"] = "../../evil.nc"
    save_model_file(sandbox / "tampered.gvt", tensors, meta)
    with pytest.raises(CheckpointError, match=r"unsafe gridvit model file.*variable name '\.\./\.\./evil' is not "
                                              "allowed"):
        gridvit.load(sandbox / "tampered.gvt")
    with pytest.raises(ValueError, match=r"variable name '\.\./\.\./evil' is not allowed"):  # nor train on it
        gridvit.train(data.rename(t2m=evil), epochs=1, **TINY)

    # a stored filename in the dataset's attrs travels along but is never used as a path
    sneaky = data.assign_attrs(filename="../../evil.nc", path=str(tmp_path / "evil-abs.nc"))
    m = gridvit.train(sneaky, epochs=1, checkpoint_dir=run, **TINY)
    again = gridvit.load(run / "model.gvt")
    assert again.spec.attrs["filename"] == "../../evil.nc"
    fc = again.rollout(sneaky, steps=2)
    fc.to_netcdf(sandbox / "fc.nc")
    m.save(sandbox / "copy.gvt")
    state = load_checkpoint(run / "last.pt")
    assert json.loads(state["meta"])["spec"]["attrs"]["filename"] == "../../evil.nc"
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["a/b/c/copy.gvt", "a/b/c/fc.nc", "a/b/c/run/last.pt", "a/b/c/run/model.gvt",
                       "a/b/c/tampered.gvt"]
    assert model.spec.channel_names == ["t2m"]


def test_resume_refuses_a_checkpoint_whose_metadata_was_changed(tmp_path, data):
    gridvit.train(data, epochs=1, checkpoint_dir=tmp_path, **TINY)
    state = load_checkpoint(tmp_path / "last.pt")
    meta = json.loads(state["meta"])
    meta["spec"]["variables"][0]["name"] = "../../evil"
    save_checkpoint(tmp_path / "last.pt", {**state, "meta": json.dumps(meta)})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ValueError, match="written for another spec; use another checkpoint_dir or resume=False"):
        gridvit.train(data, epochs=2, checkpoint_dir=tmp_path, resume=True, **TINY)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing written, nothing changed
    assert not (tmp_path.parent.parent / "evil").exists()

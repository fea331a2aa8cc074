"""Safe, atomic files: model files (safetensors + JSON) and training checkpoints (weights-only torch).

Nothing here ever runs code from a file: model files are safetensors (tensors and a JSON header only);
training checkpoints are read with ``torch.load(weights_only=True)``, which refuses any pickled object
other than tensors and plain containers. Every write goes to a temporary file in the target folder,
is flushed to disk, then renamed over the target, so a crash never leaves a half-written file under the
target's name (a process killed mid-write leaves a hidden ``.<name>.*.tmp`` file, removed by the next write
of that target). Nothing here takes a path from a file's contents: files are only written where the caller
says.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

MODEL_FORMAT = "gridvit-surrogate"
FORMAT_VERSION = "1"


class CheckpointError(ValueError):
    """A file is not a gridvit model/checkpoint, is damaged, or holds something unsafe to load."""


def atomic_write(path: str | Path, write: Callable[[str], Any]) -> Path:
    """Call ``write(tmp_path)`` then fsync and rename onto ``path`` (same folder, so the rename is atomic).

    Raises:
        OSError: the write failed (full disk, no permission…), with the errno kept and a message naming
            ``path``; the temporary file is removed and any previous file at ``path`` is left intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise _os_error(err, f"could not write {str(path)!r} ({err.strerror or err}); nothing was half-written "
                        "and the previous file, if any, is intact") from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a process killed mid-write
        stale.unlink(missing_ok=True)
    return path


def _os_error(err: OSError, message: str) -> OSError:
    """An OSError of the same errno (ENOSPC, EACCES…) as ``err`` with a clearer ``message``."""
    return OSError(err.errno, message) if err.errno is not None else OSError(message)


def check_writable(folder: str | Path) -> Path:
    """Create ``folder`` if needed and prove a file can be written there; a clear error otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / ".gridvit-write-test", lambda p: Path(p).write_bytes(b"ok")).unlink()
    except OSError as err:
        reason = getattr(err.__cause__, "strerror", None) or err.strerror or err
        raise _os_error(err, f"checkpoint_dir {str(folder)!r} is not writable ({reason}); give a folder you "
                        "can write to") from err
    return folder


def save_model_file(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write tensors + a JSON ``meta`` header as one safetensors file, atomically."""
    from safetensors.torch import save_file

    header = {"format": MODEL_FORMAT, "version": FORMAT_VERSION, "meta": json.dumps(meta)}
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))


def load_model_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by :func:`save_model_file`: (tensors, meta). Executes nothing from the file."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no gridvit model file at {str(path)!r}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        with open(path, "rb") as f:
            head = f.read(2)
        pickled = head[:1] == b"\x80" or head == b"PK"  # a bare pickle, or torch.save's zip of one
        what = " it holds a pickle (torch.save), which gridvit never unpickles;" if pickled else ""
        raise CheckpointError(f"{str(path)!r} is not a gridvit model file (safetensors):{what} {err}") from None
    if header.get("format") != MODEL_FORMAT:
        raise CheckpointError(f"{str(path)!r} is a safetensors file but not a gridvit model (format "
                              f"{header.get('format')!r})")
    try:
        return tensors, json.loads(header["meta"])
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{str(path)!r} is a gridvit model file with a damaged header ({err!r})") from None


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write a training checkpoint (tensors, numbers, strings, containers) atomically."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint with ``weights_only=True``; anything else (a pickle) is refused unrun."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, ValueError) as err:
        raise CheckpointError(
            f"refusing to load {str(path)!r}: it is damaged or holds objects other than tensors and plain "
            f"data, and gridvit never unpickles code ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
        ) from None

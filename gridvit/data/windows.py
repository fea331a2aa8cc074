"""Splits and windows: ``history`` input steps -> targets ``lead`` steps ahead, as torch samples.

Splits are contiguous and disjoint, by time (climate data: train on the first years, validate and test on
later ones) or, for datasets with a ``sample`` dim of independent trajectories, by sample. A window lies
wholly inside one split and one trajectory: none straddles two.

A window starting at step ``s`` reads ``history`` inputs ``lead`` steps apart, ``s, s+lead, …,
s+lead·(history−1)``, and targets ``lead·k`` steps after the last input for ``k = 1 … rollout``
(``rollout > 1`` for unrolled multi-step training). Inputs and targets share one spacing, so a model that
steps ``lead`` saved steps at once can be rolled out on its own predictions.

Lead-conditioned windows (:func:`make_lead_windows`) are (sample, start, lead index): ``history`` inputs
``lead`` steps apart, one target ``leads[j]`` steps after the last input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from gridvit.data.normalise import Normaliser
from gridvit.data.reader import FieldReader


@dataclass(frozen=True)
class Split:
    """The samples and the contiguous time range one split may read."""

    samples: tuple[int, ...]
    times: range


def make_splits(n_samples: int, n_times: int, *, val_fraction: float = 0.1, test_fraction: float = 0.0,
                by: str = "time") -> dict[str, Split]:
    """Contiguous train/val/test splits by ``"time"`` (last fractions of time) or by ``"sample"``.

    Raises:
        ValueError: fractions outside [0, 1) or leaving nothing to train on; an unknown ``by``.
    """
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= f < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {f}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(f"val_fraction + test_fraction = {val_fraction + test_fraction} leaves nothing to train on")
    if by not in ("time", "sample"):
        raise ValueError(f"split by must be 'time' or 'sample', got {by!r}")
    n = n_times if by == "time" else n_samples
    n_test = int(round(n * test_fraction))
    n_val = int(round(n * val_fraction))
    cuts = {"train": range(0, n - n_val - n_test), "val": range(n - n_val - n_test, n - n_test),
            "test": range(n - n_test, n)}
    if by == "time":
        return {k: Split(tuple(range(n_samples)), r) for k, r in cuts.items()}
    return {k: Split(tuple(r), range(n_times)) for k, r in cuts.items()}


def make_windows(split: Split, *, history: int, lead: int = 1, rollout: int = 1) -> np.ndarray:
    """All windows inside ``split`` as an (M, 2) int array of (sample, start step)."""
    check_window_options(history=history, lead=lead, rollout=rollout)
    span = window_span(history=history, lead=lead, rollout=rollout)
    starts = np.arange(split.times.start, split.times.stop - span + 1)
    return np.array([(s, t) for s in split.samples for t in starts], dtype=np.int64).reshape(-1, 2)


def make_lead_windows(split: Split, *, history: int, spacing: int, leads: tuple[int, ...]) -> np.ndarray:
    """Windows for every lead inside ``split``: an (M, 3) int array of (sample, start step, lead index);
    inputs ``spacing`` steps apart, the target ``leads[j]`` steps after the last input."""
    out = []
    for j, lead in enumerate(leads):
        w = make_windows(split, history=history, lead=spacing, rollout=lead // spacing)  # (M_j, 2)
        out.append(np.concatenate([w, np.full((len(w), 1), j, dtype=np.int64)], axis=1))  # (M_j, 3)
    return np.concatenate(out)


def check_window_options(**options: int) -> None:
    """Raise ValueError unless every option (history, lead, rollout) is a positive int."""
    for name, v in options.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")


def window_span(*, history: int, lead: int, rollout: int) -> int:
    """Saved time steps one window covers: ``1 + lead·(history − 1 + rollout)``."""
    return 1 + lead * (history - 1 + rollout)


def window_steps(start: int, *, history: int, lead: int, rollout: int) -> np.ndarray:
    """Time indices a window starting at ``start`` reads: ``history`` inputs, then ``rollout`` targets."""
    return start + lead * np.arange(history + rollout)


def check_enough_steps(n_times: int, *, history: int, lead: int, rollout: int, time_dim: str) -> None:
    """Raise ValueError when ``n_times`` cannot hold one window."""
    need = window_span(history=history, lead=lead, rollout=rollout)
    if n_times < need:
        raise ValueError(
            f"dim {time_dim!r} has {n_times} steps in the training split, fewer than one window needs "
            f"(1 + lead·(history − 1 + rollout) = 1 + {lead}·({history} − 1 + {rollout}) = {need}); "
            "give more steps or reduce history/lead/rollout"
        )


class WindowDataset(Dataset):
    """Normalised torch samples for windows.

    Each item is a dict with ``x`` (T·C, H, W) float32 inputs (NaN filled with 0; static and forcing
    channels are appended by the model's stepper, see :class:`gridvit.surrogate.Stepper`), ``y`` (K, C, H, W) float32 targets (K = rollout; NaN filled with 0), ``valid`` (K, C, H, W)
    bool (finite and not masked: use it to mask losses), and ``sample``/``start`` ints; for lead-conditioned
    windows (3 columns, ``leads`` given) K = 1 and ``lead`` is the target's lead in saved steps.

    Args:
        reader: where the fields come from (in memory or lazily).
        normaliser: statistics and mask from the training split.
        windows: (M, 2) (sample, start) from :func:`make_windows`.
        history, lead, rollout: the window layout.
        times: (T,) time coordinate values (needed when the normaliser removes a climatology).
        leads: the leads of lead-conditioned windows (``lead`` is then the inputs' spacing).
    """

    def __init__(self, reader: FieldReader, normaliser: Normaliser, windows: np.ndarray, *, history: int,
                 lead: int = 1, rollout: int = 1, times: np.ndarray | None = None,
                 leads: tuple[int, ...] | None = None):
        self.reader, self.normaliser, self.windows = reader, normaliser, np.asarray(windows)
        self.times = None if times is None else np.asarray(times)
        self.history, self.lead, self.rollout, self.leads = history, lead, rollout, leads

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor | int]:
        sample, start, *j = (int(v) for v in self.windows[i])
        steps = window_steps(start, history=self.history, lead=self.lead, rollout=0 if j else self.rollout)
        if j:  # lead-conditioned: one target leads[j] after the last input
            steps = np.append(steps, steps[-1] + self.leads[j[0]])
        raw = self.reader.read(sample, steps)  # (T+K, C, H, W)
        z = self.normaliser.normalise(raw, None if self.times is None else self.times[steps]).astype(np.float32)
        ok = np.isfinite(z) & self.normaliser.valid  # (T+K, C, H, W)
        z = np.where(ok, z, np.float32(0.0))
        c, h, w = z.shape[1:]
        x = z[: self.history].reshape(self.history * c, h, w)  # (T*C, H, W), time-major channels
        item = {
            "x": torch.from_numpy(np.ascontiguousarray(x)),
            "y": torch.from_numpy(np.ascontiguousarray(z[self.history:])),  # (K, C, H, W)
            "valid": torch.from_numpy(np.ascontiguousarray(ok[self.history:])),
            "sample": sample,
            "start": start,
        }
        if j:
            item["lead"] = self.leads[j[0]]
        return item

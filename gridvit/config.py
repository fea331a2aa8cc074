"""TrainConfig: the options of :func:`gridvit.train`, with defaults that run on a laptop CPU in minutes.

Saved inside checkpoints and model files (``dataclasses.asdict`` → JSON).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from gridvit.model.config import ATTENTION_IMPLS, BIAS_MODES, DECODERS


@dataclass
class TrainConfig:
    """Training options (all keyword-only in :func:`gridvit.train`).

    Args:
        variables: variables to model (default: all with time and both spatial dims).
        history: input steps T. lead: saved steps per model step. rollout_steps: unrolled steps in the loss.
        leads: train one **lead-conditioned** model for several leads at once (saved steps, strictly
            increasing, each a multiple of the first): the inputs are ``history`` states ``leads[0]`` steps
            apart, each training window targets one of the leads, and the lead enters the network as a
            learned embedding added to every token (ClimaX). ``predict(ds, lead=k)`` forecasts lead k
            directly; ``rollout`` combines the leads (see :meth:`gridvit.Surrogate.rollout`). None: one
            lead, ``lead``.
        balance_leads: for a lead-conditioned model, weight each lead's loss (and validation) by the inverse of
            the MSE at that lead of what the network adds its delta to (the linear base, or persistence) on
            the training windows, so the short leads' small residuals count as much as the long leads' large
            ones (GraphCast weights its variables by the inverse variance of their changes the same way).
            False: plain MSE over all windows, dominated by the longest leads.
        linear_base: the network predicts the residual of a per-cell linear regression of its own inputs (one
            per lead), fitted by least squares on the training windows before training and then held fixed
            (:mod:`gridvit.model.cell_linear`): the model starts as the linear-regression baseline. Where
            validation keeps that base alone (the network never beat it), the base is refitted on the training
            and validation windows, so the returned regression uses every window given. Ties the model to its
            training grid.
        rollout_curriculum: with ``rollout_steps`` K > 1, the fraction of training spent on the one-step loss
            before the unrolled steps grow from 1 to K (reaching K halfway through the rest); 0 unrolls all K
            steps from the start.
        pushforward: detach each unrolled step's input from the previous prediction (Brandstetter et al.
            2022); False backpropagates through the whole unroll. None: True for pure surrogates, False for
            learned corrections (solver in the loop, Um et al. 2020).
        patch: patch side P (``None``: the smallest giving at most ~1100 tokens).
        input_noise: standard deviation (normalised units) of Gaussian noise added to the training inputs,
            so the model learns to correct the small errors a rollout feeds back (Sanchez-Gonzalez et al.
            2020); 0 turns it off. Validation sees clean inputs.
        random_shift: translation augmentation: each training window is rolled by a random offset along
            every periodic axis of a plane grid (inputs and targets alike), so the model learns the shift
            equivariance of periodic, homogeneous dynamics at every offset, not only whole patches. Only
            for planes with a periodic axis, no static fields, no masked cells and no ``linear_base`` (each
            ties the data to fixed cells); a forced solver must be homogeneous along the shifted axes too.
            Validation sees unshifted windows.
        dim, depth, heads, mlp_ratio, bias, decoder, decoder_width, stem_width: the ViT (see
            :class:`gridvit.model.ModelConfig`).
        epochs: passes over the training windows; time_budget: seconds of training (whichever ends first;
            neither given → 20 epochs).
        batch_size, lr, weight_decay, warmup, grad_clip: AdamW with linear warm-up (fraction of training)
            then cosine decay, gradient-norm clipping. ``batch_size`` is the global batch: under torchrun
            each of W processes takes ``batch_size / W`` windows of it (it must divide evenly).
        val_fraction: last fraction of time (or samples) held out for validation/early stopping.
        patience: epochs without validation improvement before stopping (best weights are kept).
        calendar: add sin/cos time-of-day and day-of-year channels for datetime axes (``"diurnal"``: time of
            day only, for training periods much shorter than a year, where the day of year only marks the
            trend of those weeks and extrapolates beyond them).
        climatology: model anomalies from a training-split climatology by ``"hour"`` of day or ``"month"``
            (``"auto"``: by time step, see :func:`gridvit.data.prepare`; None: plain mean/std).
        seed: seeds initialisation and shuffling (same seed, data and CPU → same weights with ``epochs``).
        device: ``"auto"`` (CUDA with bf16 autocast when present, else CPU), ``"cpu"`` or ``"cuda"``
            (under torchrun ``"auto"``/``"cuda"`` mean ``cuda:LOCAL_RANK``).
        progress: show a tqdm progress bar.
        num_workers: DataLoader worker processes reading windows (each keeps 2 batches in flight); 0 reads
            in the training process. Workers help when reads are slow (lazy zarr/netCDF, compression).
        activation_checkpointing: recompute each transformer block's activations in the backward pass
            instead of storing them (less memory, about one more forward of compute).
        attention: ``"auto"`` (on CUDA the bias computed in the FlexAttention kernel above 16384 tokens, the
            dense bias with SDPA below and on CPU),
            ``"flex"`` or ``"sdpa"`` (see :class:`gridvit.model.ModelConfig`); saved with the model, which
            loads and predicts on any device.
    """

    variables: list[str] | None = None
    history: int = 2
    lead: int = 1
    rollout_steps: int = 1
    leads: list[int] | None = None
    balance_leads: bool = True
    rollout_curriculum: float = 0.0
    linear_base: bool = False
    pushforward: bool | None = None
    input_noise: float = 0.0
    random_shift: bool = False
    patch: int | None = None
    dim: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    bias: str = "alibi"
    decoder: str = "linear"
    decoder_width: int = 32
    stem_width: int = 0
    epochs: int | None = None
    time_budget: float | None = None
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: float = 0.05
    grad_clip: float = 1.0
    val_fraction: float = 0.1
    patience: int = 5
    calendar: bool | str = True
    climatology: str | None = "auto"
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    num_workers: int = 0
    activation_checkpointing: bool = False
    attention: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.variables, str):
            self.variables = [self.variables]
        for name in ("history", "lead", "rollout_steps", "dim", "depth", "heads", "decoder_width", "batch_size",
                     "patience"):
            _positive_int(name, getattr(self, name))
        for name in ("patch", "epochs"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        for name in ("num_workers", "stem_width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        if self.leads is not None:
            self.leads = _leads(self.leads)
            if self.lead not in (1, self.leads[0]):
                raise ValueError(f"give either lead={self.lead} or leads={self.leads}, not both")
            self.lead = self.leads[0]
            if self.rollout_steps != 1:
                raise ValueError("rollout_steps > 1 is for single-lead models; a lead-conditioned model (leads=...) "
                                 "reaches long leads directly")
        if not (_number(self.rollout_curriculum) and 0 <= self.rollout_curriculum < 1):
            raise ValueError(f"rollout_curriculum must be a fraction in [0, 1), got {self.rollout_curriculum!r}")
        if not isinstance(self.balance_leads, bool):
            raise TypeError(f"balance_leads must be True or False, got {self.balance_leads!r}")
        if not isinstance(self.linear_base, bool):
            raise TypeError(f"linear_base must be True or False, got {self.linear_base!r}")
        if self.pushforward is not None and not isinstance(self.pushforward, bool):
            raise TypeError(f"pushforward must be True, False or None, got {self.pushforward!r}")
        if not isinstance(self.random_shift, bool):
            raise TypeError(f"random_shift must be True or False, got {self.random_shift!r}")
        if self.random_shift and self.linear_base:
            raise ValueError("random_shift cannot be combined with linear_base: the base's per-cell fit is tied to "
                             "unshifted cells")
        if not isinstance(self.activation_checkpointing, bool):
            raise TypeError(f"activation_checkpointing must be True or False, got {self.activation_checkpointing!r}")
        if self.time_budget is not None and not (_number(self.time_budget) and self.time_budget > 0):
            raise ValueError(f"time_budget must be a positive number of seconds, got {self.time_budget!r}")
        for name in ("lr", "grad_clip", "mlp_ratio"):
            if not (_number(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be a positive number, got {getattr(self, name)!r}")
        if not (_number(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not (_number(self.warmup) and 0 <= self.warmup < 1):
            raise ValueError(f"warmup must be a fraction in [0, 1), got {self.warmup!r}")
        if not (_number(self.val_fraction) and 0 <= self.val_fraction < 1):
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if self.calendar not in (True, False, "diurnal"):
            raise ValueError(f"calendar must be True, False or 'diurnal', got {self.calendar!r}")
        if self.climatology not in ("auto", "hour", "month", None):
            raise ValueError(f"climatology must be 'auto', 'hour', 'month' or None, got {self.climatology!r}")
        if not (_number(self.input_noise) and self.input_noise >= 0):
            raise ValueError(f"input_noise must be >= 0, got {self.input_noise!r}")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.bias not in BIAS_MODES:
            raise ValueError(f"bias must be one of {BIAS_MODES}, got {self.bias!r}")
        if self.attention not in ATTENTION_IMPLS:
            raise ValueError(f"attention must be one of {ATTENTION_IMPLS}, got {self.attention!r}")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by heads ({self.heads})")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "TrainConfig":
        """Build from keyword options; unknown names raise a TypeError listing the accepted ones."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise TypeError(f"unknown training option(s) {unknown}; accepted: {sorted(names)}")
        return cls(**options)


def _leads(leads: Any) -> list[int]:
    """``leads`` as a list of positive, strictly increasing ints, each a multiple of the first."""
    if isinstance(leads, (str, bytes)) or not hasattr(leads, "__iter__"):
        raise TypeError(f"leads must be a list of positive ints, got {leads!r}")
    out = list(leads)
    if not out:
        raise ValueError("leads is empty; give at least one lead (in saved time steps), e.g. leads=[1, 6, 24]")
    for v in out:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"every lead must be a positive int (saved time steps), got {v!r} in {out}")
    if any(b <= a for a, b in zip(out, out[1:])):
        raise ValueError(f"leads must be strictly increasing without duplicates, got {out}")
    bad = [v for v in out if v % out[0]]
    if bad:
        raise ValueError(f"every lead must be a multiple of the first ({out[0]}, the inputs' spacing); {bad} are not")
    return out


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _positive_int(name: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")

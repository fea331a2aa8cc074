"""ModelConfig: the hyper-parameters of :class:`gridvit.model.GridViT`, a plain JSON-able dataclass."""

from __future__ import annotations

from dataclasses import dataclass

BIAS_MODES = ("alibi", "learnable", "none")
ATTENTION_IMPLS = ("auto", "sdpa", "flex")
DECODERS = ("linear", "conv", "conv_skip")


@dataclass
class ModelConfig:
    """Hyper-parameters of a :class:`~gridvit.model.GridViT` (saved in checkpoints via ``dataclasses.asdict``).

    Nothing here depends on the grid: the same weights run on any grid of the same geometry.

    Args:
        history: T, input time steps.
        channels: C, variables per time step (also the number of output channels).
        extra_channels: E, static/forcing channels appended after the T·C state channels.
        patch: P, patch side in grid cells.
        dim: D, token width.
        depth: number of transformer blocks.
        heads: h, attention heads (must divide ``dim``).
        mlp_ratio: MLP hidden width as a multiple of D.
        bias: ``"alibi"`` (fixed geometric per-head slopes), ``"learnable"`` (per-layer, per-head slopes,
            positive by construction, initialised at the ALiBi values) or ``"none"`` (ablation).
        slope_max: slope of the most local head, per length scale L (bias −slope_max · d/L).
        slope_min: slope of the most global head; slopes are geometric between the two.
        length_scale: L in km (sphere) or grid units (plane); ``None`` takes the grid's median
            nearest-neighbour patch spacing, so the bias is measured in patch steps on every grid.
        abs_pos_embed: add a learned absolute position embedding (off by default: it breaks the
            translation/rotation equivariance the distance bias gives, and ties weights to ``pos_grid``).
        pos_grid: (nh, nw) patch grid the absolute embedding is sized for; other grids interpolate it.
        decoder: ``"linear"`` (each patch decoded from its own token by one linear map) or ``"conv"`` (the
            head emits ``decoder_width`` features per cell, refined by two 3×3 convolutions across patch
            borders: no patch seams; see :mod:`gridvit.model.decoder`) or ``"conv_skip"`` (the same, its first
            convolution also seeing the input fields cell by cell: a U-Net-style skip, so cell-scale stencils
            need not pass through the patch tokens).
        decoder_width: F, features per cell of the conv decoder.
        stem_width: S > 0 puts a convolutional stem before the patch embedding (Xiao et al. 2021, "Early
            convolutions help transformers see better"): two 3×3 convolutions with GELUs make S features per
            cell, padded as the grid continues, and each patch token embeds them beside the raw inputs. 0: none.
        attention: ``"flex"`` (FlexAttention on CUDA with the bias computed in the kernel from token
            coordinates, O(N) memory; fused SDPA with the dense bias elsewhere, as FlexAttention has no CPU
            backward; an error on a CUDA torch without FlexAttention), ``"auto"`` (the same above
            ``AUTO_FLEX_TOKENS`` = 16384 tokens, the dense bias below: faster where it fits) or ``"sdpa"``
            (SDPA with the dense (1, h, N, N) bias on every device). Models load and predict on any device
            whatever they were trained with.
        leads: for a lead-conditioned model, the leads (saved time steps, strictly increasing) it was trained
            for; a learned embedding per lead is added to every token. None: a single-lead model.
        cell_linear: the grid (H, W) of a per-cell linear base (:mod:`gridvit.model.cell_linear`): the network
            predicts the residual of a per-cell least-squares map of its inputs (one per lead), fitted before
            training; the model then runs on that grid only. None: the base is the last state.
        block_sparse: on the Flex path, skip the key blocks whose bias is below −τ for every entry (a per-head
            block mask; τ = ln(N/1e-6) + 10, see :func:`gridvit.model.bias.sparse_threshold`). Off: every block.
    """

    history: int = 1
    channels: int = 1
    extra_channels: int = 0
    patch: int = 4
    dim: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    bias: str = "alibi"
    slope_max: float = 1.0
    slope_min: float = 1.0 / 64.0
    length_scale: float | None = None
    abs_pos_embed: bool = False
    pos_grid: tuple[int, int] | None = None
    attention: str = "auto"
    block_sparse: bool = True
    decoder: str = "linear"
    decoder_width: int = 32
    stem_width: int = 0
    leads: tuple[int, ...] | None = None
    cell_linear: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        for name in ("history", "channels", "patch", "dim", "depth", "heads", "decoder_width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}")
        for name in ("extra_channels", "stem_width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"ModelConfig.{name} must be an int >= 0, got {value!r}")
        if self.dim % self.heads:
            raise ValueError(f"ModelConfig.dim ({self.dim}) must be divisible by heads ({self.heads})")
        if not self.mlp_ratio > 0:
            raise ValueError(f"ModelConfig.mlp_ratio must be > 0, got {self.mlp_ratio!r}")
        if self.bias not in BIAS_MODES:
            raise ValueError(f"ModelConfig.bias must be one of {BIAS_MODES}, got {self.bias!r}")
        if self.decoder not in DECODERS:
            raise ValueError(f"ModelConfig.decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.attention not in ATTENTION_IMPLS:
            raise ValueError(f"ModelConfig.attention must be one of {ATTENTION_IMPLS}, got {self.attention!r}")
        if not isinstance(self.block_sparse, bool):
            raise TypeError(f"ModelConfig.block_sparse must be True or False, got {self.block_sparse!r}")
        if not 0 < self.slope_min <= self.slope_max:
            raise ValueError(
                f"ModelConfig slopes need 0 < slope_min <= slope_max, got {self.slope_min!r}, {self.slope_max!r}"
            )
        if self.length_scale is not None and not self.length_scale > 0:
            raise ValueError(f"ModelConfig.length_scale must be > 0 or None, got {self.length_scale!r}")
        if self.pos_grid is not None:
            self.pos_grid = tuple(int(n) for n in self.pos_grid)  # JSON gives a list back
            if len(self.pos_grid) != 2 or min(self.pos_grid) < 1:
                raise ValueError(f"ModelConfig.pos_grid must be two positive ints (nh, nw), got {self.pos_grid!r}")
        if self.leads is not None:
            self.leads = tuple(self.leads)  # JSON gives a list back
            if not self.leads or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in self.leads) \
                    or any(b <= a for a, b in zip(self.leads, self.leads[1:])):
                raise ValueError(f"ModelConfig.leads must be strictly increasing positive ints, got {self.leads!r}")
        if self.cell_linear is not None:
            self.cell_linear = tuple(int(n) for n in self.cell_linear)  # JSON gives a list back
            if len(self.cell_linear) != 2 or min(self.cell_linear) < 1:
                raise ValueError(f"ModelConfig.cell_linear must be the grid (H, W), got {self.cell_linear!r}")
        if self.abs_pos_embed and self.pos_grid is None:
            raise ValueError("ModelConfig.abs_pos_embed=True needs pos_grid=(nh, nw), the patch grid it is sized for")

    @property
    def in_channels(self) -> int:
        """Input channels the model expects: T·C + E."""
        return self.history * self.channels + self.extra_channels

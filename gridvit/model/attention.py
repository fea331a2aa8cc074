"""Multi-head self-attention with an additive distance bias: fused (SDPA), manual and FlexAttention paths.

All paths compute ``softmax(q kᵀ · scale + bias) v``:

- fused: ``F.scaled_dot_product_attention(q, k, v, attn_mask=bias)`` — the CPU path. On CPU a 4-D bias
  (1, h, N, N) keeps SDPA on its fused flash kernel (a 3-D (h, N, N) one drops to the ~3× slower math
  kernel).
- fused with learnable slopes (CPU): a mask that needs a gradient also drops SDPA to the math kernel, so
  :class:`_SlopedFlashAttention` runs the fused kernel forward and backward with the mask detached and
  gets the slopes' gradient from one more fused forward (see its docstring).
- manual: explicit scores and softmax, used when the attention weights are requested.
- flex, coordinates (CUDA; ``impl="auto"`` or ``"flex"``): the bias is a
  :class:`~gridvit.model.bias.TokenDistance` and FlexAttention's ``score_mod`` computes ``−w_h · r(i, j)``
  from per-token coordinates inside the kernel — O(N) memory, no (N, N) tensor — optionally skipping key
  blocks with a block mask. Learnable slopes get their gradient from one more Flex forward
  (:class:`_FlexSlopeGrad`), as on CPU, rather than from per-element atomic adds into h numbers.
- flex, dense table: a dense bias given to ``impl="flex"`` on CUDA is read from the table in ``score_mod``
  (kept for comparison; GridViT passes coordinates there; ``"auto"`` gives a dense bias to SDPA).

FlexAttention has no backward on CPU, so CPU training takes SDPA. The tests run the Flex ``score_mod``
functions in eager mode on CPU; the compiled CUDA kernels are exercised by ``benchmarks/attention_bias.py
--device cuda``.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

from gridvit.model.bias import SlopedDistance, TokenDistance, token_distance
from gridvit.model.config import ATTENTION_IMPLS

_compiled_flex = None


def _flex_fn(compile: bool):
    """``flex_attention``, compiled once (static shapes) when ``compile``; eager otherwise (CPU tests)."""
    global _compiled_flex
    from torch.nn.attention.flex_attention import flex_attention

    if not compile:
        return flex_attention
    if _compiled_flex is None:
        # One kernel per (batch, tokens, score_mod, mask) — training, validation and a last short batch add up;
        # past torch's default limit of 8, calls would fall back to the unfused path that builds (N, N) scores.
        config = torch._dynamo.config
        name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
        setattr(config, name, max(getattr(config, name), 64))
        _compiled_flex = torch.compile(flex_attention, dynamic=False)
    return _compiled_flex


def _flex_with_lse(fn, q, k, v, score_mod, block_mask) -> tuple[torch.Tensor, torch.Tensor]:
    """Flex output (B, h, N, d) and its log-sum-exp (B, h, N) (natural log), on old and new torch APIs."""
    from torch.nn.attention import flex_attention as fa

    if "return_aux" in inspect.signature(fa.flex_attention).parameters:
        out, aux = fn(q, k, v, score_mod=score_mod, block_mask=block_mask, return_aux=fa.AuxRequest(lse=True))
        return out, aux.lse
    return fn(q, k, v, score_mod=score_mod, block_mask=block_mask, return_lse=True)


def _distance_score_mod(bias: TokenDistance, weights: torch.Tensor, *, log_distance: bool = False):
    """``score − w_h r(i, j)`` (plus ``log r(i, j)`` for the slopes' gradient), from O(N) captured tensors.

    The closure captures tensors and a string only (not the TokenDistance), so a new call with new tensors
    of the same shapes reuses the compiled kernel. The result stays float32 (the kernel's score precision;
    the coordinates are float32) instead of being cast to the score placeholder's dtype (bf16 under autocast).
    """
    kind, coords, periods = bias.kind, bias.coords, bias.periods
    axes = range(len(coords))

    def score_mod(score, b, h, q_idx, kv_idx):
        wrap = None if periods is None else tuple(periods[a] for a in axes)
        r = token_distance(tuple(c[q_idx] for c in coords), tuple(c[kv_idx] for c in coords), kind, wrap)
        out = score - weights[h] * r
        return out + torch.log(r) if log_distance else out

    return score_mod


class _FlexSlopeGrad(torch.autograd.Function):
    """Identity on the Flex output ``O`` whose backward adds the gradient of the per-head weights w (h,).

    The same identity as :class:`_SlopedFlashAttention`: with ``D = r`` the distances,
    ``∂L/∂w_h = −Σ_i c_i (dO_i·O'_i − dO_i·O_i)`` where ``O'``, ``lse'`` come from one more Flex forward with
    ``score_mod`` adding ``log r`` and ``c_i = exp(lse'_i − lse_i)``. The q, k, v gradients come from Flex's
    own backward (its ``score_mod`` holds w detached); nothing of size (N, N) is stored.
    """

    @staticmethod
    def forward(ctx, out, lse, q, k, v, weights, bias, compile):  # out, q, k, v (B, h, N, d); lse (B, h, N)
        ctx.save_for_backward(out, lse, q, k, v, weights)
        ctx.bias, ctx.compile = bias, compile
        return out.view_as(out)

    @staticmethod
    def backward(ctx, d_out):
        out, lse, q, k, v, weights = ctx.saved_tensors
        d_w = None
        if ctx.needs_input_grad[5]:
            if q.shape[-2] < 2:
                d_w = torch.zeros_like(weights)
            else:
                with torch.no_grad():
                    score_mod = _distance_score_mod(ctx.bias, weights.detach(), log_distance=True)
                    out2, lse2 = _flex_with_lse(_flex_fn(ctx.compile), q, k, v, score_mod, ctx.bias.block_mask)
                    acc = torch.promote_types(q.dtype, torch.float32)  # bf16 inputs: accumulate in float32
                    c = torch.exp(lse2.to(acc) - lse.to(acc))  # (B, h, N)
                    g = (d_out.to(acc) * (out2.to(acc) - out.to(acc))).sum(-1)  # dO_i·O'_i − δ_i, (B, h, N)
                    cg = torch.where(torch.isfinite(lse2), c * g, 0.0)  # a row with no other key: no gradient
                    d_w = -cg.sum(dim=(0, 2)).to(weights.dtype)  # (h,)
        return d_out, None, None, None, None, d_w, None, None


def _flex_token_distance(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: TokenDistance, *, compile: bool
) -> torch.Tensor:
    """FlexAttention with the bias computed in the kernel from coordinates; q, k, v (B, h, N, d) -> (B, h, N, d)."""
    fn = _flex_fn(compile)
    learn = bias.weights.requires_grad and torch.is_grad_enabled()
    score_mod = _distance_score_mod(bias, bias.weights.detach())
    if not learn:
        return fn(q, k, v, score_mod=score_mod, block_mask=bias.block_mask)
    out, lse = _flex_with_lse(fn, q, k, v, score_mod, bias.block_mask)
    return _FlexSlopeGrad.apply(out, lse.detach(), q, k, v, bias.weights, bias, compile)


def _flex_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None, *, compile: bool
) -> torch.Tensor:
    """FlexAttention with ``score + bias[0, h, i, j]`` as ``score_mod``; q, k, v (B, h, N, d) -> (B, h, N, d)."""
    fn = _flex_fn(compile)
    if bias is None:
        return fn(q, k, v)
    table = bias[0]  # (h, N, N)

    def score_mod(score, b, h, q_idx, kv_idx):
        return score + table[h, q_idx, kv_idx]

    return fn(q, k, v, score_mod=score_mod)


def flex_available(device: torch.device) -> bool:
    """True where the FlexAttention path can train: a CUDA device and a torch that ships FlexAttention."""
    if device.type != "cuda":
        return False
    try:
        from torch.nn.attention import flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


AUTO_FLEX_TOKENS = 16384  # "auto" computes the bias in the kernel only above this many tokens


def uses_flex(impl: str, device: torch.device, tokens: int | None = None) -> bool:
    """Whether attention ``impl`` runs FlexAttention on ``device`` for ``tokens`` tokens: ``"flex"`` where it
    can train (CUDA), never for ``"sdpa"``; ``"auto"`` only where the dense bias stops scaling, above
    :data:`AUTO_FLEX_TOKENS` (on one H200, benchmarks/results/attention_bias_cuda.md, the coordinate kernel
    ran 3.45× / 3.94× the unbiased flash step at 8k / 16k tokens, where the dense bias ran 1.61× / 1.90×;
    at 65k tokens only it fits). ``"flex"`` on a CUDA device whose torch lacks FlexAttention is an error."""
    if impl not in ATTENTION_IMPLS:
        raise ValueError(f"attention must be one of {ATTENTION_IMPLS}, got {impl!r}")
    if impl == "sdpa":
        return False
    available = flex_available(device)
    if impl == "flex" and device.type == "cuda" and not available:
        raise ValueError(f"attention='flex' needs torch.nn.attention.flex_attention (torch >= 2.5); torch is {torch.__version__}")
    if impl == "auto" and tokens is not None and tokens <= AUTO_FLEX_TOKENS:
        return False
    return available


def _cpu_flash_ops():
    """The CPU flash-attention forward/backward ops that return/take the log-sum-exp, or None."""
    try:
        aten = torch.ops.aten
        return (
            aten._scaled_dot_product_flash_attention_for_cpu.default,
            aten._scaled_dot_product_flash_attention_for_cpu_backward.default,
        )
    except (AttributeError, RuntimeError):
        return None


_CPU_FLASH = _cpu_flash_ops()


class _SlopedFlashAttention(torch.autograd.Function):
    """``softmax(q kᵀ/√d − m_h D) v`` on the fused CPU kernel, with a gradient for the slopes m (h,).

    With ``b = −m_h D``, ``P = softmax(s + b)``, ``O = P v`` and the upstream gradient ``dO``, the gradient
    of the logits is ``G_ij = P_ij (dO_i·v_j − δ_i)``, ``δ_i = dO_i·O_i``, so
    ``∂L/∂m_h = −Σ_ij G_ij D_ij = −Σ_i c_i (dO_i·O'_i − δ_i)``, where ``O'`` is the attention output under
    the mask ``b + log D`` and ``c_i = exp(lse'_i − lse_i)`` the ratio of its normaliser to the original's:
    one extra fused forward, no (N, N) weights in memory.
    """

    @staticmethod
    def forward(ctx, q, k, v, slopes, dist, log_dist):  # q, k, v (B, h, N, d); slopes (h,); dist (N, N)
        fwd, _ = _CPU_FLASH
        mask = (-(slopes.detach()[:, None, None].to(dist.dtype) * dist)).unsqueeze(0).to(q.dtype)  # (1, h, N, N)
        out, lse = fwd(q, k, v, 0.0, False, attn_mask=mask)  # (B, h, N, d), (B, h, N)
        ctx.save_for_backward(q, k, v, out, lse, mask, log_dist)
        ctx.slopes_dtype = slopes.dtype
        return out

    @staticmethod
    def backward(ctx, d_out):
        fwd, bwd = _CPU_FLASH
        q, k, v, out, lse, mask, log_dist = ctx.saved_tensors
        d_out = d_out.contiguous()
        dq, dk, dv = bwd(d_out, q, k, v, out, lse, 0.0, False, attn_mask=mask)  # each (B, h, N, d)
        d_slopes = None
        if ctx.needs_input_grad[3]:
            if q.shape[-2] < 2:
                d_slopes = torch.zeros(q.shape[1], dtype=ctx.slopes_dtype, device=q.device)
            else:
                out2, lse2 = fwd(q, k, v, 0.0, False, attn_mask=mask + log_dist.to(mask.dtype))  # (B, h, N, d)
                acc = torch.promote_types(q.dtype, torch.float32)  # bf16 inputs: accumulate in float32
                c = torch.exp(lse2.to(acc) - lse.to(acc))  # (B, h, N)
                g = (d_out.to(acc) * (out2.to(acc) - out.to(acc))).sum(-1)  # dO_i·O'_i − δ_i, (B, h, N)
                d_slopes = -(c * g).sum(dim=(0, 2)).to(ctx.slopes_dtype)  # (h,)
        return dq, dk, dv, d_slopes, None, None


def _use_sloped_flash(q: torch.Tensor, bias: SlopedDistance) -> bool:
    return (
        _CPU_FLASH is not None
        and q.device.type == "cpu"
        and torch.is_grad_enabled()
        and bias.slopes.requires_grad
        and q.dtype in (torch.float32, torch.float64, torch.bfloat16)
    )


class Attention(nn.Module):
    """Multi-head self-attention over tokens with an optional additive bias.

    Args:
        dim: D, token width.
        heads: h (must divide D).
        impl: ``"auto"``/``"flex"`` (FlexAttention on CUDA, SDPA elsewhere) or ``"sdpa"``.
    """

    def __init__(self, dim: int, heads: int, *, impl: str = "auto") -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.heads, self.head_dim, self.impl = heads, dim // heads, impl
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor | SlopedDistance | None = None, *, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend over tokens.

        Args:
            x: (B, N, D) tokens.
            bias: additive logits (1, h, N, N) (or anything broadcasting to (B, h, N, N)), a
                :class:`~gridvit.model.bias.SlopedDistance`, a :class:`~gridvit.model.bias.TokenDistance`
                (computed in the FlexAttention kernel; never with ``need_weights``), or None.
            need_weights: take the manual path and return the attention weights.

        Returns:
            (B, N, D) output and, with ``need_weights``, the (B, h, N, N) weights (else None).
        """
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim)  # (B, N, 3, h, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, h, N, d)
        out, weights = self._attend(q, k, v, bias, need_weights=need_weights)  # (B, h, N, d)
        out = out.transpose(1, 2).reshape(b, n, d)  # (B, N, D)
        return self.proj(out), weights

    def _attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias, *, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Pick the path; q, k, v (B, h, N, d) -> (B, h, N, d) and the weights (manual path only)."""
        if isinstance(bias, TokenDistance):
            if need_weights:
                raise ValueError("attention weights need a dense bias: a TokenDistance runs only in FlexAttention")
            return _flex_token_distance(q, k, v, bias, compile=q.device.type == "cuda"), None
        if isinstance(bias, SlopedDistance):
            if not need_weights and _use_sloped_flash(q, bias):
                return _SlopedFlashAttention.apply(q, k, v, bias.slopes, bias.dist, bias.log_dist), None
            bias = bias.dense(q.dtype)  # (1, h, N, N)
        if need_weights:
            return self.manual(q, k, v, bias)
        if bias is not None and self.impl == "flex" and uses_flex(self.impl, q.device):  # the dense table
            return _flex_attention(q, k, v, bias, compile=q.device.type == "cuda"), None
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias), None

    def manual(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Explicit ``softmax(q kᵀ · scale + bias) v``; q, k, v (B, h, N, d) -> ((B, h, N, d), (B, h, N, N))."""
        scores = (q @ k.transpose(-2, -1)) * self.scale  # (B, h, N, N)
        if bias is not None:
            scores = scores + bias
        weights = scores.softmax(dim=-1)  # (B, h, N, N)
        return weights @ v, weights

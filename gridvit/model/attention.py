"""Multi-head self-attention with an additive distance bias: fused (SDPA), manual and FlexAttention paths.

All paths compute ``softmax(q kᵀ · scale + bias) v``:

- fused: ``F.scaled_dot_product_attention(q, k, v, attn_mask=bias)`` — the default. On CPU a 4-D bias
  (1, h, N, N) keeps SDPA on its fused flash kernel (a 3-D (h, N, N) one drops to the ~3× slower math
  kernel).
- fused with learnable slopes (CPU): a mask that needs a gradient also drops SDPA to the math kernel, so
  :class:`_SlopedFlashAttention` runs the fused kernel forward and backward with the mask detached and
  gets the slopes' gradient from one more fused forward (see its docstring).
- manual: explicit scores and softmax, used when the attention weights are requested.
- flex: FlexAttention with a ``score_mod`` adding ``bias[h, i, j]``; used on CUDA only, when
  ``impl="flex"`` (FlexAttention has no backward on CPU). Its ``score_mod`` is checked against the other
  paths on CPU in eager mode (forward only); the compiled CUDA kernel is not exercised by the CPU tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gridvit.model.bias import SlopedDistance

_compiled_flex = None


def _flex_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None, *, compile: bool
) -> torch.Tensor:
    """FlexAttention with ``score + bias[0, h, i, j]`` as ``score_mod``; q, k, v (B, h, N, d) -> (B, h, N, d)."""
    global _compiled_flex
    from torch.nn.attention.flex_attention import flex_attention

    fn = flex_attention
    if compile:
        if _compiled_flex is None:
            _compiled_flex = torch.compile(flex_attention, dynamic=False)
        fn = _compiled_flex
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
        impl: ``"sdpa"`` or ``"flex"`` (FlexAttention on CUDA, SDPA elsewhere).
    """

    def __init__(self, dim: int, heads: int, *, impl: str = "sdpa") -> None:
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
                :class:`~gridvit.model.bias.SlopedDistance`, or None.
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
        if isinstance(bias, SlopedDistance):
            if not need_weights and _use_sloped_flash(q, bias):
                return _SlopedFlashAttention.apply(q, k, v, bias.slopes, bias.dist, bias.log_dist), None
            bias = bias.dense(q.dtype)  # (1, h, N, N)
        if need_weights:
            return self.manual(q, k, v, bias)
        if self.impl == "flex" and flex_available(q.device):
            return _flex_attention(q, k, v, bias, compile=True), None
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

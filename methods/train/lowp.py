"""8-bit block floating point training, SWALP-style, in plain PyTorch (REFERENCE.md section 6).

EB's low-precision scripts (``main_lp.py``, ``main_c_lp.py``, ``scripts/low-precision/*.sh``)
train with QPyTorch 0.1.1 (``BlockFloatingPoint(wl=8, dim=0)``, stochastic rounding for all five
tensor kinds). QPyTorch compiles C++/CUDA kernels when imported, so the suite implements the same
number format here, checked against its definition in ``tests/test_lowp.py``:

* ``block_quantize``: one shared exponent per slice along dim 0 (per output filter / row of a
  weight, per sample of an activation or error, per element of a 1-D parameter), taken from the
  slice's largest magnitude; values are integer multiples of ``2^(floor(log2 max|x|) + 2 - wl)``
  with at most ``2^(wl-1) - 1`` levels either side of zero (QPyTorch ``quant_cpu.cpp``
  ``block_quantize_helper``: the rebase by 6 * 2^e, ``round_bitwise`` and ``clip_max_exponent``).
* ``lower``: every Conv2d and Linear output is quantised in forward (activation format) and its
  gradient in backward (error format), except the logits (QPyTorch ``sequential_lower`` with the
  classifier's quantiser removed by EB). BN, ReLU, pooling and the input stay FP32.
* ``LowPrecisionSGD``: QPyTorch ``OptimLP`` around SGD without an FP32 master copy: quantise
  every gradient, SGD step (weight decay added in FP32), quantise every parameter, quantise the
  momentum buffers.
* SWA (``swa_model``, ``bn_update``): from ``swa_start`` an FP32 copy averages the weights after
  each epoch (alpha = 1/(n+1), ``torch.optim.swa_utils.AveragedModel``) and its BN statistics are
  re-estimated over the training set with every sample weighted equally (EB ``main_c_lp.py``
  ``moving_average`` and ``bn_update``).

Rounding noise is drawn from a ``torch.Generator`` the caller owns (``methods.train.loop.fit`` reseeds
it every epoch, so a resumed run draws what an uninterrupted one would).
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from methods.base.config import Precision

Quantizer = Callable[[torch.Tensor], torch.Tensor]


def block_quantize(x: torch.Tensor, wl: int, dim: int | None = 0, rounding: str = "stochastic",
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Block floating point with word length ``wl`` (bits, sign included).

    ``x``: float tensor of any shape. ``dim=0``: one shared exponent per ``x[i]`` (a 1-D tensor
    gets one per element, as QPyTorch's ``dim=0``); ``dim=None``: one for the whole tensor.
    Returns a tensor of ``x``'s shape whose entries are ``k * d`` with integer
    ``|k| <= 2^(wl-1) - 1`` and ``d = 2^(floor(log2 max|x_slice|) + 2 - wl)``. ``rounding``:
    ``"stochastic"`` (unbiased: ``floor(x/d + u)``, u ~ U[0, 1) from ``generator``, on ``x``'s
    device; torch's default generator if None) or ``"nearest"`` (``floor(x/d + 1/2)``, round half
    up as QPyTorch). A slice of zeros stays zero.

    Raises:
        ValueError: ``wl`` < 2 or an unknown ``rounding``.
    """
    if wl < 2:
        raise ValueError(f"word length {wl}: block floating point needs at least 2 bits (sign and one magnitude bit)")
    if x.dim() == 0 or dim is None:
        top = x.detach().abs().amax()
    else:
        if dim != 0:
            raise ValueError(f"dim={dim}: only dim 0 (per row/sample) or None (per tensor) are supported")
        top = x.detach().abs().reshape(x.shape[0], -1).amax(1).reshape(-1, *([1] * (x.dim() - 1)))
    _, e = torch.frexp(top)  # top = f * 2^e with f in [0.5, 1): floor(log2 top) = e - 1
    step = torch.ldexp(torch.ones_like(top), e + 1 - wl)
    y = x / step
    if rounding == "stochastic":
        y = torch.floor(y + torch.rand(y.shape, generator=generator, device=y.device, dtype=y.dtype))
    elif rounding == "nearest":
        y = torch.floor(y + 0.5)
    else:
        raise ValueError(f"rounding {rounding!r}: choose 'stochastic' or 'nearest'")
    top_level = 2 ** (wl - 1) - 1
    return y.clamp_(-top_level, top_level) * step


def quantizer(wl: int | None, rounding: str, generator: torch.Generator | None = None) -> Quantizer | None:
    """``x -> block_quantize(x, wl, 0, rounding, generator)``, or None for full precision (``wl`` None)."""
    if wl is None:
        return None
    return lambda x: block_quantize(x, wl, 0, rounding, generator)


class _Quantize(torch.autograd.Function):
    """Identity with ``forward`` applied to the value and ``backward`` to its gradient."""

    @staticmethod
    def forward(ctx, x, forward, backward):
        ctx.backward_q = backward
        return forward(x) if forward is not None else x

    @staticmethod
    def backward(ctx, grad):
        return (ctx.backward_q(grad) if ctx.backward_q is not None else grad), None, None


def quantize_io(x: torch.Tensor, forward: Quantizer | None, backward: Quantizer | None) -> torch.Tensor:
    """``forward(x)`` in the forward pass; the gradient reaching ``x`` is ``backward(grad)``."""
    return _Quantize.apply(x, forward, backward)


def quantised_layers(model: nn.Module) -> list[nn.Module]:
    """The layers whose outputs ``lower`` quantises: every Conv2d and Linear except the last
    Linear in module order (the classifier: EB removes its quantiser so logits stay FP32)."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    return [m for m in layers if not linears or m is not linears[-1]]


def lower(model: nn.Module, precision: Precision, generator: torch.Generator | None = None) -> list:
    """Quantise the output of every layer of ``quantised_layers(model)`` in forward
    (``precision.activation``) and its gradient in backward (``precision.error``) through
    forward hooks, so the state dict keeps its keys. Returns the hook handles; call
    ``unlower(handles)`` to restore full precision."""
    fwd = quantizer(precision.activation, precision.rounding, generator)
    bwd = quantizer(precision.error, precision.rounding, generator)
    if fwd is None and bwd is None:
        return []
    return [m.register_forward_hook(lambda mod, inp, out: quantize_io(out, fwd, bwd)) for m in quantised_layers(model)]


def unlower(handles: Iterable) -> None:
    for h in handles:
        h.remove()


class LowPrecisionSGD(torch.optim.SGD):
    """SGD whose gradients, weights and momentum buffers are block floating point
    (QPyTorch ``OptimLP`` with ``acc_quant=None``, as EB ``main_lp.py``).

    ``step``: quantise every parameter's gradient (``precision.grad``; the L1 term on gamma is
    already in it), take the SGD step (weight decay and momentum in FP32), quantise every
    parameter (``precision.weight``) and every momentum buffer (``precision.momentum``). Its
    state dict is SGD's, so checkpoints resume alike.
    """

    def __init__(self, params, precision: Precision, generator: torch.Generator | None = None, **sgd):
        super().__init__(params, **sgd)
        self.precision = precision
        self._qg = quantizer(precision.grad, precision.rounding, generator)
        self._qw = quantizer(precision.weight, precision.rounding, generator)
        self._qm = quantizer(precision.momentum, precision.rounding, generator)

    @torch.no_grad()
    def step(self, closure=None):
        params = [p for g in self.param_groups for p in g["params"]]
        if self._qg is not None:
            for p in params:
                if p.grad is not None:
                    p.grad.copy_(self._qg(p.grad))
        loss = super().step(closure)
        for p in params:
            if self._qw is not None:
                p.copy_(self._qw(p))
            buf = self.state.get(p, {}).get("momentum_buffer")
            if self._qm is not None and buf is not None and p.grad is not None:
                buf.copy_(self._qm(buf))
        return loss


def swa_model(model: nn.Module) -> torch.optim.swa_utils.AveragedModel:
    """An FP32 running average of ``model``'s parameters (equal weights, alpha = 1/(n+1)).

    Build it before ``lower`` so the copy carries no quantisation hooks."""
    return torch.optim.swa_utils.AveragedModel(model)


@torch.no_grad()
def bn_update(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Re-estimate the BN running statistics of ``model`` (the averaged network) by one pass over
    ``batches`` (``(B, 3, 32, 32)`` normalised images), each sample weighted equally: the running
    statistics are reset and batch k of size b, after n images, enters with momentum b/(n+b)
    (EB ``main_c_lp.py`` ``bn_update``; ``torch.optim.swa_utils.update_bn`` weights batches
    equally instead). The model's mode and BN momenta are restored afterwards."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    momenta, was_training = [bn.momentum for bn in bns], model.training
    for bn in bns:
        bn.reset_running_stats()
    model.train()
    n = 0
    for x in batches:
        for bn in bns:
            bn.momentum = len(x) / (n + len(x))
        model(x)
        n += len(x)
    for bn, m in zip(bns, momenta):
        bn.momentum = m
    model.train(was_training)


def mac_bits(precision: Precision | None) -> int:
    """Bit width the energy model charges this training's multiply-accumulates at: the widest of
    the weight, activation and error formats, 32 for full precision.

    This follows the paper, which charges its 8-bit rows as 8-bit training (EB Table 2: LL costs
    about 4.5x less energy than LF at equal FLOPs), not the simulated operands: with EB's quantiser
    placement a conv's input is the FP32 output of BN/ReLU, so only the input-gradient MAC
    (error x weight) has two 8-bit operands."""
    if precision is None:
        return 32
    return max(32 if w is None else w for w in (precision.weight, precision.activation, precision.error))

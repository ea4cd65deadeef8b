"""`keep ? x * scale : +0` on torch's CPU kernels, without `where`.

torch's CPU `where` runs a scalar loop: on a (16, 64, 56, 56) float32 input it took
3x a multiply, and `where` + multiply, forward and backward, 9.4 ms against 5.8 ms
for the product followed by an integer multiply of its bits by the 0/1 mask
(`benchmarks/RESULTS.md`). That gives exactly `common.dropout.scale_kept`'s values:
a kept unit is the same product, bit for bit, and a dropped one is all zero bits,
+0, whatever it held (inf, NaN). On CUDA both forms are memory-bound passes, and
CUDA keeps `where`. The autograd function costs ~70 us of Python a call, more than it
saves below about 30,000 units: smaller tensors keep `where` too.
"""

import torch

_WORDS = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16,
         torch.bfloat16: torch.int16}
_MIN_SIZE = 1 << 15


def work_dtype(dtype):
    """The dtype a rescale multiplies in: float64 for float64 inputs, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def usable(x, keep, scale):
    """True where `scale_kept` pays: a CPU floating `x` of at least 2**15 units (`keep`,
    drawn on `x`'s device, is there too), and a scale that needs no gradient (a Python
    float or a constant tensor)."""
    return (
        x.device.type == "cpu"
        and x.dtype in _WORDS
        and x.numel() >= _MIN_SIZE
        and not (isinstance(scale, torch.Tensor) and scale.requires_grad)
    )


def scale_kept(x, keep, scale):
    """`where(keep, x * scale, 0)`, the product in float32 (float64 for float64), cast to
    `x.dtype`; `keep` broadcasts to `x`. Callers check `usable` first."""
    return _MaskedScale.apply(x, keep, scale)


def _product(x, keep, scale):
    y = (x.to(work_dtype(x.dtype)) * scale).to(x.dtype)  # a new tensor: masked in place
    y.view(_WORDS[x.dtype]).mul_(keep)  # the bits times 1 or 0
    return y


class _MaskedScale(torch.autograd.Function):
    """Linear in `x`: the gradient is the same masked product of the incoming gradient
    (itself through this function, so that it can be differentiated again). The
    `setup_context` form keeps `torch.func.grad` working, as with `where`."""

    @staticmethod
    def forward(x, keep, scale):
        return _product(x, keep, scale)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, keep, scale = inputs
        ctx.save_for_backward(keep)
        ctx.scale = scale

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        return _MaskedScale.apply(grad, keep, ctx.scale), None, None

"""torch's CPU rescale of kept units without `where` (`backend/torch/masked_scale.py`):
the same values and gradients as `where(keep, x * scale, 0)`, bit for bit."""

import numpy as np
import pytest
from conftest import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "torch", reason="torch's CPU kernels")

DTYPES = ["float32", "float64", "float16", "bfloat16"]


def _where_form(torch, x, keep, scale):
    """The reference: `common.dropout.scale_kept`'s formula in torch ops."""
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    return torch.where(keep, x.to(work) * scale, 0.0).to(x.dtype)


def _inputs(torch, dtype, keep_shape=(4, 3, 5, 6), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn((4, 3, 5, 6), generator=g) * 30).to(getattr(torch, dtype))
    x[0, 0, 0, :3] = torch.tensor([float("inf"), float("-inf"), float("nan")])
    keep = torch.rand(keep_shape, generator=g) > 0.4
    keep.view(-1)[0] = False  # the inf, -inf and NaN: dropped, kept, kept (shared masks too)
    return x, keep


def _bits(torch, t):
    width = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()]
    return t.contiguous().view(width)


@pytest.mark.parametrize("keep_shape", [(4, 3, 5, 6), (4, 1, 5, 6)], ids=["per_unit", "shared"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1.7, "tensor"], ids=["float", "tensor"])
def test_values_and_gradients_equal_the_where_form_bit_for_bit(dtype, keep_shape, scale):
    import torch

    from keras_dropouts.backend.torch import masked_scale

    x, keep = _inputs(torch, dtype, keep_shape)
    if scale == "tensor":
        scale = torch.tensor(1.0 / 0.7)  # float32, as the layers' cached scales
    a = x.clone().requires_grad_()
    b = x.clone().requires_grad_()
    fast, ref = masked_scale.scale_kept(a, keep, scale), _where_form(torch, b, keep, scale)
    assert fast.dtype == ref.dtype == x.dtype
    assert torch.equal(_bits(torch, fast), _bits(torch, ref))  # +0 for every dropped unit
    upstream = torch.randn(x.shape, dtype=torch.float32).to(x.dtype)
    upstream.view(-1)[1] = float("inf")  # a dropped unit's gradient is exactly 0 even so
    (ga,) = torch.autograd.grad(fast, a, upstream)
    (gb,) = torch.autograd.grad(ref, b, upstream)
    assert torch.equal(_bits(torch, ga), _bits(torch, gb))


def test_dropped_units_are_positive_zero_and_kept_ones_the_product():
    import torch

    from keras_dropouts.backend.torch import masked_scale

    x, keep = _inputs(torch, "float32")
    y = masked_scale.scale_kept(x, keep, 2.0)
    dropped = ~keep
    assert torch.equal(y[dropped].view(torch.int32), torch.zeros(int(dropped.sum()), dtype=torch.int32))
    np.testing.assert_array_equal(y[keep].numpy(), (x[keep] * 2.0).numpy())


def test_second_derivative_flows_through_the_mask():
    """The backward pass is the same masked product, so it can be differentiated again:
    d/dx <grad_x(sum(y * w)), v> = 0 but d/dw of it is `keep * scale * v`."""
    import torch

    from keras_dropouts.backend.torch import masked_scale

    x, keep = _inputs(torch, "float64", (4, 3, 5, 6), seed=1)
    x = torch.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0).requires_grad_()
    w = torch.randn(x.shape, dtype=torch.float64, requires_grad=True)
    v = torch.randn(x.shape, dtype=torch.float64)
    (gx,) = torch.autograd.grad((masked_scale.scale_kept(x, keep, 3.0) * w).sum(), x, create_graph=True)
    (gw,) = torch.autograd.grad((gx * v).sum(), w)
    np.testing.assert_allclose(gw.numpy(), (keep * 3.0 * v).numpy(), rtol=0, atol=0)


def test_small_tensors_a_scale_that_needs_a_gradient_and_other_devices_keep_the_where_form():
    import torch

    from keras_dropouts.backend.torch import masked_scale

    x, keep = torch.ones((8, 64, 64)), torch.ones((8, 1, 64), dtype=torch.bool)
    assert masked_scale.usable(x, keep, 2.0) and masked_scale.usable(x, keep, torch.tensor(2.0))
    assert not masked_scale.usable(x[:1, :32], keep[:1], 2.0)  # 2**11 units
    assert not masked_scale.usable(x, keep, torch.tensor(2.0, requires_grad=True))
    assert not masked_scale.usable(x.to(torch.int32), keep, 2.0)
    assert not masked_scale.usable(x.to("meta"), keep, 2.0)


def test_layers_take_it_on_large_inputs_with_the_same_outputs_and_gradients(monkeypatch):
    """A layer's call on a CPU tensor of 2**15 units or more goes through it, and its
    outputs and input gradients equal the `where` form's for the same draw."""
    import keras
    import torch

    import keras_dropouts as kd
    from keras_dropouts.backend.torch import masked_scale

    calls = []
    real, usable = masked_scale.scale_kept, masked_scale.usable
    monkeypatch.setattr(masked_scale, "scale_kept", lambda *a: calls.append(1) or real(*a))
    x = torch.randn((8, 32, 16, 16))
    for make in (lambda: kd.layers.ScheduledDropout(0.3, seed=2),
                 lambda: kd.layers.DropBlock2D(0.3, 5, seed=2, per_channel=False)):
        results = []
        for check in (usable, lambda *a: False):
            monkeypatch.setattr(masked_scale, "usable", check)
            leaf = x.clone().requires_grad_()
            y = make()(leaf, training=True)
            (grad,) = torch.autograd.grad(y, leaf, torch.ones_like(y))
            results.append((keras.ops.convert_to_numpy(y), grad.numpy()))
        np.testing.assert_array_equal(results[0][0], results[1][0])
        np.testing.assert_array_equal(results[0][1], results[1][1])
    assert len(calls) == 2


def test_torch_func_grad_works_through_it():
    """`torch.func.grad` of a layer call (as it worked with `where`)."""
    import torch

    import keras_dropouts as kd
    from keras_dropouts.backend.torch import masked_scale

    x = torch.randn((8, 64, 64))
    layer = kd.layers.DropBlock1D(0.3, 3, seed=1, per_channel=False)
    assert masked_scale.usable(x, torch.ones((8, 64, 1), dtype=torch.bool), 2.0)
    grad = torch.func.grad(lambda t: layer(t, training=True).sum())(x)
    # d/dx sum(keep * x * scale) = keep * scale: zeros where dropped, one scale elsewhere.
    kept = grad[grad != 0]
    assert 0 < kept.numel() < grad.numel()
    np.testing.assert_array_equal(kept.numpy(), np.full(kept.numel(), kept[0].item(), "float32"))

"""The torch branch of the ops (`backend/torch/`, issue 9): the same masks as the
generic `keras.ops` path, with few kernels per call and no host synchronisation."""

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_np

import keras_dropouts as kd
from keras_dropouts.ops import drop_block, drop_path, dropout, prob_drop_block

pytestmark = pytest.mark.skipif(BACKEND != "torch", reason="the torch branch")


@pytest.fixture
def branch():
    from keras_dropouts.backend.torch import eager

    yield eager
    eager.ENABLED = True


@pytest.fixture
def rate_step():
    from keras_dropouts.backend.torch import rate_step

    return rate_step


def both_paths(branch, fn):
    """`fn()` with the torch branch, then through the generic keras.ops path."""
    branch.ENABLED = True
    fast = to_np(fn())
    branch.ENABLED = False
    generic = to_np(fn())
    branch.ENABLED = True
    return fast, generic


def assert_same(fast, generic):
    np.testing.assert_array_equal(fast == 0, generic == 0)
    np.testing.assert_allclose(fast, generic, rtol=1e-6)


RATES = {
    "python": lambda: 0.3,
    "tensor": lambda: keras.ops.convert_to_tensor(np.float32(0.3)),
    "variable": lambda: keras.Variable(0.3, dtype="float32", trainable=False),
}


@pytest.mark.parametrize(
    "gamma, rate",
    [("exact", "variable"), ("exact", "tensor"), ("exact", "python"), ("paper", "python")],
)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("op", ["drop_block", "prob_drop_block", "inverse"])
def test_block_masks_equal_the_generic_path(branch, op, rank, per_channel, data_format,
                                            gamma, rate):
    # An int seed seeds torch's generator as keras.random does: same noise, same mask.
    rng = np.random.default_rng(rank)
    x = rng.exponential(size=(3,) + (9, 11, 7)[:rank] + (4,)).astype("float32")
    x[0, 1] = np.inf  # non-finite salience counts as the largest
    if data_format == "channels_first":
        x = np.moveaxis(x, -1, 1).copy()
    mask = None
    if rank == 1:
        mask = np.ones((3, 9), bool)
        mask[:, 6:] = False
    r = RATES[rate]()
    kwargs = {"seed": 5, "data_format": data_format, "per_channel": per_channel,
              "mask": mask, "gamma": gamma}

    def run():
        if op == "drop_block":
            return drop_block(x, r, 3, **kwargs)
        return prob_drop_block(x, r, 3, inverse_salience=op == "inverse", **kwargs)

    assert_same(*both_paths(branch, run))


@pytest.mark.parametrize("rate", sorted(RATES))
def test_dropout_and_drop_path_equal_the_generic_path(branch, rate):
    x = np.random.rand(16, 5, 3).astype("float32")
    r = RATES[rate]()
    assert_same(*both_paths(branch, lambda: dropout(x, r, seed=3)))
    assert_same(*both_paths(branch, lambda: dropout(x, r, noise_shape=(None, 1, 3), seed=3)))
    assert_same(*both_paths(branch, lambda: drop_path(x, r, seed=4)))


def test_rate_variable_changes_are_seen_by_the_cached_scalars():
    # Scalars derived from the rate are cached per value of the variable (its tensor's
    # in-place version counter): every assign must reach the next call.
    x = np.ones((64, 12, 12, 4), "float32")
    for layer in (kd.layers.DropBlock2D(0.0, 3, seed=1), kd.layers.ScheduledDropout(0.0, seed=1),
                  kd.layers.ProbDropBlock2D(0.0, 3, seed=1)):
        for rate in (0.0, 0.5, 0.1, 1.0, 0.0):
            layer.rate = rate
            frac = (to_np(layer(x, training=True)) == 0).mean()
            assert abs(frac - rate) < 0.05, (type(layer).__name__, rate, frac)
        layer.rate_variable.assign(keras.ops.convert_to_tensor(0.5))  # a tensor assign
        assert abs((to_np(layer(x, training=True)) == 0).mean() - 0.5) < 0.05


def _aten_ops(fn):
    from torch.utils._python_dispatch import TorchDispatchMode

    class Log(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    with Log() as log:
        fn()
    return log.ops


# Kernel counts per warm call (a guard against per-call regressions; measured:
# keras.layers.Dropout(seed=1) runs 15, one of them a device-to-host sync). The limits
# hold for the `where` rescale (CUDA); the CPU's (`masked_scale`) runs one kernel fewer.
# Ops that only make a new view of the same memory launch no kernel and do not count.
_METADATA_OPS = {"aten.view.dtype", "aten.detach.default"}
MAX_OPS = {
    "ScheduledDropout": (lambda: kd.layers.ScheduledDropout(0.1, seed=1), (2, 8, 8, 4), 5),
    "DropPath": (lambda: kd.layers.DropPath(0.1, seed=1), (2, 8, 8, 4), 5),
    "DropBlock2D": (lambda: kd.layers.DropBlock2D(0.1, 3, seed=1), (2, 8, 8, 4), 16),
    "DropBlock2D-cf": (
        lambda: kd.layers.DropBlock2D(0.1, 3, seed=1, data_format="channels_first"),
        (2, 4, 8, 8), 18,
    ),
    "DropBlock3D": (lambda: kd.layers.DropBlock3D(0.1, 3, seed=1), (2, 6, 6, 6, 2), 17),
    "ProbDropBlock2D": (lambda: kd.layers.ProbDropBlock2D(0.1, 3, seed=1), (2, 8, 8, 4), 38),
    "ProbDropBlock1D": (lambda: kd.layers.ProbDropBlock1D(0.1, 3, seed=1), (2, 8, 4), 40),
}


@pytest.mark.parametrize("name", sorted(MAX_OPS))
def test_a_call_has_no_host_sync_no_scalar_upload_and_few_kernels(name):
    make, shape, max_ops = MAX_OPS[name]
    layer = make()
    x = keras.ops.convert_to_tensor(np.random.rand(*shape).astype("float32"))
    layer(x, training=True)  # first call: builds, caches per-shape tables
    ops = _aten_ops(lambda: layer(x, training=True))
    assert not any("_local_scalar_dense" in op for op in ops), ops  # .item() / int()
    assert not any("lift_fresh" in op for op in ops), ops  # torch.tensor(python value)
    kernels = [op for op in ops if op not in _METADATA_OPS]
    assert len(kernels) <= max_ops, (len(kernels), ops)


@pytest.mark.parametrize("gamma", ["exact", "paper"])
def test_a_rate_change_recomputes_the_scalars_without_a_host_sync(gamma):
    x = keras.ops.convert_to_tensor(np.random.rand(2, 8, 8, 4).astype("float32"))
    for layer in (kd.layers.DropBlock2D(0.1, 3, seed=1, gamma=gamma),
                  kd.layers.ProbDropBlock2D(0.1, 3, seed=1, gamma=gamma),
                  kd.layers.ScheduledDropout(0.1, seed=1)):
        layer(x, training=True)  # the per-shape table is copied to the device once
        layer.rate_variable.assign(keras.ops.convert_to_tensor(np.float32(0.37)))
        ops = _aten_ops(lambda layer=layer: layer(x, training=True))
        assert not any("_local_scalar_dense" in op for op in ops), ops
        assert not any("lift_fresh" in op for op in ops), ops


def test_keras_dropout_reference_does_sync():
    # The reference the counts compare with (documents why keras Dropout is slow on CUDA).
    layer = keras.layers.Dropout(0.1, seed=1)
    x = keras.ops.convert_to_tensor(np.random.rand(2, 8, 8, 4).astype("float32"))
    layer(x, training=True)
    assert any("_local_scalar_dense" in op for op in _aten_ops(lambda: layer(x, training=True)))


def test_seeded_layers_repeat_and_unseeded_layers_differ():
    x = np.ones((8, 12, 12, 4), "float32")
    a = kd.layers.DropBlock2D(0.3, 3, seed=7)
    b = kd.layers.DropBlock2D(0.3, 3, seed=7)
    np.testing.assert_array_equal(to_np(a(x, training=True)), to_np(b(x, training=True)))
    first = to_np(a(x, training=True))
    assert not np.array_equal(first, to_np(a(x, training=True)))  # the stream advances
    keras.utils.set_random_seed(3)
    u = to_np(kd.layers.DropBlock2D(0.3, 3)(x, training=True))
    keras.utils.set_random_seed(3)
    np.testing.assert_array_equal(u, to_np(kd.layers.DropBlock2D(0.3, 3)(x, training=True)))


def test_gradient_flows_through_the_kept_units_only():
    import torch

    x = torch.rand(4, 10, 10, 3, requires_grad=True)
    y = kd.layers.DropBlock2D(0.3, 3, seed=2)(x, training=True)
    y.sum().backward()
    kept = (y != 0).detach()
    scale = y.detach()[kept] / x.detach()[kept]
    np.testing.assert_allclose(x.grad[kept].numpy(), scale.numpy(), rtol=1e-5)
    assert torch.all(x.grad[~kept] == 0)


def test_in_step_rates_equal_two_knots(rate_step):
    """The in-step torch path's raw-torch schedule equals `schedules.two_knots`."""
    import torch

    from keras_dropouts.schedules import two_knots

    knots = np.array(
        [[0, 10, 0.0, 0.2], [5, 5, 0.1, 0.0], [3, 8, 0.3, 0.3], [0, 0, np.nan, 1.0],
         [2, 4, 0.9, 1.7]], "float32")
    stack = rate_step.KnotStack()
    tensors = [torch.tensor(k) for k in knots]
    for step in (0, 2, 3, 4, 5, 7, 8, 10, 20):
        got = rate_step.two_knot_rates(torch.tensor(step), stack(tensors)).numpy()
        want = np.array([two_knots(float(step), *k) for k in knots], "float32")
        want = np.clip(np.nan_to_num(want, nan=0.0), 0.0, 1.0)
        np.testing.assert_allclose(got, want, rtol=1e-6)
    first = stack(tensors)
    assert stack(tensors) is first  # unchanged knots: no restack
    tensors[1].copy_(torch.tensor([0.0, 1.0, 0.5, 0.5]))
    assert stack(tensors) is not first  # an in-place write is seen
    np.testing.assert_allclose(rate_step.two_knot_rates(torch.tensor(3), stack(tensors)).numpy()[1], 0.5)


def test_primed_scalars_match_a_fresh_computation(rate_step):
    """After the in-step assign primes the cache, `dropout` uses the primed (rate, scale)
    and they equal what it computes itself."""
    import torch

    layers = [kd.layers.ScheduledDropout(0.1, seed=i) for i in range(3)]
    tensors = [layer.rate_variable.value for layer in layers]
    rates = torch.tensor([0.0, 0.25, 1.0])
    with torch.no_grad():
        torch._foreach_copy_(tensors, list(torch.unbind(rates)))
    rate_step.prime_dropout_scalars(tensors, rates)
    x = keras.ops.ones((64, 32))
    for layer, r in zip(layers, (0.0, 0.25, 1.0)):
        primed = to_np(layer(x, training=True))
        kept = primed[primed != 0]
        expected = 0.0 if r == 1 else 1 / (1 - r)
        np.testing.assert_allclose(kept, expected, rtol=1e-6)
        assert (primed == 0).all() if r == 1 else abs((primed == 0).mean() - r) < 0.05

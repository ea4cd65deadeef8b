"""R-Drop's batch layout (models/_tiling.py): the passes of a sample on adjacent rows.

Row `m * i + k` of the tiled batch is pass `k` of sample `i`; `group` views it as
`(B, m, ...)` and `split` takes the passes back, also where the batch size is only
known when the step runs.
"""

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_np
from keras import ops
from rdrop_helpers import pass_rows

from keras_dropouts.models import _consistency, _tiling


@pytest.mark.parametrize("m", [2, 3])
def test_tile_repeats_each_row_in_place(m):
    x = np.arange(12, dtype="float32").reshape(4, 3)
    got = to_np(_tiling.tile(ops.convert_to_tensor(x), m))
    np.testing.assert_array_equal(got, np.repeat(x, m, axis=0))
    assert got[:m].tolist() == [x[0].tolist()] * m  # x0, x0, (x0,) x1, ...
    nested = _tiling.tile({"a": ops.convert_to_tensor(x), "b": None}, m)
    assert nested["b"] is None
    np.testing.assert_array_equal(to_np(nested["a"]), np.repeat(x, m, axis=0))
    assert _tiling.tile(None, m) is None


@pytest.mark.parametrize("m", [2, 3])
def test_group_and_split_take_pass_k_from_rows_k_k_plus_m(m):
    tiled = np.arange(4 * m * 2, dtype="float32").reshape(4 * m, 2)  # every row distinct
    t = ops.convert_to_tensor(tiled)
    grouped = to_np(_tiling.group(t, m))
    assert grouped.shape == (4, m, 2)
    for i in range(4):
        for k in range(m):
            np.testing.assert_array_equal(grouped[i, k], tiled[m * i + k])
    parts = [to_np(p) for p in _tiling.split(t, m)]
    for got, want in zip(parts, pass_rows(tiled, m)):
        np.testing.assert_array_equal(got, want)
    first = _tiling.split({"y": t}, m, count=1)
    assert len(first) == 1
    np.testing.assert_array_equal(to_np(first[0]["y"]), tiled[0::m])
    # Splitting a tiled batch gives back the batch, once per pass.
    x = np.arange(10, dtype="float32").reshape(5, 2)
    for p in _tiling.split(_tiling.tile(ops.convert_to_tensor(x), m), m):
        np.testing.assert_array_equal(to_np(p), x)


def test_symbolic_shapes_with_unknown_batch():
    t = keras.KerasTensor((None, 4, 5))
    assert tuple(_tiling.group(t, 2).shape) == (None, 2, 4, 5)
    assert [tuple(p.shape) for p in _tiling.split(t, 3)] == [(None, 4, 5)] * 3
    assert tuple(_tiling.tile(t, 2).shape) == (None, 4, 5)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow traces with an unknown batch size")
@pytest.mark.parametrize("kind,from_logits", [("kl", True), ("kl", False), ("binary_kl", True), ("mse", False)])
def test_unknown_batch_and_length_at_trace_time_give_the_eager_values(kind, from_logits):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    z = rng.normal(size=(12, 3, 4)).astype("float32")  # 6 samples x 2 passes, length 3
    if not from_logits:
        z = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    terms = [(0, None, kind, from_logits, 0.7)]

    def both(t):
        parts = _tiling.split(t, 2)
        return parts[1], _consistency.consistency_term(t, parts[:1], None, terms, 2)

    traced = tf.function(both, input_signature=[tf.TensorSpec((None, None, 4), tf.float32)])
    concrete = traced.get_concrete_function()
    assert concrete.outputs[0].shape.as_list() == [None, None, 4]
    second, term = traced(tf.constant(z))
    second_eager, term_eager = both(tf.constant(z))
    np.testing.assert_array_equal(to_np(second), z[1::2])
    np.testing.assert_array_equal(to_np(second_eager), z[1::2])
    np.testing.assert_allclose(to_np(term), to_np(term_eager), rtol=1e-6)
    assert to_np(term) > 0

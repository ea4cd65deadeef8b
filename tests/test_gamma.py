"""The overlap-corrected seed rate of DropBlock (issue 9)."""

import itertools

import keras
import numpy as np
import pytest
from conftest import to_np

from keras_dropouts.backend import gamma as G
from keras_dropouts.backend.common import gamma as common_gamma

SHAPES = [((56, 56), (7, 7)), ((28, 28), (7, 7)), ((14, 14), (3, 3)), ((16, 16), (5, 5)),
          ((9, 13), (4, 3)), ((32,), (4,)), ((10,), (1,)), ((8, 8, 8), (3, 3, 3)), ((6, 6), (6, 6))]


def brute_force_counts(sizes, blocks):
    """n(p) by growing every valid centre into its block, as the op's max-pool does."""
    counts = np.zeros(sizes, np.int64)
    ranges = []
    for s, b in zip(sizes, blocks):
        b = min(b, s)
        ranges.append(range(b // 2, s - (b - 1) // 2))
    for centre in itertools.product(*ranges):
        box = tuple(
            slice(c - min(b, s) // 2, c + (min(b, s) - 1) // 2 + 1)
            for c, b, s in zip(centre, blocks, sizes)
        )
        counts[box] += 1
    return counts


@pytest.mark.parametrize(("sizes", "blocks"), SHAPES)
def test_coverage_counts_match_brute_force(sizes, blocks):
    values, weights = common_gamma.count_histogram(sizes, blocks)
    expected_values, expected_counts = np.unique(brute_force_counts(sizes, blocks), return_counts=True)
    np.testing.assert_array_equal(values, expected_values)
    np.testing.assert_allclose(weights, expected_counts / expected_counts.sum(), rtol=1e-12)


@pytest.mark.parametrize(("sizes", "blocks"), SHAPES)
def test_exact_gamma_gives_the_rate_in_expectation(sizes, blocks):
    for rate in [0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.9, 1.0]:
        gamma = float(to_np(G.exact_gamma(rate, sizes, blocks)))
        assert 0.0 <= gamma <= 1.0
        # Interpolated between table points 1/1024 apart: far inside the 3% target.
        assert common_gamma.dropped_fraction(gamma, sizes, blocks) == pytest.approx(rate, rel=2e-3, abs=1e-7)


def test_paper_gamma_falls_short_where_blocks_overlap():
    # The figures measured with the paper's formula (issue 9): 0.179 at 0.2 on 56x56 / 7.
    paper = 0.2 / 49 * 56**2 / 50**2
    assert common_gamma.dropped_fraction(paper, (56, 56), (7, 7)) == pytest.approx(0.179, abs=1e-3)
    assert float(to_np(G.exact_gamma(0.2, (56, 56), (7, 7)))) > paper


def test_block_not_smaller_than_the_map_drops_whole_maps_with_probability_rate():
    for rate in [0.1, 0.37]:
        assert float(to_np(G.exact_gamma(rate, (5, 5), (7, 7)))) == pytest.approx(rate, abs=1e-6)


def test_host_value_equals_the_in_graph_interpolation():
    for sizes, blocks in SHAPES:
        for rate in [0.0, 0.013, 0.2, 0.5, 0.999, 1.0]:
            host = common_gamma.exact_gamma_value(rate, sizes, blocks)
            graph = float(to_np(G.exact_gamma(np.float32(rate), sizes, blocks)))
            assert host == pytest.approx(graph, rel=1e-5, abs=1e-9)  # float32 position
    assert common_gamma.exact_gamma_value(1.0, (56, 56), (7, 7)) == 1.0
    assert float(to_np(G.exact_gamma(1.0, (56, 56), (7, 7)))) == 1.0  # every centre a seed
    assert common_gamma.exact_gamma_value(0.0, (56, 56), (7, 7)) == 0.0


def test_table_first_built_while_tracing_serves_later_traces():
    # The cached table must be a concrete array: one created inside a trace and
    # reused by the next trace would leak a tracer (JAX) or a graph tensor (TF).
    sizes, blocks = (23, 19), (4, 6)  # a shape no other test uses: first built here
    common_gamma._TENSORS.pop((sizes, blocks), None)
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        first = jax.jit(lambda r: G.exact_gamma(r, sizes, blocks))
        second = jax.jit(lambda r: G.exact_gamma(r * 1.0, sizes, blocks))
    elif backend == "tensorflow":
        import tensorflow as tf

        first = tf.function(lambda r: G.exact_gamma(r, sizes, blocks))
        second = tf.function(lambda r: G.exact_gamma(r * 1.0, sizes, blocks), jit_compile=True)
    else:
        first = second = lambda r: G.exact_gamma(r, sizes, blocks)
    rate = keras.ops.convert_to_tensor(np.float32(0.2))
    a, b = float(to_np(first(rate))), float(to_np(second(rate)))
    assert a == b == pytest.approx(common_gamma.exact_gamma_value(0.2, sizes, blocks), rel=1e-6)

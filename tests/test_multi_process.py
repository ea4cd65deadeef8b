"""JAX multi-process data and model parallelism on one machine (issue 26; issue 22 item 9).

Two processes on 127.0.0.1, two host devices each, train with
`keras.distribution.DataParallel` over all four devices and then with `ModelParallel` on
a 2 x 2 (batch x model) mesh whose `LayoutMap` shards the Dense kernels: an `RDropModel`
with `DropBlock2D`, `ProbDropBlock2D`, `DropPath` and `ScheduledDropout` under an
in-step `LinearRamp` (`DropoutScheduler`), without `steps_per_epoch=`: Keras shards the
`tf.data` input, whose length TF then no longer knows (item 9). A single process with
four devices, the same mesh, global batches and seeds is the reference. Where TensorFlow
is not installed, each process passes its own rows of every global batch as NumPy arrays
instead (Keras >= 3.11).

One run of the three processes (both distributions, one after the other in each) and of
examples/multi_process.py serves every test of the module (under two minutes on 2
cores); the harness (tests/multi_process_harness.py) bounds it in time.
"""

import importlib.util
import itertools

import keras
import numpy as np
import pytest
from multi_process_harness import (
    collectives_unavailable,
    example_command,
    read_reports,
    run_commands,
    run_once,
    worker_commands,
)

from keras_dropouts._internals import KERAS_VERSION

BACKEND = keras.backend.backend()
_UNAVAILABLE = collectives_unavailable() if BACKEND == "jax" else None
INPUT = "tf.data" if importlib.util.find_spec("tensorflow") else "numpy"

pytestmark = [
    pytest.mark.skipif(BACKEND != "jax", reason="JAX multi-process test"),
    pytest.mark.skipif(_UNAVAILABLE is not None, reason=f"JAX CPU collectives: {_UNAVAILABLE}"),
    pytest.mark.skipif(
        INPUT == "numpy" and KERAS_VERSION < (3, 11),
        reason="JAX multi-process test: Keras < 3.11 takes only tf.data input under a "
        "multi-process distribution (keras-team/keras#21430), and TensorFlow is not installed",
    ),
]

RTOL = 1e-5
LAYERS = ("drop_block", "prob_drop_block", "drop_path", "scheduled_dropout")


EXAMPLE_ARGS = ("--processes", "2", "--devices-per-process", "2", "--epochs", "2", "--samples", "64")
DISTRIBUTIONS = ("data_parallel", "model_parallel")


@pytest.fixture(scope="module")
def all_runs(tmp_path_factory):
    """`(per-process reports of the 2 x 2 run, report of the 1 x 4 reference, the output
    of examples/multi_process.py or None)`: all started at once, once a session."""

    def produce(out):
        args = ("--input", INPUT, "--distributions", ",".join(DISTRIBUTIONS))
        multi, multi_reports = worker_commands(out, processes=2, devices=2, args=args)
        single, single_reports = worker_commands(out, processes=1, devices=4, args=args)
        example = [example_command(*EXAMPLE_ARGS)] if INPUT == "tf.data" else []
        logs = run_commands(multi + single + example, out)
        example_out = logs[-1].read_text() if example else None
        return read_reports(multi_reports), read_reports(single_reports)[0], example_out

    return run_once(tmp_path_factory, "multi_process_runs", produce)


def _runs(all_runs, distribution):
    """`(the run of each of the two processes, the single-process run)` of `distribution`."""
    processes, single, _ = all_runs
    return [r["runs"][distribution] for r in processes], single["runs"][distribution]


def test_every_process_sees_all_devices(all_runs):
    processes, single, _ = all_runs
    assert [r["devices"] for r in processes] == [4, 4]
    assert single["devices"] == 4


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_every_process_trains_every_step(all_runs, distribution):
    processes, single = _runs(all_runs, distribution)
    # 48 samples in global batches of 8, 2 epochs: 12 steps on every process.
    assert [r["steps"] for r in processes] == [12, 12] == [single["steps"]] * 2


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_every_process_logs_the_same_losses_and_rates(all_runs, distribution):
    (first, second), _ = _runs(all_runs, distribution)
    assert first["losses"] == second["losses"]
    assert first["rates"] == second["rates"]
    assert first["history"] == second["history"]
    assert first["evaluate"] == second["evaluate"]
    assert set(first["history"]) == {"loss", "consistency_loss", "dropout_rate"}


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_in_step_ramp_resolves_against_the_whole_run(all_runs, distribution):
    # LinearRamp(0.3) over 12 steps: the rate in step s is 0.3 * s / 12 on every layer;
    # a wrong steps-per-epoch (or none: item 9) would change or stop it.
    expected = [[0.3 * s / 12] * len(LAYERS) for s in range(12)]
    for run in _runs(all_runs, distribution)[0]:
        np.testing.assert_allclose(run["rates"], expected, rtol=0, atol=1e-6)
        np.testing.assert_allclose(run["history"]["dropout_rate"], [0.3 * 5 / 12, 0.3 * 11 / 12], atol=1e-6)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_losses_match_the_single_process_run(all_runs, distribution):
    processes, single = _runs(all_runs, distribution)
    # The computation is the same: the same global batches on the same mesh, and JAX
    # draws each mask for the global batch from the same seed, so even the masks agree.
    for run in processes:
        np.testing.assert_allclose(run["losses"], single["losses"], rtol=RTOL)
        np.testing.assert_allclose(run["evaluate"], single["evaluate"], rtol=RTOL)
        for key, values in single["history"].items():
            np.testing.assert_allclose(run["history"][key], values, rtol=RTOL, err_msg=key)
        assert run["rates"] == single["rates"]


def _rows(all_runs, layer):
    """{global row: keep pattern} and {global row: device} over both processes."""
    masks, devices = {}, {}
    for run in _runs(all_runs, "data_parallel")[0]:
        masks.update(run["masks"][layer])
        devices.update(run["row_devices"])
    return masks, devices


@pytest.mark.parametrize("layer", LAYERS)
def test_identical_samples_on_different_devices_get_different_masks(all_runs, layer):
    masks, devices = _rows(all_runs, layer)
    assert sorted(int(r) for r in masks) == list(range(64))
    assert len(set(devices.values())) == 4
    by_device = {}
    for row in sorted(masks, key=int):
        by_device.setdefault(devices[row], []).append(masks[row])
    blocks = ["".join(rows) for rows in by_device.values()]
    assert [len(rows) for rows in by_device.values()] == [16] * 4
    # The 16 identical samples on each device, across both processes: four different masks.
    for a, b in itertools.combinations(blocks, 2):
        assert a != b
    digits = set("".join(blocks))
    assert digits - {"0"} and digits - {"f"}  # some units kept, some dropped (rate 0.5)


@pytest.mark.parametrize("layer", ["drop_block", "prob_drop_block"])
def test_identical_samples_get_different_masks_within_a_device(all_runs, layer):
    # 512 units a sample: every one of the 64 identical samples has its own mask.
    masks, _ = _rows(all_runs, layer)
    assert len(set(masks.values())) == 64


def test_example_trains_on_two_processes_that_agree(all_runs):
    out = all_runs[2]
    if out is None:
        pytest.skip("examples/multi_process.py needs tensorflow (not installed)")
    lines = [line for line in out.splitlines() if line.startswith("process ")]
    by_process = {}
    for line in lines:
        tag, _, logs = line.partition(": ")
        by_process.setdefault(tag.split()[1], []).append(logs)
    assert sorted(by_process) == ["0/2", "1/2"]
    assert all("(2 of 4 devices)" in line for line in lines)
    first, second = by_process.values()
    assert len(first) == 2 and first == second  # both epochs, the same logs on both processes
    assert all("'dropout_rate'" in logs and "'consistency_loss'" in logs for logs in first)

"""JAX multi-process data parallelism on one machine (issue 26; issue 22 item 9).

Two processes on 127.0.0.1, two host devices each, `keras.distribution.DataParallel` over
all four devices, train an `RDropModel` with `DropBlock2D`, `ProbDropBlock2D`, `DropPath`
and `ScheduledDropout` under an in-step `LinearRamp` (`DropoutScheduler`), without
`steps_per_epoch=`: Keras shards the `tf.data` input, whose length TF then no longer
knows (item 9). A single process with four devices and the same global batches and
seeds is the reference. Where TensorFlow is not installed (the oldest environment),
each process passes its own rows of every global batch as NumPy arrays instead.

One run of the three processes serves every test of the module (about a minute on 2
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


@pytest.fixture(scope="module")
def all_runs(tmp_path_factory):
    """`(per-process reports of the 2 x 2 run, report of the 1 x 4 reference, the output
    of examples/multi_process.py or None)`: all started at once."""
    out = tmp_path_factory.mktemp("multi_process")
    args = ("--input", INPUT)
    multi, multi_reports = worker_commands(out, processes=2, devices=2, args=args)
    single, single_reports = worker_commands(out, processes=1, devices=4, args=args)
    example = [example_command(*EXAMPLE_ARGS)] if INPUT == "tf.data" else []
    logs = run_commands(multi + single + example, out)
    example_out = logs[-1].read_text() if example else None
    return read_reports(multi_reports), read_reports(single_reports)[0], example_out


@pytest.fixture(scope="module")
def runs(all_runs):
    """`(per-process reports of the 2 x 2 run, report of the 1 x 4 reference)`."""
    return all_runs[:2]


def test_every_process_sees_all_devices_and_trains_every_step(runs):
    processes, single = runs
    assert [r["devices"] for r in processes] == [4, 4]
    assert single["devices"] == 4
    # 48 samples in global batches of 8, 2 epochs: 12 steps on every process.
    assert [r["steps"] for r in processes] == [12, 12] == [single["steps"]] * 2


def test_every_process_logs_the_same_losses_and_rates(runs):
    first, second = runs[0]
    assert first["losses"] == second["losses"]
    assert first["rates"] == second["rates"]
    assert first["history"] == second["history"]
    assert first["evaluate"] == second["evaluate"]
    assert set(first["history"]) == {"loss", "consistency_loss", "dropout_rate"}


def test_in_step_ramp_resolves_against_the_whole_run(runs):
    # LinearRamp(0.3) over 12 steps: the rate in step s is 0.3 * s / 12 on every layer;
    # a wrong steps-per-epoch (or none: item 9) would change or stop it.
    expected = [[0.3 * s / 12] * len(LAYERS) for s in range(12)]
    for report in runs[0]:
        np.testing.assert_allclose(report["rates"], expected, rtol=0, atol=1e-6)
        np.testing.assert_allclose(report["history"]["dropout_rate"], [0.3 * 5 / 12, 0.3 * 11 / 12], atol=1e-6)


def test_losses_match_the_single_process_run(runs):
    processes, single = runs
    # The computation is the same: the same global batches on four devices, and JAX draws
    # each mask for the global batch from the same seed, so even the masks agree.
    for report in processes:
        np.testing.assert_allclose(report["losses"], single["losses"], rtol=RTOL)
        np.testing.assert_allclose(report["evaluate"], single["evaluate"], rtol=RTOL)
        for key, values in single["history"].items():
            np.testing.assert_allclose(report["history"][key], values, rtol=RTOL, err_msg=key)
        assert report["rates"] == single["rates"]


def _rows(processes, layer):
    """{global row: keep pattern} and {global row: device} over every process."""
    masks, devices = {}, {}
    for report in processes:
        masks.update(report["masks"][layer])
        devices.update(report["row_devices"])
    return masks, devices


@pytest.mark.parametrize("layer", LAYERS)
def test_identical_samples_on_different_devices_get_different_masks(runs, layer):
    masks, devices = _rows(runs[0], layer)
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
    bits = set("".join(blocks))
    assert bits - {"0"} and bits - {"f"}  # some units kept, some dropped (rate 0.5)


@pytest.mark.parametrize("layer", ["drop_block", "prob_drop_block"])
def test_identical_samples_get_different_masks_within_a_device(runs, layer):
    # 512 units a sample: every one of the 64 identical samples has its own mask.
    masks, _ = _rows(runs[0], layer)
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

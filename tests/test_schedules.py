import keras
import numpy as np
import pytest

from keras_dropouts import schedules as S


def test_early_constant_exact_at_cutoff():
    s = S.Early(0.1, cutoff_step=100)
    assert s(0) == 0.1 and s(99) == 0.1
    assert s(100) == 0.0 and s(10**6) == 0.0


def test_early_linear_formula_and_cutoff():
    s = S.Early(0.2, cutoff_step=40, mode="linear")
    for step in [0, 1, 10, 39]:
        assert s(step) == pytest.approx(0.2 * (1 - step / 40), abs=1e-12)
    assert s(40) == 0.0 and s(41) == 0.0


def test_early_zero_cutoff_is_always_zero():
    assert S.Early(0.3, 0)(0) == 0.0
    assert S.Early(0.3, 0).max_rate == 0.0


def test_late_constant_exact_at_start():
    s = S.Late(0.4, start_step=50)
    assert s(0) == 0.0 and s(49) == 0.0
    assert s(50) == 0.4 and s(10**6) == 0.4


def test_late_linear_rise():
    s = S.Late(0.4, start_step=50, mode="linear", end_step=150)
    assert s(0) == 0.0 and s(50) == 0.0
    assert s(100) == pytest.approx(0.2, abs=1e-12)
    assert s(150) == 0.4 and s(1000) == 0.4


def test_late_linear_needs_end_or_resolution():
    s = S.Late(0.4, start_step=10, mode="linear")
    with pytest.raises(ValueError, match="end_step"):
        s(20)
    r = s.resolve(110)
    assert r.end_step == 110 and r(60) == pytest.approx(0.2, abs=1e-12)


def test_linear_ramp_dropblock_schedule():
    s = S.LinearRamp(0.1).resolve(1000)
    assert s(0) == 0.0
    assert s(500) == pytest.approx(0.05, abs=1e-12)
    assert s(1000) == 0.1 and s(2000) == 0.1
    s2 = S.LinearRamp(0.3, start_rate=0.1, start_step=10, end_step=20)
    assert s2(5) == 0.1 and s2(15) == pytest.approx(0.2) and s2(20) == 0.3


def test_unresolved_ramp_raises_clearly():
    with pytest.raises(ValueError, match="end of training"):
        S.LinearRamp(0.1)(3)


def test_pure_functions_match_classes():
    for step in range(0, 30, 3):
        assert S.early_rate(step, 0.1, 20, "linear") == S.Early(0.1, 20, "linear")(step)
        assert S.late_rate(step, 0.1, 20) == S.Late(0.1, 20)(step)
        assert S.linear_ramp(step, 0.1, 25) == S.LinearRamp(0.1, end_step=25)(step)
    assert S.constant_rate(7, 0.2) == S.Constant(0.2)(7) == 0.2


@pytest.mark.parametrize(
    "schedule",
    [
        S.Constant(0.2),
        S.LinearRamp(0.1, start_rate=0.05, start_step=3, end_step=9),
        S.Early(0.1, 7, "linear"),
        S.Late(0.2, 4, "linear", end_step=10),
    ],
)
def test_config_round_trip(schedule):
    config = keras.saving.serialize_keras_object(schedule)
    restored = keras.saving.deserialize_keras_object(config)
    assert restored == schedule
    for step in range(12):
        assert restored(step) == schedule(step)


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: S.Early(-0.1, 10), "rate"),
        (lambda: S.Early(1.5, 10), "between 0 and 1"),
        (lambda: S.Early(0.1, -1), "cutoff_step"),
        (lambda: S.Early(0.1, 10, mode="cubic"), "mode"),
        (lambda: S.Late(0.1, 2.5), "start_step"),
        (lambda: S.Late(0.1, 10, "linear", end_step=5), "end_step"),
        (lambda: S.LinearRamp(0.1, start_step=10, end_step=5), "end_step"),
        (lambda: S.Constant("x"), "rate"),
        (lambda: S.Constant("0.1"), "rate"),
        (lambda: S.Constant(True), "rate"),
        (lambda: S.Constant(float("nan")), "rate"),
        (lambda: S.Early(0.1, True), "cutoff_step"),
        (lambda: S.Early(0.1, "2"), "cutoff_step"),
        (lambda: S.LinearRamp(0.1, end_step=float("inf")), "end_step"),
        (lambda: S.Late(0.1, 3, mode=None), "mode"),
        (lambda: S.early_rate(0, 1.5, 10), "rate"),
        (lambda: S.linear_ramp(0, 0.1, end_step=-4), "end_step"),
        (lambda: S.late_rate(-1, 0.1, 3), "step"),
        (lambda: S.constant_rate(0, -0.2), "rate"),
    ],
)
def test_bad_arguments(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_values_always_in_unit_interval():
    steps = np.arange(0, 300)
    for s in [S.Early(1.0, 100, "linear"), S.Late(1.0, 50, "linear", end_step=250)]:
        values = np.array([s(int(t)) for t in steps])
        assert values.min() >= 0.0 and values.max() <= 1.0


SCHEDULES = [
    S.Constant(0.3),
    S.LinearRamp(0.5, start_rate=0.1, start_step=3, end_step=11),
    S.LinearRamp(0.2, start_step=5, end_step=5),
    S.Early(0.6, 7, "constant"),
    S.Early(0.6, 7, "linear"),
    S.Early(0.6, 0, "linear"),
    S.Late(0.4, 6, "constant"),
    S.Late(0.4, 6, "linear", end_step=13),
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
def test_tensor_steps_match_host_values(schedule):
    steps = np.arange(0, 20)
    host = np.array([schedule(int(s)) for s in steps], "float32")
    tensor = keras.ops.convert_to_numpy(schedule(keras.ops.convert_to_tensor(steps, "int32")))
    assert tensor.dtype == np.float32
    np.testing.assert_allclose(tensor, host, rtol=0, atol=1e-7)
    # Exact at the knots, where a one-step error would show.
    a, b, v0, v1 = schedule.knots()
    for step in {a, b, max(a - 1, 0)}:
        assert float(schedule(keras.ops.convert_to_tensor(step, "int32"))) == pytest.approx(
            schedule(step), abs=1e-7
        )


def test_function_forms_accept_tensor_steps():
    step = keras.ops.convert_to_tensor(5, "int32")
    assert float(S.early_rate(step, 0.2, 10, "linear")) == pytest.approx(0.1)
    assert float(S.late_rate(step, 0.2, 5)) == pytest.approx(0.2)
    assert float(S.linear_ramp(step, 0.2, end_step=10)) == pytest.approx(0.1)
    assert float(S.constant_rate(step, 0.2)) == pytest.approx(0.2)


def test_two_knots_reads_variable_knots():
    """The knots can be variables: a new schedule is a value, not a new trace."""
    knots = keras.Variable([0.0, 10.0, 0.0, 0.5], dtype="float32", trainable=False)

    def f(step):
        return S.two_knots(step, knots[0], knots[1], knots[2], knots[3])

    assert float(f(keras.ops.convert_to_tensor(4.0))) == pytest.approx(0.2)
    knots.assign([0.0, 20.0, 0.0, 1.0])
    assert float(f(keras.ops.convert_to_tensor(5.0))) == pytest.approx(0.25)

"""Argument checks shared by the layers, schedules and callbacks."""


def check_rate(rate, name="rate"):
    """Returns `rate` as a float, or raises a ValueError naming `name` and the range [0, 1]."""
    try:
        value = float(rate)
    except (TypeError, ValueError):
        raise ValueError(f"Argument `{name}` must be a number in [0, 1]. Received: {name}={rate!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"Argument `{name}` must be in the range [0, 1]. Received: {name}={rate!r}")
    return value

"""EarlyDropout / LateDropout document the log key they use: derived from `layers`
(`drop_path_rate` for `layers=DropPath`), else `early_dropout_rate` / `late_dropout_rate`."""

import pytest

from keras_dropouts.callbacks import EarlyDropout, LateDropout
from keras_dropouts.layers import DropPath


@pytest.mark.parametrize(
    "cls,kwargs,default",
    [
        (EarlyDropout, {"cutoff_epoch": 1}, "early_dropout_rate"),
        (LateDropout, {"start_epoch": 1}, "late_dropout_rate"),
    ],
)
def test_log_key_matches_the_docstring(cls, kwargs, default):
    assert cls(0.1, **kwargs).log_key == default
    assert cls(0.1, layers=DropPath, **kwargs).log_key == "drop_path_rate"
    assert cls(0.1, layers="head", **kwargs).log_key == "head_rate"
    doc = " ".join(cls.__doc__.split())
    assert "derived from `layers`" in doc
    assert '`"drop_path_rate"` for `layers=DropPath`' in doc
    assert f'else `"{default}"`' in doc

"""Argument descriptions shared by the block ops' docstrings, filled in at import.

Plain strings with no imports, as `layers/_docstrings.py`: a docstring line that holds
only `{block_args}` becomes `BLOCK_ARGS`, indented as that line. The ops fill their
`__doc__` with `fill` at import, and the documentation site's API reference (which reads
the package's source without importing it or Keras) fills the same docstrings through
`docs/_ext/filled_docstrings.py`.
"""

# The arguments `drop_block` and `prob_drop_block` share, described once.
BLOCK_ARGS = """rate: The expected fraction of units dropped: a Python number in [0, 1]
    (checked) or a scalar tensor (clipped to [0, 1]). Rate 1 drops every unit.
block_size: Positive int, or tuple with one per spatial axis.
seed: A `keras.random.SeedGenerator`, an int or None.
data_format: "channels_last" or "channels_first"; defaults to
    `keras.config.image_data_format()`."""

FIELDS = {"{block_args}": BLOCK_ARGS}

# The functions whose docstrings have fields (paths in `keras_dropouts`; a function and
# its module share a name, so `ops.drop_block` alone would name the module).
FILLED = ("ops.drop_block.drop_block", "ops.prob_drop_block.prob_drop_block")


def filled(doc):
    """`doc` with every line that holds only a field replaced by the field's text."""
    lines = []
    for line in doc.split("\n"):
        text = FIELDS.get(line.strip())
        if text is None:
            lines.append(line)
        else:
            indent = line[: len(line) - len(line.lstrip())]
            lines.extend(indent + part if part else part for part in text.split("\n"))
    return "\n".join(lines)


def fill(function):
    """Decorator: fills the fields of `function`'s docstring (none under `python -OO`)."""
    if function.__doc__:
        function.__doc__ = filled(function.__doc__)
    return function

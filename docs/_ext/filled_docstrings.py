"""Griffe extension for the API reference: docstrings filled from templates at import.

DropBlock1D/2D/3D and ProbDropBlock1D/2D/3D set `__doc__` at import from templates
(`keras_dropouts/layers/_docstrings.py`), and the block ops fill their argument
descriptions from `keras_dropouts/ops/_docstrings.py`. mkdocstrings reads the source
statically, without importing the package or Keras, so this extension loads those
keras-free modules by their paths and gives each object the docstring it has at run time.
"""

import importlib.util
import inspect
from pathlib import Path

import griffe

PACKAGE = Path(__file__).resolve().parents[2] / "keras_dropouts"


def _load(relative):
    name = "_kd_" + relative.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, PACKAGE / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _set(obj, text):
    obj = obj.final_target if obj.is_alias else obj
    obj.docstring = griffe.Docstring(
        inspect.cleandoc(text), parent=obj, parser="google",
        parser_options={"warn_missing_types": False},
    )


class FilledDocstrings(griffe.Extension):
    def on_package(self, *, pkg, **kwargs):
        if pkg.name != "keras_dropouts":
            return
        layers = _load("layers/_docstrings.py")
        for name in layers.LAYERS:
            _set(pkg["layers"][name], layers.docstring(name))
        ops = _load("ops/_docstrings.py")
        for path in ops.FILLED:
            _set(pkg[path], ops.filled(pkg[path].docstring.value))

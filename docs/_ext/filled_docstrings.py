"""Griffe extension for the API reference: the block layers' docstrings.

DropBlock1D/2D/3D and ProbDropBlock1D/2D/3D set `__doc__` at import from templates
(`keras_dropouts/layers/_docstrings.py`). mkdocstrings reads the source statically,
without importing the package or Keras, so this extension loads that keras-free module
by its path and gives each class the docstring it has at run time.
"""

import importlib.util
import inspect
from pathlib import Path

import griffe

SOURCE = Path(__file__).resolve().parents[2] / "keras_dropouts" / "layers" / "_docstrings.py"


def _templates():
    spec = importlib.util.spec_from_file_location("_kd_layer_docstrings", SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FilledDocstrings(griffe.Extension):
    def on_package(self, *, pkg, **kwargs):
        if pkg.name != "keras_dropouts":
            return
        templates = _templates()
        for name in templates.LAYERS:
            cls = pkg["layers"][name]
            cls = cls.final_target if cls.is_alias else cls
            cls.docstring = griffe.Docstring(
                inspect.cleandoc(templates.docstring(name)), parent=cls, parser="google",
                parser_options={"warn_missing_types": False},
            )

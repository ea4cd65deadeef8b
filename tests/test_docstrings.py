"""Every public name documents itself: a docstring with an `Args:` section (for callables
that take arguments) and an `Example:` section, and no benchmark figures or device names
(those belong in benchmarks/RESULTS.md). The API reference of the docs site is generated
from these docstrings (docs/api/)."""

import inspect
import re

import pytest

import keras_dropouts as kd

MODULES = ("layers", "models", "callbacks", "schedules", "ops", "surgery")
PUBLIC = [(m, name) for m in MODULES for name in getattr(kd, m).__all__]

# A device name, a speed-up ("1.22x "), or a step time: figures of one machine.
BENCHMARK_FIGURE = re.compile(r"H100|H200|A100|\b[0-9]+(\.[0-9]+)?x |ms/step|ms per step")


def section(doc, name):
    """The lines of a Google/Keras-style section (`Args:`), or None if it is missing."""
    lines = inspect.cleandoc(doc).splitlines()
    for i, line in enumerate(lines):
        if line.strip() == f"{name}:":
            indent = len(line) - len(line.lstrip())
            body = []
            for nxt in lines[i + 1:]:
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                    break
                body.append(nxt)
            return body
    return None


def arguments(obj):
    """The names a user passes to `obj` (a class: its `__init__`), without self/*args/**kwargs."""
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.name not in ("self", "cls")
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def documented(m, name):
    obj = getattr(getattr(kd, m), name)
    if not (inspect.isclass(obj) or callable(obj)):
        return obj, inspect.getdoc(getattr(kd, m))  # a constant: its module documents it
    return obj, obj.__doc__


@pytest.mark.parametrize("m,name", PUBLIC, ids=[f"{m}.{n}" for m, n in PUBLIC])
def test_public_name_has_args_and_example(m, name):
    obj, doc = documented(m, name)
    assert doc and doc.strip(), f"kd.{m}.{name} has no docstring"
    if inspect.isclass(obj) or callable(obj):
        args = arguments(obj)
        if args:
            body = section(doc, "Args")
            assert body, f"kd.{m}.{name} takes {args} but its docstring has no `Args:` section"
            text = "\n".join(body)
            missing = [a for a in args if not re.search(rf"^\s*{a}\b", text, re.M)]
            assert not missing, f"kd.{m}.{name}: `Args:` does not describe {missing}"
        assert section(doc, "Example") is not None or section(doc, "Examples") is not None, (
            f"kd.{m}.{name} has no `Example:` section")
    else:
        assert name in doc, f"kd.{m}'s docstring does not describe the constant {name}"


@pytest.mark.parametrize("m,name", PUBLIC, ids=[f"{m}.{n}" for m, n in PUBLIC])
def test_docstring_has_no_benchmark_figures(m, name):
    _, doc = documented(m, name)
    found = BENCHMARK_FIGURE.search(doc or "")
    assert not found, f"kd.{m}.{name}'s docstring cites {found.group(0)!r}: put it in benchmarks/RESULTS.md"


def test_section_parser():
    doc = """Summary.

    Args:
        rate: a float.
        seed: an int.

    Example:

    ```python
    f(1)
    ```
    """
    assert [s.strip() for s in section(doc, "Args") if s.strip()] == ["rate: a float.", "seed: an int."]
    assert section(doc, "Example") is not None
    assert section(doc, "Returns") is None

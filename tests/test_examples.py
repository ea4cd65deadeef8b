"""Smoke tests: every example runs offline as a script on the current backend.

Each example declares the optional packages it imports (keras-hub for the
backbones, scikit-learn / SciPy for the digits data, matplotlib and tqdm for the
demo); its test skips, naming them, where they are not installed (e.g. the
oldest-Keras environment of `make test`, which has only Keras and JAX).
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
BACKEND = keras.backend.backend()


def needs(*modules):
    """Skips the test (with the reason) unless every module can be imported."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    return pytest.mark.skipif(bool(missing), reason=f"example needs {', '.join(missing)} (not installed)")


DIGITS = ("sklearn", "scipy")


def run_script(name, *args, timeout=300):
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("XLA_FLAGS", None)  # one host device, like a user's run
    # The scripts import the package of this checkout (not another editable install).
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@needs(*DIGITS, "matplotlib", "tqdm")
def test_demo_digits_quick(tmp_path):
    out = tmp_path / "out"
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- results:start -->\nPLACEHOLDER\n<!-- results:end -->\ntail\n")
    stdout = run_script(
        "demo_digits.py", "--seeds", "1", "--epochs", "1", "--quick", "--no-progress",
        "--methods", "dropblock,probdropblock,rdrop,early,late",
        "--out", str(out), "--backend", BACKEND, "--update-readme", "--readme", str(readme),
    )
    assert (out / "demo_digits.png").stat().st_size > 10_000
    results = (out / "results.md").read_text()
    assert "| method |" in results and "verdict" in results
    assert (out / "results.json").exists()
    assert f"backend={BACKEND}" in stdout
    text = readme.read_text()
    assert "PLACEHOLDER" not in text and "| method |" in text
    assert text.endswith("<!-- results:end -->\ntail\n")


@needs(*DIGITS)
def test_quickstart():
    stdout = run_script("quickstart.py", "--epochs", "1")
    assert "test accuracy=" in stdout


@needs("keras_hub")
def test_bert_rdrop_probdropblock():
    stdout = run_script(
        "bert_rdrop_probdropblock.py", "--epochs", "1", "--steps", "3", "--examples", "96",
        "--layers", "1", "--hidden", "16", "--max-len", "16",
    )
    assert "validation accuracy=" in stdout


@needs("keras_hub", *DIGITS)
def test_resnet_dropblock():
    stdout = run_script("resnet_dropblock.py", "--epochs", "1", "--steps", "2", "--limit", "128")
    assert "stack3_block0_out_drop_block=" in stdout and "stack3_block0_add_skip_drop_block=" in stdout


@needs("keras_hub", *DIGITS)
@pytest.mark.parametrize("stock", [False, True], ids=["scheduled", "stock"])
def test_vit_early_late(stock):
    args = ["--epochs", "2", "--steps", "2", "--depth", "2", "--hidden", "16", "--limit", "256"]
    stdout = run_script("vit_early_late.py", *args, *(["--stock"] if stock else []))
    assert "late DropPath rates now: [0.0, 0.4]" in stdout


@needs("keras_hub")
def test_surgery_recipes():
    stdout = run_script("surgery_recipes.py", "--epochs", "2", "--steps", "1", "--examples", "16")
    # Late stochastic depth is on from epoch 1, with the linear rule over 5 blocks.
    assert "resnet DropPath rates: [0.04, 0.08, 0.12, 0.16, 0.2]" in stdout
    assert "vit early dropout rates: [0.0, 0.0, 0.0, 0.0, 0.0]" in stdout  # after the cutoff
    assert "bert scheduled dropout rates:" in stdout and "recipes done" in stdout


def test_update_readme_requires_markers(tmp_path):
    sys.path.insert(0, str(EXAMPLES))
    try:
        from update_readme import replace_section
    finally:
        sys.path.remove(str(EXAMPLES))
    assert replace_section("a\n<!-- results:start -->\nx\n<!-- results:end -->\n", "new") == (
        "a\n<!-- results:start -->\nnew\n<!-- results:end -->\n"
    )
    with pytest.raises(ValueError, match="results:start"):
        replace_section("no markers", "new")

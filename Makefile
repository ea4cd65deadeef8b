PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS := tensorflow,jax,torch,nlp,dev
BACKENDS := tensorflow jax torch
PYTEST := -m pytest -q -p no:cacheprovider -n 2

# The oldest supported environment: the exact pins of requirements/oldest.txt (Keras
# 3.8.0, the lower bound in pyproject.toml, with JAX 0.4.38 and nothing else: no
# TensorFlow, torch or keras-hub), in its own virtual environment.
OLDEST := .venv-oldest
OLDEST_PY := $(OLDEST)/bin/python
OLDEST_STAMP := $(OLDEST)/.installed
WHEEL_VENV := .venv-wheel
# The exact test pins (torch==2.13.0: the local CPU build, never the CUDA wheels), passed as
# constraints to every install into the project's own environments; pyproject.toml's extras
# keep lower bounds only.
CONSTRAINTS := -c requirements/test.txt
# The documentation site: mkdocs + Material + mkdocstrings, pinned in requirements/docs.txt,
# in its own environment (no Keras needed: the API reference is read from the source).
DOCS_VENV := .venv-docs
DOCS_STAMP := $(DOCS_VENV)/.installed

.PHONY: venv venv-oldest test test-newest test-oldest test-wheel wheel docs demo evidence fashion-mnist bench lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/test.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	# keras-cv's files only, for tests/test_surgery_keras_cv.py: its dependencies
	# (tensorflow-datasets, kagglehub) conflict with keras-hub's and are never imported.
	$(PY) -m pip install -q --no-deps keras-cv==0.9.0
	touch $(STAMP)

venv-oldest: $(OLDEST_STAMP)

# One resolve of the pins and the package: a pyproject bound that excludes a pin fails here.
$(OLDEST_STAMP): pyproject.toml requirements/oldest.txt
	rm -rf $(OLDEST)
	$(PYTHON) -m venv $(OLDEST)
	$(OLDEST_PY) -m pip install -q --upgrade pip
	$(OLDEST_PY) -m pip install -q -r requirements/oldest.txt -e .
	touch $(OLDEST_STAMP)

# CI's version matrix (about 25 minutes on 2 AMD EPYC CPU cores, environments included):
#   newest Keras (pyproject's extras): the whole suite on TensorFlow, JAX and torch;
#   oldest Keras (requirements/oldest.txt): the whole suite on JAX (about 5 minutes),
#   in a JAX-only environment, so tests of optional packages (TensorFlow, keras-hub,
#   matplotlib) show that they skip cleanly. TensorFlow and torch are not run on the
#   oldest Keras (time budget);
#   the wheel alone (about 1 minute);
#   the documentation site, built strictly (a broken link or reference fails; about
#   half a minute, its environment included).
test: docs test-newest test-oldest test-wheel

test-newest: $(STAMP)
	@set -e; for b in $(BACKENDS); do \
	  echo "=== KERAS_BACKEND=$$b (newest Keras)"; \
	  KERAS_BACKEND=$$b $(PY) $(PYTEST) tests; \
	done

test-oldest: $(OLDEST_STAMP)
	@echo "=== KERAS_BACKEND=jax (oldest supported Keras: requirements/oldest.txt)"
	KERAS_BACKEND=jax $(OLDEST_PY) $(PYTEST) tests

# The wheel: dist/keras_dropouts-<version>-py3-none-any.whl (`pip install` it anywhere).
wheel:
	rm -rf dist
	$(PYTHON) -m pip wheel -q --no-deps -w dist .

# The wheel alone: the wheel of `make wheel`, installed in a fresh environment with only
# Keras and JAX (plus scikit-learn and SciPy for the quickstart's digits data; no
# TensorFlow, torch or extras), imported from site-packages (`-I`: not the source tree).
test-wheel: wheel
	rm -rf $(WHEEL_VENV)
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install -q $(CONSTRAINTS) dist/keras_dropouts-*.whl keras jax scikit-learn scipy
	KERAS_BACKEND=jax $(WHEEL_VENV)/bin/python -I -c \
	  "import keras_dropouts as kd; assert 'site-packages' in kd.__file__, kd.__file__; print('wheel:', kd.__version__)"
	KERAS_BACKEND=jax $(WHEEL_VENV)/bin/python -I examples/quickstart.py --epochs 1

test-%: $(STAMP)
	KERAS_BACKEND=$* $(PY) $(PYTEST) tests

$(DOCS_STAMP): requirements/docs.txt
	rm -rf $(DOCS_VENV)
	$(PYTHON) -m venv $(DOCS_VENV)
	$(DOCS_VENV)/bin/python -m pip install -q -r requirements/docs.txt
	touch $(DOCS_STAMP)

# The site in site/ (open site/index.html); --strict turns every warning (a broken link,
# an unknown API reference, a page missing from the nav) into an error. (The variable
# silences Material's banner about MkDocs 2, printed on every build.)
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(DOCS_VENV)/bin/python -m mkdocs build --strict --site-dir site

demo: $(STAMP)
	$(PY) examples/demo_digits.py

# Plan version 3 (docs/evidence_plan_v3.md), its primary profile fmnist-cpu, as two shard
# processes (one per core); MNIST-1D comes from the `mnist1d` package of the dev extra.
# Plan version 2: add --plan-version 2; plan version 1 (digits): --profile cpu --jobs 2.
evidence: $(STAMP) fashion-mnist
	$(PY) examples/evidence.py --profile fmnist-cpu --jobs 2

# Fashion-MNIST's IDX files (plan version 2's data; docs/evidence_plan.md), from the Debian
# package when no copy is found (examples/fashion_mnist.py: $$FASHION_MNIST_DIR, the Debian
# folder, Keras' cache). Needs root for apt-get; nothing is downloaded by our code. Not part
# of `make test`: the tests write their own small IDX files.
fashion-mnist:
	@if $(PYTHON) -c "import sys; sys.path.insert(0, 'examples'); import fashion_mnist as f; sys.exit(f.find_dir() is None)" 2>/dev/null; then \
		echo "Fashion-MNIST: found"; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get install -y dataset-fashion-mnist || (apt-get update && apt-get install -y dataset-fashion-mnist); \
	else \
		echo "Fashion-MNIST not found: run 'sudo apt-get install dataset-fashion-mnist' (or set FASHION_MNIST_DIR)"; exit 1; \
	fi

# Benchmarks also compare against keras-cv's DropBlock2D (the `cv` extra).
$(VENV)/.bench: $(STAMP)
	$(PY) -m pip install -q $(CONSTRAINTS) -e ".[$(EXTRAS),cv]"
	touch $@

bench: $(VENV)/.bench
	@set -e; for b in $(BACKENDS); do \
	  echo "=== KERAS_BACKEND=$$b"; \
	  KERAS_BACKEND=$$b $(PY) benchmarks/bench_layers.py; \
	  KERAS_BACKEND=$$b $(PY) benchmarks/bench_rdrop.py; \
	  KERAS_BACKEND=$$b $(PY) benchmarks/bench_callbacks.py; \
	done

lint: $(STAMP)
	$(PY) -m ruff check keras_dropouts tests examples benchmarks

clean:
	rm -rf $(VENV) $(OLDEST) $(WHEEL_VENV) $(DOCS_VENV) site build dist *.egg-info .jax-cache

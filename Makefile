PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS := tensorflow,jax,torch,nlp,dev
BACKENDS := tensorflow jax torch

.PHONY: venv test demo evidence bench lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

test: $(STAMP)
	@set -e; for b in $(BACKENDS); do \
	  echo "=== KERAS_BACKEND=$$b"; \
	  KERAS_BACKEND=$$b $(PY) -m pytest -q -p no:cacheprovider -n 2 tests; \
	done

test-%: $(STAMP)
	KERAS_BACKEND=$* $(PY) -m pytest -q -p no:cacheprovider -n 2 tests

demo: $(STAMP)
	$(PY) examples/demo_digits.py

# Each paper's claim in its regime (~15 min on 2 CPU cores); see docs/evidence.md.
evidence: $(STAMP)
	$(PY) examples/evidence.py

# Benchmarks also compare against keras-cv's DropBlock2D (the `cv` extra).
$(VENV)/.bench: $(STAMP)
	$(PY) -m pip install -q -e ".[$(EXTRAS),cv]"
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
	rm -rf $(VENV) build *.egg-info

#!/usr/bin/env bash
# The wheels a lent GPU machine needs beside its JAX and torch (its image has no Keras):
# Keras (the test environment's version), its pure-Python needs namex and optree, and timm (its package
# does not import there without torchvision; bench_layers.py reads DropBlock2d out of the
# wheel). Into .whl/ (git-ignored), for the device tool's `carry`; one version of each.
# Usage (here, in the repository root): bash benchmarks/gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# Keras: the version of the test environment where there is one (make venv), else the newest.
KERAS=keras
[ -x .venv/bin/python ] && KERAS="keras==$(.venv/bin/python -c 'import keras; print(keras.__version__)')"
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "$KERAS" namex optree timm
ls .whl

#!/usr/bin/env bash
# Create .venv and install AdaBioBERT with its test extra. Idempotent: a second run only checks.
#
# torch is installed first, on its own, so that the package's `torch>=2.3` requirement is
# already met: on a machine without an NVIDIA GPU a bare `torch` from PyPI is a multi-GB CUDA
# build. Elsewhere, point TORCH_INDEX_URL at PyTorch's CPU wheels
# (https://download.pytorch.org/whl/cpu) or set TORCH_SPEC to the build you want.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
LOG=.venv-setup.log
# pip's output goes to $LOG; it is shown only when a step fails.
step() { "$@" >>"$LOG" 2>&1 || { cat "$LOG"; echo "setup: failed: $*" >&2; exit 1; }; }
: >"$LOG"

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
step .venv/bin/python -m pip install -q --upgrade pip

if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    echo "setup: NVIDIA GPU found, installing $TORCH_SPEC (CUDA build)"
    step .venv/bin/python -m pip install -q "$TORCH_SPEC"
  else
    echo "setup: no GPU, installing the CPU build of $TORCH_SPEC"
    step .venv/bin/python -m pip install -q "$TORCH_SPEC" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
  fi
fi

step .venv/bin/python -m pip install -q -e ".[test]"   # the test extra brings DuckDB, Polars, PySpark
command -v java >/dev/null 2>&1 || [ -n "${JAVA_HOME:-}" ] ||
  echo "setup: no Java found: the Spark tests (tests/test_entity_tables.py) will be skipped; install a JDK 17+ to run them"
.venv/bin/python -c "import torch, ray, transformers; print(f'setup: torch {torch.__version__}, ray {ray.__version__}, transformers {transformers.__version__}')"

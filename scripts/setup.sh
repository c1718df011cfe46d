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
quiet() { grep -v -e "^WARNING: Location" -e "^$" || true; }

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | quiet

if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    echo "setup: NVIDIA GPU found, installing $TORCH_SPEC (CUDA build)"
    .venv/bin/python -m pip install -q "$TORCH_SPEC" 2>&1 | quiet
  else
    echo "setup: no GPU, installing the CPU build of $TORCH_SPEC"
    .venv/bin/python -m pip install -q "$TORCH_SPEC" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} 2>&1 | quiet
  fi
fi

.venv/bin/python -m pip install -q -e ".[test]" 2>&1 | quiet
.venv/bin/python -c "import torch, ray, transformers; print(f'setup: torch {torch.__version__}, ray {ray.__version__}, transformers {transformers.__version__}')"

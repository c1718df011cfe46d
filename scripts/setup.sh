#!/usr/bin/env bash
# Create .venv and install AdaBioBERT with its test extra. Idempotent: a second run only checks.
#
# torch is installed first, on its own, so that the package's `torch>=2.3,<2.14` requirement is
# already met: on a machine without an NVIDIA GPU a bare `torch` from PyPI is a multi-GB CUDA
# build. Elsewhere, point TORCH_INDEX_URL at PyTorch's CPU wheels
# (https://download.pytorch.org/whl/cpu) or set TORCH_SPEC to the build you want.
#
# It prints one numbered line per step, with what it installs, its size and the time it usually
# takes, then a line every 30 s while pip works (what pip is at, from its log) and the step's time
# when it is done. pip's full output goes to .venv-setup.log; its last lines are shown if a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
LOG=.venv-setup.log
TICK_S=30
: >"$LOG"
START=$SECONDS

duration() { local s=$1; if ((s < 60)); then echo "${s} s"; else printf '%d min %02d s' $((s / 60)) $((s % 60)); fi; }

# What pip is at, from its log: resolving (packages so far), downloading what, or installing how many.
pip_now() {
  local last
  last=$(grep -E '^(Collecting|  Downloading|Installing collected|Building|Successfully)' "$LOG" 2>/dev/null | tail -n 1 |
    sed -E 's/^ +//; s/ +\(from .*//')
  case "$last" in
    "Installing collected packages:"*) echo "installing $(echo "${last#*:}" | tr ',' '\n' | wc -l | tr -d ' ') packages" ;;
    Collecting*) echo "resolving, $(grep -c '^Collecting' "$LOG") packages so far (${last#Collecting })" ;;
    Downloading*) echo "downloading ${last#Downloading }" ;;
    "") echo "starting" ;;
    *) echo "${last:0:100}" ;;
  esac
}

# step <n>/<total> <what> <command...>: one line, the command's output to $LOG, a line every TICK_S
# seconds while it runs, and its time when done; on failure the log's tail and exit 1.
step() {
  local label=$1 what=$2 started=$SECONDS
  shift 2
  echo "setup $label: $what"
  "$@" >>"$LOG" 2>&1 &
  local pid=$! waited=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    waited=$((waited + 1))
    if ((waited % TICK_S == 0)); then
      echo "  ... $(duration $((SECONDS - started))): $(pip_now)"
    fi
  done
  if ! wait "$pid"; then
    tail -n 30 "$LOG"
    echo "setup: failed: $* (full output: $LOG)" >&2
    exit 1
  fi
  echo "  done in $(duration $((SECONDS - started)))"
}

if [ -x .venv/bin/python ]; then
  echo "setup 1/4: .venv exists; checking it"
else
  step 1/4 "creating .venv with $PYTHON ($("$PYTHON" --version 2>&1))" "$PYTHON" -m venv .venv
fi
step 2/4 "upgrading pip (a few seconds)" .venv/bin/python -m pip install --progress-bar off --upgrade pip

if .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "setup 3/4: $(.venv/bin/python -c 'import torch; print("torch", torch.__version__)') is installed"
elif command -v nvidia-smi >/dev/null 2>&1; then
  step 3/4 "$TORCH_SPEC, CUDA build (NVIDIA GPU found; about 900 MB with its CUDA libraries, several minutes)" \
    .venv/bin/python -m pip install --progress-bar off "$TORCH_SPEC"
else
  step 3/4 "$TORCH_SPEC, CPU build (no GPU; about 190 MB, 1-3 minutes)" \
    .venv/bin/python -m pip install --progress-bar off "$TORCH_SPEC" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
fi

step 4/4 "AdaBioBERT and its dependencies: ray[data,train,default], transformers, gensim, duckdb, test tools (about 170 packages, 2-3 GB installed; 1-6 minutes, longer with a cold pip cache)" \
  .venv/bin/python -m pip install --progress-bar off -e ".[test]"   # the test extra brings DuckDB, Polars, PySpark
command -v java >/dev/null 2>&1 || [ -n "${JAVA_HOME:-}" ] ||
  echo "setup: no Java found: the Spark tests (tests/test_entity_tables.py) will be skipped; install a JDK 17+ to run them"
.venv/bin/python -c "import torch, ray, transformers; print(f'setup: done in $(duration $((SECONDS - START))): torch {torch.__version__}, ray {ray.__version__}, transformers {transformers.__version__}')"

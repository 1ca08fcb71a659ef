#!/usr/bin/env bash
# Make .venv with Python 3.11+, install torch==2.13.0 first (a CPU build; a plain `torch` would
# pull a multi-GB CUDA build), then this project with its dev extras. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -d .venv ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip 2>/dev/null || true
python -c "import torch" 2>/dev/null || python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[dev]"

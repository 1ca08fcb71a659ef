#!/usr/bin/env bash
# Issue 3's GPU check: the claims on random-gpt2 with the device set to CUDA, on one H100/H200.
#
#   bash scripts/gpu_claims.sh        # from the repo root; report and log land in $OUT (default /tmp/gpu-claims)
#
# Runs with the device machine's own python3 (torch + CUDA, transformers, pytest, hypothesis,
# jinja2, matplotlib are there). random-gpt2 borrows MiniLM's tokenizer: .whl/stub/ carries it.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-claims}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/.whl/stub:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 CI=true
start=$SECONDS
python3 -c "import torch, transformers, pytest, hypothesis; print('torch', torch.__version__, 'transformers', transformers.__version__, 'pytest', pytest.__version__, 'hypothesis', hypothesis.__version__, torch.cuda.get_device_name(0))"
timeout 240 python3 -m pytest claims/ --model random-gpt2 --device cuda -q -p no:cacheprovider \
    --report "$OUT/claims-gpu.html" 2>&1 | tee "$OUT/claims-gpu.log" | tail -15
echo "claims on cuda: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s" | tee -a "$OUT/claims-gpu.log"

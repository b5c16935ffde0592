#!/usr/bin/env bash
# Installs, builds, and runs shoal's main job on an embedded default: a
# synthetic cluster benchmark — 4 SmolLM-135M-shaped models with distinct
# random weights, 4 sequences each, fused into one step per iteration — on the
# GPU when one is present (CUDA build), else on the CPU. Also shows single-model
# generation. Pass -m PATH to generate with your own model instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
DEV=cpu # the GPU when this build has CUDA and a device answers
if ./build/shoal run -m synthetic:tiny --tokens 1 -n 1 --device cuda >/dev/null 2>&1; then DEV=cuda; fi
if [ "${1:-}" = "-m" ] && [ -n "${2:-}" ]; then
  ./build/shoal run -m "$2" -p "${3:-Once upon a time}" -n 64 --device "$DEV"
  exit 0
fi
./build/shoal run -m synthetic:smollm-135m:q8_0 --tokens 1,2,3,4,5,6,7,8 -n 16 --print-ids
if [ "$DEV" = cuda ]; then
  ./build/shoal bench --synthetic smollm-135m --models 8 --seqs 16 --prompt 64 --tokens 128 --device cuda --compare
else
  ./build/shoal bench --synthetic smollm-135m --models 4 --seqs 4 --prompt 32 --tokens 32 --device cpu --dtype q8_0
fi

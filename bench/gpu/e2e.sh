#!/bin/bash
# On the GPU machine: end-to-end checks and benchmarks of the whole engine on
# CUDA, from prebuilt binaries carried in .e2e/ (shoal, test_reference,
# test_cuda_ops; libcjson1 .deb; a copy of the PyTorch peer script).
#
#   bash bench/gpu/e2e.sh check     # reference fixtures through --device cuda + op conformance
#   bash bench/gpu/e2e.sh single    # issue 4 workloads: one model, 1/16/64 sequences, with peers
#   bash bench/gpu/e2e.sh cluster   # issue 5 workload: 8 models x 16 sequences, fused vs unfused, peers
# Logs and JSON go to $OUT; a summary is printed last.
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/x
for f in .e2e/*.deb; do dpkg -x "$f" /tmp/x; done
export LD_LIBRARY_PATH=/tmp/x/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
B=.e2e/bin
PEER=.e2e/torch_decode.py
nvidia-smi --query-gpu=name,pci.bus_id,driver_version,memory.total,clocks.max.sm --format=csv,noheader > "$OUT/gpu.txt" 2>&1
GPU=$(cut -d, -f1 "$OUT/gpu.txt")
echo "GPU: $(cat "$OUT/gpu.txt")"

bench() { # name, args...
  local name=$1; shift
  timeout ${BENCH_TIMEOUT:-240} $B/shoal bench "$@" --device cuda --quiet --json "$OUT/$name.json" > "$OUT/$name.log" 2>&1
  echo "== $name (rc=$?)"; grep -vE "^\s*$" "$OUT/$name.log" | tail -14
}
peer() { # name kind shape models seqs
  local name=$1 kind=$2 shape=$3 models=$4 seqs=$5
  timeout ${PEER_TIMEOUT:-240} python3 $PEER --peer $kind --shape $shape --models $models --seqs $seqs \
    --prompt 64 --tokens 128 --dtype bf16 > "$OUT/$name.peer.json" 2> "$OUT/$name.peer.err"
  echo "== peer $name: $(tail -1 "$OUT/$name.peer.json")"
}

case "${1:-check}" in
check)
  SHOAL_FIXTURES=$PWD/tests/fixtures SHOAL_TEST_DEVICE=cuda timeout 180 $B/test_reference > "$OUT/ref_cuda.log" 2>&1
  echo "== test_reference --device cuda (rc=$?)"; grep -E "FAIL|passed" "$OUT/ref_cuda.log" | head -20
  SHOAL_FIXTURES=$PWD/tests/fixtures timeout 240 $B/test_cuda_ops > "$OUT/cuda_ops.log" 2>&1
  echo "== test_cuda_ops (rc=$?)"; grep -E "^FAIL|passed" "$OUT/cuda_ops.log" | head -20
  M=tests/fixtures/models
  $B/shoal run -m $M/qwen2/model-f16.gguf --tokens 250,250,252,97,43,236,26,66,35,81,137,30 -n 16 --print-ids --ignore-eos --device cuda
  ;;
single)
  for shape in smollm-135m gpt2-124m; do
    for s in 1 16 64; do
      bench "$shape-1x$s" --synthetic $shape --models 1 --seqs $s --prompt 64 --tokens 128 --dtype bf16 --peer $PEER --peer-kind graph
    done
  done
  peer smollm-135m-1x1-hf hf smollm-135m 1 1
  peer smollm-135m-1x16-hf hf smollm-135m 1 16
  peer gpt2-124m-1x1-hf hf gpt2-124m 1 1
  ;;
cluster)
  bench smollm-135m-8x16 --synthetic smollm-135m --models 8 --seqs 16 --prompt 64 --tokens 128 --dtype bf16 --compare --peer $PEER --peer-kind graph
  peer smollm-135m-8x16-hf hf smollm-135m 8 16
  ;;
esac

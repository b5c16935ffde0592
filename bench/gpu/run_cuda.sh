#!/bin/bash
# On the GPU machine: the CUDA conformance test (plain, then a quick pass
# under compute-sanitizer memcheck) and the grouped-GEMM benchmark, from
# prebuilt binaries. Logs and result files go to $OUT (default /tmp/out);
# a short summary is printed last.
#
#   bench/gpu/run_cuda.sh [BIN_DIR]     (default .dev/cuda: test_cuda_ops, bench_cuda_gemm)
set -u
BIN=${1:-.dev/cuda}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export SHOAL_FIXTURES=$PWD/tests/fixtures
nvidia-smi --query-gpu=name,pci.bus_id,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem \
  --format=csv >"$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"

echo "== test_cuda_ops"
timeout ${TEST_TIMEOUT:-240} "$BIN/test_cuda_ops" >"$OUT/test.log" 2>&1
rc_test=$?
grep -m 40 -E "^FAIL" "$OUT/test.log"
grep -E "^(device|op_ref|grouped|largest|[0-9]+ passed)" "$OUT/test.log"

echo "== compute-sanitizer memcheck (test_cuda_ops --quick)"
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
timeout ${CS_TIMEOUT:-240} "$CS" --tool memcheck --leak-check full --error-exitcode 9 "$BIN/test_cuda_ops" --quick \
  >"$OUT/memcheck.log" 2>&1
rc_mc=$?
grep -m 20 -E "Invalid|Error|ERROR SUMMARY|passed" "$OUT/memcheck.log"

echo "== bench_cuda_gemm"
timeout ${BENCH_TIMEOUT:-200} "$BIN/bench_cuda_gemm" --out "$OUT" >"$OUT/bench.log" 2>&1
rc_bench=$?
cat "$OUT/bench.log"

echo "== summary: test rc=$rc_test memcheck rc=$rc_mc bench rc=$rc_bench"

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

# The test makes one deliberately failing cudaMalloc (1 PiB, to check the
# status it returns): API errors are not reported, kernel memory errors are.
echo "== compute-sanitizer memcheck (test_cuda_ops --quick)"
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
timeout ${CS_TIMEOUT:-240} "$CS" --tool memcheck --leak-check full --report-api-errors no --error-exitcode 9 "$BIN/test_cuda_ops" --quick \
  >"$OUT/memcheck.log" 2>&1
rc_mc=$?
grep -m 20 -E "Invalid|Error|ERROR SUMMARY|passed" "$OUT/memcheck.log"

if [ "${RACECHECK:-1}" = 1 ]; then
  echo "== compute-sanitizer racecheck (test_cuda_ops --quick)"
  timeout ${RC_TIMEOUT:-180} "$CS" --tool racecheck --racecheck-report all --error-exitcode 9 "$BIN/test_cuda_ops" --quick \
    >"$OUT/racecheck.log" 2>&1
  echo "racecheck rc=$?"
  grep -m 20 -E "RACECHECK SUMMARY|hazard|Race|passed" "$OUT/racecheck.log"
fi

echo "== bench_cuda_gemm"
timeout ${BENCH_TIMEOUT:-200} "$BIN/bench_cuda_gemm" --out "$OUT" >"$OUT/bench.log" 2>&1
rc_bench=$?
cat "$OUT/bench.log"

if [ "${PROFILE:-1}" = 1 ]; then
  echo "== ncu: single launches (bench_cuda_gemm --profile)"
  NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
  timeout ${NCU_TIMEOUT:-150} "$NCU" --clock-control none -k regex:gemm_kernel --csv \
    --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__warps_active.avg.pct_of_peak_sustained_active,launch__registers_per_thread,launch__grid_size \
    "$BIN/bench_cuda_gemm" --profile >"$OUT/ncu.csv" 2>&1
  echo "ncu rc=$?"
  grep -E "profile launch|gpu__time_duration|dram__throughput|dram__bytes_read|warps_active" "$OUT/ncu.csv" |
    awk -F'","' '{ if (NF > 10) print $(NF-2), $NF; else print }' | sed 's/"//g' | head -60
fi

echo "== summary: test rc=$rc_test memcheck rc=$rc_mc bench rc=$rc_bench"

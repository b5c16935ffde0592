#!/bin/bash
# call 2 (gemm helper): base vs c (weights staged in shared memory by cp.async), checks on c, warm ncu of both
set -u
OUT=${OUT:-/tmp/out}; W=/tmp/w; mkdir -p $OUT $W /tmp/x
for f in .e2e-gemm/*.deb; do dpkg -x "$f" /tmp/x; done
export LD_LIBRARY_PATH=/tmp/x/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu); CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
T0=$(date +%s); el() { echo "[t=$(( $(date +%s) - T0 ))s]"; }
pack() { tar czf $OUT/w.tgz -C $W . ; }
nvidia-smi --query-gpu=name,pci.bus_id,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee $W/gpu.txt
B8="--synthetic smollm-135m --models 8 --seqs 16 --prompt 64 --dtype bf16 --device cuda"
B64="--synthetic smollm-135m --models 1 --seqs 64 --prompt 64 --dtype bf16 --device cuda"
bench() { # tag bin args
  local tag=$1 bin=$2; shift 2
  timeout 60 .e2e-gemm/$bin/shoal bench "$@" --tokens 128 --quiet > $W/bench-$tag.log 2>&1
  echo "== $tag rc=$? $(grep -E 'decode:' $W/bench-$tag.log | tr -s ' ') | $(grep -E 'decode step:' $W/bench-$tag.log | tr -s ' ' | cut -c1-40)"
}
SHOAL_FIXTURES=$PWD/tests/fixtures timeout 60 .e2e-gemm/c2/test_cuda_ops > $W/cuda_ops-c2.log 2>&1
echo "== test_cuda_ops c2 rc=$?"; grep -E "^FAIL|passed|largest" $W/cuda_ops-c2.log | head; el; pack
for r in 1 2 3; do for v in base c c2; do bench 8x16-$v-$r $v $B8; done; done
for r in 1 2; do for v in base c c2; do bench 1x64-$v-$r $v $B64; done; done
el; pack
SHOAL_FIXTURES=$PWD/tests/fixtures timeout 45 "$CS" --tool racecheck --racecheck-report all --error-exitcode 9 .e2e-gemm/c2/test_cuda_ops --quick > $W/racecheck-c2.log 2>&1
echo "== racecheck c rc=$?"; grep -m 5 -E "RACECHECK SUMMARY|passed" $W/racecheck-c2.log
SHOAL_FIXTURES=$PWD/tests/fixtures timeout 45 "$CS" --tool memcheck --report-api-errors no --error-exitcode 9 .e2e-gemm/c2/test_cuda_ops --quick > $W/memcheck-c2.log 2>&1
echo "== memcheck c rc=$?"; grep -m 5 -E "ERROR SUMMARY|passed" $W/memcheck-c2.log; el; pack
M=gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,lts__t_bytes.sum,sm__cycles_active.max,sm__cycles_active.avg,sm__cycles_elapsed.avg,launch__registers_per_thread,sm__warps_active.avg.pct_of_peak_sustained_active,launch__grid_size,smsp__inst_executed.sum
for v in c2 base; do
  SHOAL_CUDA_GRAPH=0 timeout 55 $NCU --clock-control none --cache-control none -k regex:gemm --launch-skip $((28*121)) \
    --launch-count 121 --metrics $M --csv .e2e-gemm/$v/shoal bench $B8 --tokens 40 --quiet > $W/ncu-$v-8x16.csv 2> $W/ncu-$v-8x16.err
  echo "== ncu $v rc=$? $(grep -c gpu__time_duration $W/ncu-$v-8x16.csv) rows"; el; pack
done
for v in c2 base; do
  SHOAL_CUDA_GRAPH=0 timeout 40 $NCU --clock-control none --cache-control none -k regex:gemm --launch-skip $((12*121)) \
    --launch-count 121 --metrics $M --csv .e2e-gemm/$v/shoal bench $B64 --tokens 24 --quiet > $W/ncu-$v-1x64.csv 2> $W/ncu-$v-1x64.err
  echo "== ncu 1x64 $v rc=$? $(grep -c gpu__time_duration $W/ncu-$v-1x64.csv) rows"; el; pack
done

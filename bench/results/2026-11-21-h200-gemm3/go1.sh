#!/bin/bash
# call 1 (gemm helper): baseline warm-cache ncu of the M=16 / M=64 GEMMs, bench base vs a, test_cuda_ops on a
set -u
OUT=${OUT:-/tmp/out}; W=/tmp/w; mkdir -p $OUT $W /tmp/x
for f in .e2e-gemm/*.deb; do dpkg -x "$f" /tmp/x; done
export LD_LIBRARY_PATH=/tmp/x/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
T0=$(date +%s); el() { echo "[t=$(( $(date +%s) - T0 ))s]"; }
pack() { tar czf $OUT/w.tgz -C $W . ; }
nvidia-smi --query-gpu=name,pci.bus_id,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee $W/gpu.txt
B8="--synthetic smollm-135m --models 8 --seqs 16 --prompt 64 --dtype bf16 --device cuda"
B64="--synthetic smollm-135m --models 1 --seqs 64 --prompt 64 --dtype bf16 --device cuda"
bench() { # tag bin args
  local tag=$1 bin=$2; shift 2
  timeout 60 .e2e-gemm/$bin/shoal bench "$@" --tokens 128 --quiet > $W/bench-$tag.log 2>&1
  echo "== $tag rc=$? $(grep -E 'decode:' $W/bench-$tag.log | tr -s ' ') | $(grep -E 'decode step:' $W/bench-$tag.log | tr -s ' ')"
}
for r in 1 2; do for v in base a; do bench 8x16-$v-$r $v $B8; done; done
for v in base a; do bench 1x64-$v $v $B64; done
el; pack
SHOAL_FIXTURES=$PWD/tests/fixtures timeout 100 .e2e-gemm/a/test_cuda_ops > $W/cuda_ops-a.log 2>&1
echo "== test_cuda_ops a rc=$?"; grep -E "^FAIL|passed|largest" $W/cuda_ops-a.log | head; el; pack
$NCU --query-metrics > $W/query-metrics.txt 2>&1
LIST=""
for m in gpu__time_duration.sum launch__grid_size launch__registers_per_thread launch__occupancy_limit_registers \
  launch__occupancy_limit_shared_mem launch__occupancy_limit_warps launch__occupancy_limit_blocks \
  dram__bytes_read.sum dram__throughput.avg.pct_of_peak_sustained_elapsed lts__t_bytes.sum lts__t_bytes.sum.per_second \
  lts__throughput.avg.pct_of_peak_sustained_elapsed sm__warps_active.avg.pct_of_peak_sustained_active \
  sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active \
  sm__inst_executed_pipe_tensor_op_hmma.avg.pct_of_peak_sustained_active sm__throughput.avg.pct_of_peak_sustained_elapsed \
  smsp__inst_executed.sum sm__cycles_elapsed.avg sm__cycles_active.avg; do
  b=${m%%.*}; grep -qE "^\s*$b(\s|$)" $W/query-metrics.txt && LIST="$LIST,$m"
done
LIST=${LIST#,}; echo "metrics: $LIST"
SECS="--section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis"
prof() { # tag bin skip count timeout args
  local tag=$1 bin=$2 skip=$3 cnt=$4 to=$5; shift 5
  SHOAL_CUDA_GRAPH=0 timeout $to $NCU --clock-control none --cache-control none -k regex:gemm --launch-skip $skip \
    --launch-count $cnt $SECS ${LIST:+--metrics $LIST} --csv --page raw .e2e-gemm/$bin/shoal bench "$@" --quiet \
    > $W/ncu-$tag.csv 2> $W/ncu-$tag.err
  echo "== ncu $tag rc=$? rows=$(wc -l < $W/ncu-$tag.csv)"; el; pack
}
prof base-8x16 base $((26*121)) 242 100 $B8 --tokens 40
prof base-1x64 base $((12*121)) 121 50 $B64 --tokens 24
SECS="" prof a-8x16 a $((26*121)) 121 30 $B8 --tokens 40
el; pack

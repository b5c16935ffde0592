#!/bin/bash
# On the GPU machine: end-to-end checks and benchmarks of the whole engine on
# CUDA, from binaries in .e2e/bin (built there by bench/gpu/build.sh, or carried)
# with the libcjson1 .deb and a copy of the PyTorch peer script in .e2e/.
#
#   bash bench/gpu/e2e.sh MODE [MODE ...]
#     check     reference fixtures through --device cuda, op conformance, memcheck and racecheck (--quick)
#     single    issue 4 workloads: one model, 1/16/64 sequences, with peers
#     cluster   issue 5 workload: 8 models x 16 sequences, fused vs unfused, peers
#     quick     the single and cluster workloads without peers (graphs on; some also off: SHOAL_CUDA_GRAPH=0)
#     profile   ncu per-kernel times of two decode steps (graphs off), smollm-135m 1/16/64, gpt2-124m 64
#     profile64 the same with warm caches, smollm-135m and gpt2-124m at 64 sequences
#     fusion    fused norm/act/RoPE vs separate ops (and vs binaries in $E2E_OLD), decode tok/s
#     epi       the FFN activation as the up GEMM's epilogue vs before (SHOAL_FUSE_EPI=0), decode tok/s, twice
#     stream    weight streaming alone through cp.async rings vs register batches (bench_cuda_stream)
#     wgmma     prototype warpgroup GEMM fed by tensor copies: host-checked, then timed (bench_cuda_wgmma)
#     cublas1   one model's decode GEMMs: shoal vs cuBLAS on exact three-term / bf16 activations
#     wgcheck   the streamed GEMM's tensor-copy form: test_cuda_ops, then model tests with it forced
#     tma       decode tok/s with the tensor-copy form (SHOAL_CUDA_GEMM_RING=3) vs the default, 8x16, 1x16
#     gemmdec   the decode step's GEMM shapes alone (bench_cuda_gemm --decode): tiles vs ring vs tensor-copy forms
#     tmxcheck  the tensor-copy forms by default: test_cuda_ops, then model tests with SHOAL_CUDA_GEMM_TMX=1 and 2
#     models    test_reference, test_fused_ops, test_sched_fixtures through --device cuda
#     sweep     decode tok/s of the six workloads for each value of \$SWEEP_VAR in \$SWEEP_VALS, twice
#     deepcheck the deep tensor-copy form (M <= 16): test_cuda_ops, then model tests with SHOAL_CUDA_GEMM_DEEP=1 and 2
#     deep      decode tok/s with SHOAL_CUDA_GEMM_DEEP=0 / 1 / 2, 8x16, 4x16, 1x16, gpt2 8x16, twice
#     tmx       decode tok/s with SHOAL_CUDA_GEMM_TMX=0 / 1 / 2, 1x64, 8x16, 1x16 workloads, twice
#     ringsrc   ncu stall reasons (per SASS instruction) of four streamed-GEMM launches (per-warp, warpgroup form)
#     phases    kernels built with -DSH_CU_PHASES=100 (/tmp/phases-build): per-phase clocks of instrumented kernels at
#               position 100 of SmolLM 1 x 1 (\$PHASES_ARGS: other bench arguments); attn_dec runs every
#               launch twice there, so each layer prints a cold line, then one with its code cached
#     ktrace    CUPTI timeline of replayed decode steps: per kernel, duration and start-to-next-start gap
#     gemmsrc1  ncu stall samples per SASS instruction of SmolLM 1 x 1 decode GEMMs (\$NCU_K_REGEX: other kernels)
#     ring      the streamed GEMM (weights through shared-memory stages) off / default launches / always
#     attndec   attention with every key in shared memory: off / small launches / whenever it fits
#     norm      norms as the row norms of the o / down GEMMs (SHOAL_CUDA_GEMM_NORM=1) vs their own calls, twice
#     tiles     GEMM tensor-core tile sweep: decode tok/s and warm-cache ncu GEMM times per tile
# Logs and JSON are packed into $OUT/e2e-<modes>.tgz (the device returns at
# most 8 files); a summary is printed last.
set -u
OUT=${OUT:-/tmp/out}
W=/tmp/e2e-work
mkdir -p "$OUT" "$W" /tmp/x
for f in .e2e/*.deb; do dpkg -x "$f" /tmp/x; done
export LD_LIBRARY_PATH=/tmp/x/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
B=${E2E_BIN:-.e2e/bin} # E2E_BIN: another set of binaries
export SHOAL_CUDA_GRAPH_STATS=1 # step graph counts and host/device time per step, printed at exit
PEER=.e2e/torch_decode.py
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
nvidia-smi --query-gpu=name,pci.bus_id,driver_version,memory.total,clocks.max.sm --format=csv,noheader > "$W/gpu.txt" 2>&1
echo "GPU: $(cat "$W/gpu.txt")"

bench() { # name, args...
  local name=$1; shift
  timeout ${BENCH_TIMEOUT:-240} $B/shoal bench "$@" --device cuda --quiet --json "$W/$name.json" > "$W/$name.log" 2>&1
  echo "== $name (rc=$?)"; grep -vE "^\s*$" "$W/$name.log" | grep -E "${BENCH_GREP:-.}" | tail -${BENCH_LINES:-14}
}
peer() { # name kind shape models seqs
  local name=$1 kind=$2 shape=$3 models=$4 seqs=$5
  timeout ${PEER_TIMEOUT:-240} python3 $PEER --peer $kind --shape $shape --models $models --seqs $seqs \
    --prompt 64 --tokens 128 --dtype bf16 > "$W/$name.peer.json" 2> "$W/$name.peer.err"
  echo "== peer $name: $(tail -1 "$W/$name.peer.json")"
}
# One switch over the six decode workloads, twice: decode tok/s and launches per value of the
# environment variable. name prefix, variable, values
sweep() {
  local pre=$1 var=$2 vals=$3 rep w v shape models seqs
  for rep in 1 2; do
    for w in "smollm-135m 1 1" "smollm-135m 1 16" "smollm-135m 1 64" "smollm-135m 8 16" "gpt2-124m 1 1" "gpt2-124m 1 64"; do
      read -r shape models seqs <<< "$w"
      for v in $vals; do
        (export "$var=$v"; BENCH_GREP="decode:|launches" BENCH_LINES=2 bench "$pre$v-r$rep-$shape-${models}x$seqs" \
          --synthetic $shape --models $models --seqs $seqs --prompt 64 --tokens 128 --dtype bf16)
      done
    done
  done
}
# test_cuda_ops, then the model-level tests with a GEMM form's variable at 1 (by size) and 2 (forced): variable, tag
formcheck() {
  local var=$1 tag=$2 t v
  SHOAL_FIXTURES=$PWD/tests/fixtures timeout 300 $B/test_cuda_ops > "$W/cuda_ops.log" 2>&1
  echo "== test_cuda_ops (rc=$?)"; grep -E "^FAIL|passed|largest|suite" "$W/cuda_ops.log" | head -24
  for t in test_reference test_fused_ops test_sched_fixtures; do
    for v in 1 2; do
      env "$var=$v" SHOAL_FIXTURES=$PWD/tests/fixtures SHOAL_TEST_DEVICE=cuda timeout 180 $B/$t > "$W/$t-$tag$v.log" 2>&1
      echo "== $t --device cuda, $var=$v (rc=$?)"; grep -E "FAIL|passed" "$W/$t-$tag$v.log" | head -10
    done
  done
}
# ncu over decode steps: name, launches per step, bench args...
prof() {
  local name=$1 L=$2; shift 2
  SHOAL_CUDA_GRAPH=0 timeout ${NCU_TIMEOUT:-200} $NCU --clock-control none --cache-control ${NCU_CACHE:-all} \
    ${NCU_K:-} --launch-skip $((${NCU_SKIP_STEPS:-12} * L)) --launch-count $((2 * L)) --metrics gpu__time_duration.sum,launch__grid_size${NCU_METRICS:+,$NCU_METRICS} --csv \
    $B/shoal bench "$@" --device cuda --quiet > "$W/ncu-$name.csv" 2> "$W/ncu-$name.err"
  echo "== ncu $name (rc=$?): $(grep -c gpu__time_duration "$W/ncu-$name.csv") kernels"
  python3 - "$W/ncu-$name.csv" <<'EOF'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
if not rows: sys.exit()
h = rows[0]; ki, mi, vi, ii = h.index("Kernel Name"), h.index("Metric Name"), h.index("Metric Value"), h.index("ID")
k = {}
for r in rows[1:]:
    d = k.setdefault(r[ii], {"name": r[ki]})
    d[r[mi]] = float(r[vi].replace(",", ""))
t = collections.defaultdict(lambda: [0, 0.0])
for d in k.values():
    n = d["name"].split("(")[0].replace("(anonymous namespace)::", "")
    key = "%s grid=%d" % (n, d.get("launch__grid_size", 0))
    t[key][0] += 1; t[key][1] += d.get("gpu__time_duration.sum", 0)
    for m, v in d.items():
        if m not in ("name", "gpu__time_duration.sum", "launch__grid_size"): t[key].append((m, v))
tot = sum(v[1] for v in t.values())
print("   total %.1f us over %d kernels (2 steps)" % (tot / 1e3, len(k)))
for key, v in sorted(t.items(), key=lambda x: -x[1][1])[:12]:
    print("   %6.1f%% %8.1f us %4d x %6.2f us  %s" % (100 * v[1] / tot, v[1] / 1e3, v[0], v[1] / v[0] / 1e3, key))
    ex = collections.defaultdict(list)
    for m, x in v[2:]: ex[m].append(x)
    if ex: print("          " + "  ".join("%s=%.3g" % (m.split("__")[-1], sum(x) / len(x)) for m, x in sorted(ex.items())))
EOF
}

for mode in "$@"; do
case "$mode" in
check)
  SHOAL_FIXTURES=$PWD/tests/fixtures SHOAL_TEST_DEVICE=cuda timeout 180 $B/test_reference > "$W/ref_cuda.log" 2>&1
  echo "== test_reference --device cuda (rc=$?)"; grep -E "FAIL|passed" "$W/ref_cuda.log" | head -20
  if [ -x $B/test_sched_fixtures ]; then
    SHOAL_FIXTURES=$PWD/tests/fixtures SHOAL_TEST_DEVICE=cuda timeout 180 $B/test_sched_fixtures > "$W/sched_fixtures_cuda.log" 2>&1
    echo "== test_sched_fixtures --device cuda (rc=$?)"; grep -E "FAIL|passed|steps" "$W/sched_fixtures_cuda.log" | head -20
  fi
  SHOAL_FIXTURES=$PWD/tests/fixtures timeout 240 $B/test_cuda_ops > "$W/cuda_ops.log" 2>&1
  echo "== test_cuda_ops (rc=$?)"; grep -E "^FAIL|passed|bandwidth|graph \(|largest" "$W/cuda_ops.log" | head -24
  SHOAL_FIXTURES=$PWD/tests/fixtures timeout 240 "$CS" --tool memcheck --leak-check full --report-api-errors no \
    --error-exitcode 9 $B/test_cuda_ops --quick > "$W/memcheck.log" 2>&1
  echo "== memcheck test_cuda_ops --quick (rc=$?)"; grep -m 12 -E "Invalid|ERROR SUMMARY|passed" "$W/memcheck.log"
  SHOAL_FIXTURES=$PWD/tests/fixtures timeout 240 "$CS" --tool racecheck --racecheck-report all --error-exitcode 9 \
    $B/test_cuda_ops --quick > "$W/racecheck.log" 2>&1
  echo "== racecheck test_cuda_ops --quick (rc=$?)"; grep -m 12 -E "RACECHECK SUMMARY|hazard|passed" "$W/racecheck.log"
  if [ -x $B/test_fused_ops ]; then
    SHOAL_FIXTURES=$PWD/tests/fixtures SHOAL_TEST_DEVICE=cuda timeout 180 $B/test_fused_ops > "$W/fused_ops_cuda.log" 2>&1
    echo "== test_fused_ops --device cuda (rc=$?)"; grep -E "FAIL|passed" "$W/fused_ops_cuda.log" | head -10
    # the GEMM x transforms at every row count (off by default on CUDA)
    SHOAL_CUDA_XF_ROWS=100000 SHOAL_FIXTURES=$PWD/tests/fixtures SHOAL_TEST_DEVICE=cuda timeout 180 $B/test_fused_ops \
      > "$W/fused_ops_cuda_xf.log" 2>&1
    echo "== test_fused_ops --device cuda, x transforms on (rc=$?)"; grep -E "FAIL|passed" "$W/fused_ops_cuda_xf.log" | head -10
    # the GEMM row norms (off by default on CUDA)
    SHOAL_CUDA_GEMM_NORM=1 SHOAL_FIXTURES=$PWD/tests/fixtures SHOAL_TEST_DEVICE=cuda timeout 180 $B/test_fused_ops \
      > "$W/fused_ops_cuda_norm.log" 2>&1
    echo "== test_fused_ops --device cuda, row norms on (rc=$?)"; grep -E "FAIL|passed" "$W/fused_ops_cuda_norm.log" | head -10
  fi
  for t in test_sample_ops test_sched_sample; do
    if [ -x $B/$t ]; then
      SHOAL_FIXTURES=$PWD/tests/fixtures SHOAL_TEST_DEVICE=cuda timeout 180 $B/$t > "$W/$t.log" 2>&1
      echo "== $t --device cuda (rc=$?)"; grep -E "FAIL|passed|us " "$W/$t.log" | head -16
    fi
  done
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
quick)
  qb() { # graphs shape models seqs
    SHOAL_CUDA_GRAPH_STATS=1 SHOAL_CUDA_GRAPH=$1 BENCH_GREP="decode|bandwidth|rror|graphs" \
      bench "$2-$3x$4-graph$1" --synthetic $2 --models $3 --seqs $4 --prompt 64 --tokens 128 --dtype bf16
  }
  for shape in smollm-135m gpt2-124m; do for s in 1 16 64; do qb 1 $shape 1 $s; done; done
  qb 0 smollm-135m 1 1; qb 0 smollm-135m 1 64
  qb 1 smollm-135m 8 16
  ;;
fusion)
  # fused forms (default: RoPE in kv_write always, GEMM x transforms at 1 row per group),
  # every op separate (SHOAL_FUSE_OPS=0), and x transforms at every row count
  # (SHOAL_CUDA_XF_ROWS=64); with $E2E_OLD, binaries without the fused forms too
  fb() { # label fuse xf_rows shape models seqs
    local label=$1 fuse=$2 xr=$3 shape=$4 models=$5 seqs=$6
    SHOAL_FUSE_OPS=$fuse SHOAL_CUDA_XF_ROWS=$xr BENCH_GREP="decode|launches" bench "$label-$shape-${models}x$seqs" \
      --synthetic $shape --models $models --seqs $seqs --prompt 64 --tokens 128 --dtype bf16
  }
  works=("smollm-135m 1 1" "smollm-135m 1 64" "smollm-135m 8 16" "gpt2-124m 1 1" "gpt2-124m 1 64")
  for w in "${works[@]}"; do
    read -r shape models seqs <<< "$w"
    fb fused 1 1 $shape $models $seqs
    fb separate 0 1 $shape $models $seqs
    fb xf64 1 64 $shape $models $seqs
    if [ -n "${E2E_OLD:-}" ]; then B0=$B; B=$E2E_OLD; fb old 1 1 $shape $models $seqs; B=$B0; fi
  done
  ;;
epi)
  sweep epi SHOAL_FUSE_EPI "1 0"
  ;;
norm)
  # each norm as the row norm of the GEMM before it (SHOAL_CUDA_GEMM_NORM=1) vs its own call
  sweep norm SHOAL_CUDA_GEMM_NORM "1 0"
  ;;
stream)
  # weight streaming alone (no tensor-core work): ring depths, blocks per SM, access patterns
  timeout 300 $B/bench_cuda_stream > "$W/stream.log" 2>&1; echo "== bench_cuda_stream (rc=$?)"; cat "$W/stream.log"
  ;;
wgcheck)
  # the tensor-copy form of the streamed GEMM: conformance (test_cuda_ops has a forced section), then the
  # model-level tests with it forced onto every eligible GEMM (SHOAL_CUDA_GEMM_RING=4)
  SHOAL_FIXTURES=$PWD/tests/fixtures timeout 300 $B/test_cuda_ops > "$W/cuda_ops.log" 2>&1
  echo "== test_cuda_ops (rc=$?)"; grep -E "^FAIL|passed|largest|suite" "$W/cuda_ops.log" | head -24
  for t in test_reference test_fused_ops test_sched_fixtures; do
    SHOAL_CUDA_GEMM_RING=4 SHOAL_FIXTURES=$PWD/tests/fixtures SHOAL_TEST_DEVICE=cuda timeout 180 $B/$t > "$W/$t-wg.log" 2>&1
    echo "== $t --device cuda, tensor-copy form forced (rc=$?)"; grep -E "FAIL|passed" "$W/$t-wg.log" | head -10
  done
  ;;
tmxcheck)
  # the tensor-copy forms by default (M > 16: streamed terms): conformance (test_cuda_ops has a forced section),
  # then the model-level tests with the default rules and with the form forced
  formcheck SHOAL_CUDA_GEMM_TMX tmx
  ;;
models)
  # the model-level tests through --device cuda with the default rules
  for t in test_reference test_fused_ops test_sched_fixtures; do
    SHOAL_FIXTURES=$PWD/tests/fixtures SHOAL_TEST_DEVICE=cuda timeout 180 $B/$t > "$W/$t.log" 2>&1
    echo "== $t --device cuda (rc=$?)"; grep -E "FAIL|passed" "$W/$t.log" | head -10
  done
  ;;
sweep)
  # one environment variable over the six decode workloads, twice: SWEEP_VAR, SWEEP_VALS
  sweep "$SWEEP_VAR-" "$SWEEP_VAR" "$SWEEP_VALS"
  ;;
deepcheck)
  # the deep tensor-copy form (M <= 16, one block per SM): conformance (test_cuda_ops has a forced section),
  # then the model-level tests with the form by size and forced
  formcheck SHOAL_CUDA_GEMM_DEEP deep
  ;;
deep)
  # decode tok/s with the deep tensor-copy form off (SHOAL_CUDA_GEMM_DEEP=0, the default), by launch (1), forced (2); twice
  for rep in 1 2; do
    for w in "smollm-135m 8 16" "smollm-135m 4 16" "smollm-135m 1 16" "gpt2-124m 8 16"; do
      read -r shape models seqs <<< "$w"
      for v in 0 1 2; do
        (export SHOAL_CUDA_GEMM_DEEP=$v; BENCH_GREP="decode:" BENCH_LINES=1 bench "deep$v-$shape-${models}x$seqs-r$rep" \
          --synthetic $shape --models $models --seqs $seqs --prompt 64 --tokens 128 --dtype bf16)
      done
    done
  done
  ;;
tmx)
  # decode tok/s with the tensor-copy forms off (SHOAL_CUDA_GEMM_TMX=0: the session-6 rules), by launch (1, default),
  # forced at M > 16 (2); twice
  for rep in 1 2; do
    for w in "smollm-135m 1 64" "gpt2-124m 1 64" "smollm-135m 8 16" "smollm-135m 1 16" "gpt2-124m 1 16"; do
      read -r shape models seqs <<< "$w"
      for v in 0 1 2; do
        (export SHOAL_CUDA_GEMM_TMX=$v; BENCH_GREP="decode:" BENCH_LINES=1 bench "tmx$v-$shape-${models}x$seqs-r$rep" \
          --synthetic $shape --models $models --seqs $seqs --prompt 64 --tokens 128 --dtype bf16)
      done
    done
  done
  ;;
gemmdec)
  # the decode step's GEMM shapes alone, 32 launches per step: tile kernels vs the streamed GEMM and its tensor-copy form
  timeout 400 $B/bench_cuda_gemm --decode > "$W/gemmdec.log" 2>&1; echo "== bench_cuda_gemm --decode (rc=$?)"; cat "$W/gemmdec.log"
  ;;
ringsrc)
  # ncu of the streamed-GEMM launches of bench_cuda_gemm --profile (the last four: 8 x 1536 x 576 and
  # 8 x 49152 x 576 at 16 rows, per-warp then warpgroup form): stall reasons, per instruction
  timeout 300 $NCU --clock-control none -k "regex:gemm_(ring|wg)" --launch-skip 2 --launch-count 4 --section SpeedOfLight --section WarpStateStats \
    --section SourceCounters --section SchedulerStats --section MemoryWorkloadAnalysis --section Occupancy \
    --section LaunchStats --import-source no -f -o "$W/ring" $B/bench_cuda_gemm --profile > "$W/ringsrc-run.log" 2>&1
  echo "== ncu ring (rc=$?)"; tail -3 "$W/ringsrc-run.log"
  $NCU -i "$W/ring.ncu-rep" --page details --csv > "$W/ring-details.csv" 2>&1
  $NCU -i "$W/ring.ncu-rep" --page source --csv --print-source sass > "$W/ring-source.csv" 2>&1
  echo "details $(wc -l < "$W/ring-details.csv") lines, source $(wc -l < "$W/ring-source.csv") lines"
  grep -iE "Duration|Stall|Warp Cycles|Issued Ipc|Memory Throughput|DRAM Throughput|Achieved Occupancy|Registers" "$W/ring-details.csv" | cut -c1-220 | head -60
  ;;
phases)
  PB=/tmp/phases-build
  command -v pkg-config > /dev/null || ln -sf /tmp/x/usr/bin/pkgconf /tmp/x/usr/bin/pkg-config
  PATH=/tmp/x/usr/bin:$PATH PKG_CONFIG_PATH=/tmp/x/usr/lib/x86_64-linux-gnu/pkgconfig PKG_CONFIG_SYSROOT_DIR=/tmp/x \
    cmake -S . -B $PB -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_FLAGS="${PHASES_FLAGS:--DSH_CU_PHASES=100}" > "$W/phases-cmake.log" 2>&1 &&
    cmake --build $PB -j"$(nproc)" --target shoal-cli > "$W/phases-build.log" 2>&1
  echo "== phases build (rc=$?)"
  timeout 120 $PB/shoal bench ${PHASES_ARGS:---synthetic smollm-135m --models 1 --seqs 1 --prompt 64 --tokens 64 --dtype bf16} \
    --device cuda --quiet > "$W/phases.log" 2>&1
  echo "== phases run (rc=$?)"; grep -E "^phases|decode:" "$W/phases.log" | head -${PHASES_LINES:-40}
  ;;
ktrace)
  # kernels as they run in replayed step graphs (PDL overlap included), through CUPTI (bench/gpu/ktrace.c, built
  # into .e2e/ktrace.so with libcupti.so.13 beside it): SmolLM 1 x 1 and 8 x 16, or $KTRACE_ARGS / $KTRACE_ARGS2
  for w in "${KTRACE_ARGS:-smollm-135m 1 1}" "${KTRACE_ARGS2:-smollm-135m 8 16}"; do
    read -r shape models seqs <<< "$w"
    n=ktrace-$shape-${models}x$seqs
    KTRACE_OUT="$W/$n.csv" LD_PRELOAD=$PWD/.e2e/ktrace.so LD_LIBRARY_PATH=$PWD/.e2e:$LD_LIBRARY_PATH timeout 300 \
      $B/shoal bench --synthetic $shape --models $models --seqs $seqs --prompt 64 --tokens 128 --dtype bf16 \
      --device cuda --quiet > "$W/$n-run.log" 2>&1
    echo "== $n (rc=$?): $(grep -E 'decode:' "$W/$n-run.log" | head -1) $(wc -l < "$W/$n.csv") kernels traced"
    grep -i ktrace "$W/$n-run.log"
    python3 bench/gpu/ktrace_steps.py "$W/$n.csv" | head -${KTRACE_LINES:-24}
  done
  ;;
gemmsrc1)
  # one-sequence decode launches (graphs off) of the kernels matching $NCU_K_REGEX (default the tile GEMM):
  # duration per launch, then the SASS instructions with the most stall samples and their reasons
  # ($NCU_BENCH: "shape models seqs" instead of "smollm-135m 1 1"; $NCU_EXTRA: more ncu flags,
  # e.g. --sampling-interval 0 for more stall samples from short kernels)
  read -r nshape nmodels nseqs <<< "${NCU_BENCH:-smollm-135m 1 1}"
  SHOAL_CUDA_GRAPH=0 timeout 300 $NCU --clock-control none -k "regex:${NCU_K_REGEX:-gemm_kernel}" --launch-skip ${NCU_SKIP:-2000} \
    --launch-count ${NCU_COUNT:-8} --section SpeedOfLight --section WarpStateStats --section SourceCounters --import-source no \
    ${NCU_EXTRA:-} -f -o "$W/g1" $B/shoal bench --synthetic $nshape --models $nmodels --seqs $nseqs --prompt 64 --tokens 128 \
    --dtype bf16 --device cuda --quiet > "$W/gemmsrc1-run.log" 2>&1
  echo "== ncu gemmsrc1 (rc=$?)"; tail -2 "$W/gemmsrc1-run.log"
  $NCU -i "$W/g1.ncu-rep" --page details --csv > "$W/g1-details.csv" 2>&1
  $NCU -i "$W/g1.ncu-rep" --page source --csv --print-source sass > "$W/g1-source.csv" 2>&1
  grep -E '"Duration"|"Warp Cycles Per Issued' "$W/g1-details.csv" | awk -F'","' '{print $5, $(NF-2), $NF}' | cut -c1-160
  python3 bench/gpu/stalls.py "$W/g1-source.csv"
  ;;
wgmma)
  # prototype: the warpgroup GEMM fed by tensor copies (checked against a host reference, then timed)
  timeout 400 $B/bench_cuda_wgmma > "$W/wgmma.log" 2>&1; echo "== bench_cuda_wgmma (rc=$?)"; cat "$W/wgmma.log"
  ;;
cublas1)
  # one model's decode GEMMs: shoal vs cuBLAS on the exact three-term activations and on bf16 ones
  timeout 300 $B/bench_cublas_gemm --single > "$W/cublas1.log" 2>&1; echo "== bench_cublas_gemm --single (rc=$?)"; cat "$W/cublas1.log"
  ;;
tma)
  # the streamed GEMM's tensor-copy form (SHOAL_CUDA_GEMM_RING=3) against the default (1), decode tok/s, once
  for w in "smollm-135m 8 16" "smollm-135m 1 16" "gpt2-124m 1 16"; do
    read -r shape models seqs <<< "$w"
    for v in 1 3; do
      (export SHOAL_CUDA_GEMM_RING=$v; BENCH_GREP="decode:|launches" BENCH_LINES=2 bench "tma$v-$shape-${models}x$seqs" \
        --synthetic $shape --models $models --seqs $seqs --prompt 64 --tokens 128 --dtype bf16)
    done
  done
  ;;
ring)
  # the streamed GEMM: never (0), launches of a 32-row tile per SM (1, the default), whenever eligible (2);
  # 3 and 4: 1 and 2 with the warpgroup form (RING_VALS="1 3")
  sweep ring SHOAL_CUDA_GEMM_RING "${RING_VALS:-0 1 2}"
  ;;
attndec)
  # attention with every key in shared memory: never (0), a (row, KV head) per SM (1), whenever it fits (2, the default)
  sweep dec SHOAL_CUDA_ATTN_DEC "0 1 2"
  ;;
attnsplit)
  # split attention: blocks per SM a launch may grow to (0: no split), decode tok/s
  for a in 0 4 8 16; do
    for w in "smollm-135m 8 16" "smollm-135m 1 64" "smollm-135m 1 16" "smollm-135m 1 1"; do
      read -r shape models seqs <<< "$w"
      SHOAL_CUDA_ATTN_SPLIT=$a BENCH_GREP="decode:" bench "split$a-$shape-${models}x$seqs" --synthetic $shape \
        --models $models --seqs $seqs --prompt 64 --tokens 128 --dtype bf16
    done
  done
  ;;
tiles)
  # GEMM tensor-core tile sweep (SHOAL_CUDA_MMA_TILE; -1 = the automatic choice): decode tok/s, then
  # ncu per-kernel GEMM times with warm caches (smollm 1x64, 1x16)
  for t in -1 0 1 2 3 4; do
    for w in "smollm-135m 1 16" "smollm-135m 1 64" "gpt2-124m 1 64" "smollm-135m 8 16"; do
      read -r shape models seqs <<< "$w"
      SHOAL_CUDA_MMA_TILE=$t BENCH_GREP="decode:" bench "tile$t-$shape-${models}x$seqs" --synthetic $shape \
        --models $models --seqs $seqs --prompt 64 --tokens 128 --dtype bf16
    done
  done
  for t in -1 0 1 2 3 4; do
    for s in 16 64; do
      SHOAL_CUDA_MMA_TILE=$t NCU_CACHE=none NCU_K="-k regex:gemm" prof tile$t-gemm-smollm-1x$s 121 \
        --synthetic smollm-135m --models 1 --seqs $s --prompt 64 --tokens 24 --dtype bf16
    done
  done
  ;;
profile-cluster)
  # 8 models x 16 sequences: skip the prefill steps (128 x 64 prompt rows in
  # 512-row steps) and a few decode steps, then two decode steps
  NCU_SKIP_STEPS=${NCU_SKIP_STEPS:-26} prof smollm-8x16 ${L_SMOLLM:-214} --synthetic smollm-135m --models 8 --seqs 16 --prompt 64 --tokens ${NCU_TOKENS:-40} --dtype bf16
  ;;
profile1)
  # one sequence, warm caches: where a launch-bound step's time goes
  NCU_CACHE=none prof smollm-1x1 ${L_SMOLLM:-214} --synthetic smollm-135m --models 1 --seqs 1 --prompt 64 --tokens 24 --dtype bf16
  NCU_CACHE=none prof gpt2-1x1 ${L_GPT2:-101} --synthetic gpt2-124m --models 1 --seqs 1 --prompt 64 --tokens 24 --dtype bf16
  ;;
profile64)
  # 64 sequences of one model, warm caches (weights of the previous step's kernels may sit in L2, as in a step)
  NCU_CACHE=none prof smollm-1x64 ${L_SMOLLM:-214} --synthetic smollm-135m --models 1 --seqs 64 --prompt 64 --tokens ${NCU_TOKENS:-24} --dtype bf16
  NCU_CACHE=none prof gpt2-1x64 ${L_GPT2:-101} --synthetic gpt2-124m --models 1 --seqs 64 --prompt 64 --tokens ${NCU_TOKENS:-24} --dtype bf16
  ;;
profile)
  for s in 1 16 64; do
    prof smollm-1x$s ${L_SMOLLM:-214} --synthetic smollm-135m --models 1 --seqs $s --prompt 64 --tokens 24 --dtype bf16
  done
  prof gpt2-1x64 ${L_GPT2:-101} --synthetic gpt2-124m --models 1 --seqs 64 --prompt 64 --tokens 24 --dtype bf16
  ;;
*) echo "unknown mode $mode" ;;
esac
# packed after every mode, so a run cut short still returns what it did
tar czf "$OUT/e2e-$(echo "$*" | tr ' ' '-').tgz" -C "$W" .
done

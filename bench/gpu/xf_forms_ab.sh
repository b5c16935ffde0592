#!/bin/bash
# On the GPU machine, after bench/gpu/build.sh /tmp/sbin: the RMS transform
# inside each streamed GEMM form vs as a norm launch apart (session 14;
# bench/NOTES.md), same binary, through wrapper scripts:
#   bash bench/gpu/xf_forms_ab.sh
mk() { mkdir -p /tmp/$1; printf '#!/bin/sh\n%s exec /tmp/sbin/shoal "$@"\n' "$2" > /tmp/$1/shoal; chmod +x /tmp/$1/shoal; }
mk ap "SHOAL_CUDA_XF_ROWS=64 SHOAL_CUDA_XF_FORMS=0"
mk tma "SHOAL_CUDA_XF_ROWS=64 SHOAL_CUDA_XF_FORMS=2"
mk ring "SHOAL_CUDA_XF_ROWS=64 SHOAL_CUDA_XF_FORMS=1"
mk tmx "SHOAL_CUDA_XF_ROWS=64 SHOAL_CUDA_XF_FORMS=4"
echo "== tensor-copy form: apart (A) vs inside (B)"; AB_A=/tmp/ap AB_B=/tmp/tma AB_REPS=3 bash bench/gpu/ab.sh "smollm-135m 8 16"
echo "== per-warp ring: apart (A) vs inside (B)"; AB_A=/tmp/ap AB_B=/tmp/ring AB_REPS=3 bash bench/gpu/ab.sh "smollm-135m 8 16"
echo "== streamed terms: apart (A) vs inside (B)"; AB_A=/tmp/ap AB_B=/tmp/tmx AB_REPS=3 bash bench/gpu/ab.sh "smollm-135m 1 64"

#!/bin/bash
# Decode tok/s of two sets of binaries on the same workloads, interleaved
# (A B A B ...) so drift hits both alike; one line per run, medians last.
#   AB_A=/tmp/sbin AB_B=/tmp/obin AB_REPS=2 bash bench/gpu/ab.sh "smollm-135m 1 1" "smollm-135m 8 16" ...
# Each workload is "SHAPE MODELS SEQS" (prompt 64, 128 new tokens, bf16).
set -u
A=${AB_A:?} B=${AB_B:?} REPS=${AB_REPS:-2}
for f in .e2e/*.deb; do dpkg -x "$f" /tmp/x 2>/dev/null; done
export LD_LIBRARY_PATH=/tmp/x/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
R=$(mktemp)
for w in "$@"; do
  read -r shape models seqs <<< "$w"
  for rep in $(seq "$REPS"); do
    for side in A B; do
      bin=$A; [ $side = B ] && bin=$B
      t=$(timeout 240 "$bin/shoal" bench --synthetic "$shape" --models "$models" --seqs "$seqs" --prompt 64 --tokens 128 \
        --dtype bf16 --device cuda --quiet 2>&1 | awk '/decode:/{print $2}')
      echo "$shape ${models}x$seqs $side rep $rep: ${t:-failed} tok/s"
      echo "$shape ${models}x$seqs $side ${t:-0}" >> "$R"
    done
  done
done
echo "medians (A = $A, B = $B):"
python3 - "$R" <<'PY'
import sys, statistics, collections
v = collections.defaultdict(list)
for l in open(sys.argv[1]):
    s, w, side, t = l.split()
    v[(s, w)].append((side, float(t)))
for k, xs in v.items():
    a = statistics.median([t for s, t in xs if s == "A"]); b = statistics.median([t for s, t in xs if s == "B"])
    print("  %-12s %-6s A %9.1f  B %9.1f  A/B %.3f" % (k[0], k[1], a, b, a / b if b else 0))
PY
rm -f "$R"

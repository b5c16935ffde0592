"""Per-block phase clocks of one attn_dec launch, from a phases build with -DSH_CU_PHASES_LAUNCH.

    python3 bench/gpu/phases_launch.py phases.log

With -DSH_CU_PHASES=POS -DSH_CU_PHASES_LAUNCH -DSH_CU_PHASES_EVERY=1 every block of the layer-2
attention launch whose first group sits at position POS prints its SM, its start (%globaltimer, ns)
and its seven phases (bench/gpu/e2e.sh phases; each launch runs twice in such a build). For each
launch: how many blocks started before the previous kernel finished (they waited in phase 1), when
the others started, the median phases and the work after the wait.
"""
import collections
import re
import statistics as st
import sys

rows = []
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"phases attn_dec block (\d+) sm (\d+) t0 (\d+) arg (\d+): (.*) ns", line)
    if m:
        rows.append((int(m.group(3)), int(m.group(1)), int(m.group(2)), int(m.group(4)),
                     [float(x) for x in m.group(5).split()]))
rows.sort()
launches, cur, seen = [], [], set()
for r in rows:  # a launch's blocks appear once each; a repeated block starts the next launch
    if r[1] in seen:
        launches.append(cur)
        cur, seen = [], set()
    cur.append(r)
    seen.add(r[1])
if cur:
    launches.append(cur)
for L in launches:
    t0 = min(r[0] for r in L)
    waited = [r for r in L if r[4][1] > 10]
    release = min((r[0] - t0 + r[4][0] + r[4][1] for r in waited), default=-1)
    print("launch: %d blocks on %d SMs; %d started before the wait was over (released at %.1f us); last end %.1f us"
          % (len(L), len(set(r[2] for r in L)), len(waited), release / 1e3,
             max(r[0] - t0 + sum(r[4]) for r in L) / 1e3))
    h = collections.Counter(int((r[0] - t0) / 2000) for r in L)
    print("  starts per 2 us:", [h[i] for i in range(min(max(h) + 1, 40))])
    print("  median phases (ns):", [round(st.median(r[4][i] for r in L)) for i in range(7)],
          "keys", st.median(r[3] for r in L))
    print("  after the wait: median %.1f us" % (st.median(sum(r[4][2:]) for r in L) / 1e3))

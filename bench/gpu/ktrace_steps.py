"""Per-kernel time inside replayed decode steps, from bench/gpu/ktrace.c's CSV.

    python3 bench/gpu/ktrace_steps.py TRACE.csv

Takes the last third of the trace (decode steps, graphs replayed with PDL) and reports for every
kernel (name and grid) how many launches, the mean duration, the mean gap from its start to the
next kernel's start, and the mean gap from the previous kernel's end to its own end. Under PDL a
kernel starts early and waits, so durations and start gaps say little; the end-to-end gap is what
the kernel adds to the step's critical path (bench/NOTES.md, "Session 11").
"""
import collections
import csv
import sys


def main():
    rows = list(csv.DictReader(open(sys.argv[1], errors="replace")))
    if not rows:
        print("no rows")
        return
    ks = sorted(rows, key=lambda r: int(r["start"]))
    ks = ks[2 * len(ks) // 3:]
    stat = collections.defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    for prev, a, b in zip(ks, ks[1:], ks[2:]):
        n = a["name"].replace("(anonymous namespace)::", "")[:60] + " g%s" % a["grid"]
        s = stat[n]
        s[0] += 1
        s[1] += (int(a["end"]) - int(a["start"])) / 1e3
        s[2] += (int(b["start"]) - int(a["start"])) / 1e3
        s[3] += (int(a["end"]) - int(prev["end"])) / 1e3
    span = (int(ks[-1]["end"]) - int(ks[0]["end"])) / 1e3
    print("%d kernels over %.1f us (the trace's last third)" % (len(ks), span))
    print("%6s %9s %9s %9s %7s  %s" % ("count", "dur us", "start gap", "end gap", "share", "kernel"))
    for n, s in sorted(stat.items(), key=lambda x: -x[1][3]):
        print("%6d %9.2f %9.2f %9.2f %6.1f%%  %s" % (s[0], s[1] / s[0], s[2] / s[0], s[3] / s[0], 100 * s[3] / span, n))


try:
    main()
except BrokenPipeError:  # the reader (head) stopped early
    sys.stderr.close()

"""Per-kernel time inside replayed decode steps, from bench/gpu/ktrace.c's CSV.

    python3 bench/gpu/ktrace_steps.py TRACE.csv

Takes the last third of the trace (decode steps, graphs replayed with PDL), and for every kernel
name reports how many launches, the mean duration, and the mean gap from its start to the next
kernel's start (what the kernel adds to a step when kernels overlap through PDL).
"""
import collections
import csv
import sys


def main():
    rows = list(csv.DictReader(open(sys.argv[1], errors="replace")))
    if not rows:
        print("no rows")
        return
    for r in rows:
        r["dur"] = int(r["end"]) - int(r["start"])
    sk, dk, nk = "start", "dur", "name"
    ks = sorted(rows, key=lambda r: int(r[sk]))
    ks = ks[2 * len(ks) // 3:]
    stat = collections.defaultdict(lambda: [0, 0.0, 0.0])
    for a, b in zip(ks, ks[1:]):
        n = a[nk].replace("(anonymous namespace)::", "")[:60] + " g%s" % a["grid"]
        s = stat[n]
        s[0] += 1
        s[1] += int(a[dk]) / 1e3
        s[2] += (int(b[sk]) - int(a[sk])) / 1e3
    span = (int(ks[-1][sk]) - int(ks[0][sk])) / 1e3
    print("%d kernels over %.1f us (the trace's last third)" % (len(ks), span))
    print("%6s %9s %9s %7s  %s" % ("count", "dur us", "gap us", "share", "kernel"))
    for n, s in sorted(stat.items(), key=lambda x: -x[1][2]):
        print("%6d %9.2f %9.2f %6.1f%%  %s" % (s[0], s[1] / s[0], s[2] / s[0], 100 * s[2] / span, n))


main()

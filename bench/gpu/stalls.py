"""Top stalled SASS instructions per kernel from `ncu --page source --csv --print-source sass`.

    python3 bench/gpu/stalls.py SOURCE.csv [N]
"""
import csv
import sys


def main():
    rows = list(csv.reader(open(sys.argv[1], errors="replace")))
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 14
    blocks, cur = [], None
    for r in rows:  # each profiled kernel's instructions follow a header row starting with "Address"
        if r and r[0] == "Address":
            cur = {"h": r, "rows": []}
            blocks.append(cur)
        elif cur is not None and len(r) == len(cur["h"]):
            cur["rows"].append(r)
    for bi, b in enumerate(blocks):
        h = b["h"]
        si = [i for i, c in enumerate(h) if c.startswith("Warp Stall Sampling (All")]
        if not si:
            print("-- kernel %d: no stall sampling column (%s)" % (bi, ", ".join(h[:8])))
            continue
        si = si[0]
        src = h.index("Source") if "Source" in h else 1
        reasons = [i for i, c in enumerate(h) if c.startswith("stall_")]

        def num(x):
            try:
                return float(x.replace(",", ""))
            except ValueError:
                return 0.0

        tot = sum(num(r[si]) for r in b["rows"])
        print("-- kernel %d: %d instructions, %d stall samples" % (bi, len(b["rows"]), tot))
        for r in sorted(b["rows"], key=lambda r: -num(r[si]))[:top]:
            rs = sorted(((num(r[i]), h[i]) for i in reasons if num(r[i]) > 0), reverse=True)[:3]
            print("  %5.1f%% %s  %-60s [%s]" % (100 * num(r[si]) / max(tot, 1), r[0], r[src][:60],
                                                ", ".join("%s %g" % (n, x) for x, n in rs)))


main()

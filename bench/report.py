#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Print a kmmu bench results document as a table: each figure's median over
its repetitions, its spread, its ratio to the floor it is compared with, and
its ratio to KVM's figure for the same work where the document has one
(bench/kvm-compare writes those, with the params plus "mmu": "kvm").  A
figure whose spread (max - min over the median) is over 15% is marked "!"
and named at the end: it is not a figure to track yet.

    bench/report.py results.json
"""
import json
import statistics
import sys

# Parameters every figure of a bench shares are said once, in its heading.
SHOWN = ("vcpus", "fault_vcpus", "bytes_per_vcpu", "backing", "mode", "log", "manual_protect",
         "prefaulted", "nested", "ad", "pressure", "spp_pages", "mmu")
# The widest spread, in percent of the median, of a figure worth tracking.
SPREAD_LIMIT = 15.0
# Values not worth a word: the defaults of parameters added later.
QUIET = {"pressure": "none", "log": "bitmap"}


def size(n):
    for unit, shift in (("g", 30), ("m", 20), ("k", 10)):
        if n and n % (1 << shift) == 0:
            return "%d%s" % (n >> shift, unit)
    return str(n)


def describe(params):
    out = []
    for k in SHOWN:
        if k in params and QUIET.get(k) != params[k]:
            v = params[k]
            out.append("%s=%s" % (k, size(v) if k == "bytes_per_vcpu" else v))
    return " ".join(out)


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        doc = json.load(f)
    host, commit = doc["host"], doc["commit"]
    print("kmmu bench, commit %s%s on %s (%s, %d cores), backend %s, kernel %s"
          % (commit["sha"][:12], " (dirty)" if commit["dirty"] else "", host["name"],
             host["cpu_model"], host["cores"], host["backend"], host["kernel"]))
    floors = {(f["run"], f["metric"]): statistics.median(f["samples"]) for f in doc["floors"]}

    def key(r, params):
        return (r["run"], r["bench"], r["metric"], json.dumps(params, sort_keys=True))
    kvm = {}
    for r in doc["results"]:
        if r["params"].get("mmu") == "kvm":
            p = dict(r["params"])
            del p["mmu"]
            kvm[key(r, p)] = statistics.median(r["samples"])
    print()
    print("%-30s %12s %-9s %9s %8s %-10s %6s  %s" % ("figure", "median", "unit", "spread",
                                                       "x floor", "floor", "x KVM", "parameters"))
    wide = []
    for r in doc["results"]:
        med = statistics.median(r["samples"])
        spread = (max(r["samples"]) - min(r["samples"])) / med * 100 if med else 0
        floor = floors.get((r["run"], r.get("floor")))
        k = kvm.get(key(r, r["params"]))
        name = r["bench"] + "." + r["metric"]
        if spread > SPREAD_LIMIT:
            wide.append("%s %.0f%% (%s)" % (name, spread, describe(r["params"])))
        # The mark is part of the spread's column, so columns keep their places.
        print("%-30s %12.2f %-9s %7.1f%%%s %8s %-10s %6s  %s"
              % (name, med, r["unit"], spread, "!" if spread > SPREAD_LIMIT else " ",
                 "%.1f" % (med / floor) if floor else "-", r.get("floor", "-"),
                 "%.2f" % (med / k) if k else "-", describe(r["params"])))
    if wide:
        print("\n%d of %d figures have a spread over %.0f%% (marked !), too wide to track:"
              % (len(wide), len(doc["results"]), SPREAD_LIMIT))
        for w in wide:
            print("  " + w)
    print()
    for f in doc["floors"]:
        print("floor of run %d (%s): %s %.2f ns/entry" % (f["run"], f["bench"], f["metric"],
                                                         statistics.median(f["samples"])))
    print("\nresults: %s" % argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Append the figures and floors of one kmmu bench results document to
another, as if its driver runs had appended to it: their run numbers follow
the target's.  The target keeps its commit and host; a missing target
becomes a copy of the source.

    bench/merge_results.py TARGET.json SOURCE.json
"""
import json
import os
import sys


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    target, source = argv[1], argv[2]
    with open(source) as f:
        src = json.load(f)
    if not os.path.exists(target):
        dst = src
    else:
        with open(target) as f:
            dst = json.load(f)
        for k in ("schema", "schema_version"):
            if dst.get(k) != src.get(k):
                print("%s and %s: different %s" % (target, source, k), file=sys.stderr)
                return 1
        base = 1 + max([r["run"] for r in dst["results"]] +
                       [f["run"] for f in dst["floors"]] + [-1])
        for item in src["floors"] + src["results"]:
            item["run"] += base
        dst["floors"] += src["floors"]
        dst["results"] += src["results"]
    tmp = target + ".tmp"
    with open(tmp, "w") as f:
        json.dump(dst, f, indent=1, sort_keys=True)
        f.write("\n")
    os.rename(tmp, target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

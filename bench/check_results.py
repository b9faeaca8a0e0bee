#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Check a kmmu bench results document: valid against bench/results.schema.json,
every figure's floor present in the document, and every metric named on the
command line present (with the parameters named after it, when there are).

    bench/check_results.py results.json [bench:metric[:param=value...] ...]
"""
import json
import os
import sys

import jsonschema


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "results.schema.json")) as f:
        schema = json.load(f)
    with open(argv[1]) as f:
        doc = json.load(f)
    errors = [e.message + " at /" + "/".join(str(p) for p in e.absolute_path)
              for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
    if not errors:
        floors = {(f["run"], f["metric"]) for f in doc["floors"]}
        for r in doc["results"]:
            if "floor" in r and (r["run"], r["floor"]) not in floors:
                errors.append("%s:%s compared with floor %s, which run %d did not measure"
                              % (r["bench"], r["metric"], r["floor"], r["run"]))
        for want in argv[2:]:
            bench, metric, *params = want.split(":")
            params = [p.partition("=") for p in params]
            if not any(r["bench"] == bench and r["metric"] == metric and
                       all(str(r["params"].get(k)) == v for k, _, v in params)
                       for r in doc["results"]):
                errors.append("no figure %s" % want)
    for e in errors:
        print("%s: %s" % (argv[1], e), file=sys.stderr)
    if errors:
        return 1
    print("%s: valid, %d figures, %d floors" % (argv[1], len(doc["results"]), len(doc["floors"])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

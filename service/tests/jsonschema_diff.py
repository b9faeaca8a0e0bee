#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Differential test of service/jsonschema.c against python3-jsonschema.

Mutates the bench results documents a few thousand ways (and draws random
documents for service/tests/data/keywords.schema.json, which uses every
keyword the C validator implements), validates each with
jsonschema.Draft7Validator and with the C validator, and requires the two
verdicts to agree.

    jsonschema_diff.py JSONSCHEMA_CLI [-v]

JSONSCHEMA_CLI is service/tests/jsonschema_cli.c built with service/jsonschema.c,
from the top of the tree:

    gcc -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -O1 -g \\
        -fsanitize=address,undefined -fno-sanitize-recover=all -D_GNU_SOURCE -Iservice \\
        -o jsonschema_cli service/jsonschema.c service/tests/jsonschema_cli.c -ljansson

A few documents are known to differ because Python's re is not ECMA-262,
which JSON Schema prescribes and the C validator follows: Python's $ also
matches before a final newline, and Python's \\s differs from ECMA-262's on
U+001C..U+001F, U+0085 and U+FEFF. Those are checked to get the ECMA-262
verdict and counted apart.
"""
import copy
import json
import os
import random
import subprocess
import sys
import tempfile

from importlib.metadata import version

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
RESULTS_SCHEMA = os.path.join(ROOT, "bench", "results.schema.json")
KEYWORDS_SCHEMA = os.path.join(HERE, "data", "keywords.schema.json")
SAMPLES = [os.path.join(HERE, "data", "results-populate.json"),
           os.path.join(HERE, "data", "results-suite.json")]

LONG = "x" * 20000

# Values put in place of each node of the sample document.
REPLACEMENTS = [
    None, True, False, 0, 1, -1, 2, 1.0, 0.0, -0.0, 2.5, -0.5, 1e-300, -1e-300, 1e300,
    2 ** 53 + 1, 2 ** 63 - 1, -2 ** 63, "", "x", "1", "dev", "unknown",
    "unicode \u00e9\u65e5\u672c\U0001F600", "\u0000", "a\nb", LONG, [], [1, "a"], [0.5],
    {}, {"a": 1}, {"": None}, [[[[[[[[[[[]]]]]]]]]]], {"a": {"b": {"c": [{}]}}},
]


def paths(v, prefix=()):
    """Every path to a node of v, the root first."""
    yield prefix
    if isinstance(v, dict):
        for k, e in v.items():
            yield from paths(e, prefix + (k,))
    elif isinstance(v, list):
        for i, e in enumerate(v):
            yield from paths(e, prefix + (i,))


def get(v, path):
    for p in path:
        v = v[p]
    return v


def replaced(doc, path, value):
    if not path:
        return copy.deepcopy(value)
    d = copy.deepcopy(doc)
    get(d, path[:-1])[path[-1]] = copy.deepcopy(value)
    return d


def deleted(doc, path):
    d = copy.deepcopy(doc)
    del get(d, path[:-1])[path[-1]]
    return d


def reference_class():
    """Draft7Validator; where "enum" takes true for 1 inside arrays and objects, as
    in older releases (Debian 12's 4.10.3), with the enum of later ones."""
    cls = jsonschema.Draft7Validator
    if not cls({"enum": [[True]]}).is_valid([1]):
        return cls, None
    from jsonschema import _utils

    def enum(validator, enums, instance, schema):
        if all(not _utils.equal(each, instance) for each in enums):
            yield jsonschema.ValidationError("%r is not one of %r" % (instance, enums))

    return (jsonschema.validators.extend(cls, {"enum": enum}),
            "jsonschema %s: its enum equates true and 1 inside arrays and objects; "
            "used the fixed one of later versions" % version("jsonschema"))


REFERENCE, REFERENCE_NOTE = reference_class()


def results_mutations(doc, rnd):
    """(name, document) pairs for bench/results.schema.json."""
    out = [("original", doc)]
    all_paths = list(paths(doc))
    for p in all_paths:
        where = "/" + "/".join(str(x) for x in p)
        if p:
            out.append(("delete " + where, deleted(doc, p)))
        for v in REPLACEMENTS:
            out.append(("%s = %.30r" % (where, v), replaced(doc, p, v)))
        node = get(doc, p)
        if isinstance(node, dict):
            for k, v in (("extra", 1), ("", "x"), ("a/b~c", 2), ("\u00e9\U0001F600", 3)):
                d = copy.deepcopy(doc)
                get(d, p)[k] = v
                out.append(("%s + %r" % (where, k), d))
        if isinstance(node, list):
            for v in (1, "s", None, copy.deepcopy(node[0]) if node else {}):
                d = copy.deepcopy(doc)
                get(d, p).append(v)
                out.append(("%s append %.30r" % (where, v), d))
            d = copy.deepcopy(doc)
            get(d, p).clear()
            out.append(("%s cleared" % where, d))

    def at(path, values):
        for v in values:
            out.append(("%s = %.40r" % ("/".join(map(str, path)), v), replaced(doc, path, v)))

    at(("commit", "sha"), ["0" * 40, "0" * 39, "0" * 41, "A" * 40, "g" * 40, "unknown",
                           "UNKNOWN", "unknownx", "xunknown", "0" * 40 + "unknown",
                           "\u0660" * 40, " " + "0" * 40])
    at(("created",), ["2026-11-21T14:23:16Z", "2026-11-21T14:23:16", "2026-11-21 14:23:16Z",
                      "2026-11-21T14:23:16.5Z", "26-11-21T14:23:16Z",
                      "\u0662" + "026-11-21T14:23:16Z", "x2026-11-21T14:23:16Z",
                      "2026-11-21T14:23:16Zx", "9999-99-99T99:99:99Z"])
    at(("schema",), ["kmmu-bench-results", "kmmu-bench-results ", "KMMU-bench-results"])
    at(("schema_version",), [1, 1.0, 2, "1", True, 0.99999])
    at(("host", "cores"), [1, 1.0, 0, 0.5, 1.5, 2 ** 40, -1])
    at(("host", "memory_bytes"), [1, 2 ** 62, 2.0 ** 62, 0, 1e20, 1.5e20 + 0.5])
    at(("host", "backend"), ["dev", "user", "xen", "DEV", "dev ", ""])
    at(("host", "spte_format"), ["ept", "npt", "default", "EPT"])
    at(("host", "name"), ["", " ", "\U0001F600", "\u0000"])
    at(("commit", "dirty"), [True, False, 0, 1, "false", None])
    res = ("results", 0)
    at(res + ("metric",), ["a_1", "Get", "a-b", "", "\u00e9", "ab cd", "x" * 1000, "0"])
    at(res + ("run",), [0, 0.0, -0.0, -1, 1.5, 3])
    at(res + ("samples",), [[], [0], [-0.0], [0.0], [1e-300], [-1e-300], ["1"], [None],
                            [True], [1, -1], [1.5] * 1000])
    at(res + ("params",), [{}, {"a": 1.0}, {"a": 1.5}, {"a": True}, {"a": None},
                           {"a": "s", "b": 2 ** 62}, {"a/b": [1]}, {"a": {}}])
    at(res + ("lower_is_better",), [True, False, 1, None])
    at(res + ("floor",), ["cmpxchg", "", 1])
    if doc.get("floors"):
        fl = ("floors", 0)
        at(fl + ("metric",), ["cmpxchg", "locked_rmw", "read", "read_write", "write", ""])
        at(fl + ("unit",), ["ns/entry", "ns/4K"])
        at(fl + ("entries",), [1, 0, 1.0, 2.5])

    # a few of the above at once
    single = list(out)
    for i in range(200):
        d = copy.deepcopy(doc)
        names = []
        for _ in range(rnd.randint(2, 4)):
            p = rnd.choice(all_paths[1:])
            try:
                node = get(d, p[:-1])
                if rnd.random() < 0.3:
                    del node[p[-1]]
                    names.append("delete /" + "/".join(map(str, p)))
                else:
                    v = rnd.choice(REPLACEMENTS)
                    node[p[-1]] = copy.deepcopy(v)
                    names.append("/%s = %.20r" % ("/".join(map(str, p)), v))
            except (KeyError, IndexError, TypeError):
                pass
        out.append(("combined " + ", ".join(names), d))
    return out, len(single)


def random_value(rnd, depth=0):
    kind = rnd.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rnd.random() < 0.5
    if kind == 2:
        return rnd.randint(-12, 12)
    if kind == 3:
        return rnd.choice([0.0, 0.25, 0.5, 1.0, 1.5, -0.25, 3.0, 1e-9, 2.75])
    if kind in (4, 5):
        return "".join(rnd.choice("abxyzAF19_-.,/~ \t\u00e9\u65e5\U0001F600")
                       for _ in range(rnd.randint(0, 6)))
    if kind in (6, 7):
        return [random_value(rnd, depth + 1) for _ in range(rnd.randint(0, 4))]
    return {rnd.choice(["a", "b", "ab", "abcd", "A", "\u00e9", "v", "kids"]):
            random_value(rnd, depth + 1) for _ in range(rnd.randint(0, 3))}


def random_tree(rnd, depth=0):
    t = {"v": rnd.choice([1, 2.0, 2.5, "1", None])} if rnd.random() < 0.9 else {}
    if depth < 4 and rnd.random() < 0.6:
        t["kids"] = [random_tree(rnd, depth + 1) for _ in range(rnd.randint(0, 3))]
    if rnd.random() < 0.05:
        t["x"] = 1
    return t


POOLS = {
    "id": ["a", "ab_1", "a-b", "abcdefgh", "abcdefghi", "A", "1a", "", "\u00e9", "a\u00e9",
           "z0-_"],
    "n": [-6, -5, -4, 0, 2, 8, 9, 10, 12, 2.0, 3, -4.0, "2", True, None],
    "x": [0, 0.25, 0.3, 1.5, 1.75, -0.25, 1, 1.0, 1e-9, "x"],
    "m": [9, 10, 6.0, 7.0, 6.5, -3, 3e20, 1e20, 2.0 ** 70, 3 * 2.0 ** 64, 1e300, 2 ** 62 + 1,
          "3"],
    "tag": ["a", 1, 1.0, None, [1, "b"], [1.0, "b"], {"k": True}, {"k": 1}, True, "b", [], {}],
    "k": [{"a": [1, 2]}, {"a": [1.0, 2]}, {"a": [1, 2, 3]}, {"a": [True, 2]}, [], {"a": [1, 2],
                                                                                  "b": 1}],
    "name": ["ab", "\u65e5\u672c", "\u65e5\u672c\u8a9e\u8a9e", "\u65e5\u672c\u8a9e\u8a9ex",
             "a", "\U0001F600\U0001F600", 12, "abcd", "abcde"],
    "pair": [["a", 1], ["a"], [], ["a", 1, 2], [1, "a"], ["a", 1.0], ["a", 1.5]],
    "set": [[], [1, 2], [1, 1.0], [1, True], [[1], [1.0]], [{"a": 1}, {"a": 1.0}],
            [{"a": 1}, {"a": 2}], [1, 2, 3, 4, 5], ["a", "b", "a"], [0, False, None, ""]],
    "has3": [[3], [1, 2], [], [3.0], ["3"], [[3]], [1, 3, "x"]],
    "map": [{}, {"ab": True}, {"AB": True}, {"abcd": None}, {"a": 1, "b": 2.0}, {"a": 1.5},
            {"a": "s"}, {"a": 1, "b": 1, "c": 1, "d": 1}, {"\u00e9": 1}, {"": 1}],
    "alt": ["ab", "abc", 0, -1, 1.0, 1.5, None, "\U0001F600\U0001F600"],
    "one": [0, 1, 1.0, 1.5, 0.5, "1", None],
    "neg": [1, "s", None, [], {}, True],
    "cond": ["xy", "y", True, 1, None, "", "\u00e9x"],
    "all": [0, 1, 2, 3, 4, 2.0, 2.5, "2"],
    "re": ["A1", "a.", "abc", "a,b", "a b", "", "A1a.", "\u00e9", "\u0663", "F9,", "a\tb"],
    "p_a": [1, "x", 1.0], "q_s": ["s", 1], "p_s": [1, "s"], "zz": [1, "z"],
}


def split_pools(schema):
    """Each pool as (values valid for its property, the others), by Python's verdict."""
    out = {}
    for k, pool in POOLS.items():
        sub = schema["properties"].get(k)
        if sub is None:
            sub = {"allOf": [v for p, v in schema["patternProperties"].items()
                             if p.strip("^$") in k]} if k != "zz" else False
        v = REFERENCE({"definitions": schema["definitions"], "allOf": [sub]})
        out[k] = ([x for x in pool if v.is_valid(x)], [x for x in pool if not v.is_valid(x)])
    return out


def keyword_documents(rnd, count):
    """Documents for keywords.schema.json, about half of them valid."""
    with open(KEYWORDS_SCHEMA) as f:
        pools = split_pools(json.load(f))
    out = []
    for i in range(count):
        if rnd.random() < 0.03:
            out.append(("random root %d" % i, random_value(rnd)))
            continue
        d = {}
        for k, (good, bad) in pools.items():
            if rnd.random() < (0.95 if k == "id" else 0.25 if k != "zz" else 0.02):
                r = rnd.random()
                if r < 0.8 and good:
                    d[k] = copy.deepcopy(rnd.choice(good))
                elif r < 0.96 and bad:
                    d[k] = copy.deepcopy(rnd.choice(bad))
                else:
                    d[k] = random_value(rnd)
        if "n" in d and rnd.random() < 0.8:
            d["x"] = 0.25
        if "name" in d and rnd.random() < 0.8:
            d["alt"] = 0
        if rnd.random() < 0.3:
            d["tree"] = random_tree(rnd)
        out.append(("random document %d" % i, d))
    return out


def known_divergences(doc):
    """(name, schema, document, C verdict) where Python's re is not ECMA-262."""
    return [
        ("sha with a final newline", RESULTS_SCHEMA,
         replaced(doc, ("commit", "sha"), "unknown\n"), False),
        ("created with a final newline", RESULTS_SCHEMA,
         replaced(doc, ("created",), "2026-11-21T14:23:16Z\n"), False),
        ("metric with a final newline", RESULTS_SCHEMA,
         replaced(doc, ("results", 0, "metric"), "get\n"), False),
        ("\\s and U+001F", KEYWORDS_SCHEMA, {"id": "a", "re": "a\u001f"}, True),
        ("\\s and U+FEFF", KEYWORDS_SCHEMA, {"id": "a", "re": "a\ufeff"}, False),
    ]


def run_c(cli, schema_path, docs):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")
        name = f.name
    try:
        p = subprocess.run([cli, schema_path, "--lines", name], capture_output=True, text=True)
    finally:
        os.unlink(name)
    if p.returncode:
        sys.exit("%s failed (%d): %s" % (cli, p.returncode, p.stderr))
    lines = p.stdout.splitlines()
    if len(lines) != len(docs):
        sys.exit("%s: %d verdicts for %d documents\n%s" % (cli, len(lines), len(docs),
                                                           p.stderr))
    return lines


def compare(cli, schema_path, cases, verbose):
    with open(schema_path) as f:
        validator = REFERENCE(json.load(f))
    verdicts = run_c(cli, schema_path, [d for _, d in cases])
    agree, bad = 0, []
    valid = 0
    for (name, doc), line in zip(cases, verdicts):
        py = validator.is_valid(doc)
        c_verdict, _, msg = line.partition("\t")
        if c_verdict == "error":
            bad.append((name, py, line))
            continue
        if py == (c_verdict == "valid"):
            agree += 1
            valid += py
            if verbose:
                print("agree %-7s %s%s" % ("valid" if py else "invalid", name[:70],
                                            "" if py else "\n      " + msg[:150]))
        else:
            bad.append((name, py, line))
    return agree, valid, bad


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    cli, verbose = argv[1], "-v" in argv[2:]
    if REFERENCE_NOTE:
        print("note: " + REFERENCE_NOTE)
    rnd = random.Random(20261121)
    total = agreed = 0
    failed = False

    for sample in SAMPLES:
        with open(sample) as f:
            doc = json.load(f)
        cases, single = results_mutations(doc, rnd)
        if len(cases) > 4000:
            # a large document: a sample of its mutations, to keep the run short
            cases = cases[:1] + rnd.sample(cases[1:single], 600) + cases[single:]
            single = 601
        agree, valid, bad = compare(cli, RESULTS_SCHEMA, cases, verbose)
        print("%s: %d mutations (%d single, %d combined), %d agree (%d valid, %d invalid)"
              % (os.path.basename(sample), len(cases), single, len(cases) - single, agree,
                 valid, agree - valid))
        total += len(cases)
        agreed += agree
        for name, py, line in bad:
            failed = True
            print("DISAGREE %s: python %s, C %s" % (name, "valid" if py else "invalid",
                                                    line[:300]))

    cases = keyword_documents(rnd, 1500)
    agree, valid, bad = compare(cli, KEYWORDS_SCHEMA, cases, verbose)
    print("keywords.schema.json: %d random documents, %d agree (%d valid, %d invalid)"
          % (len(cases), agree, valid, agree - valid))
    total += len(cases)
    agreed += agree
    for name, py, line in bad:
        failed = True
        print("DISAGREE %s: python %s, C %s\n  %s" % (
            name, "valid" if py else "invalid", line[:300],
            json.dumps(dict(cases)[name])[:300]))

    with open(SAMPLES[0]) as f:
        doc = json.load(f)
    known = known_divergences(doc)
    ecma = 0
    for name, schema_path, d, c_valid in known:
        with open(schema_path) as f:
            py = REFERENCE(json.load(f)).is_valid(d)
        line = run_c(cli, schema_path, [d])[0]
        got = line.partition("\t")[0] == "valid"
        if got == c_valid and py != c_valid:
            ecma += 1
        else:
            failed = True
            print("KNOWN DIVERGENCE CHANGED %s: python %s, C %s" % (name, py, line))

    print("total: %d documents, %d agree, %d disagree; %d/%d known Python re vs ECMA-262 "
          "differences get the ECMA-262 verdict" % (total, agreed, total - agreed, ecma,
                                                   len(known)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

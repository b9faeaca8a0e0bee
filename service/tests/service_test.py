#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""kmmu-regressd against a real PostgreSQL that this test starts: the API,
bad input, detection end to end, plots and pages, the database going away
under the daemon, shutdown, and the dashboard in headless Chromium.

    BUILD=build service/tests/service_test.py

Prints one "ok N - name" / "not ok N - name" line per case and a kselftest
"# Totals:" line; exits non-zero when a case failed.  The daemon is the
ASan+UBSan build: any sanitizer report in its log fails the run.
"""
import concurrent.futures
import copy
import glob
import hashlib
import json
import math
import os
import random
import re
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.etree import ElementTree

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD", "build")
DAEMON = os.path.join(ROOT, BUILD, "asan/service/kmmu-regressd")
TOKEN = "tok-" + "a1b2c3d4e5f6a7b8c9d0"
OTHER = "tok-" + "ffffeeeeddddccccbbbb"
ADMIN = "tok-" + "0a0b0c0d0e0f01020304"
SHOTS = os.path.join(ROOT, BUILD, "service-test")

results = []


def case(fn):
    results.append(fn)
    return fn


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Env:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="kmmu-service-test-")
        os.chmod(self.tmp, 0o755)
        self.pgdir = os.path.join(self.tmp, "pg")
        self.pgenv = dict(os.environ, KMMU_PG_PORT=str(free_port()),
                          KMMU_PG_OPTIONS="-c fsync=off -c full_page_writes=off")
        self.port = free_port()
        self.hook_port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = os.path.join(self.tmp, "daemon.log")
        self.proc = None

    def pg(self, cmd):
        r = subprocess.run([os.path.join(ROOT, "scripts/pg.sh"), cmd, self.pgdir],
                           env=self.pgenv, capture_output=True, text=True)
        if r.returncode:
            raise Fail("pg.sh %s: %s" % (cmd, r.stderr))
        return r.stdout.strip()

    def psql(self, sql):
        bindir = sorted(os.listdir("/usr/lib/postgresql"))[-1]
        r = subprocess.run(["/usr/lib/postgresql/%s/bin/psql" % bindir, self.dsn, "-tAc", sql],
                           capture_output=True, text=True)
        if r.returncode:
            raise Fail("psql: %s" % r.stderr)
        return r.stdout.strip()

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start(self, extra_env=None, wait=True):
        self.tokens = self.write("tokens", "# submitters\nbench %s\nops %s\nboss %s admin\n"
                                 % (TOKEN, OTHER, ADMIN))
        self.conf = self.write("regressd.conf", "\n".join([
            "# kmmu-regressd for the service test",
            "listen = 127.0.0.1",
            "port = %d" % self.port,
            "dsn = %s" % self.dsn,
            "tokens_file = %s" % self.tokens,
            "schema_file = %s/bench/results.schema.json" % ROOT,
            "sql_dir = %s/sql" % ROOT,
            "plots_dir = %s/plots" % ROOT,
            "cache_dir = %s/cache" % self.tmp,
            "commit_url = https://example.org/kmmu/commit/%s",
            "range_url = https://example.org/kmmu/log/%s..%s",
            "max_body = 1048576",
            "idle_timeout = 3",
            # Nothing listens there until the webhook case starts a listener.
            "webhook_url = http://127.0.0.1:%d/kmmu-alerts" % self.hook_port,
            "webhook_max_delay = 2",
            "webhook_settle = 1",
            "threads = 4", ""]))
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
                   UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
        env.update(extra_env or {})
        self.logf = open(self.log, "a")
        self.proc = subprocess.Popen([DAEMON, "-c", self.conf], stdout=self.logf,
                                     stderr=self.logf, env=env)
        if wait:
            for _ in range(200):
                try:
                    if http("GET", self.url + "/healthz")[0] == 200:
                        return
                except OSError:
                    pass
                if self.proc.poll() is not None:
                    raise Fail("daemon exited %d: %s" % (self.proc.returncode,
                                                         open(self.log).read()[-2000:]))
                time.sleep(0.1)
            raise Fail("daemon did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.logf.close()
        return self.proc.returncode if self.proc else None


def http(method, url, body=None, token=None, ctype="application/json", headers=None):
    h = dict(headers or {})
    if body is not None and ctype:
        h["Content-Type"] = ctype
    if token:
        h["Authorization"] = "Bearer " + token
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    req = urllib.request.Request(url, data=body, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def jget(env, path):
    status, body, _ = http("GET", env.url + path)
    check(status == 200, "GET %s: %d %s" % (path, status, body[:300]))
    return json.loads(body)


def sha(n):
    return hashlib.sha1(b"commit %d" % n).hexdigest()


def make_doc(n, host="bench-amd-1", vendor="AuthenticAMD", figures=None, sha_=None):
    """A results document for commit n: figures is [(bench, metric, params,
    samples, lower_is_better)]."""
    t = time.gmtime(1_700_000_000 + 3600 * n)
    figures = figures or [("populate", "populate", {"vcpus": 1, "backing": "anonymous"},
                           [100.0, 101.0, 99.5], True)]
    return {
        "schema": "kmmu-bench-results",
        "schema_version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", t),
        "commit": {"sha": sha_ or sha(n), "time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", t),
                   "branch": "main", "dirty": False, "parent": sha(n - 1)},
        "host": {"name": host, "cpu_vendor": vendor, "cpu_model": "Test CPU", "cores": 2,
                 "memory_bytes": 1 << 34, "kernel": "6.1.0-test", "backend": "user",
                 "spte_format": "npt" if vendor == "AuthenticAMD" else "ept"},
        "floors": [{"run": 0, "bench": "populate", "metric": "cmpxchg", "unit": "ns/entry",
                    "entries": 512, "samples": [6.0, 6.1, 5.9]}],
        "results": [{"run": 0, "bench": b, "params": p, "metric": m, "unit": "ns/4K",
                     "lower_is_better": lib, "samples": s, "floor": "cmpxchg"}
                    for (b, m, p, s, lib) in figures],
    }


def counts(env):
    return env.psql("SELECT (SELECT count(*) FROM runs) || ' ' || (SELECT count(*) FROM"
                    " results) || ' ' || (SELECT count(*) FROM floors) || ' ' ||"
                    " (SELECT count(*) FROM commits) || ' ' || (SELECT count(*) FROM hosts)"
                    " || ' ' || (SELECT count(*) FROM series)")


def post_run(env, doc, token=TOKEN):
    return http("POST", env.url + "/api/v1/runs", doc, token=token)


@case
def submit_and_read_back(env):
    doc = make_doc(1)
    st, body, _ = post_run(env, doc)
    check(st == 201, "first submission: %d %s" % (st, body))
    ans = json.loads(body)
    check(ans["results"] == 1 and not ans["duplicate"], "answer %s" % ans)
    run = jget(env, "/api/v1/runs/%d" % ans["id"])
    check(run["document"] == doc, "stored document differs")
    check(run["submitter"] == "bench" and run["host_class"] == "amd", "run %s" % run)
    check(env.psql("SELECT parent_sha FROM commits WHERE sha = '%s'" % sha(1)) == sha(0),
          "parent not stored")
    hosts = jget(env, "/api/v1/hosts")
    check(any(h["name"] == "bench-amd-1" and h["host_class"] == "amd" for h in hosts),
          "hosts %s" % hosts)
    series = jget(env, "/api/v1/series?bench=populate")
    check(len(series) == 1 and series[0]["params"] == doc["results"][0]["params"],
          "series %s" % series)
    pts = jget(env, "/api/v1/series/%d" % series[0]["id"])["points"]
    check(len(pts) == 1 and pts[0]["samples"] == [100.0, 101.0, 99.5] and
          pts[0]["median"] == 100.0 and pts[0]["floor_median"] == 6.0, "points %s" % pts)
    q = urllib.parse.quote(json.dumps({"backing": "anonymous"}))
    check(jget(env, "/api/v1/series?params=%s&host_class=amd" % q) == series, "params filter")
    q = urllib.parse.quote(json.dumps({"backing": "anonymous_thp"}))
    check(jget(env, "/api/v1/series?params=%s" % q) == [], "params filter matched")
    check(jget(env, "/api/v1/series?host_class=intel") == [], "host class filter")
    bm = jget(env, "/api/v1/benchmarks")
    check(any(b["bench"] == "populate" and b["metric"] == "populate" for b in bm), "%s" % bm)


@case
def resubmission_is_idempotent(env):
    doc = make_doc(2)
    st, body, _ = post_run(env, doc)
    check(st == 201, "first: %d" % st)
    first = json.loads(body)["id"]
    before = counts(env)
    # The same document, with its keys in another order and other spacing.
    text = json.dumps(doc, sort_keys=True, indent=3)
    st, body, _ = post_run(env, text)
    check(st == 200 and json.loads(body) == {"id": first, "duplicate": True, "results": 0,
                                             "series": 0, "change_points": 0},
          "again: %d %s" % (st, body))
    # Eight at once: one run.
    doc = make_doc(3)
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        answers = list(ex.map(lambda _: post_run(env, doc), range(8)))
    codes = sorted(a[0] for a in answers)
    ids = {json.loads(a[1])["id"] for a in answers}
    check(codes == [200] * 7 + [201] and len(ids) == 1, "concurrent: %s %s" % (codes, ids))
    after = counts(env).split()
    check(int(after[0]) == int(before.split()[0]) + 1, "runs %s -> %s" % (before, after))


def refused(env, body, want, what, token=TOKEN, ctype="application/json", path="/api/v1/runs"):
    before = counts(env)
    st, text, hdr = http("POST", env.url + path, body, token=token, ctype=ctype)
    check(st == want, "%s: got %d, want %d: %s" % (what, st, want, text[:300]))
    msg = json.loads(text)
    check(msg["status"] == want and msg["error"], "%s: error body %s" % (what, text))
    check(counts(env) == before, "%s: something was stored" % what)
    return msg["error"], hdr


@case
def bad_documents_store_nothing(env):
    doc = make_doc(4)
    raw = json.dumps(doc)
    refused(env, raw[: len(raw) // 2], 400, "truncated JSON")
    refused(env, "{\"schema\": ", 400, "malformed JSON")
    refused(env, b"\xff\xfe{}", 400, "not UTF-8")
    refused(env, "[1, 2]", 400, "an array")
    refused(env, "", 400, "empty body")
    refused(env, raw.replace('"schema_version": 1', '"schema_version": 1, "schema_version": 1'),
            400, "duplicate key")
    e, _ = refused(env, dict(doc, schema_version=2), 422, "schema version 2")
    check("schema_version" in e, e)
    refused(env, dict(doc, schema="other"), 422, "other schema")
    bad = copy.deepcopy(doc)
    bad["results"][0]["samples"] = ["1.0"]
    e, _ = refused(env, bad, 422, "string sample")
    check("/results/0/samples/0" in e, "error names the path: %s" % e)
    bad = copy.deepcopy(doc)
    bad["host"]["cores"] = "two"
    refused(env, bad, 422, "string cores")
    bad = copy.deepcopy(doc)
    bad["results"][0]["samples"] = [-1.0]
    refused(env, bad, 422, "negative sample")
    bad = copy.deepcopy(doc)
    del bad["commit"]["sha"]
    refused(env, bad, 422, "no sha")
    bad = copy.deepcopy(doc)
    bad["commit"]["sha"] = "abc"
    refused(env, bad, 422, "short sha")
    bad = copy.deepcopy(doc)
    bad["extra"] = 1
    refused(env, bad, 422, "unknown field")
    bad = copy.deepcopy(doc)
    bad["results"][0]["floor"] = "read"
    e, _ = refused(env, bad, 422, "floor not measured")
    check("floor" in e, e)
    bad = copy.deepcopy(doc)
    bad["commit"]["time"] = "yesterday"
    refused(env, bad, 422, "time not a date")
    bad = copy.deepcopy(doc)
    bad["results"].append(copy.deepcopy(bad["results"][0]))
    bad["results"][1]["unit"] = "ms"
    bad["results"][1]["metric"] = "populate"
    st, _, _ = post_run(env, make_doc(40))
    check(st == 201, "setup: %d" % st)
    e, _ = refused(env, bad, 422, "unit of a known series changed (second figure)")
    check("ns/4K" in e, e)
    refused(env, "{" + "\"a\":[" * 5000 + "]" * 5000 + "}", 400, "nested too deep")
    refused(env, json.dumps(doc), 415, "form content type", ctype="text/plain")


@case
def body_size_limit(env):
    doc = make_doc(5)
    doc["results"][0]["params"]["pad"] = "x" * (1 << 20)
    refused(env, doc, 413, "body over max_body")
    # Without a Content-Length: chunked.
    before = counts(env)

    def chunks():
        yield b"{\"pad\": \""
        for _ in range(300):
            yield b"y" * 4096
        yield b"\"}"
    req = urllib.request.Request(env.url + "/api/v1/runs", data=chunks(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Authorization": "Bearer " + TOKEN,
                                          "Transfer-Encoding": "chunked"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            st = r.status
    except urllib.error.HTTPError as e:
        st = e.code
    check(st == 413, "chunked over the limit: %d" % st)
    check(counts(env) == before, "stored")


@case
def figure_bound_and_drawable_values(env):
    """A document of more figures than max_results is refused as too large
    before its validation; a figure the plots could not draw is refused."""
    many = make_doc(7, figures=[("populate", "populate", {"vcpus": 1, "i": i}, [1.0], True)
                                for i in range(2000)])
    err, _ = refused(env, many, 413, "2001 figures")
    check("2001 figures" in err and "2000" in err, "message: %s" % err)
    for v in (1e308, 1e16):
        doc = make_doc(8, figures=[("populate", "populate", {"vcpus": 1}, [100.0, v], True)])
        err, _ = refused(env, doc, 422, "a sample of %g" % v)
        check("maximum" in err or "1e+15" in err, "message: %s" % err)
    doc = make_doc(8, figures=[("populate", "populate", {"vcpus": 1, "big": 1},
                                [1e15, 9.9e14], True)])
    st, body, _ = post_run(env, doc)
    check(st == 201, "the largest drawable value: %d %s" % (st, body))
    sid = jget(env, "/api/v1/series?bench=populate")
    sid = [x["id"] for x in sid if x["params"].get("big") == 1][0]
    st, svg, _ = http("GET", env.url + "/plots/series/%d.svg" % sid)
    check(st == 200 and b"<svg" in svg, "plot of 1e15: %d %s" % (st, svg[:200]))


def open_idle(src, port, n):
    """n connections to the daemon from address src that never send a byte."""
    out = []
    for _ in range(n):
        c = socket.socket()
        c.bind((src, 0))
        try:
            c.connect(("127.0.0.1", port))
        except OSError:
            c.close()
            break
        out.append(c)
    return out


def still_open(conns, wait):
    """The connections the daemon has not closed after wait seconds."""
    deadline = time.time() + wait
    left = list(conns)
    while left and time.time() < deadline:
        r, _, _ = select.select(left, [], [], max(0.0, deadline - time.time()))
        for c in r:
            try:
                if c.recv(1) == b"":
                    left.remove(c)
            except OSError:
                left.remove(c)
        if not r:
            break
    return left


@case
def connection_flood(env):
    """A thousand idle connections from one address (127.0.0.2) hold at most
    max_client_connections (32) of the daemon's slots: a client from another
    address still gets through at once, and the flood is closed for idling."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    flood = open_idle("127.0.0.2", env.port, 1000)
    try:
        check(len(flood) > 900, "only %d connections opened" % len(flood))
        t0 = time.time()
        st, _, _ = http("GET", env.url + "/healthz")
        took = time.time() - t0
        check(st == 200, "a client during the flood: %d" % st)
        check(took < 10, "a client during the flood waited %.1f s" % took)
        kept = still_open(flood, 2)
        check(len(kept) <= 32, "%d flood connections kept open, over 32" % len(kept))
        # The rest are closed for idling (idle_timeout = 3 here).
        kept = still_open(kept, 10)
        check(not kept, "%d idle connections outlived idle_timeout" % len(kept))
        st, _, _ = http("GET", env.url + "/healthz")
        check(st == 200, "after the flood: %d" % st)
    finally:
        for c in flood:
            c.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@case
def tokens(env):
    doc = make_doc(6)
    _, hdr = refused(env, doc, 401, "no token", token=None)
    check("Bearer" in hdr.get("WWW-Authenticate", ""), "WWW-Authenticate: %s" % hdr)
    refused(env, doc, 401, "wrong token", token="tok-0000000000000000000")
    refused(env, doc, 401, "token with SQL", token="x' OR '1'='1")
    refused(env, doc, 401, "a token's hash", token=env.psql(
        "SELECT encode(hash, 'hex') FROM tokens LIMIT 1"))
    check(TOKEN not in env.psql("SELECT string_agg(encode(hash, 'escape'), ',') FROM tokens"),
          "a token is stored in clear")
    st, _, _ = post_run(env, doc, token=OTHER)
    check(st == 201, "second submitter: %d" % st)


@case
def sql_metacharacters_are_data(env):
    evil = ["'; DROP TABLE runs; --", "\" OR 1=1 --", "$1", "\\x00\\", "%s%n", "}{,\"",
            "Robert'); DELETE FROM results;--", "ä漢字🙂", "a\tb\nc", "x\\", "漢" * 150]
    before = int(counts(env).split()[0])
    for i, s in enumerate(evil):
        doc = make_doc(50 + i, host=s, figures=[(s, "m_%d" % i, {s: s, "k": s}, [1.0], True)])
        doc["host"]["cpu_model"] = s
        doc["host"]["kernel"] = s
        doc["commit"]["branch"] = s
        st, body, _ = post_run(env, doc)
        check(st == 201, "%r: %d %s" % (s, st, body))
        run = jget(env, "/api/v1/runs/%d" % json.loads(body)["id"])
        check(run["document"] == doc and run["host"] == s, "%r did not come back" % s)
        q = urllib.parse.quote(s)
        got = jget(env, "/api/v1/series?bench=%s" % q)
        check(len(got) == 1 and got[0]["params"][s] == s, "%r: series %s" % (s, got))
        check(jget(env, "/api/v1/change-points?bench=%s" % q) == [], "%r: change points" % s)
    check(int(counts(env).split()[0]) == before + len(evil), "runs")
    check(env.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'runs'") == "1", "runs")
    # The dashboard escapes them.
    st, page, _ = http("GET", env.url + "/")
    check(st == 200 and b"'; DROP TABLE" not in page and b"&#39;; DROP TABLE" in page,
          "dashboard escaping")


@case
def get_endpoints_refuse_bad_queries(env):
    for path, want in [("/api/v1/change-points?state=bogus", 400),
                       ("/api/v1/change-points?kind=worse", 400),
                       ("/api/v1/change-points?color=red", 400),
                       ("/api/v1/series?bench=populate&x=1", 400),
                       ("/api/v1/series?params=%5B1%5D", 400),
                       ("/api/v1/series?params=%7B", 400),
                       ("/api/v1/hosts?x=1", 400),
                       ("/api/v1/series/999999", 404),
                       ("/api/v1/series/abc", 404),
                       ("/api/v1/series/-1", 404),
                       ("/api/v1/runs/0", 404),
                       ("/api/v1/nothing", 404),
                       ("/series/999999", 404),
                       ("/plots/series/999999.svg", 404),
                       ("/plots/series/1.png", 404),
                       ("/plots/compare/1.svg", 404),
                       ("/etc/passwd", 404),
                       ("/series/1/../../etc", 404)]:
        st, body, _ = http("GET", env.url + path)
        check(st == want, "%s: %d, want %d" % (path, st, want))
        check(json.loads(body)["status"] == want, path)
    st, _, hdr = http("GET", env.url + "/api/v1/runs")
    check(st == 405 and "POST" in hdr.get("Allow", ""), "GET runs: %d" % st)
    st, _, _ = http("DELETE", env.url + "/api/v1/hosts")
    check(st == 405, "DELETE: %d" % st)
    st, _, _ = http("POST", env.url + "/", "{}", token=TOKEN)
    check(st == 405, "POST /: %d" % st)


def step_series(env, host, vendor, n, step_at, step, lower_is_better=True, seed=1,
                params=None, base=100.0, noise=0.01):
    rnd = random.Random(seed)
    params = params or {"vcpus": 1, "backing": "anonymous_thp", "step": step_at}
    answers = []
    for i in range(n):
        level = base * (1 + step if i >= step_at else 1)
        samples = [round(level * (1 + rnd.gauss(0, noise)), 4) for _ in range(5)]
        doc = make_doc(100 + i, host=host, vendor=vendor,
                       figures=[("dirty_log", "clear_dirty_log", params, samples,
                                 lower_is_better)])
        st, body, _ = post_run(env, doc)
        check(st == 201, "commit %d: %d %s" % (i, st, body))
        answers.append(json.loads(body))
    return answers


def series_of(env, key):
    return [x["id"] for x in jget(env, "/api/v1/series?bench=dirty_log")
            if x["params"].get(key)][0]


@case
def retraction(env):
    """An admin token retracts a run: it stays stored and says who, when and
    why; its points leave the series and detection, and the change point
    they made goes; other tokens, bad bodies and repeats change nothing."""
    answers = step_series(env, "retract-amd", "AuthenticAMD", 16, 10, 0.3, seed=7,
                          params={"vcpus": 1, "retract": 1, "step": 910})
    sid = series_of(env, "retract")
    cps = jget(env, "/api/v1/series/%d" % sid)["change_points"]
    check(len(cps) == 1 and cps[0]["kind"] == "regression", "before: %s" % cps)
    bad = answers[10]["id"]
    url = "/api/v1/runs/%d/retract" % bad
    for body, token, want in [({"reason": "bad host"}, None, 401),
                              ({"reason": "bad host"}, TOKEN, 403),
                              ({}, ADMIN, 400), ({"reason": ""}, ADMIN, 400),
                              ({"reason": 5}, ADMIN, 400), ({"reason": "x" * 1001}, ADMIN, 400),
                              ({"reason": "x", "also": 1}, ADMIN, 400)]:
        refused(env, body, want, "retract %s with %s" % (body, token), token=token, path=url)
    refused(env, {"reason": "x"}, 404, "retract an unknown run", token=ADMIN,
            path="/api/v1/runs/999999/retract")
    refused(env, {"reason": "x"}, 404, "retract a bad path", token=ADMIN,
            path="/api/v1/runs/%d/retracts" % bad)
    check(jget(env, "/api/v1/runs/%d" % bad)["retracted"] is None, "retracted by a refusal")
    for a in answers[10:]:
        st, body, _ = http("POST", env.url + "/api/v1/runs/%d/retract" % a["id"],
                           {"reason": "the host's memory was failing"}, token=ADMIN)
        check(st == 200, "retract %d: %d %s" % (a["id"], st, body))
    ans = json.loads(body)
    check(ans["series"] == 1 and ans["change_points"] == 0, "answer %s" % ans)
    st, body, _ = http("POST", env.url + url, {"reason": "again"}, token=ADMIN)
    check(st == 409, "retracted twice: %d %s" % (st, body))
    run = jget(env, "/api/v1/runs/%d" % bad)
    check(run["retracted"]["by"] == "boss" and
          run["retracted"]["reason"] == "the host's memory was failing" and
          run["document"]["results"], "run %s" % run["retracted"])
    hist = [r["run"] for r in jget(env, "/api/v1/retractions")]
    check(hist == [a["id"] for a in answers[10:]], "history %s" % hist)
    ser = jget(env, "/api/v1/series/%d" % sid)
    check(len(ser["points"]) == 10 and not ser["change_points"],
          "after: %d points, %s" % (len(ser["points"]), ser["change_points"]))
    st, svg, _ = http("GET", env.url + "/plots/series/%d.svg" % sid)
    check(st == 200 and b"<svg" in svg, "plot after the retraction: %d" % st)


def machine_swap(env, first, host, tag, ids):
    """40 commits of one populate series from host, 100 then 120 from the
    21st: with ids, the first 20 carry ids[0] and the rest ids[1]."""
    rnd = random.Random(first)
    params = {"vcpus": 1, "machines": tag}
    for i in range(40):
        level = 100.0 if i < 20 else 120.0
        doc = make_doc(first + i, host=host, vendor="AuthenticAMD",
                       figures=[("populate", "populate", params,
                                 [round(level * (1 + rnd.gauss(0, 0.01)), 4)
                                  for _ in range(5)], True)])
        if ids:
            doc["host"]["machine_id"] = ids[i >= 20]
        st, body, _ = post_run(env, doc)
        check(st == 201, "%s, commit %d: %d %s" % (host, i, st, body))
    return [x["id"] for x in jget(env, "/api/v1/series?bench=populate")
            if x["params"].get("machines") == tag][0]


@case
def machines_are_series_identity(env):
    """One AMD machine swapped for another, no code change: each machine is a
    line of its own, so the other level is no change point; a document
    without machine_id names its machine by host name and CPU."""
    ids = ["%032x" % 0xa1, "%032x" % 0xa2]
    sid = machine_swap(env, 1200, "amd-bench", 1, ids)
    s = jget(env, "/api/v1/series/%d" % sid)
    check(not s["change_points"], "a machine swap made change points: %s" % s["change_points"])
    lines = {p["machine"] for p in s["points"]}
    check(len(lines) == 2, "want two lines of one name, told apart: %s" % lines)
    machines = [m for m in jget(env, "/api/v1/machines") if m["machine_id"] in ids]
    check(len(machines) == 2 and all(m["host_class"] == "amd" for m in machines) and
          {m["label"] for m in machines} == lines, "machines: %s" % machines)
    # The same swap without machine ids and with one host name: one machine,
    # and the step is found (what the service cannot tell apart, it pools).
    sid = machine_swap(env, 1300, "amd-anon", 2, None)
    cps = jget(env, "/api/v1/series/%d" % sid)["change_points"]
    check(len(cps) == 1 and cps[0]["commit"] == sha(1320), "pooled: %s" % cps)
    # A bad machine_id is refused, storing nothing.
    before = counts(env)
    doc = make_doc(1400, host="amd-bench")
    doc["host"]["machine_id"] = "not-hex"
    st, body, _ = post_run(env, doc)
    check(st == 422 and b"machine_id" in body and counts(env) == before, "%d %s" % (st, body))


@case
def branches_kept_apart(env):
    """A branch's runs are a line of their own: a slower topic branch is no
    change point on main, and the compare view shows it against main."""
    rnd = random.Random(13)
    params = {"vcpus": 1, "branches": 1}
    mid = "%032x" % 0xb1

    def send(n, level, branch, parent):
        doc = make_doc(n, host="br-amd", figures=[
            ("populate", "populate", params,
             [round(level * (1 + rnd.gauss(0, 0.01)), 4) for _ in range(5)], True)])
        doc["commit"]["branch"] = branch
        doc["commit"]["parent"] = sha(parent)
        doc["host"]["machine_id"] = mid
        st, body, _ = post_run(env, doc)
        check(st == 201, "%s %d: %d %s" % (branch, n, st, body))

    for i in range(30):
        send(1500 + i, 100.0, "main", 1500 + i - 1)
        if i >= 15:
            # topic forks from main's 1514 and runs 10% slower.
            send(1600 + i, 110.0, "topic", 1600 + i - 1 if i > 15 else 1514)
    sid = [x["id"] for x in jget(env, "/api/v1/series?bench=populate")
           if x["params"].get("branches")][0]
    s = jget(env, "/api/v1/series/%d" % sid)
    check(not s["change_points"], "branch runs made change points: %s" % s["change_points"])
    check({p["branch"] for p in s["points"]} == {"main", "topic"}, "branches of the points")
    main_pts = [p for p in s["points"] if p["branch"] == "main"]
    check(len(main_pts) == 30 and all(abs(p["median"] - 100) < 5 for p in main_pts),
          "main's line holds only main's runs")
    cmp = jget(env, "/api/v1/compare?base=%s&head=%s" % (sha(1529), sha(1629)))
    rows = [r for r in cmp["rows"] if r["series"] == sid]
    check(len(rows) == 1 and rows[0]["verdict"] == "regression" and
          abs(rows[0]["change"] - 0.10) < 0.03, "topic against main: %s" % rows)
    check(jget(env, "/api/v1/change-points?branch=topic") == [], "branch filter")


@case
def replay_keeps_change_points(env):
    """A generated history replayed one commit at a time, as bench hosts send
    it: every step of 4 to 6 times the noise is found within one commit of
    where it is; steps of 2 to 3 noises, which detection may see and then
    lose as data arrives, may be weakened but keep their ids; no change point
    is withdrawn or raised again under a new id, and noise raises none."""
    rnd = random.Random(21)
    n, nser = 160, 8
    plan = []
    for k in range(nser):
        noise = (0.0025, 0.005, 0.01, 0.02)[k % 4]
        while True:
            at = sorted(rnd.sample(range(15, n - 10), 4))
            if min(b - a for a, b in zip(at, at[1:])) >= 15:
                break
        # The last of the four (in random order) is a borderline one.
        big = rnd.sample(at, 3)
        steps = {x: rnd.choice((-1, 1)) * noise * (rnd.uniform(4, 6) if x in big else
                                                     rnd.uniform(2, 3)) for x in at}
        plan.append(({"vcpus": 1, "replay": k}, noise, steps, set(big)))
    level = [100.0 * (k + 1) for k in range(nser)]
    idx = {sha(3000 + i): i for i in range(n)}
    history = {}            # change point id -> its commit index, per snapshot
    weakened, gone, recreated = set(), {}, 0
    for i in range(n):
        figs = []
        for k, (params, noise, steps, _) in enumerate(plan):
            if i in steps:
                level[k] *= 1 + steps[i]
            figs.append(("replay", "replay", params,
                         [round(level[k] * (1 + rnd.gauss(0, noise)), 5) for _ in range(5)],
                         True))
        doc = make_doc(3000 + i, host="replay-amd", figures=figs)
        doc["host"]["machine_id"] = "%032x" % 0xc1
        st, body, _ = post_run(env, doc)
        check(st == 201, "commit %d: %d %s" % (i, st, body))
        now = {c["id"]: c for c in jget(env, "/api/v1/change-points?bench=replay")}
        for cid, c in now.items():
            k, x = c["params"]["replay"], idx[c["commit"]]
            if cid not in history:
                # A new id close to where one went: raised again.
                recreated += any(g[0] == k and abs(g[1] - x) <= 3 for g in gone.values())
                history[cid] = []
            history[cid].append(x)
            if c["weakened"] is not None:
                weakened.add(cid)
        for cid in set(history) - set(now) - set(gone):
            gone[cid] = (history[cid][0], history[cid][-1])
    final = jget(env, "/api/v1/change-points?bench=replay")
    found = missed = false = small = 0
    lag = []
    for k, (params, noise, steps, big) in enumerate(plan):
        mine = [c for c in final if c["params"]["replay"] == k]
        for at in steps:
            hit = [c for c in mine if abs(idx[c["commit"]] - at) <= 1]
            if at not in big:
                small += bool(hit)
            elif hit:
                found += 1
                # Snapshot j follows commit j; an id is in every one from its first.
                lag.append(n - len(history[hit[0]["id"]]) - at)
            else:
                missed += 1
                print("# replay: missed the %+.2f%% step of series %d at %d (noise %.2f%%)"
                      % (100 * steps[at], k, at, 100 * noise))
        for c in mine:
            if not any(abs(idx[c["commit"]] - at) <= 1 for at in steps):
                false += 1
                print("# replay: false change point on series %d at %d: %+.2f%%"
                      % (k, idx[c["commit"]], 100 * c["rel_change"]))
    moved = sum(len(set(h)) > 1 for h in history.values())
    print("# replay: %d commits x %d series, %d steps of 4-6 noises: found %d within one "
          "commit, missed %d; false %d, withdrawn %d, ids recreated %d, weakened %d, "
          "moved %d; %d of %d steps of 2-3 noises found; commits after a step until "
          "reported: %s" % (n, nser, found + missed, found, missed, false, len(gone),
                            recreated, len(weakened), moved, small, nser, sorted(lag)))
    check(missed == 0 and false == 0 and not gone and recreated == 0,
          "found %d missed %d false %d withdrawn %d recreated %d"
          % (found, missed, false, len(gone), recreated))


@case
def alerts_group_by_commit(env):
    """One alert per commit holds every series that moved there, largest
    first, with the range its step lies in when the bench skipped commits;
    people set its state, bug link and note (bad values refused, nothing
    changed); the dashboard opens with the alerts still open."""
    steps = {0: (10, 0.20), 1: (10, 0.08), 2: (10, -0.10), 3: (14, 0.15)}
    rnd = random.Random(31)
    for i in [j for j in range(20) if j != 9]:     # the bench skipped 1709
        figs = [("populate", "populate", {"vcpus": 1, "alert": k},
                 [round(100 * (1 + (d if i >= at else 0)) * (1 + rnd.gauss(0, 0.005)), 4)
                  for _ in range(5)], True) for k, (at, d) in steps.items()]
        doc = make_doc(1700 + i, host="alert-amd", figures=figs)
        doc["host"]["machine_id"] = "%032x" % 0xc2
        st, body, _ = post_run(env, doc)
        check(st == 201, "commit %d: %d %s" % (i, st, body))
    alerts = {a["commit"]: a for a in jget(env, "/api/v1/alerts")
              if any("alert" in c["params"] for c in a["change_points"])}
    check(set(alerts) == {sha(1710), sha(1714)}, "alerts at %s" % sorted(alerts))
    a = alerts[sha(1710)]
    check([c["params"]["alert"] for c in a["change_points"]] == [0, 2, 1] and
          a["regressions"] == 2 and a["improvements"] == 1 and a["state"] == "new" and
          a["first_parent"] == sha(1708) and
          a["range_url"] == "https://example.org/kmmu/log/%s..%s" % (sha(1708), sha(1710)),
          "alert at the skipped range: %s" % a)
    aid, other = a["alert"], alerts[sha(1714)]["alert"]
    check(jget(env, "/api/v1/alerts/%d" % aid) == a, "one alert as in the list")

    url = "/api/v1/alerts/%d" % aid
    for bad, want, what in [({"state": "bogus"}, 400, "bad state"),
                            ({"bug_url": "javascript:alert(1)"}, 400, "a script link"),
                            ({"bug_url": "https://x/ y"}, 400, "a space in the link"),
                            ({"note": "x" * 1001}, 400, "a long note"),
                            ({"colour": "red"}, 400, "unknown field"),
                            ({}, 400, "nothing to set")]:
        refused(env, bad, want, what, path=url)
    refused(env, {"state": "fixed"}, 401, "no token", path=url, token=None)
    refused(env, {"state": "fixed"}, 404, "no such alert", path="/api/v1/alerts/999999")
    check(jget(env, url) == a, "a refused change changed the alert")
    st, body, _ = http("POST", env.url + url, {"state": "acknowledged", "note": "bisected <b>",
                                               "bug_url": "https://bugs.example.org/123"},
                       token=TOKEN)
    got = json.loads(body)
    check(st == 200 and got["state"] == "acknowledged" and got["note"] == "bisected <b>" and
          got["bug_url"] == "https://bugs.example.org/123", "set: %d %s" % (st, body))
    st, page, _ = http("GET", env.url + "/alerts/%d" % aid)
    page = page.decode()
    check(st == 200 and "Alert %d" % aid in page and "https://bugs.example.org/123" in page and
          "bisected &lt;b&gt;" in page and "<b>" not in page and
          "%s..%s" % (sha(1708)[:12], sha(1710)[:12]) in page and page.count("<svg") >= 3,
          "alert page: %d" % st)
    dash = http("GET", env.url + "/")[1].decode()
    check('href="/alerts/%d"' % aid in dash and 'href="/alerts/%d"' % other in dash,
          "open alerts on the dashboard")
    # The page's form (303 back to the page, which urllib follows): an empty
    # link keeps the link.
    st, text, _ = http("POST", env.url + "/alerts/%d/state" % aid,
                       "token=%s&state=fixed&bug_url=&note=" % TOKEN,
                       ctype="application/x-www-form-urlencoded")
    got = jget(env, url)
    check(st == 200 and ("<h1>Alert %d</h1>" % aid).encode() in text and
          got["state"] == "fixed" and got["bug_url"] == "https://bugs.example.org/123",
          "form: %d %s" % (st, got))
    st, _, _ = http("POST", env.url + "/alerts/%d/state" % aid,
                    "token=%s&state=new&bug_url=ftp://x" % TOKEN,
                    ctype="application/x-www-form-urlencoded")
    check(st == 400 and jget(env, url)["state"] == "fixed", "bad link by form: %d" % st)
    dash = http("GET", env.url + "/")[1].decode()
    check('href="/alerts/%d"' % aid not in dash, "a fixed alert is still open")
    env.alert = aid


@case
def dirty_runs_stay_out_of_detection(env):
    """Runs of a dirty tree are stored and shown as such, never detected on:
    a step only they make is no change point."""
    params = {"vcpus": 1, "dirty_only": 1, "step": 920}
    for i in range(16):
        level = 130.0 if i >= 10 else 100.0
        doc = make_doc(500 + i, host="dirty-amd", figures=[
            ("dirty_log", "clear_dirty_log", params, [level, level + 0.5, level - 0.5], True)])
        doc["commit"]["dirty"] = i >= 10
        st, body, _ = post_run(env, doc)
        check(st == 201, "run %d: %d %s" % (i, st, body))
    ser = jget(env, "/api/v1/series/%d" % series_of(env, "dirty_only"))
    check(len(ser["points"]) == 16 and sum(p["dirty"] for p in ser["points"]) == 6,
          "points %s" % [(p["commit"][:6], p["dirty"]) for p in ser["points"]])
    check(not ser["change_points"], "a change point from dirty runs: %s" % ser["change_points"])


@case
def order_follows_the_parent_chain(env):
    """Commits whose committer times run backwards (a rebase, a skewed clock)
    are still drawn and detected in first-parent order, and a parent sent
    after its child moves the child after it."""
    params = {"vcpus": 1, "chain": 1, "step": 930}
    order = list(range(12))
    order.remove(5)
    order.append(5)
    for i in order:
        level = 120.0 if i >= 8 else 100.0
        doc = make_doc(700 + i, host="chain-amd", figures=[
            ("split", "split_2m", params, [level, level + 0.4, level - 0.4], True)])
        doc["commit"]["time"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00",
                                              time.gmtime(1_750_000_000 - 3600 * i))
        st, body, _ = post_run(env, doc)
        check(st == 201, "commit %d: %d %s" % (i, st, body))
    sid = [x["id"] for x in jget(env, "/api/v1/series?bench=split") if x["params"].get("chain")][0]
    ser = jget(env, "/api/v1/series/%d" % sid)
    got = [p["commit"] for p in ser["points"]]
    check(got == [sha(700 + i) for i in range(12)],
          "points out of chain order: %s" % [[sha(700 + i) for i in range(12)].index(x)
                                            for x in got])
    cps = ser["change_points"]
    check(len(cps) == 1 and cps[0]["commit"] == sha(708) and cps[0]["kind"] == "regression",
          "change points %s" % [(c["commit"][:8], c["kind"]) for c in cps])
    # A loop of parents is data, not a hang: each is placed once.
    for a, b in ((790, 791), (791, 790)):
        doc = make_doc(a, host="chain-amd", sha_=sha(a), figures=[
            ("split", "split_2m", {"vcpus": 1, "loop": 1}, [1.0], True)])
        doc["commit"]["parent"] = sha(b)
        st, body, _ = post_run(env, doc)
        check(st == 201, "loop %d: %d %s" % (a, st, body))


@case
def detection_finds_the_step(env):
    # 40 commits on AMD, +10% from commit 25: a regression (lower is better).
    step_series(env, "amd-1", "AuthenticAMD", 40, 25, 0.10)
    # The same series on Intel without a step, and an improvement on
    # another params: higher figures, higher is better.
    step_series(env, "intel-1", "GenuineIntel", 40, 99, 0.0, seed=2)
    step_series(env, "amd-1", "AuthenticAMD", 30, 12, 0.08, lower_is_better=False, seed=3,
                params={"vcpus": 2, "backing": "anonymous_thp", "step": 12})
    cps = jget(env, "/api/v1/change-points?bench=dirty_log")
    reg = [c for c in cps if c["params"]["step"] == 25]
    check(len(reg) == 1, "want one change point on the step at 25: %s" % reg)
    c = reg[0]
    check(c["commit"] == sha(125) and c["kind"] == "regression" and c["host_class"] == "amd"
          and abs(c["rel_change"] - 0.10) < 0.02 and c["state"] == "new", "%s" % c)
    check(c["pvalue"] <= 0.001, "p %s" % c["pvalue"])
    imp = [c for c in cps if c["params"]["step"] == 12]
    check(len(imp) == 1 and imp[0]["kind"] == "improvement" and imp[0]["commit"] == sha(112),
          "improvement: %s" % imp)
    noise = [(c["id"], c["params"], c["commit"][:8], c["rel_change"], c["pvalue"])
             for c in cps if c["host_class"] == "intel"]
    check(not noise, "noise on intel: %s" % noise)
    check(jget(env, "/api/v1/change-points?state=new&kind=regression&host_class=amd&"
                    "bench=dirty_log") == reg, "filters")
    env.regression = c


def mwu_p(a, b):
    """Two-sided Mann-Whitney U, normal approximation with mid-ranks, tie and
    continuity corrections: what the service computes, written again."""
    pool = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    r1 = ties = 0.0
    i = 0
    while i < len(pool):
        j = i
        while j < len(pool) and pool[j][0] == pool[i][0]:
            j += 1
        rank = (i + 1 + j) / 2
        r1 += rank * sum(1 for k in range(i, j) if pool[k][1] == 0)
        ties += (j - i) ** 3 - (j - i)
        i = j
    n1, n2 = len(a), len(b)
    nn = n1 + n2
    u = r1 - n1 * (n1 + 1) / 2
    var = n1 * n2 / 12 * ((nn + 1) - ties / (nn * (nn - 1)))
    z = max(0.0, abs(u - n1 * n2 / 2) - 0.5)
    return math.erfc(z / math.sqrt(var) / math.sqrt(2))


@case
def compare_view(env):
    """Two commits side by side: every series measured at both, with both
    medians, the ratio, the U test's p and mark, the floors, checked against
    the raw samples; regressions first; bad arguments refused."""
    sid = env.regression["series_id"]
    pts = jget(env, "/api/v1/series/%d" % sid)["points"]
    at = {}
    for p in pts:
        if p["host_class"] == "amd":
            at.setdefault(p["commit"], []).extend(p["samples"])
    base, head = at[sha(124)], at[sha(125)]
    cmp = jget(env, "/api/v1/compare?base=%s&head=%s" % (sha(124)[:9], sha(125)))
    check(cmp["base"] == sha(124) and cmp["head"] == sha(125), "shas %s" % cmp)
    rows = [r for r in cmp["rows"] if r["series"] == sid and r["host_class"] == "amd"]
    check(len(rows) == 1, "rows %s" % rows)
    r = rows[0]
    want_p = mwu_p(base, head)
    check(r["base_median"] == statistics.median(base) and
          r["head_median"] == statistics.median(head) and
          abs(r["ratio"] - r["head_median"] / r["base_median"]) < 1e-12 and
          abs(r["p"] - want_p) < 1e-12 and r["base_samples"] == len(base) and
          r["base_floor"] == 6.0 and r["head_floor"] == 6.0, "row %s, want p %g" % (r, want_p))
    check(r["verdict"] == "regression" and r["mark"] == "*" and want_p < 0.05,
          "verdict %s %s (p %g)" % (r["verdict"], r["mark"], want_p))
    verdicts = [bool(x["verdict"]) for x in cmp["rows"]]
    check(verdicts == sorted(verdicts, reverse=True), "changes not first: %s" % verdicts)
    # The same commit against itself: nothing moved.
    same = jget(env, "/api/v1/compare?base=%s&head=%s" % (sha(124), sha(124)))
    check(same["rows"] and all(x["ratio"] == 1 and not x["verdict"] for x in same["rows"]),
          "a commit against itself: %s" % same["rows"][:2])
    st, page, _ = http("GET", env.url + "/compare?base=%s&head=%s" % (sha(124), sha(125)))
    page = page.decode()
    check(st == 200 and 'href="/series/%d"' % sid in page and "regression" in page and
          "%.4g" % r["head_median"] in page, "compare page: %d" % st)
    for q, want in [("base=%s" % sha(124), 400), ("base=xyz&head=%s" % sha(1), 400),
                    ("base=%s&head=%s" % ("f" * 12, sha(125)), 404),
                    ("base=%s&head=%s&x=1" % (sha(124), sha(125)), 400),
                    ("base=%s&head=%s" % (sha(124)[:6], sha(125)), 400)]:
        for path in ("/api/v1/compare?", "/compare?"):
            st, body, _ = http("GET", env.url + path + q)
            check(st == want and json.loads(body)["error"], "%s%s: %d, want %d"
                  % (path, q, st, want))
    env.compare = "/compare?base=%s&head=%s" % (sha(124), sha(125))


@case
def change_point_states(env):
    c = env.regression
    path = "/api/v1/change-points/%d" % c["id"]
    refused(env, {"state": "gone"}, 400, "bad state", path=path)
    refused(env, {"state": "fixed", "color": 1}, 400, "unknown field", path=path)
    refused(env, {"note": "x"}, 400, "no state", path=path)
    refused(env, {"state": "fixed"}, 401, "no token", path=path, token=None)
    st, _, _ = http("POST", env.url + "/api/v1/change-points/999999", {"state": "fixed"},
                    token=TOKEN)
    check(st == 404, "unknown change point: %d" % st)
    st, body, _ = http("POST", env.url + path, {"state": "acknowledged", "note": "bisected"},
                       token=TOKEN)
    check(st == 200, "acknowledge: %d %s" % (st, body))
    got = json.loads(body)
    check(got["state"] == "acknowledged" and got["note"] == "bisected", "%s" % got)
    check(jget(env, path)["state"] == "acknowledged", "state not kept")
    # A new submission re-runs detection: the state people set stays.
    step_series(env, "amd-1", "AuthenticAMD", 1, 0, 0.10, seed=9,
                params={"vcpus": 1, "backing": "anonymous_thp", "step": 25})
    check(jget(env, path)["state"] == "acknowledged", "state lost on re-detection")


def form(env, cp, fields, ctype="application/x-www-form-urlencoded"):
    body = urllib.parse.urlencode(fields) if isinstance(fields, dict) else fields
    return http("POST", env.url + "/change-points/%s/state" % cp, body, ctype=ctype)


@case
def change_point_state_form(env):
    """The series page's form, for people without curl."""
    c = env.regression
    st, page, _ = http("GET", env.url + "/series/%d" % c["series_id"])
    check(st == 200 and ('action="/change-points/%d/state"' % c["id"]).encode() in page,
          "no form on the series page")
    before = jget(env, "/api/v1/change-points/%d" % c["id"])
    for fields, want, what in [
            ({"state": "fixed", "token": "wrong-token-0000000000"}, 401, "wrong token"),
            ({"state": "fixed"}, 401, "no token"),
            ({"state": "gone", "token": TOKEN}, 400, "bad state"),
            ({"token": TOKEN}, 400, "no state"),
            ({"state": "fixed", "token": TOKEN, "note": "x" * 1001}, 400, "long note"),
            ("state=fixed&state=new&token=" + TOKEN, 400, "state twice"),
            ("state=fixed&colour=red&token=" + TOKEN, 400, "unknown field"),
            ("state=fixed&note=%00&token=" + TOKEN, 400, "NUL in a note"),
            ("state=fixed&note=%zz&token=" + TOKEN, 400, "bad escape"),
            ("state&token=" + TOKEN, 400, "field without a value")]:
        st, text, hdr = form(env, c["id"], fields)
        check(st == want and hdr["Content-Type"].startswith("text/html") and b"Back" in text,
              "%s: %d, want %d" % (what, st, want))
    st, _, _ = form(env, c["id"], {"state": "fixed", "token": TOKEN}, ctype="application/json")
    check(st == 415, "JSON to the form: %d" % st)
    st, _, _ = form(env, 999999, {"state": "fixed", "token": TOKEN})
    check(st == 404, "unknown change point: %d" % st)
    st, _, _ = form(env, "abc", {"state": "fixed", "token": TOKEN})
    check(st == 404, "bad id: %d" % st)
    st, _, _ = http("GET", env.url + "/change-points/%d/state" % c["id"])
    check(st == 405, "GET of the form's target: %d" % st)
    check(jget(env, "/api/v1/change-points/%d" % c["id"]) == before, "a refused form changed it")
    # A good one: 303 to the series page (urllib follows it), state and note set.
    req = urllib.request.Request(env.url + "/change-points/%d/state" % c["id"], method="POST",
                                 data=urllib.parse.urlencode({
                                     "state": "invalid", "note": "a noisy host, not a change",
                                     "token": OTHER}).encode(),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=60) as r:
        check(r.status == 200 and r.url.endswith("/series/%d" % c["series_id"]),
              "after the form: %d %s" % (r.status, r.url))
    got = jget(env, "/api/v1/change-points/%d" % c["id"])
    check(got["state"] == "invalid" and got["note"] == "a noisy host, not a change",
          "form did not set it: %s" % got)
    # An empty note keeps the note.
    form(env, c["id"], {"state": "new", "note": "", "token": TOKEN})
    got = jget(env, "/api/v1/change-points/%d" % c["id"])
    check(got["state"] == "new" and got["note"] == "a noisy host, not a change", "%s" % got)


class Hook(BaseHTTPRequestHandler):
    got = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.got.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@case
def webhook(env):
    """Each new alert is POSTed to webhook_url once, webhook_settle seconds
    after it is raised, with every change point that joined it by then.
    Those raised while nothing listened (every earlier case's) are retried
    and arrive once the listener is up; one raised with it up arrives too,
    once."""
    raised = {a["alert"] for a in jget(env, "/api/v1/alerts")}
    check(raised, "no alert raised before this case")
    srv = ThreadingHTTPServer(("127.0.0.1", env.hook_port), Hook)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        # Two series stepping at one commit: one alert, holding both.
        for i in range(12):
            level = 1.3 if i >= 6 else 1.0
            rnd = random.Random(i)
            doc = make_doc(940 + i, host="hook-amd", figures=[
                ("dirty_log", "clear_dirty_log", {"vcpus": 1, "hook": k},
                 [round(100 * level ** (k + 1) * (1 + rnd.gauss(0, 0.01)), 4)
                  for _ in range(5)], True) for k in (1, 2)])
            st, body, _ = post_run(env, doc)
            check(st == 201, "commit %d: %d %s" % (i, st, body))
        raised = {a["alert"] for a in jget(env, "/api/v1/alerts")}
        for _ in range(150):
            if {g[2]["alert"] for g in Hook.got} >= raised:
                break
            time.sleep(0.1)
        time.sleep(3)  # one more round of retries: nothing is sent twice
    finally:
        srv.shutdown()
        srv.server_close()
    ids = [g[2]["alert"] for g in Hook.got]
    check(set(ids) >= raised, "not notified: %s" % sorted(raised - set(ids)))
    check(len(ids) == len(set(ids)), "notified twice: %s" % sorted(ids))
    new = [g for g in Hook.got if g[2]["commit"] == sha(946)]
    check(len(new) == 1, "the step's notification: %s" % new)
    path, ctype, body = new[0]
    cps = body["change_points"]
    check(path == "/kmmu-alerts" and ctype == "application/json" and
          body["commit_url"] == "https://example.org/kmmu/commit/%s" % sha(946) and
          body["first_parent"] == sha(945) and
          body["range_url"] == "https://example.org/kmmu/log/%s..%s" % (sha(945), sha(946)) and
          body["page"] == "/alerts/%d" % body["alert"] and body["regressions"] == 2 and
          len(cps) == 2 and [c["params"]["hook"] for c in cps] == [2, 1] and
          all(c["kind"] == "regression" for c in cps) and
          abs(cps[0]["rel_change"] - 1.197) < 0.1 and abs(cps[1]["rel_change"] - 0.69) < 0.1,
          "summary: first parent %s, %d regressions, %s" % (
              body["first_parent"][:8], body["regressions"],
              [(c["params"], c["kind"], c["rel_change"]) for c in cps]))
    sent = env.psql("SELECT count(*) FROM notifications WHERE delivered IS NOT NULL")
    retried = env.psql("SELECT count(*) FROM notifications WHERE attempts > 1")
    check(int(sent) == len(ids) and int(retried) > 0,
          "delivered %s of %d, %s retried" % (sent, len(ids), retried))


@case
def annotations(env):
    refused(env, {"commit": sha(130), "text": ""}, 400, "empty text",
            path="/api/v1/annotations")
    refused(env, {"commit": sha(130)}, 400, "no text", path="/api/v1/annotations")
    refused(env, {"commit": sha(130), "text": "x", "when": 1}, 400, "unknown field",
            path="/api/v1/annotations")
    refused(env, {"commit": sha(130), "text": 5}, 400, "text not a string",
            path="/api/v1/annotations")
    refused(env, {"commit": sha(99999), "text": "x"}, 422, "unknown commit",
            path="/api/v1/annotations")
    refused(env, {"commit": sha(130), "text": "x"}, 401, "no token",
            path="/api/v1/annotations", token=None)
    st, body, _ = http("POST", env.url + "/api/v1/annotations",
                       {"commit": sha(130), "text": "kernel upgraded on amd hosts",
                        "host_class": "amd"}, token=TOKEN)
    check(st == 201, "annotate: %d %s" % (st, body))
    got = jget(env, "/api/v1/annotations?host_class=amd")
    check(any(a["text"] == "kernel upgraded on amd hosts" and a["commit"] == sha(130) and
              a["author"] == "bench" for a in got), "%s" % got)
    check(jget(env, "/api/v1/annotations?host_class=intel") == [], "host class filter")


def svg_ok(svg, title):
    text = svg.decode()
    return "<svg" in text and "</svg>" in text and title in text and "<path" in text


@case
def plots_and_pages(env):
    sid = env.regression["series_id"]
    st, svg, hdr = http("GET", env.url + "/plots/series/%d.svg" % sid)
    check(st == 200 and hdr["Content-Type"] == "image/svg+xml", "plot: %d %s" % (st, hdr))
    check(svg_ok(svg, "dirty_log.clear_dirty_log"), "plot has no title or lines")
    check(b"kernel upgraded on amd hosts" in svg, "annotation not drawn")
    check(b"+10" in svg or b"+9" in svg or b"+11" in svg, "change point not labelled")
    check(b"regression" in svg, "change point kind not labelled")
    # The floor the figures were measured against, as its own line on its own axis.
    check(b"floor: amd-1 cmpxchg" in svg and b"floor, ns/entry" in svg, "floor not drawn")
    # A line per machine and branch.
    check(b"amd-1 main" in svg and b"intel-1 main" not in svg, "lines of the plot")
    st2, svg2, _ = http("GET", env.url + "/plots/series/%d.svg" % sid)
    check(st2 == 200 and svg2 == svg, "cached plot differs")
    cached = os.listdir(os.path.join(env.tmp, "cache"))
    check(any(f.startswith("series-%d-" % sid) for f in cached), "not cached: %s" % cached)
    # A state change is a new version of the plot.
    http("POST", env.url + "/api/v1/change-points/%d" % env.regression["id"],
         {"state": "fixed"}, token=TOKEN)
    st, svg3, _ = http("GET", env.url + "/plots/series/%d.svg" % sid)
    check(st == 200 and b"(fixed)" in svg3, "plot not redrawn after a state change")
    cached = [f for f in os.listdir(os.path.join(env.tmp, "cache"))
              if f.startswith("series-%d-" % sid)]
    check(len(cached) == 1, "stale renders kept: %s" % cached)
    http("POST", env.url + "/api/v1/change-points/%d" % env.regression["id"],
         {"state": "new"}, token=TOKEN)

    st, page, _ = http("GET", env.url + "/")
    page = page.decode()
    check(st == 200 and "Open alerts" in page, "dashboard: %d" % st)
    first = page.index("Open alerts")
    check(first < page.index("Benchmarks"), "alerts are not first")
    check('href="/series/%d"' % sid in page, "no link to the series")
    check("https://example.org/kmmu/commit/%s" % sha(125) in page, "no link to the commit")
    check("<script" not in page, "the dashboard uses JavaScript")
    check("e-31" not in page and "e-2" not in page and "&lt; 1e-06" in page,
          "raw tiny p-values on the dashboard")
    # A compact table, not every full plot: per series, machine and branch the
    # latest median, the change from the previous commit, a sparkline.
    check("<img" not in page and page.count('<svg class="spark"') >= 3,
          "the dashboard is not a table of sparklines")
    meds = {}
    for p in jget(env, "/api/v1/series/%d" % sid)["points"]:
        if p["host_class"] == "amd":
            meds.setdefault(p["commit"], []).extend(p["samples"])
    last = [statistics.median(meds[c]) for c in list(meds)[-2:]]
    row = re.search(r'<tr><td><a href="/series/%d">.*?<td>amd-1 main</td>(.*?)</tr>' % sid, page)
    check(row, "no amd row for series %d" % sid)
    want = "%.4g ns/4K" % last[1], "%+.1f%%" % (100 * (last[1] - last[0]) / last[0])
    check(want[0] in row.group(1) and want[1] in row.group(1) and "<polyline" in row.group(1),
          "row %s, want %s" % (row.group(1)[:300], want))
    # Every plot, those of series named with quotes, backslashes and long
    # multibyte strings included, is well-formed XML.
    for other in sorted(set(re.findall(r'href="/series/(\d+)"', page))):
        other = "/plots/series/%s.svg" % other
        st, svg, _ = http("GET", env.url + other)
        check(st == 200, "%s: %d %s" % (other, st, svg[:200]))
        try:
            ElementTree.fromstring(svg)
        except ElementTree.ParseError as e:
            raise Fail("%s: not well-formed: %s" % (other, e))
    st, page, _ = http("GET", env.url + "/series/%d" % sid)
    check(st == 200 and svg_ok(page, "dirty_log.clear_dirty_log"), "series page: %d" % st)
    check(b"kernel upgraded on amd hosts" in page, "annotation not on the series page")


@case
def series_zoom(env):
    """A series page and its plot take a commit range (from, to: sha
    prefixes) or the last N commits, picked with a plain GET form."""
    sid = env.regression["series_id"]

    def plot(q):
        st, svg, _ = http("GET", env.url + "/plots/series/%d.svg?%s" % (sid, q))
        check(st == 200 and svg_ok(svg, "dirty_log.clear_dirty_log"), "plot ?%s: %d" % (q, st))
        return svg.decode()
    whole = plot("")
    check(sha(100)[:7] in whole, "the whole history does not start at the first commit")
    last = plot("last=10")
    check(sha(130)[:7] in last and sha(100)[:7] not in last and sha(120)[:7] not in last,
          "last=10 draws other commits")
    part = plot("from=%s&to=%s" % (sha(120)[:10], sha(127)))
    check(sha(120)[:7] in part and sha(139)[:7] not in part and sha(100)[:7] not in part,
          "from..to draws other commits")
    check("+10" in part or "+9" in part or "+11" in part, "the change point in range not drawn")
    cached = [f for f in os.listdir(os.path.join(env.tmp, "cache"))
              if f.startswith("series-%d-" % sid)]
    check(len(cached) >= 3, "ranges share a cache entry: %s" % cached)
    st, page, _ = http("GET", env.url + "/series/%d?last=10" % sid)
    page = page.decode()
    check(st == 200 and '<form method="get" action="/series/%d">' % sid in page and
          "<option selected>%s</option>" % sha(130)[:12] in page and "<svg" in page,
          "zoomed series page: %d" % st)
    for q, want in [("last=0", 400), ("last=abc", 400), ("from=zzz", 400),
                    ("from=%s&to=%s" % (sha(130), sha(120)), 400),
                    ("last=5&from=%s" % sha(120), 400), ("zoom=1", 400),
                    ("from=%s" % ("f" * 10), 404)]:
        for path in ("/series/%d?" % sid, "/plots/series/%d.svg?" % sid):
            st, body, _ = http("GET", env.url + path + q)
            check(st == want and json.loads(body)["error"], "%s%s: %d, want %d"
                  % (path, q, st, want))


@case
def kvm_comparison_plot(env):
    params = {"vcpus": 1, "bytes_per_vcpu": 67108864, "backing": "anonymous"}
    figs = []
    for mmu, level in (("kmmu", 2.0), ("kvm", 2.5)):
        p = dict(params, mmu=mmu) if mmu == "kvm" else params
        figs.append(("dirty_log", "enable_logging", p, [level, level * 1.01, level * 0.99],
                     True))
    for i in range(3):
        doc = make_doc(300 + i, host="guest", figures=figs)
        doc["host"]["backend"] = "dev"
        st, body, _ = post_run(env, doc)
        check(st == 201, "%d %s" % (st, body))
    sid = [s for s in jget(env, "/api/v1/series?metric=enable_logging&backend=dev")
           if "mmu" not in s["params"]][0]["id"]
    st, svg, _ = http("GET", env.url + "/plots/compare/%d.svg" % sid)
    check(st == 200 and svg_ok(svg, "kmmu and KVM") and b"KVM guest main" in svg and
          b"kmmu guest main" in svg, "comparison plot: %d" % st)
    st, page, _ = http("GET", env.url + "/series/%d" % sid)
    check(st == 200 and b"kmmu and KVM" in page, "comparison not on the series page")


@case
def database_restart(env):
    env.pg("stop")
    doc = make_doc(400)
    st, body, hdr = post_run(env, doc)
    check(st == 503 and "Retry-After" in hdr, "submission during the outage: %d %s" % (st, body))
    st, _, _ = http("GET", env.url + "/api/v1/hosts")
    check(st == 503, "GET during the outage: %d" % st)
    # The bench client keeps the document and says so.
    spool = os.path.join(env.tmp, "results")
    os.makedirs(spool, exist_ok=True)
    path = os.path.join(spool, "run.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    cenv = dict(os.environ, KMMU_SERVICE_URL=env.url, KMMU_SERVICE_TOKEN=TOKEN)
    cli = [sys.executable, os.path.join(ROOT, "scripts/submit-results.py")]
    r = subprocess.run(cli + ["--tries", "2", "--delay", "0.2", spool], env=cenv,
                       capture_output=True, text=True)
    sent = os.path.join(spool, ".sent", "127.0.0.1:%d" % env.port, "run.json")
    check(r.returncode == 3 and not os.path.exists(sent) and "kept" in r.stderr,
          "client during the outage: %d %s" % (r.returncode, r.stderr))
    env.pg("start")
    r = subprocess.run(cli + [spool], env=cenv, capture_output=True, text=True)
    check(r.returncode == 0 and os.path.exists(sent),
          "client after the outage: %d %s %s" % (r.returncode, r.stdout, r.stderr))
    r = subprocess.run(cli + [spool], env=cenv, capture_output=True, text=True)
    check(r.returncode == 0 and r.stdout == "", "sent twice: %s" % r.stdout)
    check(jget(env, "/api/v1/hosts"), "daemon did not reconnect")
    # Refused documents are not retried; a bad token is the client's error.
    bad = os.path.join(spool, "bad.json")
    with open(bad, "w") as f:
        f.write("{}")
    r = subprocess.run(cli + [spool], env=cenv, capture_output=True, text=True)
    check(r.returncode == 1 and os.path.exists(os.path.join(
        spool, ".refused", "127.0.0.1:%d" % env.port, "bad.json")), "refused: %s" % r.stderr)
    r = subprocess.run(cli + [spool], env=cenv, capture_output=True, text=True)
    check(r.returncode == 0, "refused document retried: %s" % r.stderr)
    # A token the service does not take refuses no document: all stay pending,
    # the client says why and exits 4, and the next run with the right token sends them.
    for i in (401, 402):
        with open(os.path.join(spool, "tok%d.json" % i), "w") as f:
            json.dump(make_doc(i), f)
    for tok in ("not-a-token", "x" * 64):
        r = subprocess.run(cli + ["--tries", "3", "--delay", "5", spool],
                           env=dict(cenv, KMMU_SERVICE_TOKEN=tok),
                           capture_output=True, text=True, timeout=30)
        marks = glob.glob(os.path.join(spool, ".*", "*", "tok*.json"))
        check(r.returncode == 4 and "token" in r.stderr and "2 document(s) kept" in r.stderr
              and "retrying" not in r.stderr and not marks,
              "bad token: %d %s %s" % (r.returncode, r.stderr, marks))
    r = subprocess.run(cli + [spool], env=cenv, capture_output=True, text=True)
    check(r.returncode == 0 and r.stdout.count(": run ") == 2,
          "after the token is fixed: %d %s %s" % (r.returncode, r.stdout, r.stderr))


@case
def still_serving_after_everything(env):
    st, body, _ = http("GET", env.url + "/healthz")
    check(st == 200 and body == b"ok\n", "healthz: %d" % st)
    with socket.create_connection(("127.0.0.1", env.port)) as s:
        s.sendall(b"GARBAGE\r\n\r\n")
        s.settimeout(10)
        try:
            s.recv(100)
        except OSError:
            pass
    st, _, _ = http("GET", env.url + "/healthz")
    check(st == 200, "healthz after garbage: %d" % st)


def png_colours(path):
    """Distinct colours of an 8-bit RGB(A) PNG, as Chromium writes them."""
    with open(path, "rb") as f:
        data = f.read()
    check(data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG")
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", chunk[:10])
            check(depth == 8 and ctype in (2, 6), "PNG type %d/%d" % (depth, ctype))
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    colours = set()
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
        if y % 4 == 0:
            for x in range(0, stride, bpp * 4):
                colours.add(bytes(line[x:x + 3]))
    return colours


@case
def chromium_renders_the_dashboard(env):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        raise Skip("no chromium")
    os.makedirs(SHOTS, exist_ok=True)
    sid = env.regression["series_id"]
    common = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              "--disable-dev-shm-usage", "--no-first-run", "--user-data-dir=" +
              os.path.join(env.tmp, "chromium"), "--virtual-time-budget=5000"]
    for name, path in (("dashboard", "/"), ("series", "/series/%d" % sid),
                       ("compare", env.compare), ("alert", "/alerts/%d" % env.alert)):
        shot = os.path.join(SHOTS, name + ".png")
        if os.path.exists(shot):
            os.unlink(shot)
        r = subprocess.run(common + ["--window-size=1200,1600", "--screenshot=" + shot,
                                     env.url + path], capture_output=True, text=True,
                           timeout=180)
        check(os.path.exists(shot), "%s: no screenshot (%d): %s" % (name, r.returncode,
                                                                    r.stderr[-1000:]))
        colours = png_colours(shot)
        # A page of text alone has a few greys; the plots add the lines'
        # and the samples' colours.
        # The compare view is a table: text, and the regression's red.
        check(len(colours) >= (4 if name == "compare" else 12),
              "%s: %d colours: nothing rendered" % (name, len(colours)))
        print("# screenshot %s: %s (%d colours)" % (name, shot, len(colours)))
    r = subprocess.run(common + ["--dump-dom", env.url + "/series/%d" % sid],
                       capture_output=True, text=True, timeout=180)
    dom = r.stdout
    check("<svg" in dom and "dirty_log.clear_dirty_log" in dom and "<path" in dom,
          "series page DOM has no rendered plot")


@case
def make_serve(env):
    """scripts/serve.sh, what make serve runs: its own PostgreSQL, the
    results imported, the dashboard served; SIGINT stops all of it."""
    d = os.path.join(env.tmp, "serve")
    res = os.path.join(env.tmp, "serve-results")
    os.makedirs(res)
    shutil.copy(os.path.join(ROOT, "service/tests/data/results-suite.json"), res)
    port = free_port()
    senv = dict(os.environ, KMMU_SERVE_DIR=d, KMMU_SERVE_RESULTS=res,
                KMMU_PG_PORT=str(free_port()), BUILD=BUILD)
    for k in list(senv):
        if k.startswith("KMMU_REGRESSD_") or k == "KMMU_SERVE_PORT":
            del senv[k]
    # The port is the daemon's own setting; the old variable is refused, not ignored.
    r = subprocess.run(["sh", "scripts/serve.sh"], cwd=ROOT, capture_output=True, text=True,
                       env=dict(senv, KMMU_SERVE_PORT=str(port)), timeout=60)
    check(r.returncode == 2 and "KMMU_REGRESSD_PORT" in r.stderr,
          "KMMU_SERVE_PORT: %d %s" % (r.returncode, r.stderr))
    senv["KMMU_REGRESSD_PORT"] = str(port)
    # make serve installs what the service needs, no QEMU and no kernel images.
    r = subprocess.run(["make", "-n", "serve"], cwd=ROOT, capture_output=True, text=True)
    check("install-deps.sh serve" in r.stdout and "install-deps.sh build kernel" not in r.stdout,
          "make serve's packages: %s" % r.stdout)
    r = subprocess.run(["sh", "scripts/install-deps.sh", "--list", "serve"], cwd=ROOT,
                       capture_output=True, text=True)
    pkgs = r.stdout.split()
    check(r.returncode == 0 and "postgresql" in pkgs and "libmicrohttpd-dev" in pkgs and
          not [p for p in pkgs if p.startswith(("qemu", "linux-image", "linux-headers",
                                               "chromium", "stress-ng", "fio"))],
          "make serve's packages: %s" % pkgs)
    log = open(os.path.join(env.tmp, "serve.log"), "w")
    p = subprocess.Popen(["sh", "scripts/serve.sh"], cwd=ROOT, env=senv, stdout=log,
                         stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for _ in range(300):
            if "dashboard is at" in open(log.name).read() or p.poll() is not None:
                break
            time.sleep(0.1)
        out = open(log.name).read()
        check("dashboard is at http://127.0.0.1:%d/" % port in out, "serve: %s" % out[-800:])
        check("results-suite.json: run 1" in out, "not imported: %s" % out[-800:])
        st, page, _ = http("GET", "http://127.0.0.1:%d/" % port)
        check(st == 200 and b"<h3>dirty_log</h3>" in page and b"<h3>aging</h3>" in page,
              "imported results not on the dashboard")
        sid = re.search(rb'href="/series/(\d+)"', page).group(1).decode()
        st, svg, _ = http("GET", "http://127.0.0.1:%d/plots/series/%s.svg" % (port, sid))
        check(st == 200 and b"<svg" in svg, "plot: %d" % st)
    finally:
        os.killpg(p.pid, signal.SIGINT)
        rc = p.wait(60)
        log.close()
    check(rc == 0, "serve.sh after SIGINT: exit %d" % rc)
    check(not os.path.exists(os.path.join(d, "pg/data/postmaster.pid")),
          "PostgreSQL left running")
    st = None
    try:
        st = http("GET", "http://127.0.0.1:%d/healthz" % port)[0]
    except OSError:
        pass
    check(st is None, "daemon left running")


@case
def sigterm_stops_cleanly(env):
    """SIGTERM with a submission in flight: the daemon stops listening, takes
    the rest of the body, stores the run, answers 201, and only then exits."""
    doc = json.dumps(make_doc(900)).encode()
    c = socket.create_connection(("127.0.0.1", env.port), timeout=30)
    c.sendall(b"POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Authorization: Bearer " + TOKEN.encode() +
              b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(doc))
    c.sendall(doc[:100])
    time.sleep(0.5)
    env.proc.send_signal(signal.SIGTERM)
    # It stops listening: a new client is refused while the first one is served.
    refused_new = False
    for _ in range(20):
        try:
            socket.create_connection(("127.0.0.1", env.port), timeout=1).close()
        except OSError:
            refused_new = True
            break
        time.sleep(0.05)
    check(env.proc.poll() is None, "exited with a request in flight")
    c.sendall(doc[100:])
    answer = b""
    while True:
        b = c.recv(65536)
        if not b:
            break
        answer += b
    c.close()
    check(answer.startswith(b"HTTP/1.1 201"), "in-flight request: %r" % answer[:300])
    check(refused_new, "still listening after SIGTERM")
    rc = env.stop()
    log = open(env.log).read()
    check(rc == 0, "exit status %s" % rc)
    check("SIGTERM: stopping" in log and "stopped" in log, "log: %s" % log[-500:])
    check(env.psql("SELECT count(*) FROM commits WHERE sha = '%s'" % sha(900)) == "1",
          "the in-flight run was not stored")


@case
def configuration_errors(env):
    def run(args, extra_env=None):
        e = dict(os.environ, **(extra_env or {}))
        return subprocess.run([DAEMON] + args, capture_output=True, text=True, env=e,
                              timeout=60)
    r = run(["--help"])
    check(r.returncode == 0 and "detect_max_pvalue" in r.stdout and "tokens_file" in r.stdout,
          "--help")
    r = run(["--bogus"])
    check(r.returncode == 2 and "usage" in r.stderr, "bad flag: %d" % r.returncode)
    for text, want in [("port = 0\n", "port"), ("port = 70000\n", "port"),
                       ("port = 80x\n", "port"), ("threads = -1\n", "threads"),
                       ("colour = blue\n", "unknown key 'colour'"),
                       ("detect_max_pvalue = 2\n", "detect_max_pvalue"),
                       ("detect_max_pvalue = nan\n", "detect_max_pvalue"),
                       ("detect_noise_factor = -1\n", "[0, 1000]"),
                       ("detect_min_magnitude = 11\n", "detect_min_magnitude"),
                       ("detect_noise_points = 2\n", "detect_noise_points"),
                       ("commit_url = http://x/%d\n", "commit_url"),
                       ("range_url = http://x/%s\n", "range_url"),
                       ("range_url = http://x/%s..%s%20\n", "range_url"),
                       ("webhook_settle = 4000\n", "webhook_settle"),
                       ("webhook_url = https://x/\ntokens_file = %s\n" % env.tokens,
                        "webhook_url"),
                       ("webhook_url = http://x:0/\ntokens_file = %s\n" % env.tokens,
                        "webhook_url"),
                       ("webhook_url = http://:80/\ntokens_file = %s\n" % env.tokens,
                        "webhook_url"),
                       ("just words\n", "key = value"),
                       ("listen = not-an-address\ntokens_file = %s\n" % env.tokens, "listen"),
                       ("tokens_file = /nonexistent\n", "/nonexistent")]:
        conf = env.write("bad.conf", "dsn = %s\n" % env.dsn + text)
        r = run(["-c", conf])
        check(r.returncode != 0 and want in r.stderr, "%r: %d %s" % (text, r.returncode,
                                                                     r.stderr[-300:]))
    r = run(["-c", env.conf], {"KMMU_REGRESSD_PORT": "http"})
    check(r.returncode != 0 and "KMMU_REGRESSD_PORT" in r.stderr, "bad environment value")
    bad_tokens = env.write("bad-tokens", "bench short\n")
    r = run(["-c", env.conf, "--check-config"], {"KMMU_REGRESSD_TOKENS_FILE": bad_tokens})
    check(r.returncode != 0 and "bad-tokens:1" in r.stderr, "short token: %s" % r.stderr)
    bad_tokens = env.write("bad-tokens", "bench %s\nboss %s root\n" % (TOKEN, ADMIN))
    r = run(["-c", env.conf, "--check-config"], {"KMMU_REGRESSD_TOKENS_FILE": bad_tokens})
    check(r.returncode != 0 and "bad-tokens:2" in r.stderr and "'admin'" in r.stderr,
          "unknown role: %s" % r.stderr)
    r = run(["-c", env.conf, "--check-config"])
    check(r.returncode == 0, "good config refused: %s" % r.stderr)
    # 0 is a value of its own for these: off.
    r = run(["-c", env.conf, "--check-config"], {"KMMU_REGRESSD_DETECT_NOISE_FACTOR": "0",
                                                 "KMMU_REGRESSD_DETECT_MIN_MAGNITUDE": "0"})
    check(r.returncode == 0, "noise factor and magnitude 0 refused: %s" % r.stderr)
    r = run(["-c", env.conf, "--check-config"], {"KMMU_REGRESSD_DSN": "host=/nonexistent"})
    check(r.returncode != 0 and "database" in r.stderr, "unreachable database")


class Skip(Exception):
    pass


def main():
    if not os.access(DAEMON, os.X_OK):
        print("1..0 # SKIP %s not built" % DAEMON)
        return 1
    env = Env()
    passed = failed = skipped = 0
    try:
        env.dsn = env.pg("start")
        env.start()
        print("TAP version 13\n1..%d" % len(results))
        for i, fn in enumerate(results, 1):
            name = fn.__name__
            try:
                fn(env)
                print("ok %d %s" % (i, name))
                passed += 1
            except Skip as e:
                print("ok %d %s # SKIP %s" % (i, name, e))
                skipped += 1
            except Exception as e:
                print("not ok %d %s" % (i, name))
                for line in (str(e) if isinstance(e, Fail) else traceback.format_exc()
                             ).splitlines():
                    print("#   " + line[:400])
                failed += 1
            sys.stdout.flush()
    finally:
        env.stop()
        env.pg("stop")
    log = open(env.log).read()
    if re.search(r"ERROR: AddressSanitizer|runtime error:|LeakSanitizer", log):
        print("not ok %d sanitizers" % (len(results) + 1))
        for line in log.splitlines()[-40:]:
            print("#   " + line)
        failed += 1
    else:
        print("ok %d sanitizers" % (len(results) + 1))
        passed += 1
    print("# daemon log: %s" % env.log)
    print("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:%d error:0" % (passed, failed, skipped))
    if not failed and not os.environ.get("KMMU_KEEP"):
        shutil.rmtree(env.tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Send bench results documents to kmmu-regressd, keeping every one on disk
until the service has it.

    scripts/submit-results.py [--url URL] [--tries N] FILE|DIR ...

A DIR stands for its *.json documents not yet sent to this service.  A
document the service accepted (201, or 200 for one it already had) gets a
marker DIR/.sent/HOST:PORT/FILE holding the service's answer, and is not
sent there again (each service has its own markers).  When the service cannot
be reached or answers 5xx (503 while its database is down), the document
stays pending: it is tried again, with backoff, up to --tries times, and on
the next run (make bench sends every pending document of results/).  A 401
or 403 is about the token, not the document: the run stops there, every
document stays pending and goes with the next run once the token is right.
Any other 4xx means the document itself is refused: it gets FILE.refused
with the reason (in DIR/.refused/HOST:PORT/) and is not retried.

Environment: KMMU_SERVICE_URL (base URL, e.g. http://127.0.0.1:8080),
KMMU_SERVICE_TOKEN, or KMMU_SERVICE_TOKEN_FILE (a file holding the token).
Exit status: 0 all sent, 1 some refused, 3 some still pending, 4 the token
was not accepted (all still pending), 2 usage.
"""
import argparse
import glob
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def marker(path, state, url):
    """Where the fate of document path at the service url is recorded."""
    d = os.path.dirname(os.path.abspath(path))
    return os.path.join(d, "." + state, urllib.parse.urlsplit(url).netloc, os.path.basename(path))


def record(path, state, url, text):
    m = marker(path, state, url)
    os.makedirs(os.path.dirname(m), exist_ok=True)
    with open(m, "w") as f:
        f.write(text)


def pending(paths, url):
    out = []
    for p in paths:
        if os.path.isdir(p):
            for f in sorted(glob.glob(os.path.join(p, "*.json"))):
                if not (os.path.exists(marker(f, "sent", url)) or
                        os.path.exists(marker(f, "refused", url))):
                    out.append(f)
        else:
            out.append(p)
    return out


def post(url, token, body, timeout):
    req = urllib.request.Request(url + "/api/v1/runs", data=body, method="POST", headers={
        "Content-Type": "application/json",
        "Authorization": "Bearer " + token,
    })
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as e:
        return None, str(getattr(e, "reason", e))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+", metavar="FILE|DIR")
    ap.add_argument("--url", default=os.environ.get("KMMU_SERVICE_URL", ""))
    ap.add_argument("--tries", type=int, default=4, help="attempts per document (4)")
    ap.add_argument("--delay", type=float, default=1.0, help="first retry delay, s (1)")
    ap.add_argument("--timeout", type=float, default=60.0, help="per request, s (60)")
    a = ap.parse_args()
    if not a.url:
        ap.error("no service: set KMMU_SERVICE_URL or --url")
    if a.tries < 1 or a.delay < 0 or a.timeout <= 0:
        ap.error("--tries must be >= 1, --delay >= 0, --timeout > 0")
    token = os.environ.get("KMMU_SERVICE_TOKEN", "")
    tf = os.environ.get("KMMU_SERVICE_TOKEN_FILE", "")
    if not token and tf:
        try:
            with open(tf) as f:
                token = f.read().strip()
        except OSError as e:
            ap.error("KMMU_SERVICE_TOKEN_FILE: %s" % e)
    if not token:
        ap.error("no token: set KMMU_SERVICE_TOKEN or KMMU_SERVICE_TOKEN_FILE")
    url = a.url.rstrip("/")

    refused = still = 0
    todo = pending(a.paths, url)
    for i, path in enumerate(todo):
        try:
            with open(path, "rb") as f:
                body = f.read()
        except OSError as e:
            print("%s: %s" % (path, e), file=sys.stderr)
            refused += 1
            continue
        delay = a.delay
        for attempt in range(1, a.tries + 1):
            status, text = post(url, token, body, a.timeout)
            if status in (200, 201):
                record(path, "sent", url, text)
                try:
                    ans = json.loads(text)
                    print("%s: run %s%s, %s change points" % (
                        path, ans.get("id"), " (already there)" if ans.get("duplicate") else "",
                        ans.get("change_points", 0)))
                except ValueError:
                    print("%s: sent" % path)
                break
            if status in (401, 403):
                print("%s: not sent: %s answered %d (%s); the token is wrong or revoked "
                      "(KMMU_SERVICE_TOKEN, KMMU_SERVICE_TOKEN_FILE). %d document(s) kept "
                      "for the next run" % (path, url, status, text.strip(), len(todo) - i),
                      file=sys.stderr)
                return 4
            if status is not None and 400 <= status < 500 and status not in (408, 429):
                record(path, "refused", url, "%d %s" % (status, text))
                print("%s: refused (%d): %s" % (path, status, text.strip()), file=sys.stderr)
                refused += 1
                break
            why = "HTTP %d" % status if status else text
            if attempt == a.tries:
                print("%s: kept for later: %s" % (path, why), file=sys.stderr)
                still += 1
            else:
                print("%s: %s; retrying in %.0f s" % (path, why, delay), file=sys.stderr)
                time.sleep(delay)
                delay *= 2
    if refused:
        return 1
    return 3 if still else 0


if __name__ == "__main__":
    sys.exit(main())

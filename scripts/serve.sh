#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# make serve: the regression dashboard on this machine, with one command.
#
# Starts a project-local PostgreSQL (scripts/pg.sh, data in
# $KMMU_SERVE_DIR/pg) unless KMMU_REGRESSD_DSN names a database, runs
# kmmu-regressd (which applies the migrations in sql/), imports every
# results/*.json not yet sent to it, and serves until interrupted.
#
# Environment: KMMU_SERVE_DIR (build/serve), KMMU_SERVE_RESULTS (the
# documents to import: results), and the daemon's own settings: its port is
# KMMU_REGRESSD_PORT (8080), its address KMMU_REGRESSD_LISTEN (127.0.0.1),
# its database KMMU_REGRESSD_DSN; build/rel/service/kmmu-regressd --help lists
# the rest.  The submitter token of this local service is in
# $KMMU_SERVE_DIR/token ($KMMU_SERVE_DIR/tokens is the daemon's list of who
# may submit); make bench sends its results here with
#   KMMU_SERVICE_URL=http://127.0.0.1:8080 KMMU_SERVICE_TOKEN_FILE=build/serve/token
set -eu

BUILD=${BUILD:-build}
dir=${KMMU_SERVE_DIR:-$BUILD/serve}
if [ -n "${KMMU_SERVE_PORT:-}" ]; then
	echo "serve: KMMU_SERVE_PORT is gone: set the daemon's own KMMU_REGRESSD_PORT" >&2
	exit 2
fi
port=${KMMU_REGRESSD_PORT:-8080}
# Where this script reaches the daemon it started.
case ${KMMU_REGRESSD_LISTEN:-127.0.0.1} in
0.0.0.0) host=127.0.0.1 ;;
::) host="[::1]" ;;
*:*) host="[$KMMU_REGRESSD_LISTEN]" ;;
*) host=${KMMU_REGRESSD_LISTEN:-127.0.0.1} ;;
esac
results=${KMMU_SERVE_RESULTS:-results}
daemon=$BUILD/rel/service/kmmu-regressd
mkdir -p "$dir"

own_pg=""
if [ -z "${KMMU_REGRESSD_DSN:-}" ]; then
	KMMU_REGRESSD_DSN=$(sh scripts/pg.sh start "$dir/pg")
	own_pg=yes
fi
export KMMU_REGRESSD_DSN

# One token for this machine's bench; only the daemon and make bench read it.
if [ ! -s "$dir/token" ]; then
	(umask 077 && od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$dir/token")
fi
[ -s "$dir/tokens" ] || (umask 077 && echo "local $(cat "$dir/token")" >"$dir/tokens")

pid=""
stop() {
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	[ -n "$own_pg" ] && sh scripts/pg.sh stop "$dir/pg"
	pid=""
	own_pg=""
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

KMMU_REGRESSD_PORT=$port KMMU_REGRESSD_TOKENS_FILE=$dir/tokens \
KMMU_REGRESSD_CACHE_DIR=${KMMU_REGRESSD_CACHE_DIR:-$dir/plot-cache} \
	"$daemon" &
pid=$!
tries=0
until python3 -c "import urllib.request; urllib.request.urlopen('http://$host:$port/healthz', timeout=2)" 2>/dev/null; do
	kill -0 "$pid" 2>/dev/null || { echo "serve: kmmu-regressd did not start" >&2; exit 1; }
	tries=$((tries + 1))
	[ $tries -lt 100 ] || { echo "serve: kmmu-regressd does not answer" >&2; exit 1; }
	sleep 0.2
done

if ls "$results"/*.json >/dev/null 2>&1; then
	KMMU_SERVICE_URL=http://$host:$port KMMU_SERVICE_TOKEN_FILE=$dir/token \
		python3 scripts/submit-results.py "$results" || true
fi
echo "serve: the dashboard is at http://$host:$port/ (Ctrl-C stops it)"
wait "$pid"

#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# A private PostgreSQL for kmmu-regressd: its own data directory, listening
# only on a Unix socket in DIR/run, so it never meets the machine's own.
#
#   scripts/pg.sh start DIR     initdb DIR/data when needed, start the server,
#                               create database kmmu; print the libpq DSN
#   scripts/pg.sh stop DIR      stop it (fast shutdown)
#   scripts/pg.sh dsn DIR       print the DSN
#
# PostgreSQL refuses to run as root: as root, the server runs as the
# postgres user (from Debian's postgresql package), which then owns DIR.
# KMMU_PG_PORT (default 5433) and KMMU_PG_OPTIONS (extra server options,
# e.g. "-c fsync=off" for tests) tune it.
set -eu

cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
	sed -n 3,13p "$0" >&2
	exit 2
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
port=${KMMU_PG_PORT:-5433}

bindir=""
for b in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V); do
	bindir=$b
done
[ -x "$bindir/initdb" ] || { echo "pg.sh: no PostgreSQL server (apt-get install postgresql)" >&2; exit 1; }

as_owner() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

dsn="host=$dir/run port=$port user=kmmu dbname=kmmu"

case $cmd in
start)
	mkdir -p "$dir/run"
	[ "$(id -u)" = 0 ] && chown postgres "$dir" "$dir/run"
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		as_owner "$bindir/initdb" -D "$dir/data" -U kmmu -A trust -E UTF8 --no-locale \
			>"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; exit 1; }
	fi
	if ! as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
		as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
			-o "-k $dir/run -c listen_addresses= -p $port ${KMMU_PG_OPTIONS:-}" start >/dev/null ||
			{ tail -n 20 "$dir/postgres.log" >&2; exit 1; }
	fi
	if ! "$bindir/psql" -h "$dir/run" -p "$port" -U kmmu -d postgres -tAc \
		"SELECT 1 FROM pg_database WHERE datname = 'kmmu'" | grep -q 1; then
		"$bindir/psql" -h "$dir/run" -p "$port" -U kmmu -d postgres -qc "CREATE DATABASE kmmu"
	fi
	echo "$dsn"
	;;
stop)
	if [ -f "$dir/data/postmaster.pid" ]; then
		as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
	fi
	;;
dsn)
	echo "$dsn"
	;;
*)
	sed -n 3,13p "$0" >&2
	exit 2
	;;
esac

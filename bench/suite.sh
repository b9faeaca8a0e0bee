#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Run a bench suite: every driver of it appends to one results document.
#
#   BENCH_SUITE=smoke|default|full BUILD=build sh bench/suite.sh RESULTS.json
#
# smoke (seconds): the floors and populate on 64 MiB, 3 repetitions; what
#   proves a host's deployment end to end (ansible/), not a figure to track.
# default (a few minutes at most on 2 cores): the floors; populate 1 GiB
#   per vCPU, with and without the backing prefaulted, and as an L2 guest
#   (nested, prefaulted), then 2 vCPUs on
#   disjoint halves against one vCPU on the whole; dirty logging on 1 GiB of
#   1G pages in both tracking modes with the bitmap, and with the rings;
#   eager split and recovery on 1 GiB of 2M and of 1G pages; aging passes,
#   locked, lockless and fast-only, over TDP leaves and (nested, 1 and 2
#   vCPUs faulting beside them) over shadow leaves; the longest mmu_lock
#   write hold and the faults of a vCPU while 1 GiB of 4K SPTEs is zapped.
# full (an hour or more): the same with 4 GiB, 4 vCPUs, every backing, both
#   logs and tracking modes, split on 2M, 1G and THP; then a part of it
#   again under --pressure stress-ng and under --pressure fio.  The dev
#   backend needs 2M and 1G huge pages reserved for it.
#
# Where /dev/kvm (with its TDP MMU) and /dev/kmmu both exist, either suite
# ends with bench/kvm-compare --here on dirty_log's work, and KVM's figures
# join the document (the table shows kmmu/KVM); BENCH_KVM=no leaves it out.
#
# BENCH_VARIANT=dev runs the drivers of make bench-drivers-dev (BUILD/dev/
# bench), which run on /dev/kmmu only; rel (the default) those of make
# bench-drivers.
#
# Before each driver a line "[i/N] driver options" goes to stderr, and after
# it the time it took; the first driver that fails stops the suite, which
# exits with that driver's status.
set -u

if [ $# -ne 1 ]; then
	echo "usage: BENCH_SUITE=smoke|default|full BUILD=build sh bench/suite.sh RESULTS.json" >&2
	exit 2
fi
out=$1
suite=${BENCH_SUITE:-default}

# The machine's identity in the document (host.machine_id), which keeps its
# figures apart from another machine's: HMAC-SHA256 of /etc/machine-id under
# a key of kmmu's own, so the id itself is never sent (machine-id(5)).
if [ -z "${KMMU_MACHINE_ID:-}" ]; then
	KMMU_MACHINE_ID=$(python3 -c 'import hmac, sys
try:
    mid = open("/etc/machine-id").read().strip()
except OSError:
    sys.exit(0)
if mid:
    print(hmac.new(b"kmmu-bench-machine", mid.encode(), "sha256").hexdigest()[:32])')
fi
case $KMMU_MACHINE_ID in
'' | *[!0-9a-f]*) ok=${KMMU_MACHINE_ID:+no} ;;
*) [ ${#KMMU_MACHINE_ID} -eq 32 ] && ok=yes || ok=no ;;
esac
if [ "$ok" = no ]; then
	echo "suite: KMMU_MACHINE_ID=$KMMU_MACHINE_ID: must be 32 lowercase hex digits" >&2
	exit 2
fi
export KMMU_MACHINE_ID
variant=${BENCH_VARIANT:-rel}
case $variant in
rel | dev) bin=${BUILD:-build}/$variant/bench ;;
*)
	echo "suite: BENCH_VARIANT=$variant: must be rel or dev" >&2
	exit 2
	;;
esac

BACKINGS="anonymous anonymous_thp anonymous_hugetlb_2mb anonymous_hugetlb_1gb shmem"

smoke_runs() {
	echo "floor -b 64m -r 3"
	echo "populate -v 1 -b 64m -r 3"
}

default_runs() {
	echo "floor -b 1g"
	echo "populate -v 1 -b 1g --nested"
	echo "populate -v 2 -b 512m -p yes --scaling"
	echo "dirty_log -m wrprot"
	echo "dirty_log -m dbit"
	echo "dirty_log -m wrprot -l ring"
	echo "split -s anonymous_hugetlb_2mb"
	echo "split -s anonymous_hugetlb_1gb"
	echo "aging"
	echo "aging --nested"
	echo "aging -v 2 -b 512m --nested"
	echo "zap_latency"
	echo "spp"
}

# What runs again under each --pressure.
pressure_runs() {
	p="--pressure $1"
	echo "floor -v 4 -b 1g $p"
	echo "populate -v 4 -b 1g -p no $p"
	echo "dirty_log -v 4 -b 1g -s anonymous_thp -m wrprot $p"
	echo "dirty_log -v 4 -b 1g -s anonymous_thp -m wrprot -l ring $p"
	echo "split -v 4 -b 1g -s anonymous_hugetlb_2mb $p"
	echo "split -v 4 -b 1g -s anonymous_thp $p"
	echo "aging -v 4 -b 1g $p"
	echo "zap_latency -b 1g $p"
}

full_runs() {
	echo "floor -v 4 -b 1g"
	for s in $BACKINGS; do
		echo "populate -v 1 -b 4g -s $s"
		echo "populate -v 4 -b 1g -p yes --scaling -s $s"
	done
	for s in $BACKINGS; do
		for m in wrprot dbit; do
			echo "dirty_log -v 4 -b 1g -s $s -m $m"
			echo "dirty_log -v 4 -b 1g -s $s -m $m -l ring"
		done
	done
	echo "dirty_log -v 4 -b 1g -m wrprot -g"
	echo "dirty_log -v 4 -b 1g -m wrprot -e 0"
	for s in anonymous_hugetlb_2mb anonymous_hugetlb_1gb anonymous_thp; do
		for m in wrprot dbit; do
			echo "split -v 4 -b 1g -s $s -m $m"
		done
	done
	echo "aging -v 4 -b 1g"
	echo "aging -v 4 -b 1g -s anonymous_thp"
	echo "zap_latency -b 4g -f 1g"
	pressure_runs stress-ng
	pressure_runs fio
}

# Real KVM beside kmmu, when this host has both.
kvm_runs() {
	if [ "${BENCH_KVM:-yes}" = no ]; then
		return
	fi
	if [ ! -c /dev/kvm ] || [ ! -c /dev/kmmu ]; then
		echo "suite: no KVM comparison: it needs /dev/kvm and /dev/kmmu" >&2
		return
	fi
	echo "kvm-compare --here -v 1 -b 1g -s anonymous_hugetlb_1gb -i 3"
	[ "$1" = full ] && echo "kvm-compare --here -v 4 -b 1g -s anonymous_thp -i 3"
}

case $suite in
smoke) runs=$(smoke_runs) ;;
default) runs=$(default_runs; kvm_runs default) ;;
full) runs=$(full_runs; kvm_runs full) ;;
*)
	echo "suite: BENCH_SUITE=$suite: not smoke, default or full" >&2
	exit 2
	;;
esac

for tool in $(echo "$runs" | awk '{ print $1 }' | sort -u); do
	if [ "$tool" != kvm-compare ] && [ ! -x "$bin/$tool" ]; then
		echo "suite: $bin/$tool is not built (make $bin/$tool)" >&2
		exit 1
	fi
done

n=$(echo "$runs" | wc -l)
i=0
start=$(date +%s)
echo "$runs" | {
	while read -r run; do
		i=$((i + 1))
		echo "[$i/$n] $run" >&2
		t0=$(date +%s)
		case $run in
		kvm-compare*)
			# Its own document, whose figures then join this one.
			# shellcheck disable=SC2086
			sh bench/kvm-compare ${run#kvm-compare} -o "$out.kvm" </dev/null &&
				python3 bench/merge_results.py "$out" "$out.kvm"
			rc=$?
			rm -f "$out.kvm"
			;;
		*)
			# shellcheck disable=SC2086
			"$bin/"$run -o "$out" </dev/null
			rc=$?
			;;
		esac
		if [ "$rc" -ne 0 ]; then
			echo "suite: [$i/$n] $run: failed with exit status $rc" >&2
			exit "$rc"
		fi
		echo "[$i/$n] $run: done in $(($(date +%s) - t0)) s" >&2
	done
}
rc=$?
[ "$rc" -eq 0 ] || exit "$rc"
echo "suite $suite: $n runs in $(($(date +%s) - start)) s, results in $out" >&2

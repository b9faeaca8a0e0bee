#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Run every kmmu test and end with one line "N passed, N failed, N skipped".
#
#   selftests/run_tests.sh TEST_BINARY...
#
# Besides the kselftest binaries given (run on the user backend), it checks
# that kmmu.ko builds with W=1 and sparse without a warning and that the
# kernel code is checkpatch-clean.  Logs go to $BUILD/logs.
set -u

BUILD=${BUILD:-build}
KSRC_TAR=${KSRC_TAR:-}
LOGS=$BUILD/logs
mkdir -p "$LOGS"

passed=0
failed=0
skipped=0
failures=""

# The Ansible test's guest image (selftests/ansible/image.sh) is mostly
# downloads and unpacking: built meanwhile, from the start, unless cached.
ANSIBLE_CACHE=${KMMU_ANSIBLE_CACHE:-/var/cache/kmmu/ansible-image}
mkdir -p "$ANSIBLE_CACHE"
sh selftests/ansible/image.sh "$ANSIBLE_CACHE" >"$LOGS/ansible-image.out" 2>"$LOGS/ansible-image.log" &
ansible_image_pid=$!

# Each phase's wall time, printed at the end: where make test's time goes,
# with how busy the machine's CPUs were meanwhile (a phase well below 100%
# leaves cores idle; one at 100% gets shorter only by doing less).
. selftests/cpu_busy.sh
phases=""
phase_t0=$(date +%s)
phase_cpu0=$(cpu_jiffies)
phase() {
	now=$(date +%s)
	cpu=$(cpu_jiffies)
	[ -n "${phase_name:-}" ] &&
		phases="$phases $phase_name $((now - phase_t0)) $(cpu_busy_pct "$phase_cpu0" "$cpu")"
	phase_name=$1
	phase_t0=$now
	phase_cpu0=$cpu
}

note_fail() {
	failed=$((failed + $2))
	failures="$failures $1"
}

# The counts of a runner whose last line, in $LOGS/NAME.log, is
# "NAME: N passed, N failed, N skipped".
count_summary() {
	runner=$1
	last=$(tail -n 1 "$LOGS/$runner.log")
	case "$last" in
	"$runner: "*" passed, "*" failed, "*" skipped")
		# shellcheck disable=SC2086
		set -- $last
		passed=$((passed + $2))
		[ "$4" -gt 0 ] && note_fail "$runner" "$4"
		skipped=$((skipped + $6))
		;;
	*)
		note_fail "$runner" 1
		echo "not ok - $runner: no summary (see $LOGS/$runner.log)"
		;;
	esac
}

# The line of a check NAME that ended with status RC, its output in LOG.
report_check() {
	if [ "$2" -eq 0 ]; then
		passed=$((passed + 1))
		echo "ok - $1"
	else
		note_fail "$1" 1
		echo "not ok - $1 (see $3)"
		tail -n 20 "$3" | sed 's/^/#   /'
	fi
}

# A check that is one test: a name and a command.
check() {
	name=$1
	shift
	"$@" >"$LOGS/$name.log" 2>&1
	report_check "$name" $? "$LOGS/$name.log"
}

# A check run beside the phases after it -- one that waits more than it
# works, or takes a core that those phases leave idle: check_start NAME
# COMMAND... starts it, check_end NAME waits for it and reports it as
# check does.
bg_checks=""
check_start() {
	name=$1
	shift
	rm -f "$LOGS/$name.rc"
	{
		"$@" >"$LOGS/$name.log" 2>&1
		echo $? >"$LOGS/$name.rc"
	} &
	bg_checks="$bg_checks $name:$!"
}

check_end() {
	for bg in $bg_checks; do
		[ "${bg%:*}" = "$1" ] && wait "${bg#*:}"
	done
	report_check "$1" "$(cat "$LOGS/$1.rc" 2>/dev/null || echo 125)" "$LOGS/$1.log"
}

kmod_build() {
	make -C kmod clean >/dev/null 2>&1
	make -C kmod -j"$(nproc)" W=1 C=1 2>&1 | tee "$LOGS/kmod-build.out"
	test -f kmod/kmmu.ko || return 1
	! grep -Ei 'warning|error' "$LOGS/kmod-build.out"
}

checkpatch() {
	dir=$BUILD/checkpatch
	if [ ! -f "$dir/checkpatch.pl" ]; then
		mkdir -p "$dir"
		tar -xJf "$KSRC_TAR" -C "$dir" --strip-components=2 --wildcards \
			'*/scripts/checkpatch.pl' '*/scripts/spelling.txt' \
			'*/scripts/const_structs.checkpatch' || return 1
	fi
	# An out-of-tree module built for 6.1 and 6.12 has to test the kernel
	# version; checkpatch's rules for that assume code merged in-tree.
	# kmod/user is userspace C that defines the kernel's vocabulary (it
	# must typedef and spell out attributes): not kernel code.
	# shellcheck disable=SC2046
	perl "$dir/checkpatch.pl" --no-tree -f --terse --show-types \
		--ignore LINUX_VERSION_CODE,CONSTANT_COMPARISON \
		$(find kmod -name '*.[ch]' ! -name '*.mod.c' ! -path 'kmod/user/*' | sort)
}

# The name a kselftest_harness binary's results go by: kmmu-aging_test
# (ASan), kmmu-aging_test-tsan.
ksft_name() {
	name=$(basename "$(dirname "$1")")-$(basename "$1")
	case $1 in
	*/tsan/*) name=$name-tsan ;;
	esac
	echo "$name"
}

# A kselftest_harness binary that selftests/ksft_run.sh ran: its
# "# Totals:" line counts.
report_ksft() {
	bin=$1
	name=$(ksft_name "$bin")
	log=$LOGS/$name.log
	rc=$(cat "$log.rc" 2>/dev/null || echo 125)
	grep -E '^(ok|not ok) ' "$log" | sed "s/^/[$name] /"
	totals=$(grep '^# Totals:' "$log" | tail -n 1)
	if [ -z "$totals" ]; then
		note_fail "$name" 1
		echo "not ok - $name: no totals, exit $rc (see $log)"
		tail -n 30 "$log" | sed 's/^/#   /'
		return
	fi
	p=$(echo "$totals" | tr ' ' '\n' | sed -n 's/^pass://p')
	f=$(echo "$totals" | tr ' ' '\n' | sed -n 's/^fail://p')
	xf=$(echo "$totals" | tr ' ' '\n' | sed -n 's/^xfail://p')
	s=$(echo "$totals" | tr ' ' '\n' | sed -n 's/^skip://p')
	e=$(echo "$totals" | tr ' ' '\n' | sed -n 's/^error://p')
	passed=$((passed + p + xf))
	skipped=$((skipped + s))
	if [ $((f + e)) -gt 0 ] || [ "$rc" -ne 0 ]; then
		n=$((f + e))
		[ "$n" -eq 0 ] && n=1
		note_fail "$name" "$n"
		grep -B2 -A12 '^# .*FAIL\|^not ok\|ERROR: \|runtime error\|WARNING' "$log" | head -n 60 |
			sed 's/^/#   /'
	fi
}

phase kernel-module
check kmod-build-w1-sparse kmod_build
if [ -n "$KSRC_TAR" ]; then
	check checkpatch checkpatch
else
	skipped=$((skipped + 1))
	echo "ok - checkpatch # SKIP no linux-source tarball"
fi

phase user-backend-suites
# A few binaries at a time: alone, they leave most of the CPUs idle (the
# TSan ones ran at 20-30% of this machine's two cores, waiting on one
# another's threads).  The TSan ones first, being the longest.
for bin in "$@"; do
	case $bin in
	*/tsan/*) echo "0 $bin $LOGS/$(ksft_name "$bin").log" ;;
	*) echo "1 $bin $LOGS/$(ksft_name "$bin").log" ;;
	esac
done | sort -s -k1,1 | cut -d' ' -f2- |
	xargs -P "$(($(nproc) * 2))" -L 1 sh selftests/ksft_run.sh
for bin in "$@"; do
	report_ksft "$bin"
done

# Every bench driver once, tiny, on the user backend: its JSON must be a
# valid results document with every figure the driver promises; one run
# beside stress-ng and one beside fio (skipped when fio is not installed)
# must say so in their figures' parameters.  populate on 2 MiB pages under
# a 1 MiB memslot: the slot, not the backing's page, bounds the mappings.
bench_json() {
	out=$BUILD/bench-test.json
	rm -f "$out"
	set -- "populate -b 8m -r 2 --scaling -v 2 --nested" \
	       "populate -b 1020k -r 1 -s pfnmap" \
	       "populate -b 1m -r 2 -s anonymous_hugetlb_2mb" \
	       "dirty_log -b 8m -s anonymous_thp -r 2 -i 2" \
	       "dirty_log -b 8m -s anonymous_thp -r 2 -i 2 -m dbit -g" \
	       "dirty_log -b 8m -s anonymous_thp -r 2 -i 2 -l ring -R 256" \
	       "aging -b 8m -r 2 -i 100" \
	       "aging -b 8m -r 2 -i 100 --nested" \
	       "split -b 8m -r 2" \
	       "split -b 8m -r 2 -s anonymous_thp -m dbit" \
	       "floor -b 8m -r 2" \
	       "split -b 4m -r 1 --pressure stress-ng" \
	       "zap_latency -b 16m -f 256m -r 2" \
	       "spp -b 8m -r 2" \
	       "floor -b 4m -r 1 --pin no"
	want="populate:populate populate:scaling populate:populate:backing=pfnmap
	      populate:populate:backing=anonymous_hugetlb_2mb
	      populate:populate:nested=yes:fault_vcpus=2
	      dirty_log:enable_logging
	      dirty_log:get_dirty_log dirty_log:clear_dirty_log dirty_log:disable_logging
	      dirty_log:dirty_memory dirty_log:collect_dirty_ring:log=ring
	      dirty_log:reset_dirty_rings:log=ring:ring_entries=256 aging:aging_pass_locked
	      aging:aging_pass_lockless aging:fault_in_no_aging
	      aging:age_error_locked aging:age_error_lockless
	      aging:fault_in_lockless_aging_ratio
	      aging:fault_in_locked_aging_ratio aging:aging_pass_fast_only
	      aging:aging_pass_lockless:nested=yes aging:aging_pass_lockless_tdp:nested=yes
	      aging:aging_pass_fast_only:nested=yes split:enable_logging:backing=anonymous_hugetlb_2mb
	      split:disable_logging:backing=anonymous_thp split:huge_pages_split
	      split:huge_pages_recovered floor:read floor:read_write floor:locked_rmw
	      floor:cmpxchg floor:read:pin=no split:enable_logging:pressure=stress-ng
	      zap_latency:max_write_hold zap_latency:fault_p99_during_zap
	      zap_latency:fault_p999_during_zap zap_latency:fault_p99_before_zap
	      zap_latency:zap_all spp:set_access:spp_pages=1 spp:set_access:spp_pages=512
	      spp:set_access:spp_pages=2048 spp:write_plain spp:write_spp spp:exit_spp
	      spp:exit_budget"
	if command -v fio >/dev/null; then
		set -- "$@" "floor -b 4m -r 1 --pressure fio"
		want="$want floor:read:pressure=fio"
	else
		echo "fio is not installed: no run with --pressure fio"
	fi
	mid=0123456789abcdef0123456789abcdef
	for run in "$@"; do
		echo "== $run"
		# shellcheck disable=SC2086
		KMMU_BACKEND=user KMMU_MACHINE_ID=$mid "$BUILD/rel/bench/"$run -o "$out" || return 1
	done
	# shellcheck disable=SC2086
	python3 bench/check_results.py "$out" $want || return 1
	# The machine's identity, which keeps its series apart from others'.
	python3 -c 'import json, sys
sys.exit(json.load(open(sys.argv[1]))["host"].get("machine_id") != sys.argv[2])' "$out" "$mid" ||
		{ echo "host.machine_id is not KMMU_MACHINE_ID"; return 1; }
}

# A bad flag or value: a usage message and exit status 2, from every driver.
bench_bad_flags() {
	for run in "populate -x" "populate -v 0" "populate -b 5000" "dirty_log -m nope" \
		   "dirty_log -i 0" "aging -r 0" "aging -i -1" "populate -s nope" "aging extra" \
		   "populate --pressure bogus" "aging --pressure" "dirty_log -l nope" \
		   "dirty_log -l ring -R 1000" "dirty_log -l ring -R 128" "dirty_log -R 256" \
		   "dirty_log -l ring -g" "split -s anonymous" "split -e 0" "split -r 0" \
		   "split -x" "floor -r 0" "floor extra" "floor --pressure bogus" \
		   "zap_latency -v 2" "zap_latency -f 4k" "zap_latency -s anonymous_thp" \
		   "zap_latency -r 0" "populate -B nope" "aging -B" "spp -F npt" "spp -v 2" \
		   "spp -s shmem" "spp -b 1m" "spp -r 0" "spp -B hw" "populate --nested -B hw" \
		   "populate --nested=yes" "aging --nested -B hw" "populate --pin maybe" \
		   "zap_latency -f 4m"; do
		# shellcheck disable=SC2086
		KMMU_BACKEND=user "$BUILD/rel/bench/"$run >"$LOGS/bench-bad.out" 2>&1
		rc=$?
		grep -q usage "$LOGS/bench-bad.out" || { echo "$run: no usage"; return 1; }
		[ "$rc" -eq 2 ] || { echo "$run: exit $rc, not 2"; return 1; }
	done
}

# A results document that cannot be written, or is not a results document:
# an error and a failed exit, and a foreign file left as it was.
bench_bad_output() {
	bad=$BUILD/bench-not-results.json
	echo '{"schema": "something-else", "schema_version": 1}' >"$bad"
	cp "$bad" "$bad.orig"
	for out in "$bad" "$BUILD/no-such-dir/r.json"; do
		if KMMU_BACKEND=user "$BUILD/rel/bench/aging" -b 4m -r 1 -i 100 -o "$out" \
			>"$LOGS/bench-bad-out.out" 2>&1; then
			echo "-o $out: exit 0"
			return 1
		fi
		grep -q "$out" "$LOGS/bench-bad-out.out" || { echo "-o $out: no error"; return 1; }
	done
	cmp "$bad" "$bad.orig"
}

# --pressure: a tool that is not installed is an error (exit 1), not a run
# without pressure; a driver stopped by SIGINT stops its tool, every process
# of it, and removes its files.
bench_pressure() {
	tmp=$BUILD/bench-pressure-tmp
	log=$LOGS/bench-pressure.out
	rm -rf "$tmp"
	mkdir -p "$tmp"
	PATH=/nonexistent KMMU_BACKEND=user "$BUILD/rel/bench/floor" -b 4m --pressure stress-ng \
		>"$log" 2>&1
	rc=$?
	[ "$rc" -eq 1 ] || { echo "stress-ng not in PATH: exit $rc, not 1"; return 1; }
	grep -q "stress-ng is not installed" "$log" || { echo "missing tool: no error"; return 1; }

	TMPDIR=$tmp KMMU_BACKEND=user "$BUILD/rel/bench/dirty_log" -b 64m -s anonymous_thp -r 100 \
		--pressure stress-ng >"$log" 2>&1 &
	bench=$!
	pid=""
	for _ in $(seq 50); do
		pid=$(sed -n 's/^pressure: stress-ng (pid \([0-9]*\)) running.*/\1/p' "$log")
		[ -n "$pid" ] && grep -q '^run 1:' "$log" && break
		sleep 0.1
	done
	kill -INT "$bench"
	wait "$bench"
	rc=$?
	cat "$log"
	[ -n "$pid" ] || { echo "stress-ng did not start"; return 1; }
	[ "$rc" -eq 130 ] || { echo "SIGINT: exit $rc, not 130"; return 1; }
	left=$(ps -e -o pgid=,stat=,comm= | awk -v g="$pid" '$1 == g && $2 !~ /^Z/')
	[ -z "$left" ] || { echo "left running after SIGINT: $left"; return 1; }
	[ -z "$(ls -A "$tmp")" ] || { echo "left in $tmp: $(ls -A "$tmp")"; return 1; }
	rmdir "$tmp"
}

# The drivers of make bench-drivers-dev (a bench host's) have no user
# backend: asked for one, each says so and exits 2; their usage still works.
bench_dev_variant() {
	[ -n "${BENCHES:-}" ] || { echo "BENCHES is not set (make test sets it)"; return 1; }
	for b in $BENCHES; do
		"$BUILD/dev/bench/$b" -h >"$LOGS/bench-dev.out" 2>&1 || { echo "$b -h: exit $?"; return 1; }
		grep -q usage "$LOGS/bench-dev.out" || { echo "dev/bench/$b -h: no usage"; return 1; }
		KMMU_BACKEND=user "$BUILD/dev/bench/$b" >"$LOGS/bench-dev.out" 2>&1
		rc=$?
		[ "$rc" -eq 2 ] || { echo "KMMU_BACKEND=user dev/bench/$b: exit $rc, not 2"; return 1; }
		grep -q 'this build has no user backend' "$LOGS/bench-dev.out" ||
			{ echo "KMMU_BACKEND=user dev/bench/$b: no message"; cat "$LOGS/bench-dev.out"; return 1; }
	done
}

phase bench-drivers
check bench-json bench_json
check bench-dev-variant bench_dev_variant
check bench-bad-output bench_bad_output
check bench-bad-flags bench_bad_flags
check bench-pressure bench_pressure

# A TAP program ("ok N name" / "not ok N name [# SKIP why]" lines): each
# line counts; a non-zero exit without a failed line is one failure.
run_tap() {
	name=$1
	shift
	log=$LOGS/$name.log
	"$@" >"$log" 2>&1
	rc=$?
	p=$(grep -cE '^ok [0-9]+ ' "$log" | head -n 1)
	s=$(grep -cE '^ok [0-9]+ .*# SKIP' "$log" | head -n 1)
	f=$(grep -cE '^not ok [0-9]+ ' "$log" | head -n 1)
	grep -E '^(ok|not ok) [0-9]+ ' "$log" | sed "s/^/[$name] /"
	grep -E '^# (screenshot|detect:)' "$log"
	passed=$((passed + p - s))
	skipped=$((skipped + s))
	if [ "$f" -gt 0 ] || [ "$rc" -ne 0 ] || [ "$p" -eq 0 ]; then
		[ "$f" -eq 0 ] && f=1
		note_fail "$name" "$f"
		echo "not ok - $name: exit $rc (see $log)"
		grep -A12 '^not ok' "$log" | head -n 60 | sed 's/^/#   /'
	fi
}

phase service
# KVM's dirty_log_perf_test for the kvm-compare phase, from the
# linux-source tarball (over half of that phase): niced, beside the service
# phase, which leaves a core idle.  It builds in a directory of its own:
# the top-level Makefile reads every *.d under $BUILD, which the mutation
# phase's builds write meanwhile.
if [ -n "${VM_TEST_BINS:-}" ] && [ -n "$KSRC_TAR" ]; then
	check_start kvm-compare-build env KSRC_TAR="$KSRC_TAR" sh bench/kvm-compare --build-kvm
fi
# The regression service: its units under ASan+UBSan, then the daemon
# against a PostgreSQL the test starts, and its pages in headless Chromium.
# jsonschema_cli is no test of its own: the differential test runs it
# against python3-jsonschema on thousands of documents.
for bin in ${SERVICE_TEST_BINS:-}; do
	case $bin in
	*/jsonschema_cli) check service-jsonschema-diff python3 service/tests/jsonschema_diff.py "$bin" ;;
	*) run_tap "service-$(basename "$bin")" "$bin" ;;
	esac
done
if [ -n "${SERVICE_TEST_BINS:-}" ]; then
	run_tap service-api python3 service/tests/service_test.py
fi

# libFuzzer over the ioctl dispatch from a fixed seed and seed programs,
# a number of runs or of seconds, whichever ends first.  Programs that
# reach RUN free through call_rcu(), and the leak check after each one
# waits for liburcu's callback thread, which batches for 10 ms: about 50
# programs a second then, against thousands for the argument checks.  So
# the fuzzer sleeps more than it runs: it runs beside the mutation phase,
# and the fuzz phase is what is left of it after that.
fuzz() {
	corpus=$BUILD/fuzz-corpus/$(basename "$1")
	mkdir -p "$corpus" "$BUILD/fuzz-artifacts"
	sh "selftests/fuzz/seeds.sh" "$corpus"
	"$1" -runs="${KMMU_FUZZ_RUNS:-100000}" -max_total_time="${KMMU_FUZZ_SECONDS:-30}" \
		-seed=1 -artifact_prefix="$BUILD/fuzz-artifacts/" "$corpus"
}

# Mutation testing, the short list (make mutation-test runs every mutant):
# a build of the core with each of these defects must fail the suites.
MUTANTS_SHORT="SKIP_INVAL_RETRY DROP_IN_PROGRESS_CHECK SKIP_FLUSH_AFTER_ZAP SKIP_KICK_ACK_WAIT
	       MARK_DIRTY_BEFORE_INSTALL CLEAR_A_WITHOUT_D FORGET_REFCOUNTED_CHECK
	       MARK_ACCESSED_ON_ROOT_ZAP SPP_WRPROT_KEEPS_SPP SHADOW_NOTIFIER_NO_ZAP
	       SHADOW_LOG_NO_PROTECT SHADOW_TRACK_IGNORED SHADOW_AGING_SKIPPED
	       SHADOW_DBIT_NOT_HARVESTED SHADOW_SPLIT_ZAPS RMAP_SINGLE_NO_RECHECK"
mutation() {
	# shellcheck disable=SC2086
	BUILD=$BUILD sh selftests/mutation/run.sh $MUTANTS_SHORT
}
phase mutation
for bin in ${FUZZ_BINS:-}; do
	check_start "fuzz-$(basename "$bin")" fuzz "$bin"
done
check mutation mutation
grep '^mutant ' "$LOGS/mutation.log"
phase fuzz
for bin in ${FUZZ_BINS:-}; do
	check_end "fuzz-$(basename "$bin")"
done

# The dev backend, in QEMU guests.
phase qemu-guests
if [ -n "${VM_TEST_BINS:-}" ]; then
	# shellcheck disable=SC2086
	sh selftests/vm/run_vm_tests.sh $VM_TEST_BINS >"$LOGS/vm.log" 2>&1
	grep -E '^(ok|not ok) ' "$LOGS/vm.log" | grep -v '^\[' 
	grep -E '^(not ok|#)' "$LOGS/vm.log" | head -n 40
	count_summary vm
fi

# kmmu's dirty_log and KVM's dirty_log_perf_test on the same work in one
# QEMU guest: the table, and a document holding both MMUs' figures.
kvm_compare() {
	out=$BUILD/kvm-compare-test.json
	rm -f "$out"
	# Every mode, one backing and vCPU count: the matrix is make kvm-compare's.
	KSRC_TAR=$KSRC_TAR sh bench/kvm-compare -M initially_set,manual,get -s anonymous_thp -v 1 \
		-b 16m -i 2 -r 1 -o "$out" || return 1
	for m in initially_set manual get; do
		grep -q "^$m: " "$LOGS/kvm-compare.log" || { echo "no table for mode $m"; return 1; }
	done
	python3 bench/check_results.py "$out" dirty_log:enable_logging dirty_log:clear_dirty_log \
		dirty_log:enable_logging:mmu=kvm dirty_log:get_dirty_log:mmu=kvm \
		dirty_log:clear_dirty_log:mmu=kvm dirty_log:disable_logging:mmu=kvm || return 1
	# As make bench does on a host with KVM: the figures join a suite's
	# document, whose table then shows kmmu/KVM.
	merged=$BUILD/kvm-compare-merged.json
	cp "$BUILD/bench-test.json" "$merged"
	python3 bench/merge_results.py "$merged" "$out" || return 1
	python3 bench/check_results.py "$merged" populate:populate dirty_log:enable_logging:mmu=kvm ||
		return 1
	python3 bench/report.py "$merged" | awk '/^dirty_log.enable_logging/ && !/mmu=kvm/ &&
		$7 ~ /^[0-9.]+$/ { ok = 1 } END { exit !ok }' ||
		{ echo "no kmmu/KVM ratio in the table"; return 1; }
}

kvm_compare_bad_flags() {
	for args in "-v 0" "-v 1,,2" "-b 5" "-b 12k3" "-s bogus" "-s anonymous,bogus" "-i x" \
		    "-i 1" "-M bogus" "-M manual," "-V arm" "-x" "-o"; do
		# shellcheck disable=SC2086
		sh bench/kvm-compare $args >"$LOGS/kvm-compare-bad.out" 2>&1
		rc=$?
		[ "$rc" -eq 2 ] || { echo "$args: exit $rc, not 2"; return 1; }
		grep -q 'bench/kvm-compare \[-h\]' "$LOGS/kvm-compare-bad.out" ||
			{ echo "$args: no usage"; return 1; }
	done
}

phase kvm-compare
if [ -n "${VM_TEST_BINS:-}" ]; then
	check kvm-compare-bad-flags kvm_compare_bad_flags
	if [ -n "$KSRC_TAR" ]; then
		check_end kvm-compare-build
		check kvm-compare kvm_compare
		tail -n 30 "$LOGS/kvm-compare.log" | sed 's/^/# /'
	else
		skipped=$((skipped + 1))
		echo "ok - kvm-compare # SKIP no linux-source tarball"
	fi
fi

# ansible/: the linters, shown able to fail on a copy with one defect each,
# then deploy.yml end to end on three QEMU guests.
ansible_lint_catches() {
	# Outside the checkout: in it, ansible-lint would see only the files git
	# tracks, and build/ is ignored.
	dir=$(mktemp -d /tmp/kmmu-lint-mutant.XXXXXX)
	for defect in unnamed-task yaml-indent; do
		rm -rf "${dir:?}"/*
		cp -r ansible selftests "$dir/"
		f=$dir/ansible/roles/kmmu/tasks/verify.yml
		case $defect in
		unnamed-task) printf -- '\n- ansible.builtin.command: /bin/true\n' >>"$f" ;;
		yaml-indent) printf -- '\n- name: A task\n  ansible.builtin.debug:\n     msg: x\n' >>"$f" ;;
		esac
		if (cd "$dir" && sh selftests/ansible/lint.sh) >"$LOGS/ansible-lint-$defect.log" 2>&1; then
			echo "the linters passed a copy with $defect"
			rm -rf "$dir"
			return 1
		fi
	done
	rm -rf "$dir"
}

phase ansible-lint
check ansible-lint sh selftests/ansible/lint.sh
check ansible-lint-catches ansible_lint_catches

phase ansible
# Its failure, if any, is reported by run.sh, which asks for the image again.
wait "$ansible_image_pid"
BUILD=$BUILD KMMU_ANSIBLE_CACHE=$ANSIBLE_CACHE sh selftests/ansible/run.sh >"$LOGS/ansible.log" 2>&1
grep -E '^(ok|not ok) |^#' "$LOGS/ansible.log"
count_summary ansible

phase end
total=0
echo "# time per phase (seconds, CPU busy):"
[ -n "${BUILD_SECONDS:-}" ] && { echo "#   build $BUILD_SECONDS"; total=$BUILD_SECONDS; }
# shellcheck disable=SC2086
set -- $phases
while [ $# -ge 3 ]; do
	echo "#   $1 $2 ($3%)"
	total=$((total + $2))
	shift 3
done
echo "#   total $total ($((total / 60)) min)"
[ -n "$failures" ] && echo "# failed:$failures"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]

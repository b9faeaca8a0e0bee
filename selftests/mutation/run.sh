#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Mutation testing: the core built once per deliberate defect (kmmu_mutant()
# in kmod/core, enum kmmu_mutant in os.h), each build run against the
# suites on the user backend, which must fail on it.
#
#   selftests/mutation/run.sh [NAME...]
#
# Without names, every mutant of mutants.txt.  Each is run first against
# the tests mutants.txt names for it; one that survives those is run
# against every other test binary before it is called a survivor.  Prints
# a line per mutant (what killed it, or that it survived), then
# "mutants: N killed, N survived"; exits 1 if any survived.
set -u

BUILD=${BUILD:-build}
LIST=selftests/mutation/mutants.txt
LOGS=$BUILD/logs/mutation
mkdir -p "$LOGS"

ALL_TESTS=$(cd selftests && ls unit/*_test.c kmmu/*_test.c | sed 's/\.c$//')

# The mutants.txt line of @1: its name and then the tests that kill it.
entry() {
	sed -e 's/#.*//' "$LIST" | awk -v n="$1" '$1 == n'
}

# A mutant's build starts from the plain ASan build's objects, copied with
# their times so that make keeps them, but for the .c files that name the
# mutant: the others compile to the same code, kmmu_mutant() of any other
# name being false in both builds.  Where a header names it, every file is
# built again.  Nothing to start from: a build of its own, as before.
prepare() {
	name=$1
	dir=$BUILD/mutant/$name
	[ -d "$dir" ] && return
	mkdir -p "$dir"
	files=$(grep -rlF --include='*.c' --include='*.h' "kmmu_mutant($name)" kmod selftests)
	if ! [ -d "$BUILD/asan/obj" ] || ! [ -f "$BUILD/ksft/kselftest_harness.h" ] ||
	   echo "$files" | grep -q '\.h$'; then
		return
	fi
	mkdir -p "$dir/asan"
	cp -a "$BUILD/ksft" "$dir/"
	cp -a "$BUILD/asan/obj" "$dir/asan/"
	for f in $files; do
		rm -f "$dir/asan/obj/${f%.c}.o"
	done
}

# Run one test binary of mutant @1's build; 0 when it failed (killed).
kills() {
	name=$1
	t=$2
	prepare "$name"
	bin=$BUILD/mutant/$name/asan/$t
	log=$LOGS/$name-$(echo "$t" | tr / -).log
	if ! make -s -j2 --no-print-directory BUILD="$BUILD/mutant/$name" MUTANT="$name" "$bin" \
		>"$log" 2>&1; then
		echo "mutant $name: $t does not build (see $log)" >&2
		exit 2
	fi
	KMMU_BACKEND=user ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 timeout 600 "$bin" >"$log" 2>&1 &&
		return 1
	why=$(grep -m1 -E '^not ok |ERROR: AddressSanitizer|runtime error|WARNING at' "$log" |
	      cut -c1-90)
	echo "mutant $name: killed by $t (${why:-exit status})"
	return 0
}

names=${*:-$(sed -e 's/#.*//' "$LIST" | awk 'NF { print $1 }')}
killed=0
survived=0
survivors=""
for name in $names; do
	line=$(entry "$name")
	if [ -z "$line" ] || ! grep -q "KMMU_MUTANT_$name," kmod/core/os.h; then
		echo "mutant $name: not in $LIST and kmod/core/os.h" >&2
		exit 2
	fi
	done_=0
	# shellcheck disable=SC2086
	set -- $line
	shift
	for t in "$@"; do
		if kills "$name" "$t"; then
			done_=1
			break
		fi
	done
	if [ $done_ -eq 0 ]; then
		for t in $ALL_TESTS; do
			case " $* " in *" $t "*) continue ;; esac
			if kills "$name" "$t"; then
				done_=1
				echo "mutant $name: ($t is not its listed killer)"
				break
			fi
		done
	fi
	if [ $done_ -eq 1 ]; then
		killed=$((killed + 1))
	else
		survived=$((survived + 1))
		survivors="$survivors $name"
		echo "mutant $name: SURVIVED every suite"
	fi
	rm -rf "$BUILD/mutant/$name"
done
[ -n "$survivors" ] && echo "survivors:$survivors"
echo "mutants: $killed killed, $survived survived"
[ $survived -eq 0 ]

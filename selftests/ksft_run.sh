#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Run one kselftest_harness binary on the user backend, under the options
# its sanitizer wants, into LOG; its exit status goes to LOG.rc.
#
#   selftests/ksft_run.sh BINARY LOG
#
# selftests/run_tests.sh runs several at once and reads the logs after.
bin=$1
log=$2
formats=""
# Under TSan the dirty-log tests take minutes over every format: one
# format is enough to show what TSan can see (all run under ASan).
case $bin in
*/tsan/*/dirty_log_test) formats=npt ;;
# Lockless aging against access tracking and against the CPU's A/D bits.
*/tsan/*/aging_test) formats=ept_ad_disabled,npt ;;
# Sub-page permissions are EPT's; their races are the same in every EPT mode.
*/tsan/*/spp_test) formats=ept ;;
esac
KMMU_BACKEND=user \
ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=selftests/tsan.supp \
	${formats:+env KMMU_TEST_FORMATS=$formats} "$bin" >"$log" 2>&1
echo $? >"$log.rc"

# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=sh
# How busy this machine's CPUs were between two points, from /proc/stat:
#
#   a=$(cpu_jiffies); ...; b=$(cpu_jiffies); cpu_busy_pct "$a" "$b"
#
# prints the percentage of all CPUs' time spent not idle (iowait counts as
# idle).  Sourced by selftests/run_tests.sh and selftests/ansible/run.sh.

# "BUSY TOTAL": jiffies since boot, summed over every CPU.
cpu_jiffies() {
	awk '$1 == "cpu" {
		busy = $2 + $3 + $4 + $7 + $8 + $9
		print busy, busy + $5 + $6
		exit
	}' /proc/stat
}

cpu_busy_pct() {
	echo "$1 $2" | awk '{
		dt = $4 - $2
		print (dt > 0 ? int(100 * ($3 - $1) / dt + 0.5) : 0)
	}'
}

#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Seed programs for api_fuzz (see its header for the encoding): each
# reaches RUN with a workload, so that mutation starts from the fault
# path and the nested walk rather than from the argument checks.
#
#   selftests/fuzz/seeds.sh CORPUS_DIR
set -eu

dir=$1
mkdir -p "$dir"

# @1 zero bytes.
zeros() {
	head -c "$1" /dev/zero
}

# An op: its index in cmds[], then "how" (0x41: the vCPU fd, 0x40: the
# VM fd; argument shaped), then the argument's bytes (the rest comes as
# zeros). For printf %b: octal escapes are \0nnn.
SET_WORKLOAD='\0010\0101'
RUN='\0011\0101'
INVALIDATE_NESTED='\0022\0100'

# struct kmmu_workload: six u64, pattern, write_percent, flags (byte 56).
workload() {
	flags=$1
	write_percent=$2
	zeros 8
	printf '\000\200\000\000\000\000\000\000'	# size: 32 KiB
	zeros 32
	printf '\000\000\000\000'			# pattern
	printf '%b\000\000\000' "$write_percent"
	printf '%b\000\000\000' "$flags"
	zeros 36
}

{ printf '%b' "$SET_WORKLOAD"; workload '\0001' '\0062'; printf '%b' "$RUN"; } >"$dir/seed-run"
{ printf '%b' "$SET_WORKLOAD"; workload '\0005' '\0062'; printf '%b' "$RUN"; } >"$dir/seed-nested"
{
	printf '%b' "$SET_WORKLOAD"; workload '\0005' '\0144'; printf '%b' "$RUN"
	printf '%b' "$INVALIDATE_NESTED"; zeros 32; printf '%b' "$RUN"
} >"$dir/seed-nested-invalidate"

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

# An op: its index in cmds[], then "how" 0x41 (the vCPU fd, argument
# shaped); then the argument's bytes (the rest comes as zeros).
SET_WORKLOAD='\010\101'
RUN='\011\101'
INVALIDATE_NESTED='\022\100'

# struct kmmu_workload: six u64, pattern, write_percent, flags (byte 56).
workload() {
	flags=$1
	write_percent=$2
	zeros 8
	printf '\000\200\000\000\000\000\000\000'	# size: 32 KiB
	zeros 32
	printf '\000\000\000\000'			# pattern
	printf "$write_percent"'\000\000\000'
	printf "$flags"'\000\000\000'
	zeros 36
}

{ printf "$SET_WORKLOAD"; workload '\001' '\062'; printf "$RUN"; } >"$dir/seed-run"
{ printf "$SET_WORKLOAD"; workload '\005' '\062'; printf "$RUN"; } >"$dir/seed-nested"
{
	printf "$SET_WORKLOAD"; workload '\005' '\144'; printf "$RUN"
	printf "$INVALIDATE_NESTED"; zeros 32; printf "$RUN"
} >"$dir/seed-nested-invalidate"

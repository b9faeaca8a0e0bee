# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=sh
# What the QEMU runners share (sourced by selftests/vm/run_vm_tests.sh and
# bench/kvm-compare): kmmu.ko built for a guest kernel, and a TCG boot that
# is tried again when the kernel dies before /init.

# vm_build_module KERNEL DIR LOG [MAKE-ARG...]: kmmu.ko and kmmu_test.ko for
# /lib/modules/KERNEL/build, built in a fresh copy of kmod/ at DIR; make's
# output in LOG.
vm_build_module() {
	vm_kv=$1
	vm_dir=$2
	vm_log=$3
	shift 3
	rm -rf "$vm_dir"
	mkdir -p "$vm_dir"
	cp -r kmod/core kmod/linux kmod/include kmod/test kmod/Kbuild kmod/Makefile "$vm_dir/"
	make -C "$vm_dir" -j"$(nproc)" KDIR="/lib/modules/$vm_kv/build" "$@" >"$vm_log" 2>&1
}

# vm_boot NAME LOG MARKER TRIES SECONDS QEMU-ARG...: boot under TCG (2 CPUs,
# serial console into LOG) until the console shows MARKER, which the
# guest's /init prints first.  A kernel that dies before that (TCG has been
# seen to oops in early text patching, more often on a loaded host) has run
# nothing of ours: boot again, TRIES boots in all.  Each boot may take
# SECONDS.  Fails when no boot reached /init.
vm_boot() {
	vm_name=$1
	vm_log=$2
	vm_marker=$3
	vm_tries=$4
	vm_secs=$5
	shift 5
	vm_try=1
	while :; do
		timeout "$vm_secs" qemu-system-x86_64 -accel tcg -smp 2 -nographic -no-reboot "$@" \
			</dev/null 2>&1 | tr -d '\r' >"$vm_log"
		# Not anchored: the first line follows the firmware's terminal reset.
		grep -q "$vm_marker" "$vm_log" && return 0
		echo "# $vm_name: the kernel died before /init ran (boot $vm_try):"
		grep -v 'ommand line' "$vm_log" | tail -n 5 | sed 's/^/#   /'
		[ "$vm_try" -lt "$vm_tries" ] || return 1
		vm_try=$((vm_try + 1))
	done
}

# vm_kvm_modules KERNEL MODULE DIR [PARAMS-FN]: MODULE (kvm-amd, kvm-intel)
# of KERNEL and what it depends on (modules.dep), uncompressed into DIR, and
# DIR/modules: "name.ko params" lines in load order.  PARAMS-FN, if given,
# is called with a module's name and path and prints its parameters.
vm_kvm_modules() {
	vm_moddir=/lib/modules/$1
	vm_dir=$3
	vm_fn=${4:-}
	vm_dep=$(grep -E "^kernel/arch/x86/kvm/$2\.ko(\.[a-z]+)?:" "$vm_moddir/modules.dep") ||
		return 1
	mkdir -p "$vm_dir"
	# modules.dep lists a module's dependencies, the last one loaded first.
	# shellcheck disable=SC2046
	set -- $(echo "$vm_dep" | tr -d :)
	vm_order=""
	for vm_m in "$@"; do vm_order="$vm_m $vm_order"; done
	: >"$vm_dir/modules"
	for vm_m in $vm_order; do
		vm_f=$(basename "$vm_m")
		vm_base=${vm_f%.ko*}.ko
		case "$vm_f" in
		*.ko.xz) xz -dc "$vm_moddir/$vm_m" >"$vm_dir/$vm_base" ;;
		*.ko.zst) zstd -qdc "$vm_moddir/$vm_m" >"$vm_dir/$vm_base" ;;
		*.ko.gz) gzip -dc "$vm_moddir/$vm_m" >"$vm_dir/$vm_base" ;;
		*) cp "$vm_moddir/$vm_m" "$vm_dir/$vm_base" ;;
		esac
		vm_params=""
		[ -n "$vm_fn" ] && vm_params=$("$vm_fn" "$vm_base" "$vm_dir/$vm_base")
		echo "$vm_base $vm_params" >>"$vm_dir/modules"
	done
}

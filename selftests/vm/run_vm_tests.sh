#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The QEMU test bench: build kmmu.ko against each installed Debian kernel,
# pack it with busybox and the static selftests into an initramfs, boot the
# kernel under TCG with an Intel-vendor and an AMD-vendor CPU, run the suite
# on the dev backend, and fail on any failed test or any WARN, BUG, oops,
# bad page or refcount message in the guest's kernel log.
#
#   selftests/vm/run_vm_tests.sh TEST_BINARY...
#
# Environment: BUILD (default build), KMMU_VM_KERNELS (default: every
# /boot/vmlinuz-* with a build tree), KMMU_VM_VENDORS (default "intel amd"),
# KMMU_VM_JOBS (boots at once, default 1),
# KMMU_VM_AMD_CPU (QEMU's CPU models of the AMD boots, the n-th kernel's
# boot taking the n-th, cycled; default "max,-erms EPYC": max has 5-level
# paging, so the hardware vCPU runs under a 5-level host and a 4-level one),
# KMMU_VM_INTEL_CPU (the same for the Intel boots; default
# "max,vendor=GenuineIntel,-erms"), KMMU_VM_TIMEOUT seconds per boot
# (default 900), KMMU_VM_PRESSURE=all to run
# the suite under memory pressure in every boot, =none in none (default: one
# vendor per kernel, alternating, to keep make test short).
set -u

. selftests/vm/qemu.sh

BUILD=${BUILD:-build}
OUT=$BUILD/vm
TIMEOUT=${KMMU_VM_TIMEOUT:-900}
PRESSURE=${KMMU_VM_PRESSURE:-alternate}
VENDORS=${KMMU_VM_VENDORS:-intel amd}
# Boots of one kernel at a time (KMMU_VM_JOBS): more share the CPUs, and
# the guests' idle time with them.
JOBS=${KMMU_VM_JOBS:-1}
# A static KVM user for the coexistence stage (selftests/vm/kvm_hold.c).
KVM_HOLD=${KMMU_VM_KVM_HOLD:-$BUILD/static/vm/kvm_hold}

if [ -z "${KMMU_VM_KERNELS:-}" ]; then
	KMMU_VM_KERNELS=""
	for k in /boot/vmlinuz-*; do
		v=${k#/boot/vmlinuz-}
		[ -d "/lib/modules/$v/build" ] && KMMU_VM_KERNELS="$KMMU_VM_KERNELS $v"
	done
fi

# What the kernel says when something went wrong.
BAD_KLOG='WARNING: CPU|cut here|BUG:|Oops|bad page|refcount_t:|general protection|Call Trace|kmmu:.*(leak|error)'

passed=0
failed=0
skipped=0
failures=""

fail() {
	failed=$((failed + ${2:-1}))
	failures="$failures $1"
	echo "not ok - $1"
}

build_module() {
	vm_build_module "$1" "$OUT/kmod-$1" "$OUT/kmod-$1.log" W=1 &&
		! grep -Ei 'warning|error' "$OUT/kmod-$1.log" >/dev/null
}

build_initramfs() {
	kv=$1
	shift
	root=$OUT/root-$kv
	rm -rf "$root"
	mkdir -p "$root/bin" "$root/tests" "$root/proc" "$root/sys" "$root/dev" "$root/tmp"
	cp /bin/busybox "$root/bin/busybox"
	cp "$OUT/kmod-$kv/kmmu.ko" "$OUT/kmod-$kv/kmmu_test.ko" "$root/"
	for t in "$@"; do
		cp "$t" "$root/tests/"
	done
	cp selftests/vm/init "$root/init"
	# The coexistence stage on AMD: KVM's modules and a KVM VM to run beside.
	if [ -x "$KVM_HOLD" ] && vm_kvm_modules "$kv" kvm-amd "$root/kvm"; then
		cp "$KVM_HOLD" "$root/bin/kvm_hold"
	fi
	# stress-ng for the pressure run, with the shared libraries it needs.
	if [ -x /usr/bin/stress-ng ]; then
		mkdir -p "$root/stress"
		cp /usr/bin/stress-ng "$root/stress/"
		for lib in $(ldd /usr/bin/stress-ng | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) .*/\1/p'); do
			mkdir -p "$root$(dirname "$lib")"
			cp -L "$lib" "$root$lib"
		done
	fi
	chmod +x "$root/init"
	(cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$OUT/initramfs-$kv.cpio.gz"
}

# Without ERMS: the kernel then clears pages with "rep stosq", not "rep
# stosb", which TCG runs a byte per iteration.  The 1 GiB hugetlb tests
# clear a whole 1 GiB page each time; with ERMS, a boot took twice as long
# (6.12/intel dev stage: 106 s with it, 54 s without, the same tests).
AMD_CPUS=${KMMU_VM_AMD_CPU:-max,-erms EPYC}
INTEL_CPUS=${KMMU_VM_INTEL_CPU:-max,vendor=GenuineIntel,-erms}

# cpu_model VENDOR NTH: QEMU's -cpu for the NTH kernel's boot of VENDOR.
cpu_model() {
	case "$1" in
	intel) set -- $INTEL_CPUS "$2" ;;
	amd) set -- $AMD_CPUS "$2" ;;
	esac
	eval "cm_nth=\${$#}"
	cm_n=$(($# - 1))
	shift $((cm_nth % cm_n))
	echo "$1"
}

# Count the guest's kselftest totals and check its kernel log.
# kmmu.ko is loaded with hw_selftest=1: on an AMD CPU it runs a guest with
# VMRUN on an NPT and logs what the CPU did (kmod/linux/svm.c); on Intel
# it says why there is no hardware vCPU.
check_hw_selftest() {
	name=$1
	klog=$2
	# QEMU's max CPU has LA57: the Debian kernels run 5-level paging on it.
	case $name:$(cat "$3.cpu") in
	*/amd:max*) want='kmmu: hw self-test: ok, 5-level NPT' ;;
	*/amd:*) want='kmmu: hw self-test: ok, 4-level NPT' ;;
	*) want='kmmu: no hardware vCPU: not an AMD CPU' ;;
	esac
	if echo "$klog" | grep -q "$want"; then
		passed=$((passed + 1))
		echo "ok - $name: $want"
	else
		fail "$name: no '$want' in the kernel log"
		echo "$klog" | grep -E 'kmmu: (hw|no hardware|hardware)' | sed 's/^/#   /'
	fi
}

# On AMD: kvm_amd loaded, a KVM VM alive through kmmu's hw_test run (its
# tests counted above as "coexist:"), KVM's guests still running after.
check_coexist() {
	case $1 in
	*/amd) ;;
	*) return ;;
	esac
	if ! [ -x "$KVM_HOLD" ]; then
		skipped=$((skipped + 1))
		echo "ok - $1: coexistence with kvm_amd # SKIP no $KVM_HOLD"
		return
	fi
	line=$(grep '^KMMU-VM: COEXIST' "$2")
	case $line in
	"KMMU-VM: COEXIST skipped"*)
		skipped=$((skipped + 1))
		echo "ok - $1: coexistence with kvm_amd # SKIP ${line#KMMU-VM: COEXIST skipped: }"
		return
		;;
	esac
	if [ "$line" = "KMMU-VM: COEXIST load=0 spin=0 hlt=0" ]; then
		passed=$((passed + 1))
		echo "ok - $1: kvm_amd beside kmmu's hardware vCPUs, its VM alive meanwhile and its guests running after"
	else
		fail "$1: coexistence with kvm_amd: '${line:-no COEXIST line}'"
	fi
}

# The guest's stages and the seconds each took: "dev 180 s, hw 150 s, ...".
stage_times() {
	awk '/^KMMU-VM: STAGE / {
		if (name != "") out = out (out == "" ? "" : ", ") name " " int($4 - t + 0.5) " s"
		name = $3; t = $4
	} END { print out }' "$1"
}

check_boot() {
	name=$1
	log=$2
	if ! grep -q '^KMMU-VM: DONE' "$log"; then
		fail "$name: guest did not finish (see $log)"
		tail -n 30 "$log" | sed 's/^/#   /'
		return
	fi
	grep -q '^KMMU-VM: INSMOD OK' "$log" || { fail "$name: insmod failed"; return; }
	echo "# $name stages: $(stage_times "$log")"
	grep '^KMMU-VM: pressure' "$log"
	for t in $(sed -n 's/^KMMU-VM: BEGIN \(.*\)/\1/p' "$log"); do
		block=$(sed -n "\|^KMMU-VM: BEGIN $t\$|,\|^KMMU-VM: END $t |p" "$log")
		totals=$(echo "$block" | grep '^# Totals:' | tail -n 1)
		echo "$block" | grep -E '^(ok|not ok) ' | sed "s|^|[$name $(echo "$t" | sed "s,/tests/,,")] |"
		if [ -z "$totals" ]; then
			fail "$name $(echo "$t" | sed "s,/tests/,,"): no totals"
			continue
		fi
		p=$(echo "$totals" | tr ' ' '\n' | sed -n 's/^pass://p')
		f=$(echo "$totals" | tr ' ' '\n' | sed -n 's/^fail://p')
		s=$(echo "$totals" | tr ' ' '\n' | sed -n 's/^skip://p')
		e=$(echo "$totals" | tr ' ' '\n' | sed -n 's/^error://p')
		passed=$((passed + p))
		skipped=$((skipped + s))
		if [ $((f + e)) -gt 0 ]; then
			fail "$name $(echo "$t" | sed "s,/tests/,,")" $((f + e))
			# What each failed test printed, from its RUN line on.
			echo "$block" | awk '
				/^#  RUN / { n = 0 }
				{ buf[n++] = $0 }
				/^not ok / { for (i = 0; i < n && i < 60; i++) print "#   " buf[i] }'
		fi
	done
	# The kernel log from the insmod on, dumped by init after the rmmod.
	klog=$(sed -n '/^KMMU-VM: DMESG BEGIN/,/^KMMU-VM: DMESG END/p' "$log" |
	       sed -n '/kmmu-vm: tests begin/,$p')
	if echo "$klog" | grep -Ei "$BAD_KLOG" >/dev/null; then
		fail "$name: kernel log"
		echo "$klog" | grep -Ei -A8 "$BAD_KLOG" | head -n 40 | sed 's/^/#   /'
	else
		passed=$((passed + 1))
		echo "ok - $name: kernel log clean"
	fi
	check_hw_selftest "$name" "$klog" "$log"
	grep -q '^KMMU-VM: RMMOD OK' "$log" || fail "$name: rmmod failed"
	check_coexist "$name" "$log"
}

# boot_one KERNEL VENDOR PRESSURE NTH: one boot into boot-KERNEL-VENDOR.log
# (its CPU model into .log.cpu); five boots at most, anything after /init
# counts.
boot_one() {
	cpu_model "$2" "$4" >"$OUT/boot-$1-$2.log.cpu"
	vm_boot "$1/$2" "$OUT/boot-$1-$2.log" 'KMMU-VM: kernel' 5 "$TIMEOUT" \
		-cpu "$(cat "$OUT/boot-$1-$2.log.cpu")" -m 3G \
		-kernel "/boot/vmlinuz-$1" -initrd "$OUT/initramfs-$1.cpio.gz" \
		-append "console=ttyS0 quiet panic=-1 hugepagesz=2M hugepages=64 hugepagesz=1G hugepages=1 transparent_hugepage=always kmmu_vm_pressure=$3"
}

# stale_int3 LOG: the guest died of an int3 that its kernel text no longer
# holds (the byte before the faulting address, <..> in the Code: line, is
# not 0xcc).  That is TCG running a translation of code another vCPU has
# just patched (text_poke_bp() flips static keys through an int3, e.g.
# KVM's preempt-notifier key in __schedule when its VM goes), an artifact
# of the emulator: a jump of kmmu's into int3 padding still shows the cc.
stale_int3() {
	code=$(sed -n '/Oops: int3/,/Code:/p' "$1" | grep -m1 'Code:' |
	       sed -n 's/.* \([0-9a-f][0-9a-f]\) <[0-9a-f][0-9a-f]>.*/\1/p')
	[ -n "$code" ] && [ "$code" != cc ]
}

# check_batch KERNEL VENDOR...: wait for the boots started, then check each
# in order, with what its boot_one said.  A boot that died of a stale int3
# (stale_int3) is booted once more, alone.
check_batch() {
	cb_kv=$1
	shift
	wait
	for cb_vendor in "$@"; do
		cb_log=$OUT/boot-$cb_kv-$cb_vendor.log
		if ! grep -q '^KMMU-VM: DONE' "$cb_log" && stale_int3 "$cb_log"; then
			echo "# $cb_kv/$cb_vendor: TCG ran an int3 that the kernel had already patched" \
				"away (cross-modifying code); booting again"
			cp "$cb_log" "$cb_log.stale-int3"
			boot_one "$cb_kv" "$cb_vendor" "$(cat "$cb_log.pressure")" \
				"$(cat "$cb_log.nth")" >"$cb_log.msgs" 2>&1
		fi
		cat "$cb_log.msgs"
		check_boot "$cb_kv/$cb_vendor" "$cb_log"
	done
}

mkdir -p "$OUT"
nth=0
for kv in $KMMU_VM_KERNELS; do
	if ! build_module "$kv"; then
		fail "kmmu.ko for $kv (see $OUT/kmod-$kv.log)"
		continue
	fi
	build_initramfs "$kv" "$@"
	vi=0
	batch=""
	for vendor in $VENDORS; do
		name="$kv/$vendor"
		log=$OUT/boot-$kv-$vendor.log
		pressure=0
		nv=$(echo $VENDORS | wc -w)
		[ "$PRESSURE" = all ] || [ $((nth % nv)) -eq "$vi" ] && pressure=1
		[ "$PRESSURE" = none ] && pressure=0
		vi=$((vi + 1))
		echo "# booting $name, -cpu $(cpu_model "$vendor" "$nth") (pressure run: $pressure)"
		echo "$pressure" >"$log.pressure"
		echo "$nth" >"$log.nth"
		boot_one "$kv" "$vendor" "$pressure" "$nth" >"$log.msgs" 2>&1 &
		batch="$batch $vendor"
		if [ "$(echo $batch | wc -w)" -ge "$JOBS" ]; then
			check_batch "$kv" $batch
			batch=""
		fi
	done
	[ -n "$batch" ] && check_batch "$kv" $batch
	nth=$((nth + 1))
done

[ -z "$KMMU_VM_KERNELS" ] && { skipped=$((skipped + 1)); echo "ok - vm tests # SKIP no kernel with headers"; }
[ -n "$failures" ] && echo "# vm failed:$failures"
echo "vm: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]

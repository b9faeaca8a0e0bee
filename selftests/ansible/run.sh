#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# make ansible-test: ansible/deploy.yml end to end on three QEMU guests
# booting a Debian 12 image (selftests/ansible/image.sh) -- an Intel-vendor
# bench host, an AMD-vendor bench host and the service host -- reached over
# ssh on 127.0.0.1 port forwards, their own network otherwise closed
# (QEMU's user network with restrict=on: nothing leaves a guest).
#
# Then, from outside: kmmu loaded on both bench hosts with the vendor's SPTE
# format and the deployed version, DKMS installed, both bench results in the
# service (its API), the dashboard answering; a second run changes nothing;
# a wrong-vendor inventory, a bad variable and a missing token fail with
# their messages before anything changes.  Prints "ok"/"not ok" lines, each
# phase's time, and "ansible: N passed, N failed, N skipped".
#
# Environment: BUILD (build), KMMU_ANSIBLE_CACHE (where the image is kept
# between runs: /var/cache/kmmu/ansible-image), KMMU_ANSIBLE_KEEP=1 leaves
# the guests running at the end (their ssh commands are printed).
set -u

BUILD=${BUILD:-build}
SRC=$(pwd)
# Absolute: the inventory names files in it.
case $BUILD in
/*) OUT=$BUILD/ansible-test ;;
*) OUT=$SRC/$BUILD/ansible-test ;;
esac
CACHE=${KMMU_ANSIBLE_CACHE:-/var/cache/kmmu/ansible-image}

passed=0
failed=0
skipped=0
phases=""
. selftests/cpu_busy.sh
t_phase=$(date +%s)
cpu_phase=$(cpu_jiffies)

ok() {
	passed=$((passed + 1))
	echo "ok - $1"
}

not_ok() {
	failed=$((failed + 1))
	echo "not ok - $1"
}

phase_done() {
	now=$(date +%s)
	cpu=$(cpu_jiffies)
	phases="$phases$1 $((now - t_phase)) ($(cpu_busy_pct "$cpu_phase" "$cpu")%)
"
	t_phase=$now
	cpu_phase=$cpu
}

summary() {
	echo "# time per phase (seconds, CPU busy):"
	printf '%s' "$phases" | sed 's/^/#   /'
	echo "ansible: $passed passed, $failed failed, $skipped skipped"
}

# --- lint -----------------------------------------------------------------
# (Also make ansible-lint on its own.)

# --- the image ------------------------------------------------------------
mkdir -p "$CACHE" "$OUT"
if ! img=$(sh selftests/ansible/image.sh "$CACHE" 2>"$OUT/image.log"); then
	not_ok "guest image (see $OUT/image.log)"
	tail -n 20 "$OUT/image.log" | sed 's/^/#   /'
	summary
	exit 1
fi
ok "guest image $img"
phase_done image

# --- the guests -----------------------------------------------------------
GUESTS="bench-intel bench-amd regress"
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# MiB: the service host needs less than a bench host, which builds.
mem_of() {
	[ "$1" = regress ] && echo 1536 || echo 2048
}
# The service play has the service host alone: two CPUs let its build use
# both cores.  The bench hosts work at the same time, one CPU each.
smp_of() {
	[ "$1" = regress ] && echo 2 || echo 1
}
# Skylake-Client without ERMS: TCG runs "rep stosb" a byte per iteration,
# and the kernel clears pages with it when ERMS is there (the DKMS build of
# kmmu in a guest: 185 s with it, 166 s without).  Neither model has AVX:
# with it, glibc's string functions take their AVX2 forms, which TCG runs
# more slowly than the SSE2 ones (two of kmmu's files compiled in a guest,
# idle machine, three runs each: 35-41 s with AVX, 29-33 s without).
NO_AVX="-avx,-avx2,-fma,-f16c"
cpu_of() {
	case $1 in
	bench-intel) echo "Skylake-Client,-erms,$NO_AVX" ;;
	*) echo "EPYC,$NO_AVX" ;;
	esac
}

stop_guests() {
	for g in $GUESTS; do
		[ -s "$OUT/$g.pid" ] && kill "$(cat "$OUT/$g.pid")" 2>/dev/null
		rm -f "$OUT/$g.pid"
	done
}

start_guest() {
	g=$1
	rm -f "$OUT/$g.qcow2" "$OUT/$g.pid"
	qemu-img create -q -f qcow2 -b "$img/base.qcow2" -F qcow2 "$OUT/$g.qcow2"
	fwd="hostfwd=tcp:127.0.0.1:$(cat "$OUT/$g.ssh-port")-:22"
	[ "$g" = regress ] && fwd="$fwd,hostfwd=tcp:127.0.0.1:$SERVICE_PORT-:8080"
	qemu-system-x86_64 -accel tcg,thread=multi -smp "$(smp_of "$g")" -m "$(mem_of "$g")" -cpu "$(cpu_of "$g")" \
		-netdev "user,id=n0,restrict=on,$fwd" -device virtio-net-pci,netdev=n0 \
		-drive "if=virtio,file=$OUT/$g.qcow2,format=qcow2,cache=unsafe" \
		-kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
		-append "root=/dev/vda rw console=ttyS0 systemd.hostname=$g quiet" \
		-display none -serial "file:$OUT/$g.console.log" -monitor none \
		-pidfile "$OUT/$g.pid" -daemonize 2>"$OUT/$g.qemu.log"
}

gssh() {
	gs_host=$1
	shift
	ssh -q -i "$img/id_ed25519" -p "$(cat "$OUT/$gs_host.ssh-port")" \
		-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
		-o ConnectTimeout=10 -o BatchMode=yes root@127.0.0.1 "$@"
}

# A guest whose ssh does not answer in time (TCG has been seen to oops
# early in boot) is booted again, three boots in all.
wait_guest() {
	g=$1
	for boot in 1 2 3; do
		i=0
		while [ $i -lt 60 ]; do
			gssh "$g" true 2>/dev/null && return 0
			sleep 5
			i=$((i + 1))
		done
		echo "# $g: no ssh after 300 s (boot $boot); console:"
		tail -n 5 "$OUT/$g.console.log" | sed 's/^/#   /'
		[ -s "$OUT/$g.pid" ] && kill "$(cat "$OUT/$g.pid")" 2>/dev/null
		sleep 1
		start_guest "$g"
	done
	return 1
}

trap 'stop_guests' EXIT
[ "${KMMU_ANSIBLE_KEEP:-0}" = 1 ] && trap - EXIT
SERVICE_PORT=$(free_port)
for g in $GUESTS; do
	free_port >"$OUT/$g.ssh-port"
done
for g in $GUESTS; do
	start_guest "$g" || { not_ok "start $g"; summary; exit 1; }
done
for g in $GUESTS; do
	if wait_guest "$g"; then
		ok "$g boots and answers ssh ($(gssh "$g" 'grep -m1 vendor_id /proc/cpuinfo' | sed 's/.*: //'))"
	else
		not_ok "$g boots and answers ssh"
		summary
		exit 1
	fi
done
phase_done boot

# --- the inventory ----------------------------------------------------------
# The example's group_vars, these guests, and a vault of its own.
inv=$OUT/inventory
rm -rf "$inv"
mkdir -p "$inv"
cp -r ansible/inventories/example/group_vars "$inv/"
rm -f "$inv/group_vars/all/vault.yml.example"
# The shortest suite that still sends real results.
sed -i 's/^kmmu_bench_suite: .*/kmmu_bench_suite: smoke/' "$inv/group_vars/bench.yml"
grep -q '^kmmu_bench_suite: smoke$' "$inv/group_vars/bench.yml" || { not_ok "inventory: no kmmu_bench_suite"; summary; exit 1; }
host_line() {
	echo "          ansible_host: 127.0.0.1"
	echo "          ansible_port: $(cat "$OUT/$1.ssh-port")"
}
# write_hosts INTEL-HOST AMD-HOST [INVENTORY]: the bench groups as given.
write_hosts() {
	{
		echo "---"
		echo "all:"
		echo "  vars:"
		echo "    ansible_user: root"
		echo "    ansible_ssh_private_key_file: $img/id_ed25519"
		echo "    kmmu_service_url: http://127.0.0.1:$SERVICE_PORT"
		echo "    kmmu_controller_results_dir: $OUT/results"
		echo "  children:"
		echo "    bench:"
		echo "      children:"
		echo "        intel:"
		echo "          hosts:"
		echo "            $1:"
		host_line "$1" | sed 's/^/    /'
		echo "        amd:"
		echo "          hosts:"
		echo "            $2:"
		host_line "$2" | sed 's/^/    /'
		echo "    service:"
		echo "      hosts:"
		echo "        regress:"
		host_line regress
	} >"${3:-$inv}/hosts.yml"
}
write_hosts bench-intel bench-amd
token=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$OUT/vault-pass"
chmod 600 "$OUT/vault-pass"
printf -- '---\nvault_kmmu_service_token: "%s"\n' "$token" >"$inv/group_vars/all/vault.yml"
ansible-vault encrypt --vault-password-file "$OUT/vault-pass" "$inv/group_vars/all/vault.yml" >/dev/null

export ANSIBLE_CONFIG="$SRC/ansible/ansible.cfg"
export ANSIBLE_HOST_KEY_CHECKING=False
export ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=600s -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no"
export ANSIBLE_NOCOLOR=1
# Each task's time, at the end of each run's log.
export ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks

# play_bg NAME INVENTORY ARG...: ansible-playbook into $OUT/NAME.log, in
# the background; its exit status into $OUT/NAME.rc.
play_bg() {
	name=$1
	pinv=$2
	shift 2
	# Both bench hosts at once: two single-CPU guests on this machine's two
	# cores cost little more than one (kmmu_bench_serial's default of 1
	# would make the first run half as long again).
	rm -f "$OUT/$name.rc"
	{
		ansible-playbook -i "$pinv" --vault-password-file "$OUT/vault-pass" \
			-e kmmu_bench_serial=2 ansible/deploy.yml "$@" >"$OUT/$name.log" 2>&1
		echo $? >"$OUT/$name.rc"
	} &
}

# played NAME: wait for play_bg NAME to end, print its recap, return its status.
played() {
	while [ ! -s "$OUT/$1.rc" ]; do
		sleep 1
	done
	sed -n '/^PLAY RECAP/,$p' "$OUT/$1.log" | sed '/^$/d; s/^/#   /'
	return "$(cat "$OUT/$1.rc")"
}

# The total of one recap field (changed, failed, ...) over every host.
recap_sum() {
	sed -n '/^PLAY RECAP/,$p' "$OUT/$1.log" | sed -n "s/.* $2=\([0-9]*\).*/\1/p" |
		awk '{ s += $1 } END { print s + 0 }'
}

# --- the first run, and the runs that must fail ---------------------------
# Those fail in the first play, before anything changes (that is what each
# checks): they run beside the first run, whose hosts wait on the controller
# and on one another at its start.
echo "# first run, and the runs that must fail beside it"
inv_swapped=$OUT/inventory-swapped
rm -rf "$inv_swapped"
cp -r "$inv" "$inv_swapped"
write_hosts bench-amd bench-intel "$inv_swapped"
play_bg wrong-vendor "$inv_swapped"
play_bg bad-format "$inv" -e kmmu_spte_format=vmx
play_bg bad-suite "$inv" -e kmmu_bench_suite=fastest
play_bg no-token "$inv" -e kmmu_service_token=
play_bg bad-admin "$inv" -e '{"kmmu_service_admins": ["nobody"]}'
play_bg first "$inv"
if played first; then
	ok "deploy.yml: first run"
else
	not_ok "deploy.yml: first run (see $OUT/first.log)"
	grep -E -B2 -A12 '^(fatal|failed):' "$OUT/first.log" | head -n 60 | sed 's/^/#   /'
	summary
	exit 1
fi

# must_fail NAME MESSAGE: the run failed, said MESSAGE, changed nothing.
must_fail() {
	if played "$1"; then
		not_ok "$1: the run passed"
	elif ! grep -qF "$2" "$OUT/$1.log"; then
		not_ok "$1: no message '$2' (see $OUT/$1.log)"
	elif [ "$(recap_sum "$1" changed)" -ne 0 ]; then
		not_ok "$1: changed $(recap_sum "$1" changed)"
	else
		ok "$1: fails with '$2', changed=0"
	fi
}
must_fail wrong-vendor "bench-amd is in group intel but its CPU is AuthenticAMD, not GenuineIntel"
must_fail bad-format "kmmu_spte_format"
must_fail bad-suite "kmmu_bench_suite"
must_fail no-token "kmmu_service_token is not set"
must_fail bad-admin "kmmu_service_admins"
phase_done first-run

# --- checked from outside -------------------------------------------------
version=0.1+g$(git rev-parse HEAD | cut -c1-12)
for g in bench-intel:1 bench-amd:2; do
	h=${g%:*}
	want=${g#*:}
	got=$(gssh "$h" cat /sys/module/kmmu/parameters/spte_format 2>/dev/null)
	[ "$got" = "$want" ] && ok "$h: kmmu loaded, spte_format=$got" ||
		not_ok "$h: spte_format is '$got', not $want"
	got=$(gssh "$h" cat /sys/module/kmmu/version 2>/dev/null)
	[ "$got" = "$version" ] && ok "$h: the loaded kmmu is $got" ||
		not_ok "$h: the loaded kmmu is '$got', not $version"
	st=$(gssh "$h" 'dkms status -m kmmu -k "$(uname -r)"' 2>/dev/null)
	echo "$st" | grep -q "kmmu/$version.*: installed" && ok "$h: dkms: $st" ||
		not_ok "$h: dkms status: '$st'"
	gssh "$h" test -c /dev/kmmu && ok "$h: /dev/kmmu" || not_ok "$h: no /dev/kmmu"
done

api() {
	python3 -c 'import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=20).read().decode())' "http://127.0.0.1:$SERVICE_PORT$1"
}
# The hosts whose populate figures of the deployed commit the service has,
# as "host class" lines.
stored=$(python3 - "http://127.0.0.1:$SERVICE_PORT" "$(git rev-parse HEAD)" <<'PY' 2>&1
import json, sys, urllib.request
base, sha = sys.argv[1], sys.argv[2]
get = lambda path: json.load(urllib.request.urlopen(base + path, timeout=20))
seen = set()
for series in get("/api/v1/series?bench=populate"):
    for p in get("/api/v1/series/%d" % series["id"])["points"]:
        if p["commit"] == sha:
            seen.add("%s %s" % (p["host"], p["host_class"]))
print("\n".join(sorted(seen)))
PY
)
for want in "bench-intel intel" "bench-amd amd"; do
	if echo "$stored" | grep -qx "$want"; then
		ok "service: the populate figures of ${want% *} (host class ${want#* }) for the deployed commit"
	else
		not_ok "service: no populate figures of ${want% *} (host class ${want#* }) for the deployed commit: $stored"
	fi
done
if api / 2>/dev/null | grep -q 'populate'; then
	ok "service: the dashboard answers and shows the bench"
else
	not_ok "service: the dashboard does not answer or shows no bench"
fi
phase_done checks

# --- the second run and check mode -----------------------------------------
# Neither may change anything on the hosts -- that is what each checks -- so
# they run side by side: alone, each leaves this machine's CPUs idle while
# its tasks wait on one guest at a time.
echo "# second run and check mode, side by side"
play_bg second "$inv"
play_bg check "$inv" --check --diff -e kmmu_nonpresent_ve=true

if played second; then
	c=$(recap_sum second changed)
	[ "$c" -eq 0 ] && ok "deploy.yml: second run, changed=0" ||
		{ not_ok "deploy.yml: second run changed $c"; grep -E '^changed:' "$OUT/second.log" | sed 's/^/#   /'; }
else
	not_ok "deploy.yml: second run (see $OUT/second.log)"
fi

# A dry run of a change: --diff shows it, and nothing on the hosts moves.
if played check; then
	grep -q '^+options kmmu .*nonpresent_ve=Y' "$OUT/check.log" &&
		ok "check mode: --diff shows the new module options" ||
		not_ok "check mode: no diff of /etc/modprobe.d/kmmu.conf (see $OUT/check.log)"
	[ "$(recap_sum check changed)" -gt 0 ] && ok "check mode: reports the change" ||
		not_ok "check mode: reports changed=0"
else
	not_ok "deploy.yml --check --diff (see $OUT/check.log)"
	grep -E -B2 -A12 '^(fatal|failed):' "$OUT/check.log" | head -n 40 | sed 's/^/#   /'
fi


# Nothing moved: the module and its options are the first run's.
for g in bench-intel bench-amd; do
	got=$(gssh "$g" 'cat /sys/module/kmmu/parameters/nonpresent_ve; grep -c nonpresent_ve=N /etc/modprobe.d/kmmu.conf' 2>/dev/null | tr '\n' ' ')
	[ "$got" = "N 1 " ] && ok "$g: check mode changed nothing" ||
		not_ok "$g: after check mode: '$got'"
done
for g in bench-intel:1 bench-amd:2; do
	got=$(gssh "${g%:*}" cat /sys/module/kmmu/parameters/spte_format 2>/dev/null)
	[ "$got" = "${g#*:}" ] && ok "${g%:*}: still spte_format=$got after the failed runs" ||
		not_ok "${g%:*}: spte_format is '$got' after the failed runs"
done
phase_done reruns

if [ "${KMMU_ANSIBLE_KEEP:-0}" = 1 ]; then
	for g in $GUESTS; do
		echo "# $g: ssh -i $img/id_ed25519 -p $(cat "$OUT/$g.ssh-port") root@127.0.0.1"
	done
else
	stop_guests
fi
summary
[ "$failed" -eq 0 ]

#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Install the Debian packages kmmu needs, if any is missing.  Usage:
#   scripts/install-deps.sh [group...]    groups: build, kernel, vm, service,
#                                          ansible (default: all)
set -eu

pkgs_build="gcc make liburcu-dev linux-libc-dev clang libclang-rt-14-dev libjansson-dev
	    python3-jsonschema git"
pkgs_kernel="linux-source-6.1 linux-headers-amd64 sparse xz-utils"
pkgs_vm="qemu-system-x86 busybox-static cpio stress-ng linux-image-amd64
	 linux-image-6.12-amd64 linux-headers-6.12-amd64 fio"
# The regression service, its tests and make serve.
pkgs_service="libmicrohttpd-dev libpq-dev postgresql gnuplot-nox chromium fonts-dejavu-core
	      python3"
# ansible/: the controller, its linters, and the end-to-end test's guests.
pkgs_ansible="ansible ansible-core ansible-lint yamllint mmdebstrap qemu-utils e2fsprogs
	      openssh-client python3-yaml"

want=""
for group in ${*:-build kernel vm service ansible}; do
	case "$group" in
	build) want="$want $pkgs_build" ;;
	kernel) want="$want $pkgs_kernel" ;;
	vm) want="$want $pkgs_vm" ;;
	service) want="$want $pkgs_service" ;;
	ansible) want="$want $pkgs_ansible" ;;
	*) echo "install-deps: unknown group '$group'" >&2; exit 2 ;;
	esac
done

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages:$missing (run as root, or install them)" >&2
	exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null

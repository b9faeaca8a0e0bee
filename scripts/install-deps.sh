#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Install the Debian packages kmmu needs, if any is missing.  Usage:
#   scripts/install-deps.sh [--list] [group...]
# groups: build, kernel, vm, service, serve, ansible (default: all but serve,
# which service holds); --list prints the packages instead.
set -eu

pkgs_build="gcc make liburcu-dev linux-libc-dev clang libclang-rt-14-dev libjansson-dev
	    python3-jsonschema git"
pkgs_kernel="linux-source-6.1 linux-headers-amd64 sparse xz-utils"
pkgs_vm="qemu-system-x86 busybox-static cpio stress-ng linux-image-amd64
	 linux-image-6.12-amd64 linux-headers-6.12-amd64 fio"
# make serve: what builds and runs the regression service, and nothing else.
pkgs_serve="gcc make libmicrohttpd-dev libjansson-dev libpq-dev postgresql gnuplot-nox
	    fonts-dejavu-core python3"
# The regression service and its tests (which screenshot the pages).
pkgs_service="$pkgs_serve chromium"
# ansible/: the controller, its linters, and the end-to-end test's guests.
pkgs_ansible="ansible ansible-core ansible-lint yamllint mmdebstrap qemu-utils e2fsprogs
	      openssh-client python3-yaml"

list=""
if [ "${1:-}" = --list ]; then
	list=yes
	shift
fi

want=""
for group in ${*:-build kernel vm service ansible}; do
	case "$group" in
	build) want="$want $pkgs_build" ;;
	kernel) want="$want $pkgs_kernel" ;;
	vm) want="$want $pkgs_vm" ;;
	service) want="$want $pkgs_service" ;;
	serve) want="$want $pkgs_serve" ;;
	ansible) want="$want $pkgs_ansible" ;;
	*) echo "install-deps: unknown group '$group'" >&2; exit 2 ;;
	esac
done

if [ -n "$list" ]; then
	# shellcheck disable=SC2086
	printf '%s\n' $want | sort -u
	exit 0
fi

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

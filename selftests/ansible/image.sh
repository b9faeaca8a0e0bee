#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The Debian 12 guest image of the Ansible end-to-end test: bookworm from
# Debian's mirror (mmdebstrap), with every package the roles install baked
# in, so the guests never need a network; root logs in over ssh with the
# key made beside the image.  PostgreSQL is installed but not started at
# boot (the service role starts and enables it on the service host alone),
# and no gettys run on tty2-tty6 (getty-static; three guests booting on two
# cores: systemd-analyze blame gave PostgreSQL 11 s, getty-static 13 s).
#
#   selftests/ansible/image.sh CACHE_DIR
#
# The image is built once per set of inputs -- this script and the package
# lists of ansible/roles/*/defaults/main.yml -- under
# CACHE_DIR/<key>/, which then holds base.qcow2, vmlinuz, initrd.img,
# id_ed25519(.pub); the path of that directory is printed on stdout.  An
# image with other inputs is removed.  Environment: KMMU_DEBIAN_MIRROR
# (default http://deb.debian.org/debian).
set -eu

cache=$1
here=$(dirname "$0")
mirror=${KMMU_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${mirror%/debian}/debian-security

# What the guests boot and how the test reaches them (libnss-myhostname: the
# guests' names resolve without DNS, which sudo wants), then what the roles
# install (their defaults name the packages: one list, two users).
base_pkgs="linux-image-amd64 linux-headers-amd64 systemd-sysv udev kmod
	   openssh-server python3 python3-apt sudo iproute2 procps libnss-myhostname"
role_pkgs=$(/usr/bin/python3 - "$here/../../ansible/roles" <<'PY'
import glob, sys, yaml
pkgs = set()
for f in sorted(glob.glob(sys.argv[1] + "/*/defaults/main.yml")):
    d = yaml.safe_load(open(f)) or {}
    for k, v in d.items():
        if k.endswith("_packages") and isinstance(v, list):
            pkgs.update(p for p in v if "{{" not in p)
print(" ".join(sorted(pkgs)))
PY
)
pkgs=$(echo $base_pkgs $role_pkgs | tr ' ' '\n' | sort -u | tr '\n' ' ')

key=$( (cat "$0"; echo "$pkgs"; echo "$mirror") | sha256sum | cut -c1-16)
dir=$cache/$key
if [ -s "$dir/base.qcow2" ] && [ -s "$dir/vmlinuz" ]; then
	echo "$dir"
	exit 0
fi

for old in "$cache"/*/; do
	[ -d "$old" ] && [ "${old%/}" != "$dir" ] && rm -rf "$old"
done
tmp=$cache/.build-$$
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

ssh-keygen -q -t ed25519 -N "" -C kmmu-ansible-test -f "$tmp/id_ed25519"

echo "image: building a Debian 12 image with: $pkgs" >&2
# shellcheck disable=SC2086
mmdebstrap --variant=apt --quiet \
	--include="$(echo $pkgs | tr ' ' ',')" \
	--customize-hook='mkdir -p -m 700 "$1/root/.ssh"' \
	--customize-hook="upload $tmp/id_ed25519.pub /root/.ssh/authorized_keys" \
	--customize-hook='chmod 600 "$1/root/.ssh/authorized_keys"' \
	--customize-hook='echo "/dev/vda / ext4 rw,errors=remount-ro 0 1" >"$1/etc/fstab"' \
	--customize-hook='printf "[Match]\nName=en* eth*\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\n" >"$1/etc/systemd/network/10-qemu.network"' \
	--customize-hook='chroot "$1" systemctl enable systemd-networkd' \
	--customize-hook='chroot "$1" systemctl mask systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer getty-static.service' \
	--customize-hook='chroot "$1" systemctl disable postgresql.service' \
	--customize-hook='echo "UseDNS no" >"$1/etc/ssh/sshd_config.d/kmmu-test.conf"' \
	--customize-hook='echo kmmu-guest >"$1/etc/hostname"' \
	--customize-hook=': >"$1/etc/machine-id"; rm -f "$1/var/lib/dbus/machine-id"' \
	--customize-hook='cp -L "$1/vmlinuz" "$1/initrd.img" '"$tmp/" \
	bookworm "$tmp/root" \
	"deb $mirror bookworm main" \
	"deb $mirror bookworm-updates main" \
	"deb $security bookworm-security main" >&2

# ext4 from the tree, 8 GiB sparse (the roles build in the guest), qcow2.
truncate -s 8G "$tmp/root.raw"
mkfs.ext4 -q -F -L root -d "$tmp/root" "$tmp/root.raw"
rm -rf "$tmp/root"
qemu-img convert -f raw -O qcow2 "$tmp/root.raw" "$tmp/base.qcow2"
rm -f "$tmp/root.raw"

mkdir -p "$dir"
mv "$tmp/base.qcow2" "$tmp/vmlinuz" "$tmp/initrd.img" "$tmp/id_ed25519" "$tmp/id_ed25519.pub" "$dir/"
echo "$pkgs" >"$dir/packages"
echo "$dir"

#!/usr/bin/env bash
# The local cloud's guest image, built from Debian 12's packages with
# mmdebstrap: the root file system as an unpartitioned ext4 disk image
# (mke2fs -d, no loop device or mount), plus its kernel and initrd for
# direct kernel boot (Glance's kernel_id/ramdisk_id). Its packages are
# listed in ./packages; the files under ./rootfs are copied over it.
#
# Cached outside the checkout, keyed by this directory's files and the
# mirrors: a second run builds nothing. Prints the image's directory:
#   root.img    raw ext4, label debian-root, boot with root=/dev/vda
#   vmlinuz     Debian's cloud kernel
#   initrd.img  its initramfs
#   cmdline     the kernel command line to boot it with: Glance's
#               os_command_line property (mitigations off: see
#               below). Nova's own default ends with console=hvc0,
#               which a guest without a virtio console turns into
#               /dev/console on tty0: cloud-init's output and final
#               message would then miss the serial console log.
#   manifest    the installed packages and versions
#
# Environment:
#   KVIP_IMAGE_CACHE   where images are kept (/var/cache/keepalived-vip/images)
#   KVIP_DEBIAN_MIRROR the archive the build installs from (what this
#                      machine's apt uses: http://deb.debian.org)
#   KVIP_GUEST_MIRROR  the guests' own mirror, written into the image as the
#                      default of cloud-init's apt configuration; vendor or
#                      user data can override it at boot. The default is the
#                      local cloud's apt-cacher-ng on its external network.
#   KVIP_IMAGE_SIZE    the root file system's size (1G: it fits m1.small's
#                      1 GB disk; cloud-init grows it on a bigger one)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${KVIP_IMAGE_CACHE:-/var/cache/keepalived-vip/images}
debian_mirror=${KVIP_DEBIAN_MIRROR:-http://deb.debian.org}
guest_mirror=${KVIP_GUEST_MIRROR:-http://172.24.4.1:3142/deb.debian.org}
size=${KVIP_IMAGE_SIZE:-1G}
suite=bookworm

packages=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/packages" | tr -s ' \n' ',' | sed 's/,$//')
key=$(
	{
		cd "$here" && find . -type f -print0 | sort -z | xargs -0 sha256sum
		printf '%s\n' "$debian_mirror" "$guest_mirror" "$size" "$suite"
	} | sha256sum | cut -c1-16
)
image=$cache/debian-12-$key
if [ -e "$image/.built" ]; then
	echo "$image"
	exit 0
fi

mkdir -p "$cache"
# One build per key at a time; a second caller waits and then finds it built.
exec 9>"$cache/.lock"
flock 9
if [ -e "$image/.built" ]; then
	echo "$image"
	exit 0
fi

work=$(mktemp -d "$cache/.build-XXXXXX")
# apt's download sandbox (user _apt) must reach the root file system inside.
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
echo "guest image: building $image from Debian's packages (a few minutes, once)" >&2

# Documentation, manual pages and translations are left out of the image
# (and, through dpkg's configuration, out of what the guest installs later):
# a smaller disk that every instance copies.
mmdebstrap --variant=minbase --include="$packages" \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-include=/usr/share/locale/locale.alias' \
	"$suite" "$rootfs" \
	"deb $debian_mirror/debian $suite main" \
	"deb $debian_mirror/debian $suite-updates main" \
	"deb $debian_mirror/debian-security $suite-security main" >&2

cp -r "$here/rootfs/." "$rootfs/"
# The guests' mirror: the image's sources until cloud-init's apt module
# rewrites them from the template in ./rootfs with this default, or with
# what vendor or user data says.
cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $guest_mirror/debian $suite main
deb $guest_mirror/debian $suite-updates main
deb $guest_mirror/debian-security $suite-security main
SOURCES
cat >"$rootfs/etc/cloud/cloud.cfg.d/90-mirror.cfg" <<MIRROR
# The cloud's package mirror (Debian's own cloud.cfg keeps the image's
# sources instead).
apt:
  preserve_sources_list: false
  primary:
    - arches: [default]
      uri: $guest_mirror/debian
  security:
    - arches: [default]
      uri: $guest_mirror/debian-security
MIRROR
# Every instance is a new machine: systemd makes a machine ID at first
# boot, cloud-init the SSH host keys (openssh-server's postinst made some).
: >"$rootfs/etc/machine-id"
rm -f "$rootfs"/etc/ssh/ssh_host_*
rm -f "$rootfs/var/lib/dbus/machine-id" "$rootfs/etc/resolv.conf"
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb

dpkg-query --admindir="$rootfs/var/lib/dpkg" -W -f='${Package} ${Version}\n' >"$work/manifest"
cp "$rootfs"/boot/vmlinuz-* "$work/vmlinuz"
cp "$rootfs"/boot/initrd.img-* "$work/initrd.img"
# mitigations=off: the guests run under TCG on an emulated CPU that the
# kernel takes for one open to Meltdown and the like; page table isolation
# then switches page tables on every system call, and each switch flushes
# TCG's software TLB. A boot to keepalived serving took 175 s with the
# mitigations, 146 s without (two boots side by side, Dec 2026). Nothing
# these guests run is an attacker's, and the host's own kernel keeps its.
echo "root=/dev/vda console=tty0 console=ttyS0 mitigations=off" >"$work/cmdline"
truncate -s "$size" "$work/root.img"
mke2fs -q -t ext4 -L debian-root -d "$rootfs" "$work/root.img"
rm -rf "$rootfs"
touch "$work/.built"
rm -rf "$image"
mv "$work" "$image"
trap - EXIT
echo "$image"

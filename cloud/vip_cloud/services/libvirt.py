"""libvirt (DevStack's lib/nova_plugins/functions-libvirt) for Nova's libvirt
driver: Debian's virtlogd and libvirtd, started and watched by the cloud's
supervisor (there is no systemd), each in a mount namespace of its own in
which the cloud's directory is bind-mounted over libvirt's fixed paths
(/etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt,
/var/cache/libvirt). A privileged libvirtd reads its drivers' settings only
from /etc/libvirt: this way the machine's own files are never changed, every
file libvirt writes is in the cloud's directory, and make cloud-down removes
them with it. nova-compute reaches libvirtd through the socket's path on this
side (connection_uri)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from vip_hosts.supervisor import Service, stays_up, unix_socket_open

from ..layout import CloudDirs
from .common import Cloud

NAME = "libvirt"
PROGRAMS = ("libvirtd", "virtlogd", "qemu-system-x86_64", "qemu-img", "genisoimage", "unshare", "mount")
# The paths a privileged libvirtd and virtlogd use, each given a directory
# of the cloud's.
LIBVIRT_PATHS = ("/etc/libvirt", "/run/libvirt", "/var/lib/libvirt", "/var/log/libvirt", "/var/cache/libvirt")

# A root-only host without systemd, machined or polkit (KubeVirt's launcher
# runs libvirt so): qemu runs as root with no security driver, no mount
# namespace of its own per guest and no cgroups, and libvirt remembers no
# file ownership to restore.
QEMU_CONF = """\
user = "root"
group = "root"
security_driver = "none"
namespaces = [ ]
cgroup_controllers = [ ]
remember_owner = 0
"""
# Only root reaches the socket, with no polkit to ask; logs to stderr, which
# the supervisor keeps in the cloud's log.
LIBVIRTD_CONF = """\
unix_sock_group = "root"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:stderr"
"""
VIRTLOGD_CONF = """\
log_outputs = "3:stderr"
"""


def etc(dirs: CloudDirs) -> Path:
    return dirs.etc / "libvirt"


def mounts(dirs: CloudDirs) -> dict[str, Path]:
    """Each of libvirt's paths -> the cloud's directory mounted over it."""
    return {
        "/etc/libvirt": etc(dirs),
        "/run/libvirt": dirs.libvirt_run,
        "/var/lib/libvirt": dirs.data / "libvirt",
        "/var/log/libvirt": dirs.logs / "libvirt",
        "/var/cache/libvirt": dirs.data / "libvirt-cache",
    }


def connection_uri(dirs: CloudDirs) -> str:
    """qemu:///system through the socket's path as seen outside the daemons' namespace."""
    return f"qemu:///system?socket={dirs.libvirt_socket}"


def configure(cloud: Cloud) -> None:
    for path in mounts(cloud.dirs).values():
        path.mkdir(parents=True, exist_ok=True)
    conf = etc(cloud.dirs)
    # No networks of libvirt's own (its default network would bring virbr0
    # and a dnsmasq): Neutron wires the guests.
    (conf / "qemu" / "networks").mkdir(parents=True, exist_ok=True)
    (conf / "qemu.conf").write_text(QEMU_CONF)
    (conf / "libvirtd.conf").write_text(LIBVIRTD_CONF)
    (conf / "virtlogd.conf").write_text(VIRTLOGD_CONF)


def init(cloud: Cloud) -> None:
    # The mount points: what the packages made, and /run/libvirt, which only
    # a running libvirt makes (an empty directory; cleanup removes it).
    for target in LIBVIRT_PATHS:
        Path(target).mkdir(parents=True, exist_ok=True)


def in_own_mounts(dirs: CloudDirs, argv: list[str]) -> list[str]:
    """argv run in a new mount namespace (private: nothing propagates back to
    this machine's) with the cloud's directories over libvirt's paths."""
    binds = " && ".join(
        f"mount --bind {shlex.quote(str(source))} {shlex.quote(target)}" for target, source in mounts(dirs).items()
    )
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", f'{binds} && exec "$@"', "sh", *argv]


def start(cloud: Cloud) -> None:
    dirs = cloud.dirs
    # virtlogd first: libvirtd hands every guest's serial console to it (the
    # console log Nova reads).
    cloud.supervisor.start(
        Service(
            name="virtlogd",
            argv=in_own_mounts(dirs, ["virtlogd", "--config", str(Path("/etc/libvirt") / "virtlogd.conf")]),
            env=cloud.env,
            log=cloud.log("virtlogd"),
            ready=lambda: unix_socket_open(dirs.libvirt_run / "virtlogd-sock"),
        )
    )
    cloud.supervisor.start(
        Service(
            name="libvirtd",
            argv=in_own_mounts(dirs, ["libvirtd", "--config", str(Path("/etc/libvirt") / "libvirtd.conf")]),
            env=cloud.env,
            log=cloud.log("libvirtd"),
            ready=lambda: unix_socket_open(dirs.libvirt_socket),
            # It probes qemu's capabilities before it listens.
            ready_timeout=180,
        )
    )
    # A soft reboot's new tap, plugged into the userspace datapath again
    # (vip_cloud/tap_replug.py says why).
    cloud.supervisor.start(
        Service(
            name="tap-replug",
            argv=[sys.executable, "-m", "vip_cloud.tap_replug"],
            env=cloud.env,
            log=cloud.log("tap-replug"),
            ready=stays_up(2),
        )
    )


def cleanup(dirs: CloudDirs) -> list[str]:
    """/run/libvirt, if this cloud made it and nothing else uses it. The
    guests' qemu processes hold their disks in the cloud's directory open,
    so the cloud's process sweep has already stopped them."""
    run = Path("/run/libvirt")
    try:
        run.rmdir()
    except OSError:
        return []
    return [str(run)]

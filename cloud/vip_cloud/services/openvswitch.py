"""Open vSwitch (DevStack's lib/neutron_plugins/ovs_base): Debian's database
server and switch, with every file in the cloud's directory, the switch on
the userspace datapath only, since this kernel has no Open vSwitch module
and loads none."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from vip_hosts.supervisor import Service, ServiceFailed, unix_socket_open

from ..layout import CloudDirs
from .common import Cloud

NAME = "Open vSwitch"
PROGRAMS = ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl")
SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
# The TAP devices of the userspace datapath: Open vSwitch makes them
# persistent, so they outlive a switch that was killed.
TAP_DEVICES = ("ovs-netdev", "br-int", "br-ex", "br-tenant", "br-int2", "br-tenant2")


def ovs_env(dirs: CloudDirs) -> dict[str, str]:
    """What every Open vSwitch client (ovs-vsctl, ovs-ofctl, ovs-appctl, the
    agents) needs to find this switch rather than a system one."""
    return {
        "OVS_RUNDIR": str(dirs.run / "ovs"),
        "OVS_LOGDIR": str(dirs.logs),
        "OVS_DBDIR": str(dirs.data / "ovs"),
    }


def vsctl(dirs: CloudDirs, env: Mapping[str, str], *args: str) -> str:
    result = subprocess.run(
        ["ovs-vsctl", f"--db=unix:{dirs.ovsdb_socket}", "--timeout=30", *args],
        env={**env, **ovs_env(dirs)},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise ServiceFailed(f"ovs-vsctl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def add_bridge(dirs: CloudDirs, env: Mapping[str, str], bridge: str) -> None:
    """A bridge on the userspace datapath (an agent sets its fail mode and flows)."""
    vsctl(dirs, env, "--may-exist", "add-br", bridge, "--", "set", "Bridge", bridge, "datapath_type=netdev")


def patch(dirs: CloudDirs, env: Mapping[str, str], one: tuple[str, str], other: tuple[str, str]) -> None:
    """A patch pair between two bridges, each end given as (bridge, port)."""
    args: list[str] = []
    for (bridge, port), (_, peer) in ((one, other), (other, one)):
        args += ["--", "--may-exist", "add-port", bridge, port]
        args += ["--", "set", "Interface", port, "type=patch", f"options:peer={peer}"]
    vsctl(dirs, env, *args[1:])


def configure(cloud: Cloud) -> None:
    (cloud.dirs.run / "ovs").mkdir(parents=True, exist_ok=True)
    (cloud.dirs.data / "ovs").mkdir(parents=True, exist_ok=True)


def init(cloud: Cloud) -> None:
    database = cloud.dirs.data / "ovs" / "conf.db"
    if not database.exists():
        cloud.step("ovsdb-server", ["ovsdb-tool", "create", str(database), str(SCHEMA)], cloud.env, "ovsdb")


def start(cloud: Cloud) -> None:
    dirs, ovs = cloud.dirs, cloud.dirs.run / "ovs"
    cloud.supervisor.start(
        Service(
            name="ovsdb-server",
            argv=[
                "ovsdb-server",
                str(dirs.data / "ovs" / "conf.db"),
                f"--remote=punix:{dirs.ovsdb_socket}",
                "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
                f"--pidfile={ovs / 'ovsdb-server.pid'}",
                f"--unixctl={ovs / 'ovsdb-server.ctl'}",
                "--verbose=console:err",
            ],
            env=cloud.env,
            log=cloud.log("ovsdb-server"),
            ready=lambda: unix_socket_open(dirs.ovsdb_socket),
        )
    )
    vsctl(dirs, cloud.env, "--no-wait", "init")
    cloud.supervisor.start(
        Service(
            name="ovs-vswitchd",
            argv=[
                "ovs-vswitchd",
                f"unix:{dirs.ovsdb_socket}",
                # No kernel datapath: only the userspace (netdev) one.
                "--disable-system",
                f"--pidfile={ovs / 'ovs-vswitchd.pid'}",
                f"--unixctl={ovs / 'ovs-vswitchd.ctl'}",
                "--verbose=console:err",
            ],
            env=cloud.env,
            log=cloud.log("ovs-vswitchd"),
            ready=lambda: (ovs / "ovs-vswitchd.ctl").exists(),
        )
    )


def cleanup(dirs: CloudDirs) -> list[str]:
    """The switch's TAP devices, which outlive it."""
    removed = []
    for name in TAP_DEVICES:
        details = subprocess.run(["ip", "-d", "link", "show", "dev", name], capture_output=True, text=True)
        # Only a TAP device of that name: never a device someone else made.
        if details.returncode == 0 and " tun " in details.stdout:
            subprocess.run(["ip", "link", "delete", name], capture_output=True)
            removed.append(name)
    return removed

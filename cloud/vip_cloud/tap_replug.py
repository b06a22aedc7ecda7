"""Plugs a guest's tap into Open vSwitch again when libvirt makes it anew
under the same name while its port stays in the switch's database.

Nova's soft reboot shuts the guest down (qemu exits and its tap goes) and
starts it again (libvirt makes a new tap of the same name) without
unplugging or plugging the port. The kernel datapath follows the name;
Open vSwitch's userspace datapath (`netdev`, all this machine has) keeps
reading the old device through a socket bound to its ifindex: the guest
comes back with a dead NIC, no DHCP and no VRRP. A hard reboot is fine,
since os-vif unplugs and plugs the port. So, like the udev rule that turns
the guests' offloads off, this works around the userspace datapath, not
around Nova: it watches the machine's links (`ip monitor link`) and, when
a tap that was deleted reappears while the switch still holds the very
port it had (the same database row: os-vif replaces the row when it plugs
a port again, on a hard reboot or a new instance on the port), deletes and
adds that port with the same settings.
Neutron's Open vSwitch agent then wires it as it wires any new port.

Run by the cloud's supervisor when instances are virtual machines:
`python -m vip_cloud.tap_replug`, with OVS_RUNDIR naming the switch.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys

log = logging.getLogger("vip_cloud.tap_replug")

# "152: tape84a4ad8-f7: <...>" for a new or changed link, "Deleted 152: tap...: <...>" for one gone.
LINK = re.compile(r"^(?P<deleted>Deleted )?(?P<index>\d+): (?P<name>tap[0-9a-f-]+)(?:@\S+)?:")


def vsctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ovs-vsctl", "--timeout=30", *args], capture_output=True, text=True)


def interface_row(name: str) -> str | None:
    """The switch's database row for the tap's interface (its _uuid), if any."""
    found = vsctl("--if-exists", "get", "Interface", name, "_uuid")
    value = found.stdout.strip()
    return value if found.returncode == 0 and value else None


def replug(name: str) -> None:
    """The port deleted and added again, with its bridge and external ids:
    in two transactions, since in one the switch sees the same port and
    keeps its stale device."""
    bridge = vsctl("port-to-br", name).stdout.strip()
    ids = vsctl("get", "Interface", name, "external_ids").stdout.strip()
    if not bridge or not ids.startswith("{"):
        return
    settings = [f"external_ids:{pair.strip()}" for pair in ids.strip("{}").split(", ") if pair.strip()]
    done = vsctl("del-port", bridge, name)
    if done.returncode == 0:
        done = vsctl("add-port", bridge, name, "--", "set", "Interface", name, *settings)
    if done.returncode != 0:
        log.error("could not plug %s into %s again: %s", name, bridge, done.stderr.strip())
    else:
        log.info("%s was made anew under its old port: plugged into %s again", name, bridge)


def watch(lines) -> None:
    # tap name -> its interface's row when the tap went.
    gone: dict[str, str] = {}
    for line in lines:
        link = LINK.match(line)
        if link is None:
            continue
        name = link["name"]
        if link["deleted"]:
            row = interface_row(name)
            if row is not None:
                gone[name] = row
        elif name in gone:
            before = gone.pop(name)
            # os-vif plugging the port again (a hard reboot, a new instance
            # on the port) made a new row: the switch opened the new tap.
            if interface_row(name) == before:
                replug(name)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    monitor = subprocess.Popen(["ip", "-o", "monitor", "link"], stdout=subprocess.PIPE, text=True)
    assert monitor.stdout is not None
    try:
        watch(monitor.stdout)
    finally:
        monitor.kill()
    return monitor.wait()


if __name__ == "__main__":
    sys.exit(main())

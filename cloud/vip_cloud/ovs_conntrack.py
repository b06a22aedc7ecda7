"""`conntrack` for Neutron's Open vSwitch agent on the userspace datapath:
the kernel's conntrack tool, then the same deletion in Open vSwitch's own
connection tracker.

Neutron's OVS firewall marks a connection it no longer allows (ct_mark=1)
and drops its packets from then on; after applying a port's flows it runs
`conntrack -D -f ipv4 -m 1 -d|-s <port's address> -w <zone>` so that such
connections start afresh. On the kernel datapath that tool reaches the
tracker the switch uses. On the userspace datapath (`netdev`, all this
machine has) the switch tracks connections itself and the tool does not
reach them: a marked connection stays, and every packet of it refreshes
it. An agent's restart marks connections: it numbers its conjunctions anew
and writes them in several bundles, and a packet between two of them
matches no rule. The jumphost's ping of the VIP, one connection for as long
as it runs, was then dropped for good (CI, stop 34: the VIP unanswered
12.6 s while the next fault ran).

So, as the udev rule and tap_replug work around the userspace datapath and
not around Neutron, the agent finds this program first on its PATH: it
runs the real tool with the same arguments, and deletes the connections
the same arguments match from the switch's tracker (`ovs-appctl
dpctl/dump-conntrack`, then `dpctl/flush-conntrack` of each by its
original tuple: Open vSwitch 3.1 cannot flush by mark). Its exit status is
the real tool's.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

REAL_CONNTRACK = "/usr/sbin/conntrack"
PROTOCOL_NUMBERS = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132, "udplite": 136}
# "icmp,orig=(src=10.0.0.5,dst=10.0.0.9,id=7,type=8,code=0),reply=(...),zone=2,mark=1": one entry of dump-conntrack.
ENTRY = re.compile(r"^(?P<protocol>[\w-]+),orig=\((?P<orig>[^)]*)\),reply=\([^)]*\)(?P<rest>.*)$")
# The fields of an original tuple, as flush-conntrack names them.
TUPLE_FIELDS = {"sport": "ct_tp_src", "dport": "ct_tp_dst", "id": "icmp_id", "type": "icmp_type", "code": "icmp_code"}


@dataclass(frozen=True)
class Deletion:
    """What `conntrack -D` was asked to delete: the options Neutron gives it."""

    family: int | None = None
    protocol: int | None = None
    mark: int | None = None
    source: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    destination: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    zone: int | None = None


@dataclass(frozen=True)
class Connection:
    """One entry of the switch's tracker."""

    protocol: int
    orig: dict[str, str]
    zone: int
    mark: int

    def flush_tuple(self) -> str:
        """Its original tuple as `dpctl/flush-conntrack` takes it."""
        version = ipaddress.ip_address(self.orig["src"]).version
        address = "ct_nw" if version == 4 else "ct_ipv6"
        fields = [f"{address}_src={self.orig['src']}", f"{address}_dst={self.orig['dst']}"]
        fields.append(f"ct_nw_proto={self.protocol}")
        fields += [f"{TUPLE_FIELDS[key]}={value}" for key, value in self.orig.items() if key in TUPLE_FIELDS]
        return ",".join(fields)


def protocol_number(name: str) -> int:
    return int(name) if name.isdigit() else PROTOCOL_NUMBERS[name.lower()]


def parse_deletion(argv: Sequence[str]) -> Deletion | None:
    """The deletion `argv` asks for, or None if it asks for something else
    (a listing, an update) or names a protocol the switch's tracker does not know."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-D", "--delete", action="store_true")
    parser.add_argument("-f", "--family")
    parser.add_argument("-p", "--proto")
    parser.add_argument("-m", "--mark")
    parser.add_argument("-s", "--src", "--orig-src")
    parser.add_argument("-d", "--dst", "--orig-dst")
    parser.add_argument("-w", "--zone")
    known, _ = parser.parse_known_args(list(argv))
    if not known.delete:
        return None
    try:
        protocol = None if known.proto in (None, "ip") else protocol_number(known.proto)
    except KeyError:
        return None
    return Deletion(
        family={"ipv4": 4, "ipv6": 6}.get((known.family or "").lower()),
        protocol=protocol,
        mark=int(known.mark, 0) if known.mark is not None else None,
        source=ipaddress.ip_network(known.src, strict=False) if known.src else None,
        destination=ipaddress.ip_network(known.dst, strict=False) if known.dst else None,
        zone=int(known.zone) if known.zone is not None else None,
    )


def parse_connections(dump: str) -> list[Connection]:
    """The entries of `ovs-appctl dpctl/dump-conntrack`; the zone and mark
    are left out of the text when they are 0."""
    connections = []
    for line in dump.splitlines():
        entry = ENTRY.match(line.strip())
        if entry is None:
            continue
        orig = dict(field.split("=", 1) for field in entry["orig"].split(",") if "=" in field)
        rest = dict(field.split("=", 1) for field in entry["rest"].split(",") if "=" in field)
        try:
            protocol = protocol_number(entry["protocol"])
        except KeyError:
            continue
        connections.append(Connection(protocol, orig, int(rest.get("zone", "0")), int(rest.get("mark", "0"), 0)))
    return connections


def matches(deletion: Deletion, connection: Connection) -> bool:
    source = ipaddress.ip_address(connection.orig["src"])
    destination = ipaddress.ip_address(connection.orig["dst"])
    return (
        (deletion.family is None or source.version == deletion.family)
        and (deletion.protocol is None or connection.protocol == deletion.protocol)
        and (deletion.mark is None or connection.mark == deletion.mark)
        and (deletion.zone is None or connection.zone == deletion.zone)
        and (deletion.source is None or source in deletion.source)
        and (deletion.destination is None or destination in deletion.destination)
    )


def appctl(*args: str) -> subprocess.CompletedProcess:
    # OVS_RUNDIR in the agent's environment names this cloud's switch.
    control = os.path.join(os.environ.get("OVS_RUNDIR", "/var/run/openvswitch"), "ovs-vswitchd.ctl")
    return subprocess.run(["ovs-appctl", "-t", control, *args], capture_output=True, text=True, timeout=30)


def delete_from_switch(deletion: Deletion) -> int:
    """Flushes what the deletion matches from the switch's tracker; returns how many."""
    dump = appctl("dpctl/dump-conntrack", "-m", *([f"zone={deletion.zone}"] if deletion.zone is not None else []))
    if dump.returncode != 0:
        note(f"ovs-appctl dpctl/dump-conntrack: {dump.stderr.strip()}")
        return 0
    flushed = 0
    for connection in parse_connections(dump.stdout):
        if not matches(deletion, connection):
            continue
        # Gone meanwhile is as good as flushed.
        appctl("dpctl/flush-conntrack", f"zone={connection.zone}", connection.flush_tuple())
        flushed += 1
    return flushed


def note(line: str) -> None:
    """A line in the cloud's logs (Neutron logs its commands' output only when debugging)."""
    logs = os.environ.get("OVS_LOGDIR")
    if logs:
        with open(os.path.join(logs, "ovs-conntrack.log"), "a") as log:
            log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")


def main(argv: Sequence[str]) -> int:
    real = subprocess.run([REAL_CONNTRACK, *argv])
    deletion = parse_deletion(argv)
    if deletion is not None:
        flushed = delete_from_switch(deletion)
        if flushed:
            note(f"conntrack {' '.join(argv)}: {flushed} flushed from Open vSwitch's tracker")
    return real.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

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

It runs once per address Neutron cleans, one after the other, so it starts
as little as it can: run as a file by `python -I -S` (no site), with no
argparse or dataclasses to import.
"""

import ipaddress
import os
import re
import subprocess
import sys
import time
from collections import namedtuple

REAL_CONNTRACK = "/usr/sbin/conntrack"
PROTOCOL_NUMBERS = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132, "udplite": 136}
# "icmp,orig=(src=10.0.0.5,dst=10.0.0.9,id=7,type=8,code=0),reply=(...),zone=2,mark=1": one entry of dump-conntrack.
ENTRY = re.compile(r"^(?P<protocol>[\w-]+),orig=\((?P<orig>[^)]*)\),reply=\([^)]*\)(?P<rest>.*)$")
# The fields of an original tuple, as flush-conntrack names them.
TUPLE_FIELDS = {"sport": "ct_tp_src", "dport": "ct_tp_dst", "id": "icmp_id", "type": "icmp_type", "code": "icmp_code"}
# conntrack's options that Neutron gives a deletion, long and short, each with a value.
OPTIONS = {
    "-f": "family",
    "--family": "family",
    "-p": "protocol",
    "--proto": "protocol",
    "-m": "mark",
    "--mark": "mark",
    "-s": "source",
    "--src": "source",
    "--orig-src": "source",
    "-d": "destination",
    "--dst": "destination",
    "--orig-dst": "destination",
    "-w": "zone",
    "--zone": "zone",
}

# What `conntrack -D` was asked to delete; None where it names nothing.
Deletion = namedtuple(
    "Deletion", "family protocol mark source destination zone", defaults=[None, None, None, None, None, None]
)


class Connection(namedtuple("Connection", "protocol orig zone mark")):
    """One entry of the switch's tracker: its protocol number, original
    tuple (src, dst, and sport/dport or id/type/code), zone and mark."""

    def flush_tuple(self) -> str:
        """Its original tuple as `dpctl/flush-conntrack` takes it."""
        version = ipaddress.ip_address(self.orig["src"]).version
        address = "ct_nw" if version == 4 else "ct_ipv6"
        fields = [f"{address}_src={self.orig['src']}", f"{address}_dst={self.orig['dst']}"]
        fields.append(f"ct_nw_proto={self.protocol}")
        fields += [f"{TUPLE_FIELDS[key]}={value}" for key, value in self.orig.items() if key in TUPLE_FIELDS]
        return ",".join(fields)


def protocol_number(name):
    return int(name) if name.isdigit() else PROTOCOL_NUMBERS[name.lower()]


def parse_deletion(argv):
    """The deletion `argv` asks for, or None if it asks for something else
    (a listing, an update) or names a protocol the switch's tracker does not know."""
    if "-D" not in argv and "--delete" not in argv:
        return None
    given = {}
    for option, value in zip(argv, argv[1:]):
        if option in OPTIONS:
            given[OPTIONS[option]] = value
    try:
        protocol = given.get("protocol")
        protocol = None if protocol in (None, "ip") else protocol_number(protocol)
    except KeyError:
        return None
    mark, zone = given.get("mark"), given.get("zone")
    return Deletion(
        family={"ipv4": 4, "ipv6": 6}.get(given.get("family", "").lower()),
        protocol=protocol,
        mark=int(mark, 0) if mark is not None else None,
        source=ipaddress.ip_network(given["source"], strict=False) if "source" in given else None,
        destination=ipaddress.ip_network(given["destination"], strict=False) if "destination" in given else None,
        zone=int(zone) if zone is not None else None,
    )


def parse_connections(dump):
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


def matches(deletion, connection):
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


def appctl(*args):
    # OVS_RUNDIR in the agent's environment names this cloud's switch.
    control = os.path.join(os.environ.get("OVS_RUNDIR", "/var/run/openvswitch"), "ovs-vswitchd.ctl")
    return subprocess.run(["ovs-appctl", "-t", control, *args], capture_output=True, text=True, timeout=30)


def delete_from_switch(deletion):
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


def note(line):
    """A line in the cloud's logs (Neutron logs its commands' output only when debugging)."""
    logs = os.environ.get("OVS_LOGDIR")
    if logs:
        with open(os.path.join(logs, "ovs-conntrack.log"), "a") as log:
            log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")


def main(argv):
    real = subprocess.run([REAL_CONNTRACK, *argv])
    deletion = parse_deletion(argv)
    if deletion is not None:
        flushed = delete_from_switch(deletion)
        if flushed:
            note(f"conntrack {' '.join(argv)}: {flushed} flushed from Open vSwitch's tracker")
    return real.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

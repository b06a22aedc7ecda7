"""The local cloud's `conntrack` for Neutron's OVS agent (cloud/vip_cloud/ovs_conntrack.py):
what Neutron asks the kernel's tool to delete is deleted from Open vSwitch's
own tracker too, and nothing else is."""

from __future__ import annotations

import pytest

from vip_cloud import ovs_conntrack
from vip_cloud.ovs_conntrack import Connection, parse_connections, parse_deletion

# `ovs-appctl dpctl/dump-conntrack -m` on the local cloud: the jumphost's ping
# of the VIP marked by the firewall, an SSH login, and VRRP between the nodes.
DUMP = """\
icmp,orig=(src=192.168.0.70,dst=192.168.0.254,id=19442,type=8,code=0),reply=(src=192.168.0.254,dst=192.168.0.70,id=19442,type=0,code=0),id=0,zone=2,status=0,mark=1
tcp,orig=(src=172.24.4.1,dst=192.168.0.70,sport=33022,dport=22),reply=(src=192.168.0.70,dst=172.24.4.1,sport=22,dport=33022),id=0,zone=2,status=0,protoinfo=(state_orig=ESTABLISHED,state_reply=ESTABLISHED)
112,orig=(src=192.168.0.78,dst=192.168.0.172,sport=0,dport=0),reply=(src=192.168.0.172,dst=192.168.0.78,sport=0,dport=0),id=0,zone=2,status=0
icmpv6,orig=(src=fe80::1,dst=fe80::2,id=7,type=128,code=0),reply=(src=fe80::2,dst=fe80::1,id=7,type=129,code=0),id=0,zone=3,status=0,mark=1
"""

# What Neutron's firewall runs for a port after applying its flows (ip_conntrack.py):
# ingress, then egress, for each of its addresses, the VIP (an allowed pair) among them.
INGRESS_VIP = ["-D", "-f", "ipv4", "-m", "1", "-d", "192.168.0.254/32", "-w", "2"]
EGRESS_NODE = ["-D", "-f", "ipv4", "-m", "1", "-s", "192.168.0.78/32", "-w", "2"]


def test_the_dump_is_read_with_zone_mark_and_original_tuple():
    ping, ssh, vrrp, ping6 = parse_connections(DUMP)
    assert ping == Connection(
        1, {"src": "192.168.0.70", "dst": "192.168.0.254", "id": "19442", "type": "8", "code": "0"}, 2, 1
    )
    assert (ssh.protocol, ssh.mark, ssh.zone) == (6, 0, 2)
    assert (vrrp.protocol, vrrp.mark) == (112, 0)
    assert (ping6.protocol, ping6.zone) == (58, 3)


def test_a_connection_is_flushed_by_its_original_tuple():
    ping, ssh, vrrp, ping6 = parse_connections(DUMP)
    assert ping.flush_tuple() == (
        "ct_nw_src=192.168.0.70,ct_nw_dst=192.168.0.254,ct_nw_proto=1,icmp_id=19442,icmp_type=8,icmp_code=0"
    )
    assert ssh.flush_tuple() == "ct_nw_src=172.24.4.1,ct_nw_dst=192.168.0.70,ct_nw_proto=6,ct_tp_src=33022,ct_tp_dst=22"
    assert ping6.flush_tuple().startswith("ct_ipv6_src=fe80::1,ct_ipv6_dst=fe80::2,ct_nw_proto=58,")


def test_neutrons_deletion_of_marked_connections_to_the_vip_matches_only_the_marked_ping():
    deletion = parse_deletion(INGRESS_VIP)
    assert deletion is not None
    matched = [c for c in parse_connections(DUMP) if ovs_conntrack.matches(deletion, c)]
    assert [c.orig["dst"] for c in matched] == ["192.168.0.254"]


def test_an_unmarked_connection_of_the_same_address_is_kept():
    deletion = parse_deletion(EGRESS_NODE)
    assert deletion is not None
    assert not [c for c in parse_connections(DUMP) if ovs_conntrack.matches(deletion, c)]


@pytest.mark.parametrize(
    ("argv", "kept"),
    [
        (["-D", "-f", "ipv4", "-m", "1", "-d", "192.168.0.254/32", "-w", "3"], "another zone"),
        (["-D", "-f", "ipv6", "-m", "1", "-d", "192.168.0.254/32", "-w", "2"], "another family"),
        (["-D", "-p", "tcp", "-f", "ipv4", "-m", "1", "-d", "192.168.0.254/32", "-w", "2"], "another protocol"),
        (["-D", "-f", "ipv4", "-m", "1", "-d", "192.168.0.254/32", "-w", "2", "-s", "192.168.0.71"], "another peer"),
    ],
)
def test_a_deletion_keeps_what_it_does_not_name(argv, kept):
    deletion = parse_deletion(argv)
    assert deletion is not None
    assert not [c for c in parse_connections(DUMP) if ovs_conntrack.matches(deletion, c)], kept


def test_anything_but_a_deletion_is_left_to_the_kernels_tool():
    assert parse_deletion(["-L", "-w", "2"]) is None
    assert parse_deletion(["-D", "-p", "gre-like-nothing", "-w", "2"]) is None


def test_the_real_tool_runs_first_and_its_status_is_returned(monkeypatch):
    ran, appctl_calls = [], []

    class Done:
        def __init__(self, returncode=0, stdout=""):
            self.returncode, self.stdout, self.stderr = returncode, stdout, ""

    def run(argv, **kwargs):
        ran.append(argv)
        return Done(1)

    def appctl(*args):
        appctl_calls.append(args)
        return Done(0, DUMP if args[0] == "dpctl/dump-conntrack" else "")

    monkeypatch.delenv("OVS_LOGDIR", raising=False)
    monkeypatch.setattr(ovs_conntrack.subprocess, "run", run)
    monkeypatch.setattr(ovs_conntrack, "appctl", appctl)
    assert ovs_conntrack.main(INGRESS_VIP) == 1
    assert ran == [[ovs_conntrack.REAL_CONNTRACK, *INGRESS_VIP]]
    assert appctl_calls == [
        ("dpctl/dump-conntrack", "-m", "zone=2"),
        (
            "dpctl/flush-conntrack",
            "zone=2",
            "ct_nw_src=192.168.0.70,ct_nw_dst=192.168.0.254,ct_nw_proto=1,icmp_id=19442,icmp_type=8,icmp_code=0",
        ),
    ]

"""The local cloud's compute hosts (cloud/vip_cloud/layout.py), without a
cloud: what two hosts on one machine must not share, since Open vSwitch's
database, Nova's cell and Placement see them side by side."""

from __future__ import annotations

from pathlib import Path

from vip_cloud.layout import CloudDirs, compute_hosts
from vip_cloud.services.openvswitch import TAP_DEVICES


def test_a_cloud_of_lab_hosts_has_two_compute_hosts_that_share_nothing_one_host_could_claim():
    hosts = compute_hosts("namespace", "machine")
    dirs = CloudDirs(Path("/c"))

    assert [host.name for host in hosts] == ["machine", "machine-2"]
    for distinct in (
        lambda host: host.name,
        lambda host: host.integration_bridge,
        lambda host: host.tenant_bridge,
        lambda host: host.openflow_port,
        lambda host: host.suffix,
        dirs.nova_state,
        dirs.instances_of,
    ):
        assert len({distinct(host) for host in hosts}) == len(hosts)
    # The first keeps what a cloud of one host had.
    assert (hosts[0].integration_bridge, hosts[0].suffix, dirs.instances_of(hosts[0])) == ("br-int", "", dirs.instances)


def test_virtual_machines_have_one_compute_host_the_machine():
    (host,) = compute_hosts("libvirt", "machine")

    assert (host.name, host.integration_bridge) == ("machine", "br-int")


def test_every_bridge_of_every_host_is_a_tap_device_that_cloud_down_removes():
    bridges = {
        bridge for host in compute_hosts("namespace", "m") for bridge in (host.integration_bridge, host.tenant_bridge)
    }

    assert bridges <= set(TAP_DEVICES)

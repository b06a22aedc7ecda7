"""The recovery after an interrupted `pulumi up` (vip_stack.recover): it
finds the server Nova made for a pending create, and nothing else."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from vip_stack.recover import RecoverError, Stray, parse_export, pending_instance_creates, strays

URN = "urn:pulumi:local::keepalived-vip::keepalived-vip:index:Nodes$openstack:compute/instance:Instance::"


def export(pending=(), resources=()) -> dict:
    return {"resources": list(resources), "pending_operations": list(pending)}


def creating(name: str, port: str, kind: str = "openstack:compute/instance:Instance", op: str = "creating") -> dict:
    return {
        "type": op,
        "resource": {
            "urn": URN + f"keepalived-vip-nodes-{name}",
            "type": kind,
            "inputs": {
                "name": name,
                "networks": [{"port": port}],
                "userData": {"4dabf18193072939515e22adb298388d": "x"},
            },
        },
    }


class Cloud:
    """Ports and servers as Neutron and Nova list them."""

    def __init__(self, ports: dict[str, str], servers: dict[str, str]):
        self.network = SimpleNamespace(
            find_port=lambda port_id: SimpleNamespace(device_id=ports[port_id]) if port_id in ports else None
        )
        self.compute = SimpleNamespace(
            find_server=lambda server_id: (
                SimpleNamespace(id=server_id, name=servers[server_id]) if server_id in servers else None
            )
        )


def test_the_server_made_for_a_pending_create_is_found_by_its_port_and_name():
    state = export([creating("kld-vm-2", "port-2")], resources=[{"id": "server-1"}, {"id": "port-2"}])
    cloud = Cloud(ports={"port-2": "server-made"}, servers={"server-made": "kld-vm-2", "server-1": "kld-vm-1"})
    assert strays(cloud, state) == [
        Stray(server_id="server-made", name="kld-vm-2", port_id="port-2", urn=URN + "keepalived-vip-nodes-kld-vm-2")
    ]


def test_a_server_the_state_holds_or_of_another_name_is_never_a_stray():
    state = export([creating("kld-vm-2", "port-2")], resources=[{"id": "server-known"}])
    assert strays(Cloud({"port-2": "server-known"}, {"server-known": "kld-vm-2"}), state) == []
    assert strays(Cloud({"port-2": "someone-else"}, {"someone-else": "web-1"}), state) == []


def test_nova_made_nothing_when_the_port_is_free():
    state = export([creating("kld-vm-2", "port-2")])
    assert strays(Cloud({"port-2": ""}, {}), state) == []


def test_only_instance_creates_are_looked_at():
    state = export(
        [
            creating("kld-vm-2", "port-2", op="deleting"),
            creating("kld-vm-2", "port-2", kind="pulumi-python:dynamic/keepalived-vip:NodeInService"),
        ]
    )
    assert pending_instance_creates(state) == []


def test_what_is_not_an_export_is_refused_in_words():
    with pytest.raises(RecoverError, match="not the JSON of `pulumi stack export`"):
        parse_export("{")
    with pytest.raises(RecoverError, match="it has no deployment"):
        parse_export(json.dumps({"version": 3}))

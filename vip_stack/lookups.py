"""What the stack looks up in OpenStack before it declares anything.

Look-ups are data sources, not resources: running them first lets a missing
network or a VIP outside the found subnet fail the program before a single
resource exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi_openstack as openstack

from .nodes import node_port_name
from .settings import ConfigProblem, InvalidConfig, Settings, SubnetFacts, check_addresses, planned_subnet


@dataclass(frozen=True)
class CloudFacts:
    subnet: SubnetFacts
    # Needed only for the router the stack creates.
    external_network_id: Optional[str]
    # imageName as Glance resolves it today: when the image behind the name
    # changes, the id changes and the nodes are replaced one at a time,
    # never rebuilt all at once in place.
    image_id: str = ""
    # Nodes whose port is bound and up: an instance of ours serves (or may
    # serve) the VIP, so changes to the nodes roll out one at a time. Empty on
    # a first deployment, where the nodes need not wait for each other.
    serving_nodes: tuple[str, ...] = ()


def _lookup(key: str, what: str, lookup):
    try:
        return lookup()
    except Exception as error:  # the provider raises plain exceptions for "not found"
        raise InvalidConfig([ConfigProblem(key, f"{what}: {error}")]) from error


def find_existing_subnet(settings: Settings) -> SubnetFacts:
    net = settings.network
    network = _lookup(
        "networkName",
        f"no usable network named {net.network_name!r}",
        lambda: openstack.networking.get_network(name=net.network_name),
    )
    subnet = _lookup(
        "subnetName",
        f"no subnet named {net.subnet_name!r} in network {net.network_name!r}",
        lambda: openstack.networking.get_subnet(name=net.subnet_name, network_id=network.id),
    )
    if subnet.ip_version != 4:
        raise InvalidConfig(
            [ConfigProblem("subnetName", f"{net.subnet_name!r} is an IPv{subnet.ip_version} subnet; the VIP needs IPv4")]
        )
    return SubnetFacts(
        cidr=subnet.cidr,
        gateway_ip=subnet.gateway_ip or None,
        network_id=network.id,
        subnet_id=subnet.id,
    )


def find_external_network_id(settings: Settings) -> str:
    name = settings.network.external_network_name
    network = _lookup(
        "externalNetworkName",
        f"no external network named {name!r}",
        lambda: openstack.networking.get_network(name=name, external=True),
    )
    return network.id


def find_image_id(settings: Settings) -> str:
    image = _lookup(
        "imageName",
        f"no image named {settings.image_name!r}",
        lambda: openstack.images.get_image(name=settings.image_name, most_recent=True),
    )
    return image.id


def find_serving_nodes(settings: Settings, network_id: Optional[str]) -> tuple[str, ...]:
    """The nodes that have an active port (bound to a running instance) under
    the name the stack gives it."""
    serving = []
    for node in settings.nodes:
        found = openstack.networking.get_port_ids(
            name=node_port_name(node.name), status="ACTIVE", network_id=network_id
        )
        if found.ids:
            serving.append(node.name)
    return tuple(serving)


def gather_cloud_facts(settings: Settings) -> CloudFacts:
    """Looks up what exists and checks the addresses against it; raises
    InvalidConfig naming the keys in the settings' namespace."""
    try:
        return _gather(settings)
    except InvalidConfig as error:
        raise error.in_namespace(settings.namespace) from None


def _gather(settings: Settings) -> CloudFacts:
    image_id = find_image_id(settings)
    if settings.network.create:
        return CloudFacts(subnet=planned_subnet(settings), external_network_id=find_external_network_id(settings),
                          image_id=image_id, serving_nodes=find_serving_nodes(settings, None))
    subnet = find_existing_subnet(settings)
    check_addresses(settings, subnet)
    return CloudFacts(subnet=subnet, external_network_id=None, image_id=image_id,
                      serving_nodes=find_serving_nodes(settings, subnet.network_id))

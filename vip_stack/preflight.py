"""What the stack looks up in OpenStack before it declares anything.

Look-ups are data sources, not resources: running them first lets a missing
network or a VIP outside the found subnet fail the program before a single
resource exists.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi_openstack as openstack
from pulumi.errors import RunError

from .nodes import node_port_name
from .settings import (
    NAMESPACE,
    ConfigProblem,
    InvalidConfig,
    Settings,
    SubnetFacts,
    check_addresses,
    planned_subnet,
)
from .vip_port import VIP_PORT_DESCRIPTION, stack_tag


@dataclass(frozen=True)
class CloudFacts:
    subnet: SubnetFacts
    # Needed only for the router the stack creates.
    external_network_id: str | None
    # imageName as Glance resolves it today: when the image behind the name
    # changes, the id changes and the nodes are replaced one at a time,
    # never rebuilt all at once in place.
    image_id: str = ""
    # Nodes whose port is bound and up: an instance of ours serves (or may
    # serve) the VIP, so changes to the nodes roll out one at a time. Empty on
    # a first deployment, where the nodes need not wait for each other.
    serving_nodes: tuple[str, ...] = ()


class CloudUnavailable(RunError):
    """The cloud could not be asked (credentials refused, no answer, a
    timeout): nothing is known to be wrong with the configuration. Raised
    before any resource is declared, like InvalidConfig."""


# What the OpenStack provider says when a look-up by name finds none, or
# several: the name is wrong, not the cloud.
NOT_FOUND = "your query returned no results"
AMBIGUOUS = "your query returned more than one result"


def _lookup(key: str, what: str, lookup):
    """`lookup()`, or InvalidConfig naming `key` when the cloud has no `what`
    (or several); any other failure is the cloud's, said with its error."""
    try:
        return lookup()
    except Exception as error:  # the provider raises plain exceptions, told apart by their text
        said = str(error)
        if NOT_FOUND in said.lower():
            raise InvalidConfig([ConfigProblem(key, f"no {what}")]) from None
        if AMBIGUOUS in said.lower():
            raise InvalidConfig([ConfigProblem(key, f"more than one {what}: name one alone")]) from None
        raise CloudUnavailable(
            f"could not ask the cloud for the {what} ({key}): {said}\n"
            "Check the credentials (OS_CLOUD and clouds.yaml, or a sourced openrc) and that the cloud answers."
        ) from error


# The device owners of a router's interface on a subnet (legacy, DVR, HA).
ROUTER_INTERFACE_OWNERS = (
    "network:router_interface",
    "network:router_interface_distributed",
    "network:ha_router_replicated_interface",
)


def _find_existing(settings: Settings):
    network = _lookup(
        "networkName",
        f"network named {settings.network_name!r}",
        lambda: openstack.networking.get_network(name=settings.network_name),
    )
    subnet = _lookup(
        "subnetName",
        f"subnet named {settings.subnet_name!r} in network {settings.network_name!r}",
        lambda: openstack.networking.get_subnet(name=settings.subnet_name, network_id=network.id),
    )
    if subnet.ip_version != 4:
        raise InvalidConfig(
            [
                ConfigProblem(
                    "subnetName", f"{settings.subnet_name!r} is an IPv{subnet.ip_version} subnet; the VIP needs IPv4"
                )
            ]
        )
    return network, SubnetFacts(
        cidr=subnet.cidr,
        gateway_ip=subnet.gateway_ip or None,
        network_id=network.id,
        subnet_id=subnet.id,
    )


def preflight_existing_network(
    settings: Settings, network, subnet: SubnetFacts, external_network_id: str
) -> list[ConfigProblem]:
    """What a real cloud would refuse half-way through `pulumi up` on a
    network the stack did not create, found before anything is declared."""
    problems = []

    # Neutron's policy: on a network of another project, only its owner or
    # an admin may set a fixed IP, allowed-address-pairs or port security.
    scope = openstack.identity.get_auth_scope(name="current")
    if (
        network.tenant_id
        and network.tenant_id != scope.project_id
        and "admin" not in {role.role_name for role in scope.roles}
    ):
        problems.append(
            ConfigProblem(
                "networkName",
                f"{settings.network_name} belongs to project {network.tenant_id} and is shared with this one "
                f"({scope.project_name or scope.project_id}); only its owner or an admin may set the fixed IPs, "
                "allowed-address-pairs and port security the VIP needs (Neutron answers 403): use a network of "
                "this project, or createNetwork: true",
            )
        )

    # A floating IP (the jumphost's, vipFloatingIp) needs a router from the
    # subnet to the external network it comes from.
    gateways = routers_of_subnet(subnet)
    if external_network_id not in {router.external_network_id for router in gateways}:
        found = ", ".join(
            f"{router.name or router.id} (gateway on {router.external_network_id or 'no external network'})"
            for router in gateways
        )
        problems.append(
            ConfigProblem(
                "externalNetworkName",
                f"no router links subnet {settings.subnet_name} to {settings.external_network_name} "
                f"(found: {found or 'none'}); "
                "the jumphost's floating IP needs one (Neutron answers 404 ExternalGatewayForFloatingIPNotFound): "
                "add an interface on the subnet to a router whose gateway is on "
                f"{settings.external_network_name}, or set externalNetworkName to that router's external network",
            )
        )

    # Fixed addresses another port already holds (not this stack's own ports
    # on a re-run).
    wanted = [("vipAddress", "the VIP", settings.vip_address)] + [
        ("nodes", f"ipAddress of {node.name}", node.ip_address) for node in settings.nodes if node.ip_address
    ]
    for key, what, address in wanted:
        holders = [port for port in _ports(network_id=network.id, fixed_ip=address) if not is_own_port(port)]
        if holders:
            problems.append(
                ConfigProblem(
                    key,
                    f"{what} {address} is already held by port {holders[0].name or holders[0].id} "
                    f"({holders[0].device_owner or 'unbound'}) on {settings.network_name} (Neutron answers 409 "
                    "IpAddressAlreadyAllocated); choose a free address: on a network the stack did not create, "
                    "Neutron's DHCP may hand any address of the subnet to a VM",
                )
            )
    return problems


def routers_of_subnet(subnet: SubnetFacts) -> list:
    """The routers with an interface on the subnet."""
    network = ipaddress.IPv4Network(subnet.cidr)
    routers = []
    for owner in ROUTER_INTERFACE_OWNERS:
        for port in _ports(network_id=subnet.network_id, device_owner=owner):
            if port.device_id and any(
                ipaddress.IPv4Address(ip) in network for ip in port.all_fixed_ips if ":" not in ip
            ):
                routers.append(openstack.networking.get_router(router_id=port.device_id))
    return routers


def _ports(**criteria) -> list:
    return [
        openstack.networking.get_port(port_id=port_id) for port_id in openstack.networking.get_port_ids(**criteria).ids
    ]


def is_own_port(port) -> bool:
    """A port this stack made: tagged as such (or, from before ports were
    tagged, the VIP port by its description)."""
    return stack_tag() in (port.all_tags or []) or (port.description == VIP_PORT_DESCRIPTION and not port.device_owner)


def find_external_network_id(settings: Settings) -> str:
    name = settings.external_network_name
    network = _lookup(
        "externalNetworkName",
        f"external network named {name!r}",
        lambda: openstack.networking.get_network(name=name, external=True),
    )
    return network.id


def find_image_id(settings: Settings) -> str:
    image = _lookup(
        "imageName",
        f"image named {settings.image_name!r}",
        lambda: openstack.images.get_image(name=settings.image_name, most_recent=True),
    )
    return image.id


def find_serving_nodes(settings: Settings, network_id: str | None) -> tuple[str, ...]:
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


def gather_cloud_facts(settings: Settings, namespace: str = NAMESPACE) -> CloudFacts:
    """Looks up what exists and checks the addresses against it; raises
    InvalidConfig naming the keys in `namespace`, where the settings were read from."""
    try:
        return _gather(settings)
    except InvalidConfig as error:
        raise error.in_namespace(namespace) from None


def _gather(settings: Settings) -> CloudFacts:
    image_id = find_image_id(settings)
    if settings.create_network:
        return CloudFacts(
            subnet=planned_subnet(settings),
            external_network_id=find_external_network_id(settings),
            image_id=image_id,
            serving_nodes=find_serving_nodes(settings, None),
        )
    network, subnet = _find_existing(settings)
    check_addresses(settings, subnet)
    problems = preflight_existing_network(settings, network, subnet, find_external_network_id(settings))
    if problems:
        raise InvalidConfig(problems)
    return CloudFacts(
        subnet=subnet,
        external_network_id=None,
        image_id=image_id,
        serving_nodes=find_serving_nodes(settings, subnet.network_id),
    )

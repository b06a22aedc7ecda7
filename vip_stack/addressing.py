"""The subnet's addresses: where the VIP and fixed node addresses may be,
and the DHCP pool of a subnet the stack creates, which leaves them out."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .config_errors import ConfigProblem


@dataclass(frozen=True)
class SubnetFacts:
    """What the stack needs to know of the subnet, created or found."""

    cidr: str
    gateway_ip: str | None
    network_id: str | None = None
    subnet_id: str | None = None

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)


def allocation_pools(cidr: str, gateway_ip: str | None, reserved: Iterable[str]) -> list[tuple[str, str]]:
    """The DHCP allocation pools of a subnet: every host address except the
    gateway and the reserved ones (the VIP, fixed node addresses), as the
    fewest contiguous (start, end) ranges.

    Keeping the VIP out of the pool means Neutron never hands it to another
    port, even before the VIP port exists or after it is deleted by hand.
    """
    network = ipaddress.IPv4Network(cidr)
    excluded = {ipaddress.IPv4Address(a) for a in [*reserved, *([gateway_ip] if gateway_ip else [])]}
    pools: list[tuple[str, str]] = []
    start = end = None
    for host in network.hosts():
        if host in excluded:
            if start is not None:
                pools.append((str(start), str(end)))
                start = None
            continue
        if start is None:
            start = host
        end = host
    if start is not None:
        pools.append((str(start), str(end)))
    return pools


def default_gateway(cidr: str) -> str:
    """Neutron's default gateway: the subnet's first host. The stack sets it
    explicitly on the subnet it creates, so this and the subnet agree."""
    return str(ipaddress.IPv4Network(cidr).network_address + 1)


def created_subnet(cidr: str) -> SubnetFacts:
    """The subnet the stack creates from subnetCidr."""
    return SubnetFacts(cidr=str(ipaddress.IPv4Network(cidr)), gateway_ip=default_gateway(cidr))


def address_problems(
    subnet: SubnetFacts, vip_address: str, fixed_addresses: Mapping[str, str], subnet_key: str
) -> list[ConfigProblem]:
    """What is wrong with the VIP and the nodes' fixed addresses (node name ->
    ipAddress) in this subnet; `subnet_key` is the key that chose the subnet."""
    network = subnet.network
    problems: list[ConfigProblem] = []

    def check(key: str, what: str, address: str) -> None:
        ip = ipaddress.IPv4Address(address)
        if ip not in network:
            problems.append(ConfigProblem(key, f"{what} {address} is not in the subnet {network}"))
        elif ip == network.network_address:
            problems.append(ConfigProblem(key, f"{what} {address} is the network address of {network}"))
        elif ip == network.broadcast_address:
            problems.append(ConfigProblem(key, f"{what} {address} is the broadcast address of {network}"))
        elif subnet.gateway_ip and ip == ipaddress.IPv4Address(subnet.gateway_ip):
            problems.append(ConfigProblem(key, f"{what} {address} is the gateway address of {network}"))

    check("vipAddress", "the VIP", vip_address)
    for node_name, address in fixed_addresses.items():
        check("nodes", f"ipAddress of {node_name}", address)
        if address == vip_address:
            problems.append(ConfigProblem("vipAddress", f"the VIP {vip_address} is also the ipAddress of {node_name}"))
    if problems and subnet_key != "subnetCidr":
        problems.append(ConfigProblem(subnet_key, f"the subnet found under this name is {network}"))
    return problems

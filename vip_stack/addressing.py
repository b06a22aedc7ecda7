"""Address arithmetic for the subnet the stack creates."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


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

"""The deployment's watchers (vip_stack.observe), pointed at the lab's hosts:
the VIP seen through each node namespace's addresses, the ping from the jumphost's."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vip_hosts.hosts import NodeHost
from vip_stack.observe import Pinger, VipWatcher


def address_sources(node: NodeHost) -> tuple[list[str], list[str]]:
    """What follows a node's addresses as they change, and what reads them once."""
    return (
        ["ip", "-n", node.namespace, "-o", "monitor", "address"],
        ["ip", "-n", node.namespace, "-o", "-4", "addr", "show", "dev", node.nic],
    )


def watch_vip(nodes: Sequence[NodeHost], vip: str, track: Callable) -> VipWatcher:
    return VipWatcher({node.name: address_sources(node) for node in nodes}, vip, track)


def watch_replaced_node(watcher: VipWatcher, node: NodeHost) -> None:
    watcher.watch_again(node.name, *address_sources(node))


def ping_from(jumphost: NodeHost, vip: str, track: Callable, interval: float = 0.02) -> Pinger:
    return Pinger(jumphost.command(Pinger.ping_argv(vip, interval)), track, interval)

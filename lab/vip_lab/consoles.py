"""The lab hosts' consoles as the cloud's API returns them: what the check
and the rollout verify a new host's key against (vip_stack.hostkeys)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from vip_hosts.hosts import NodeHost


class LabConsoles:
    """Console logs of the lab's hosts, by the instance id the lab's outputs give them."""

    def __init__(self, hosts: Callable[[], Mapping[str, NodeHost]]):
        # A function: a replaced node is a new host under the same id.
        self._hosts = hosts

    def console_output(self, instance_id: str) -> str:
        host = self._hosts().get(instance_id)
        if host is None or not host.console.exists():
            return ""
        return host.console.read_text(errors="replace")

    def instance_on_port(self, port_id: str) -> str | None:
        # The lab names its instances itself (Cluster.instances_by_address): no ports to ask.
        return None

    def instance_behind_floating_ip(self, address: str) -> str | None:
        return None

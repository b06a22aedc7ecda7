"""The lab's hosts (vip_hosts): a switch, the keepalived nodes and the
jumphost, each in namespaces this run made, and everything of the run
removed at its end."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vip_hosts.hosts import NodeHost, Switch
from vip_hosts.netns import alive, delete_namespace, delete_namespaces, list_namespaces, run
from vip_hosts.supervisor import kill


def new_run_prefix() -> str:
    # Short: interface names stay under 15 characters with a suffix added.
    return f"vl{uuid.uuid4().hex[:5]}"


@dataclass
class Topology:
    switch: Switch
    nodes: dict[str, NodeHost]
    # A VM like the nodes, only without keepalived.
    jumphost: NodeHost
    ports: dict[str, str]  # host name -> its port on the switch


class Lab:
    """Creates the hosts and removes every namespace, process and directory of
    this run on close, whatever happened before."""

    def __init__(self, prefix: str | None = None):
        self.prefix = prefix or new_run_prefix()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self.processes: list[subprocess.Popen] = []
        self._node_hosts: list[NodeHost] = []
        self._replacements = 0

    def namespace(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def build(
        self,
        gateway_cidr: str,
        prefix_length: int,
        gateway: str,
        nodes: Sequence[tuple[str, str]],
        jumphost: tuple[str, str],
        nic: str,
    ) -> Topology:
        """nodes and jumphost: (name, address); every host's NIC is named nic."""
        switch = Switch(self.namespace("sw"), gateway_cidr)
        switch.create()
        ports: dict[str, str] = {}
        hosts: dict[str, NodeHost] = {}
        for index, (name, address) in enumerate(nodes, start=1):
            host = NodeHost(name, self.namespace(f"n{index}"), nic, self.workdir / name)
            host.create()
            self._node_hosts.append(host)
            ports[name] = f"p{index}"
            switch.plug(ports[name], host, f"{address}/{prefix_length}", gateway)
            host.start()
            hosts[name] = host
        jump_name, jump_address = jumphost
        jump = NodeHost(jump_name, self.namespace("j"), nic, self.workdir / jump_name)
        jump.create()
        self._node_hosts.append(jump)
        ports[jump_name] = "pj"
        switch.plug(ports[jump_name], jump, f"{jump_address}/{prefix_length}", gateway)
        jump.start()
        return Topology(switch=switch, nodes=hosts, jumphost=jump, ports=ports)

    def replace(self, topology: Topology, name: str) -> NodeHost:
        """A node's instance is replaced: the old host goes with all it had,
        a new one is plugged into the same switch port with the same address
        and MAC (the node's Neutron port stays), and booted empty."""
        old = topology.nodes[name]
        mac, address_cidr, gateway = old.mac(), old.address_cidr, old.gateway
        old.stop()
        topology.switch.unplug(topology.ports[name])
        delete_namespace(old.namespace)
        shutil.rmtree(old.root, ignore_errors=True)
        self._node_hosts.remove(old)
        self._replacements += 1
        new = NodeHost(name, old.namespace, old.nic, self.workdir / f"{name}.{self._replacements}")
        new.create()
        self._node_hosts.append(new)
        if address_cidr is None or gateway is None:
            raise RuntimeError(f"{name} was never plugged into the switch")
        topology.switch.plug(topology.ports[name], new, address_cidr, gateway, mac=mac)
        new.start()
        topology.nodes[name] = new
        return new

    def track(self, process: subprocess.Popen) -> subprocess.Popen:
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            kill(process)
        for host in self._node_hosts:
            host.stop()
        delete_namespaces([f"{self.prefix}-"])
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def leftovers(prefix: str) -> dict[str, list[str]]:
    """What of one run is still on the machine: its namespaces, and every
    live process it started (in those namespaces, or holding a file of its
    directory open, as each of its keepalived, sshd and service processes
    holds its log). Nothing else on the machine is counted."""
    namespaces = [n for n in list_namespaces() if n.startswith(f"{prefix}-")]
    processes: set[str] = set()
    for namespace in namespaces:
        processes |= set(run(["ip", "netns", "pids", namespace], check=False).stdout.split())
    workdir = f"{tempfile.gettempdir()}/{prefix}-"
    for pid in (entry for entry in os.listdir("/proc") if entry.isdigit()):
        try:
            opened = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        if alive(pid) and any(path.startswith(workdir) for path in opened):
            processes.add(pid)
    return {"namespaces": namespaces, "processes": sorted(processes)}

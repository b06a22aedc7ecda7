"""The lab's hosts: a switch, the keepalived nodes and the jumphost, each in
namespaces this run made.

A node host is what a VM is to the stack: its own network namespace (one NIC
named as the VM would see it, its address, a default route), and its own mount
and UTS namespaces in which /etc, /var and /home are overlays on the
machine's own (writes land in the lab's directory, never in the machine's) and /run is
private. A holder process keeps those namespaces alive; every command on the
host enters them with nsenter, so cloud-init and keepalived see one machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from .netns import add_namespace, delete_namespace, list_namespaces, run

BRIDGE = "br0"


def new_run_prefix() -> str:
    # Short: interface names stay under 15 characters with a suffix added.
    return f"vl{uuid.uuid4().hex[:5]}"


class Switch:
    """A namespace holding the subnet's bridge and the gateway address, which
    stands in for the Neutron router (the default route points at it)."""

    def __init__(self, namespace: str, gateway_cidr: str):
        self.namespace, self.gateway_cidr = namespace, gateway_cidr

    def create(self) -> None:
        add_namespace(self.namespace)
        run(["ip", "-n", self.namespace, "link", "add", BRIDGE, "type", "bridge"])
        run(["ip", "-n", self.namespace, "addr", "add", self.gateway_cidr, "dev", BRIDGE])
        run(["ip", "-n", self.namespace, "link", "set", BRIDGE, "up"])

    def plug(self, port: str, host_namespace: str, nic: str, address_cidr: str, gateway: str) -> None:
        """A cable from the bridge to a host: the host's end is its NIC."""
        run(["ip", "-n", self.namespace, "link", "add", port, "type", "veth",
             "peer", "name", nic, "netns", host_namespace])
        run(["ip", "-n", self.namespace, "link", "set", port, "master", BRIDGE])
        run(["ip", "-n", self.namespace, "link", "set", port, "up"])
        run(["ip", "-n", host_namespace, "addr", "add", address_cidr, "dev", nic])
        run(["ip", "-n", host_namespace, "link", "set", nic, "up"])
        run(["ip", "-n", host_namespace, "route", "add", "default", "via", gateway, "dev", nic])

    def set_port(self, port: str, up: bool) -> None:
        """Pulls or plugs a host's cable: its NIC loses or regains carrier."""
        run(["ip", "-n", self.namespace, "link", "set", port, "up" if up else "down"])

    def isolate(self, ports: Sequence[str], isolated: bool) -> None:
        """Isolated bridge ports cannot reach each other but still reach every
        other port: the nodes stop hearing each other while their links stay
        up and the jumphost still reaches each of them."""
        for port in ports:
            run(["ip", "netns", "exec", self.namespace,
                 "bridge", "link", "set", "dev", port, "isolated", "on" if isolated else "off"])


class NodeHost:
    """A keepalived node: network, mount and UTS namespaces held open by one process."""

    def __init__(self, name: str, namespace: str, nic: str, root: Path):
        self.name, self.namespace, self.nic = name, namespace, nic
        self.root = root  # the lab's directory for this host
        self.etc_upper = root / "etc"
        self.var_upper = root / "var"
        self.home_upper = root / "home"
        self.run_dir = root / "run"
        self.log_dir = root / "log"
        self._holder: Optional[subprocess.Popen] = None

    def create(self) -> None:
        add_namespace(self.namespace)
        for directory in (self.etc_upper, self.var_upper, self.home_upper, self.run_dir, self.log_dir,
                          self.root / "etc-work", self.root / "var-work", self.root / "home-work"):
            directory.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        """Mounts the overlays in a new mount namespace and keeps it open."""
        # The host's own name resolves, as on a cloud image (sudo asks for it).
        hosts = Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else "127.0.0.1 localhost\n"
        self.write_file("/etc/hosts", hosts + f"127.0.1.1 {self.name}\n")
        mounts = (
            f"mount -t overlay overlay -o lowerdir=/etc,upperdir={self.etc_upper},workdir={self.root}/etc-work /etc"
            f" && mount -t overlay overlay -o lowerdir=/var,upperdir={self.var_upper},workdir={self.root}/var-work /var"
            # cloud-init creates the image's default user, with a home.
            f" && mount -t overlay overlay -o lowerdir=/home,upperdir={self.home_upper},workdir={self.root}/home-work /home"
            f" && mount --bind {self.run_dir} /run"
            f" && hostname {self.name}"
            " && exec sleep infinity"
        )
        self._holder = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace,
             "unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", mounts],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        # The holder is ready once the hostname inside has changed.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._holder.poll() is not None:
                raise RuntimeError(f"{self.name}: host did not start: {self._holder.stderr.read().decode()}")
            probe = subprocess.run(self.enter(["hostname"]), capture_output=True, text=True)
            if probe.returncode == 0 and probe.stdout.strip() == self.name:
                return
            time.sleep(0.02)
        raise RuntimeError(f"{self.name}: host did not come up within 10 s")

    def enter(self, argv: Sequence[str]) -> list[str]:
        """The command line that runs argv on this host. (Also `command`.)"""
        if self._holder is None:
            raise RuntimeError(f"{self.name} is not started")
        return ["nsenter", "-t", str(self._holder.pid), "-m", "-u", "-n", "--", *argv]

    command = enter

    def run(self, argv: Sequence[str], check: bool = True, timeout: float = 60):
        return run(self.enter(argv), check=check, timeout=timeout)

    def popen(self, argv: Sequence[str], log_name: str) -> subprocess.Popen:
        log = open(self.log_dir / log_name, "ab")
        try:
            return subprocess.Popen(self.enter(argv), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()

    def write_file(self, path: str, content: str, mode: int = 0o644) -> None:
        """Writes a file as the host sees it at `path` (under /etc or /var)."""
        for mount, upper in (("/etc/", self.etc_upper), ("/var/", self.var_upper)):
            if path.startswith(mount):
                target = upper / path[len(mount):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
                target.chmod(mode)
                return
        raise ValueError(f"{path} is outside the host's writable /etc and /var")

    def read_file(self, path: str) -> Optional[str]:
        result = self.run(["cat", path], check=False)
        return result.stdout if result.returncode == 0 else None

    def stop(self) -> None:
        if self._holder is not None and self._holder.poll() is None:
            os.killpg(self._holder.pid, signal.SIGKILL)
            self._holder.wait(timeout=10)
        self._holder = None


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

    def __init__(self, prefix: Optional[str] = None):
        self.prefix = prefix or new_run_prefix()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self.processes: list[subprocess.Popen] = []
        self._node_hosts: list[NodeHost] = []

    def namespace(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def build(self, gateway_cidr: str, prefix_length: int, gateway: str,
              nodes: Sequence[tuple[str, str]], jumphost: tuple[str, str], nic: str) -> Topology:
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
            switch.plug(ports[name], host.namespace, nic, f"{address}/{prefix_length}", gateway)
            host.start()
            hosts[name] = host
        jump_name, jump_address = jumphost
        jump = NodeHost(jump_name, self.namespace("j"), nic, self.workdir / jump_name)
        jump.create()
        self._node_hosts.append(jump)
        ports[jump_name] = "pj"
        switch.plug(ports[jump_name], jump.namespace, nic, f"{jump_address}/{prefix_length}", gateway)
        jump.start()
        return Topology(switch=switch, nodes=hosts, jumphost=jump, ports=ports)

    def track(self, process: subprocess.Popen) -> subprocess.Popen:
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            # The whole group, even if its leader is gone: children may outlive it.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for host in self._node_hosts:
            host.stop()
        for namespace in list_namespaces():
            if namespace.startswith(f"{self.prefix}-"):
                delete_namespace(namespace)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def leftovers(prefix: str) -> dict[str, list[str]]:
    """What of a run is still on the machine: namespaces and keepalived processes in them."""
    namespaces = [n for n in list_namespaces() if n.startswith(f"{prefix}-")]
    processes = []
    for namespace in namespaces:
        processes += run(["ip", "netns", "pids", namespace], check=False).stdout.split()
    return {"namespaces": namespaces, "processes": processes}

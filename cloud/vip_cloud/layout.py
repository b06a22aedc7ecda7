"""Where the local cloud keeps everything: one directory (`.cloud/` where
make cloud runs, the checkout), so that `make cloud-down` can remove all of
it, and the fixed addresses of its services."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Every process of the cloud carries its directory in this variable, by which
# cleanup finds it (cleanup.py); it names the directory too.
MARKER = "KVIP_CLOUD_DIR"
# Everything listens on loopback, nowhere else.
HOST = "127.0.0.1"
KEYSTONE_PORT = 5000
GLANCE_PORT = 9292
PLACEMENT_PORT = 8778
NEUTRON_PORT = 9696
NOVA_PORT = 8774
RABBIT_PORT = 5672
REGION = "RegionOne"

# The external network, as DevStack lays it out (FLOATING_RANGE,
# PUBLIC_NETWORK_GATEWAY): this machine is the gateway on br-ex, the way a
# user's laptop sits outside a cloud and reaches its floating IPs.
EXTERNAL_CIDR = os.environ.get("KVIP_CLOUD_EXTERNAL_CIDR", "172.24.4.0/24")
PHYSNET = "public"
EXTERNAL_BRIDGE = "br-ex"
INTEGRATION_BRIDGE = "br-int"
# Tenant networks are VLANs of this physical network, as DevStack's
# ENABLE_TENANT_VLANS lays them out, so that they span compute hosts: each
# host's OVS agent maps it to a bridge of its own, and the hosts' bridges are
# patched together where a real cloud has a switch trunking these VLANs.
TENANT_PHYSNET = "tenant"
TENANT_VLAN_RANGE = "100:199"
# Each instance (a lab VM) has network namespaces named after it.
INSTANCE_NAMESPACE_PREFIX = "labvm-"
# What nova-compute boots an instance as, chosen at make cloud (COMPUTE=):
# a lab host of network namespaces on this machine's kernel (vip_cloud.compute,
# seconds per boot), or a virtual machine of Nova's own libvirt driver
# (Debian's qemu under TCG, minutes per boot).
COMPUTE_DRIVERS = ("namespace", "libvirt")
DEFAULT_COMPUTE = "namespace"


@dataclass(frozen=True)
class ComputeHost:
    """A compute host of the cloud, as Neutron's fullstack tests run several
    on one machine: its own nova-compute and Open vSwitch agent, named after
    it, on an integration bridge and a tenant bridge of its own in the one
    switch. The first is this machine's, beside the controller and the
    network node; only lab hosts have a second (COMPUTE=namespace): Nova's
    libvirt driver names its node after libvirtd's host name, one per machine."""

    number: int
    name: str
    integration_bridge: str
    tenant_bridge: str
    # Each agent's OpenFlow controller listens on a port of its own.
    openflow_port: int

    @property
    def suffix(self) -> str:
        """What its services' and files' names end with: nothing for the first."""
        return "" if self.number == 1 else f"-{self.number}"


def compute_hosts(compute: str, machine: str) -> tuple[ComputeHost, ...]:
    first = ComputeHost(1, machine, INTEGRATION_BRIDGE, "br-tenant", 6633)
    if compute != "namespace":
        return (first,)
    return (first, ComputeHost(2, f"{machine}-2", "br-int2", "br-tenant2", 6634))


# The guests' package mirror (apt-cacher-ng) on the external network's
# gateway, as the guest image's apt sources name it (cloud/guest/build-image.sh).
MIRROR_PORT = 3142
# sun_path holds 108 bytes.
UNIX_SOCKET_MAX = 107


@dataclass(frozen=True)
class CloudDirs:
    root: Path

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def instances(self) -> Path:
        """The first compute host's instances."""
        return self.data / "nova" / "instances"

    def nova_state(self, host: ComputeHost) -> Path:
        """A compute host's state_path: its own, or both would claim one
        node (Nova keeps the node's uuid there, in compute_id)."""
        return self.data / f"nova{host.suffix}"

    def instances_of(self, host: ComputeHost) -> Path:
        """A compute host's instances_path: its own, or its driver would
        adopt the other host's instances."""
        return self.nova_state(host) / "instances"

    @property
    def clouds_yaml(self) -> Path:
        return self.root / "clouds.yaml"

    @property
    def status(self) -> Path:
        return self.run / "status.jsonl"

    @property
    def supervisor_pid(self) -> Path:
        return self.run / "supervisor.pid"

    @property
    def services(self) -> Path:
        """The supervisor's control directory (vip_hosts.supervisor.Supervisor):
        each running service's pid, and the services held stopped."""
        return self.run / "services"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets.json"

    @property
    def mysql_socket(self) -> Path:
        return self.run / "mysqld.sock"

    @property
    def ovsdb_socket(self) -> Path:
        return self.run / "ovs" / "db.sock"

    @property
    def libvirt_run(self) -> Path:
        """libvirtd's and virtlogd's /run/libvirt (bind-mounted there in their own mount namespace)."""
        return self.run / "libvirt"

    @property
    def libvirt_socket(self) -> Path:
        return self.libvirt_run / "libvirt-sock"

    @property
    def compute(self) -> Path:
        """The compute driver this cloud was brought up with (COMPUTE_DRIVERS)."""
        return self.root / "compute"

    def sockets_too_long(self) -> list[Path]:
        sockets = (self.mysql_socket, self.ovsdb_socket, self.libvirt_run / "virtlogd-admin-sock")
        return [path for path in sockets if len(str(path)) > UNIX_SOCKET_MAX]

    def make(self) -> None:
        for directory in (self.etc, self.logs, self.run, self.data, self.instances):
            directory.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)


def cloud_dirs() -> CloudDirs:
    """KVIP_CLOUD_DIR, or .cloud in the current directory: vip_cloud is
    installed (checkout-venv.sh), not run from the checkout's files."""
    return CloudDirs(Path(os.environ.get(MARKER) or Path.cwd() / ".cloud").resolve())

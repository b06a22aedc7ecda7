"""What the lab runs: the stack's nodes as the program declares them, or the
reference procedure's hand-written configs, with VRRP's timers."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vip_stack.addressing import default_gateway
from vip_stack.rendering import KEEPALIVED_CONF_PATH
from vip_stack.settings import HealthCheck, Settings, master_down_interval, parse_settings, skew

from .evaluate import MockedRun, run_program
from .fake_openstack import FakeCloud

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
# The name a cloud VM's first NIC has on the procedure's Ubuntu image.
DEFAULT_NIC = "ens3"


@dataclass(frozen=True)
class LabNode:
    name: str
    priority: int
    address: str
    # The node configures itself from user data (the stack) ...
    user_data: str | None = None
    # ... or somebody writes its files by hand (the reference procedure).
    files: dict[str, str] = field(default_factory=dict)
    # What the rollout's gate expects of the node's keepalived.conf.
    config_sha256: str | None = None


@dataclass(frozen=True)
class LabSpec:
    label: str
    vip: str
    prefix_length: int
    gateway: str
    nic: str
    jumphost_name: str
    jumphost_address: str
    nodes: tuple[LabNode, ...]
    advert_interval: float
    vrrp_version: int
    mode: str
    preempt: bool = True
    # The tracked health check, if any.
    health_check: HealthCheck | None = None
    notify: bool = False
    # The order in which an update replaces the nodes, as the program chains
    # them (each instance depends on the previous node's gate).
    rollout_order: tuple[str, ...] = ()

    def node(self, name: str) -> LabNode:
        return next(n for n in self.nodes if n.name == name)

    def by_priority(self) -> list[LabNode]:
        return sorted(self.nodes, key=lambda n: n.priority, reverse=True)

    def skew(self, priority: int) -> float:
        return skew(self.vrrp_version, self.advert_interval, priority)

    def master_down_interval(self, priority: int) -> float:
        return master_down_interval(self.vrrp_version, self.advert_interval, priority)


def lab_cloud(settings: Settings, running: LabSpec | None = None) -> FakeCloud:
    """A stand-in cloud for the settings: their external network, their image,
    and, when the stack uses an existing subnet, one named as configured with
    subnetCidr; with `running`, that deployment's nodes and jumphost are up
    on their ports."""
    cloud = FakeCloud.with_external_network(settings.external_network_name)
    cloud.images.setdefault(settings.image_name, f"image-{settings.image_name}")
    if running is not None:
        for node in running.nodes:
            cloud.add_running_node(node.name, node.address)
        cloud.keep_port(f"{running.jumphost_name}-port", running.jumphost_address)
    if not settings.create_network:
        cloud.add_existing_subnet(
            network_name=settings.network_name,
            subnet_name=settings.subnet_name,
            cidr=settings.subnet_cidr,
            gateway_ip=default_gateway(settings.subnet_cidr),
        )
    return cloud


def spec_from_deployment(settings: Settings, deployment: MockedRun, label: str) -> LabSpec:
    nodes = []
    for node_output in deployment.outputs["nodes"]:
        instance = deployment.called(node_output["name"], "Instance")
        nodes.append(
            LabNode(
                name=node_output["name"],
                priority=node_output["priority"],
                address=node_output["ipAddress"],
                user_data=instance.input("userData"),
                config_sha256=deployment.gates()[node_output["name"]].input("configSha256"),
            )
        )
    jumphost_port = deployment.called(f"{settings.jumphost_name}-port", "Port")
    # The created subnet, or (createNetwork=false) the one lab_cloud stood in with.
    subnets = deployment.of_type("Subnet")
    subnet_cidr = subnets[0].input("cidr") if subnets else settings.subnet_cidr
    gateway = subnets[0].input("gatewayIp") if subnets else default_gateway(subnet_cidr)
    network = ipaddress.IPv4Network(subnet_cidr)
    return LabSpec(
        label=label,
        vip=settings.vip_address,
        prefix_length=network.prefixlen,
        gateway=gateway,
        nic=settings.vrrp_interface or DEFAULT_NIC,
        jumphost_name=settings.jumphost_name,
        jumphost_address=jumphost_port.outputs["allFixedIps"][0],
        nodes=tuple(nodes),
        advert_interval=settings.advert_interval,
        vrrp_version=settings.vrrp_version,
        mode=settings.vrrp_mode,
        preempt=settings.preempt,
        health_check=settings.health_check,
        notify=settings.notify_command is not None,
        rollout_order=declared_rollout_order(deployment),
    )


def declared_rollout_order(deployment: MockedRun) -> tuple[str, ...]:
    """The nodes in the order the engine would replace them: a node whose
    instance depends on another node's gate comes after that node."""
    gates = {gate.urn: node for node, gate in deployment.gates().items()}
    after = {}
    for node in gates.values():
        instance = deployment.called(node, "Instance")
        waits_for = [gates[urn] for urn in instance.dependencies if urn in gates]
        after[node] = waits_for[0] if waits_for else None
    order: list[str] = []
    while len(order) < len(after):
        ready = [name for name, before in after.items() if name not in order and (before is None or before in order)]
        if not ready:
            raise ValueError(f"the nodes' rollout chain has a cycle: {after}")
        order.extend(sorted(ready))
    return tuple(order)


def stack_spec(config: dict[str, Any], label: str = "stack", running: LabSpec | None = None) -> LabSpec:
    """Evaluates the program with this config (against `running`, a
    deployment that is up) and takes what it declares."""
    settings = parse_settings(config)
    return spec_from_deployment(settings, run_program(config, lab_cloud(settings, running)), label)


def rollout_spec(config: dict[str, Any], changes: dict[str, Any], before: LabSpec) -> LabSpec:
    """What `pulumi up` declares when the running stack's config changes."""
    changed = ", ".join(f"{key}={value}" for key, value in changes.items())
    return stack_spec({**config, **changes}, label=f"{before.label} with {changed}", running=before)


def reference_spec(password: str) -> LabSpec:
    """The reference procedure's two VMs, configured by hand with its own
    keepalived.conf files (multicast, advert_int 1, PASS)."""

    def conf(name: str) -> str:
        return (REFERENCE_DIR / f"{name}.conf").read_text().replace("<authentication password>", password)

    return LabSpec(
        label="reference procedure",
        vip="192.168.0.254",
        prefix_length=24,
        gateway="192.168.0.1",
        nic="ens3",
        jumphost_name="kld-jumphost-vm",
        jumphost_address="192.168.0.5",
        nodes=(
            LabNode("kld-vm-1", 120, "192.168.0.11", files={KEEPALIVED_CONF_PATH: conf("kld-vm-1")}),
            LabNode("kld-vm-2", 90, "192.168.0.22", files={KEEPALIVED_CONF_PATH: conf("kld-vm-2")}),
        ),
        advert_interval=1,
        vrrp_version=2,
        mode="multicast",
    )

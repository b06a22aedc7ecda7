"""The whole scenario as one component: what `__main__.py` declares, and what
another Pulumi program can declare too, once or several times.

Several VIPs can share one network and one jumphost: declare the first with
its own (or a standalone `VipNetwork` and `Jumphost`), then pass its
`shared_network` and `shared_jumphost` to the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pulumi

from .jumphost import Jumphost, JumphostArgs
from .network import VipNetwork, VipNetworkArgs
from .nodes import KeepalivedNodes, KeepalivedNodesArgs
from .preflight import CloudFacts, gather_cloud_facts
from .rendering import VrrpGroup
from .security import VipSecurityGroups, VipSecurityGroupsArgs
from .settings import (
    NAMESPACE,
    ConfigProblem,
    InvalidConfig,
    Settings,
    SubnetFacts,
    parse_settings,
    settings_from_config,
)
from .vip_port import VipPort, VipPortArgs


@dataclass
class SharedNetwork:
    """A network and subnet that VIPs share (created by one of them, by a
    `VipNetwork`, or found by id)."""

    network_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    subnet: SubnetFacts
    # What must exist before a floating IP can be allocated on it (the router).
    ready: Sequence[pulumi.Resource] = ()
    # virtualRouterId -> the VIP that uses it: VRRP routers on one network
    # must differ, or their nodes join each other's elections.
    router_ids: dict[int, str] = field(default_factory=dict)

    @classmethod
    def of(cls, network: VipNetwork, subnet: SubnetFacts) -> SharedNetwork:
        return cls(network.network_id, network.subnet_id, subnet, list(network.ready))


@dataclass
class SharedJumphost:
    """A jumphost that VIPs share: the nodes admit SSH and ICMP from its
    security group, and rollouts reach the nodes through its address."""

    floating_ip_address: pulumi.Input[str]
    security_group_id: pulumi.Input[str]
    name: str


@dataclass(frozen=True)
class KeepalivedVipArgs:
    """One VIP's own settings, and what it shares with other VIPs.

    Three ways to make one, each validating every key before anything is
    declared (InvalidConfig names the key and what is wrong):
    - `KeepalivedVipArgs.of(vip_address="192.168.0.254", flavor_name="m1.small",
      ssh_allowed_cidrs=["203.0.113.0/24"], vrrp_password="k33pal1v", ...)`,
      Python keywords for the stack's config keys (`vip_address` for
      `vipAddress`), nodes as `[{"name": ..., "priority": ...}]`; the
      password in plain text, which the component keeps secret from there on;
    - `KeepalivedVipArgs.from_config(pulumi.Config("web"))`, a config namespace;
    - `KeepalivedVipArgs(settings)`, from `parse_settings`.
    """

    settings: Settings
    # The config namespace the settings were read from, for the errors that name their keys.
    namespace: str = NAMESPACE
    # None: the component looks the cloud up (image, networks, existing ports)
    # before it declares anything. A program of several VIPs calls
    # `looked_up()` on each first, so that none is declared unless all pass.
    cloud: CloudFacts | None = None
    # None: the network the settings name (created, or found by name).
    network: SharedNetwork | None = None
    # None: a jumphost of its own, unless create_jumphost is False (no
    # jumphost at all: nothing reaches the nodes, rollouts wait a fixed time).
    jumphost: SharedJumphost | None = None
    create_jumphost: bool = True
    # Addresses the DHCP pool of a subnet this VIP creates must leave out too:
    # the VIPs of others that will share the network.
    reserved_addresses: Sequence[str] = ()

    @classmethod
    def of(cls, *, namespace: str = NAMESPACE, **settings: Any) -> KeepalivedVipArgs:
        """Settings as Python keywords; errors name the config key (namespace:key)."""
        return cls(parse_settings(settings, namespace), namespace=namespace)

    @classmethod
    def from_config(cls, config: pulumi.Config) -> KeepalivedVipArgs:
        return cls(settings_from_config(config), namespace=config.name)

    def sharing(
        self,
        network: SharedNetwork | None = None,
        jumphost: SharedJumphost | None = None,
        create_jumphost: bool = True,
        reserved_addresses: Sequence[str] = (),
    ) -> KeepalivedVipArgs:
        """The same VIP on another VIP's network and jumphost (or keeping other VIPs' addresses free)."""
        return replace(
            self,
            network=network,
            jumphost=jumphost,
            create_jumphost=create_jumphost,
            reserved_addresses=tuple(reserved_addresses),
        )

    def looked_up(self) -> KeepalivedVipArgs:
        """With the cloud looked up now (raises InvalidConfig as the component would)."""
        return self if self.cloud is not None else replace(self, cloud=self.cloud_facts())

    def cloud_facts(self) -> CloudFacts:
        """What the cloud has for these settings: as looked up before, or now."""
        return self.cloud if self.cloud is not None else gather_cloud_facts(self.settings, self.namespace)


class KeepalivedVip(pulumi.ComponentResource):
    """Network, security groups, reserved VIP port, keepalived nodes and jumphost."""

    vip_address: pulumi.Output[str]
    vip_port_id: pulumi.Output[str]
    vip_floating_ip: pulumi.Output[str | None]
    network_id: pulumi.Output[str]
    subnet_id: pulumi.Output[str]
    node_security_group_id: pulumi.Output[str]
    jumphost_floating_ip: pulumi.Output[str | None]
    jumphost_name: pulumi.Output[str | None]
    # [{name, instanceId, portId, ipAddress, priority}], as the stack exports it.
    nodes: pulumi.Output[list[dict[str, Any]]]
    # For other VIPs to share.
    shared_network: SharedNetwork
    shared_jumphost: SharedJumphost | None

    def __init__(self, name: str, args: KeepalivedVipArgs, opts: pulumi.ResourceOptions | None = None):
        # Every look-up before the component or any child is declared: a VIP
        # the cloud would refuse declares nothing.
        settings, cloud = args.settings, args.cloud_facts()
        virtual_router_id = settings.virtual_router_id
        if args.network is not None and virtual_router_id in args.network.router_ids:
            # Before anything of this VIP is declared.
            raise InvalidConfig(
                [
                    ConfigProblem(
                        "virtualRouterId",
                        f"{virtual_router_id} is already used by the VIP "
                        f"{args.network.router_ids[virtual_router_id]!r} on the same network; "
                        "VIPs that share a network need different virtual router ids",
                        args.namespace,
                    )
                ]
            )
        super().__init__("keepalived-vip:openstack:KeepalivedVip", name, None, opts)
        self.settings = settings

        if args.network is None:
            self.network = VipNetwork(
                name,
                VipNetworkArgs(
                    create=settings.create_network,
                    network_name=settings.network_name,
                    subnet_name=settings.subnet_name,
                    subnet=cloud.subnet,
                    reserved_addresses=[settings.vip_address, *args.reserved_addresses]
                    + [node.ip_address for node in settings.nodes if node.ip_address],
                    external_network_id=cloud.external_network_id,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            network = SharedNetwork.of(self.network, cloud.subnet)
        else:
            network = args.network
        network.router_ids[virtual_router_id] = name
        self.shared_network = network

        self.security = VipSecurityGroups(
            name,
            VipSecurityGroupsArgs(
                ssh_allowed_cidrs=settings.ssh_allowed_cidrs,
                service_ports=[(p.protocol, p.port) for p in settings.service_ports],
                service_allowed_cidrs=settings.service_allowed_cidrs,
                jumphost_group_id=args.jumphost.security_group_id if args.jumphost else None,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.vip_port = VipPort(
            f"{name}-vip",
            VipPortArgs(
                network_id=network.network_id,
                subnet_id=network.subnet_id,
                vip_address=settings.vip_address,
                security_group_ids=[self.security.node_group_id],
                floating_ip_pool=settings.external_network_name if settings.vip_floating_ip else None,
                depends_on=network.ready,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.jumphost: Jumphost | None = None
        if args.jumphost is not None:
            self.shared_jumphost: SharedJumphost | None = args.jumphost
        elif args.create_jumphost:
            self.jumphost = Jumphost(
                f"{name}-jumphost",
                JumphostArgs(
                    name=settings.jumphost_name,
                    network_id=network.network_id,
                    subnet_id=network.subnet_id,
                    security_group_id=self.security.jumphost_group_id,
                    image_id=cloud.image_id,
                    flavor_name=settings.flavor_name,
                    key_pair_name=settings.key_pair_name,
                    external_network_name=settings.external_network_name,
                    depends_on=network.ready,
                ),
                # It was once named after its VM.
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=[self.vip_port], aliases=[pulumi.Alias(name=settings.jumphost_name)]
                ),
            )
            self.shared_jumphost = SharedJumphost(
                self.jumphost.floating_ip_address, self.security.jumphost_group_id, settings.jumphost_name
            )
        else:
            self.shared_jumphost = None

        self.nodes_component = KeepalivedNodes(
            f"{name}-nodes",
            KeepalivedNodesArgs(
                vrrp=VrrpGroup.of(settings),
                vrrp_password=settings.vrrp_password,
                flavor_name=settings.flavor_name,
                key_pair_name=settings.key_pair_name,
                server_group_policy=settings.server_group_policy,
                rollout_uses_ssh=settings.rollout_uses_ssh,
                rollout_timeout_seconds=settings.rollout_timeout_seconds,
                rollout_fixed_wait_seconds=settings.rollout_fixed_wait_seconds,
                ssh_user=settings.ssh_user,
                wait_for_service=settings.wait_for_service,
                network_id=network.network_id,
                subnet_id=network.subnet_id,
                subnet_cidr=network.subnet.cidr,
                security_group_id=self.security.node_group_id,
                image_id=cloud.image_id,
                jumphost_address=self.shared_jumphost.floating_ip_address if self.shared_jumphost else None,
                serving_nodes=cloud.serving_nodes,
                vip_port=self.vip_port.port,
            ),
            # The VIP port first, so Neutron never hands its address to a node port.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.vip_port]),
        )

        self.vip_address = pulumi.Output.from_input(settings.vip_address)
        self.vip_port_id = self.vip_port.port_id
        self.vip_floating_ip = self.vip_port.floating_ip_address
        self.network_id = pulumi.Output.from_input(network.network_id)
        self.subnet_id = pulumi.Output.from_input(network.subnet_id)
        self.node_security_group_id = self.security.node_group_id
        self.jumphost_floating_ip = pulumi.Output.from_input(
            self.shared_jumphost.floating_ip_address if self.shared_jumphost else None
        )
        self.jumphost_name = pulumi.Output.from_input(self.shared_jumphost.name if self.shared_jumphost else None)
        self.nodes = self.nodes_component.nodes_output
        self.ssh_user = pulumi.Output.from_input(settings.ssh_user)
        self.outputs = self._outputs()
        self.register_outputs(self.outputs)

    def _outputs(self) -> dict[str, Any]:
        """The contract other stacks rely on (see the README)."""
        return {
            "vipAddress": self.vip_address,
            "vipPortId": self.vip_port_id,
            # None unless vipFloatingIp is true.
            "vipFloatingIp": self.vip_floating_ip,
            "networkId": self.network_id,
            "subnetId": self.subnet_id,
            "nodeSecurityGroupId": self.node_security_group_id,
            "jumphostFloatingIp": self.jumphost_floating_ip,
            "jumphostName": self.jumphost_name,
            # Who logs in to the jumphost and the nodes: the check needs no guess.
            "sshUser": self.ssh_user,
            "nodes": self.nodes,
        }

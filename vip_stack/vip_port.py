"""The port that holds the VIP so that nothing else in the subnet can take it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

VIP_PORT_DESCRIPTION = "keepalived VIP: reserved, bound to no instance"


def stack_tag() -> str:
    """The Neutron tag of this stack's ports: a re-run's pre-flight tells its
    own VIP and node ports from anyone else's holding the same address."""
    return f"keepalived-vip:{pulumi.get_project()}/{pulumi.get_stack()}"


@dataclass
class VipPortArgs:
    network_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    vip_address: str
    security_group_ids: Sequence[pulumi.Input[str]]
    # Publish the VIP: a floating IP from this external network on the VIP port.
    floating_ip_pool: str | None = None
    # The floating IP needs the router to the external network first.
    depends_on: Sequence[pulumi.Resource] = ()


class VipPort(pulumi.ComponentResource):
    """A port whose fixed IP is the VIP, bound to no instance. It is down
    (admin_state_up=False) because it never carries traffic itself: the nodes
    do, through their allowed-address-pairs. On OVN an unbound port listed by
    others' address pairs is what marks the address as a virtual IP."""

    port: openstack.networking.Port
    port_id: pulumi.Output[str]
    address: str

    def __init__(self, name: str, args: VipPortArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("keepalived-vip:openstack:VipPort", name, None, opts)
        self.address = args.vip_address
        self.port = openstack.networking.Port(
            f"{name}-port",
            name=name,
            description=VIP_PORT_DESCRIPTION,
            network_id=args.network_id,
            admin_state_up=False,
            # Set here, not left to the network's default: on a network with
            # port security off, a port with security groups but no port
            # security of its own is refused (400).
            port_security_enabled=True,
            tags=[stack_tag()],
            fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=args.subnet_id, ip_address=args.vip_address)],
            security_group_ids=list(args.security_group_ids),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.port_id = self.port.id
        self.floating_ip_address: pulumi.Output[str | None] = pulumi.Output.from_input(None)
        if args.floating_ip_pool:
            # Neutron forwards the floating IP to the VIP wherever it lives:
            # the address pairs on the node ports make the holder its target.
            self.floating_ip = openstack.networking.FloatingIp(
                f"{name}-floating-ip",
                pool=args.floating_ip_pool,
                port_id=self.port.id,
                description=f"public address of the VIP {args.vip_address}",
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
            )
            self.floating_ip_address = self.floating_ip.address
        self.register_outputs(
            {"vipAddress": self.address, "vipPortId": self.port_id, "vipFloatingIp": self.floating_ip_address}
        )

"""The jumphost: the one VM reachable from outside, from which the VIP is checked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_openstack as openstack


@dataclass
class JumphostArgs:
    name: str
    network_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    security_group_id: pulumi.Input[str]
    image_id: str
    flavor_name: str
    key_pair_name: Optional[str]
    external_network_name: str
    # The floating IP needs a router to the external network first.
    depends_on: Sequence[pulumi.Resource] = ()


class Jumphost(pulumi.ComponentResource):
    def __init__(self, name: str, args: JumphostArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("keepalived-vip:openstack:Jumphost", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.port = openstack.networking.Port(
            f"{args.name}-port",
            name=f"{args.name}-port",
            network_id=args.network_id,
            fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=args.subnet_id)],
            security_group_ids=[args.security_group_id],
            port_security_enabled=True,
            opts=child,
        )
        self.instance = openstack.compute.Instance(
            args.name,
            name=args.name,
            image_id=args.image_id,
            flavor_name=args.flavor_name,
            key_pair=args.key_pair_name,
            networks=[openstack.compute.InstanceNetworkArgs(port=self.port.id)],
            # A replacement boots on the same port: the old instance goes first.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        self.floating_ip = openstack.networking.FloatingIp(
            f"{args.name}-floating-ip",
            pool=args.external_network_name,
            port_id=self.port.id,
            description=f"SSH entry to {args.name}",
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.floating_ip_address = self.floating_ip.address
        self.register_outputs({"jumphostFloatingIp": self.floating_ip_address, "jumphostName": args.name})

"""The jumphost: the one VM reachable from outside, from which the VIP is checked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from .rendering import render_jumphost_user_data


@dataclass
class JumphostArgs:
    # The VM's name in Nova.
    name: str
    network_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    security_group_id: pulumi.Input[str]
    image_id: str
    flavor_name: str
    key_pair_name: str | None
    external_network_name: str
    # The floating IP needs a router to the external network first.
    depends_on: Sequence[pulumi.Resource] = ()


class Jumphost(pulumi.ComponentResource):
    floating_ip_address: pulumi.Output[str]
    security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: JumphostArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("keepalived-vip:openstack:Jumphost", name, None, opts)

        def child(logical: str, old: str, **extra) -> pulumi.ResourceOptions:
            # Children were once named after the VM (args.name) alone: the
            # alias keeps existing stacks' resources when the names change.
            aliases = [pulumi.Alias(name=old)] if old != logical else None
            return pulumi.ResourceOptions(parent=self, aliases=aliases, **extra)

        self.port = openstack.networking.Port(
            f"{name}-port",
            name=f"{args.name}-port",
            network_id=args.network_id,
            fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=args.subnet_id)],
            security_group_ids=[args.security_group_id],
            port_security_enabled=True,
            opts=child(f"{name}-port", f"{args.name}-port"),
        )
        self.instance = openstack.compute.Instance(
            f"{name}-vm",
            name=args.name,
            image_id=args.image_id,
            flavor_name=args.flavor_name,
            key_pair=args.key_pair_name,
            networks=[openstack.compute.InstanceNetworkArgs(port=self.port.id)],
            # The check's ping: an image may come without it.
            user_data=render_jumphost_user_data(),
            # A replacement boots on the same port: the old instance goes first.
            opts=child(f"{name}-vm", args.name, delete_before_replace=True),
        )
        self.floating_ip = openstack.networking.FloatingIp(
            f"{name}-floating-ip",
            pool=args.external_network_name,
            port_id=self.port.id,
            description=f"SSH entry to {args.name}",
            opts=child(f"{name}-floating-ip", f"{args.name}-floating-ip", depends_on=list(args.depends_on)),
        )
        self.floating_ip_address = self.floating_ip.address
        self.security_group_id = pulumi.Output.from_input(args.security_group_id)
        self.vm_name = args.name
        self.register_outputs({"jumphostFloatingIp": self.floating_ip_address, "jumphostName": args.name})

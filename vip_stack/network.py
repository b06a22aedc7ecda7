"""The network, subnet and router of the stack, or the ones it was pointed at."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from .addressing import SubnetFacts, allocation_pools


@dataclass
class VipNetworkArgs:
    # True: create the network, subnet and router; False: use the found ones.
    create: bool
    # The names to create (the found ones' names with create=False).
    network_name: str
    subnet_name: str
    subnet: SubnetFacts
    # Addresses the DHCP pool must never hand out (the VIP, fixed node addresses).
    reserved_addresses: Sequence[str]
    external_network_id: str | None


class VipNetwork(pulumi.ComponentResource):
    """With create=True: network, subnet (pool without the reserved addresses),
    router to the external network and its interface. With create=False: no
    resource at all, only the ids of the network and subnet that were found."""

    network_id: pulumi.Output[str]
    subnet_id: pulumi.Output[str]
    subnet_cidr: str
    # What must exist before anything needs to reach the outside (floating IPs).
    ready: list[pulumi.Resource]

    def __init__(self, name: str, args: VipNetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("keepalived-vip:openstack:VipNetwork", name, None, opts)
        self.subnet_cidr = args.subnet.cidr
        self.ready = []
        if not args.create:
            if args.subnet.network_id is None or args.subnet.subnet_id is None:
                raise ValueError("an existing network needs the ids of the network and subnet that were found")
            self.network_id = pulumi.Output.from_input(args.subnet.network_id)
            self.subnet_id = pulumi.Output.from_input(args.subnet.subnet_id)
            self.register_outputs({"networkId": self.network_id, "subnetId": self.subnet_id})
            return

        child = pulumi.ResourceOptions(parent=self)
        network = openstack.networking.Network(
            f"{name}-network", name=args.network_name, admin_state_up=True, opts=child
        )
        subnet = openstack.networking.Subnet(
            f"{name}-subnet",
            name=args.subnet_name,
            network_id=network.id,
            cidr=args.subnet.cidr,
            ip_version=4,
            gateway_ip=args.subnet.gateway_ip,
            enable_dhcp=True,
            allocation_pools=[
                openstack.networking.SubnetAllocationPoolArgs(start=start, end=end)
                for start, end in allocation_pools(args.subnet.cidr, args.subnet.gateway_ip, args.reserved_addresses)
            ],
            opts=child,
        )
        router = openstack.networking.Router(
            f"{name}-router",
            name=f"{args.network_name}-router",
            external_network_id=args.external_network_id,
            opts=child,
        )
        router_interface = openstack.networking.RouterInterface(
            f"{name}-router-interface", router_id=router.id, subnet_id=subnet.id, opts=child
        )
        self.network, self.subnet, self.router, self.router_interface = network, subnet, router, router_interface
        self.network_id = network.id
        self.subnet_id = subnet.id
        self.ready = [router_interface]
        self.register_outputs({"networkId": self.network_id, "subnetId": self.subnet_id})

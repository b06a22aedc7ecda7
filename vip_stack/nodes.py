"""The keepalived nodes: one port each that may carry the VIP, one instance
each that configures itself at boot from cloud-init user data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_openstack as openstack

from .rendering import plan_keepalived, render_user_data
from .settings import Settings


@dataclass
class KeepalivedNodesArgs:
    settings: Settings
    network_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    subnet_cidr: str
    security_group_id: pulumi.Input[str]


class KeepalivedNodes(pulumi.ComponentResource):
    node_ports: dict[str, openstack.networking.Port]
    instances: dict[str, openstack.compute.Instance]
    # Node name -> rendered cloud-config, a secret: it holds the VRRP password.
    user_data: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: KeepalivedNodesArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("keepalived-vip:openstack:KeepalivedNodes", name, None, opts)
        settings = args.settings
        child = pulumi.ResourceOptions(parent=self)

        # One hypervisor failure must not take every node, or the VIP has
        # nowhere to go.
        self.server_group = openstack.compute.ServerGroup(
            f"{name}-server-group", name=name, policies=settings.server_group_policy, opts=child
        )

        self.node_ports = {}
        for node in settings.nodes:
            self.node_ports[node.name] = openstack.networking.Port(
                f"{node.name}-port",
                name=f"{node.name}-port",
                network_id=args.network_id,
                fixed_ips=[
                    openstack.networking.PortFixedIpArgs(subnet_id=args.subnet_id, ip_address=node.ip_address)
                ],
                security_group_ids=[args.security_group_id],
                # Allowed-address-pairs need port security; with it off Neutron
                # refuses them.
                port_security_enabled=True,
                # Exactly the VIP, not the procedure's /24: IP source guard
                # must keep a node from speaking for the whole subnet.
                allowed_address_pairs=[openstack.networking.PortAllowedAddressPairArgs(ip_address=settings.vip_address)],
                opts=child,
            )
        self.node_addresses: dict[str, pulumi.Output[str]] = {
            node_name: port.all_fixed_ips.apply(lambda ips: ips[0]) for node_name, port in self.node_ports.items()
        }

        names = [node.name for node in settings.nodes]
        addresses = pulumi.Output.all(*(self.node_addresses[n] for n in names))
        keepalived_configs = pulumi.Output.all(addresses, settings.vrrp.password.output()).apply(
            lambda pair: plan_keepalived(
                settings, dict(zip(names, pair[0])), args.subnet_cidr, pair[1]
            )
        )
        self.user_data = {}
        self.instances = {}
        for index, node in enumerate(settings.nodes):
            # Output.secret again, though the password already makes it one:
            # the user data must stay secret even if its inputs change.
            self.user_data[node.name] = pulumi.Output.secret(
                keepalived_configs.apply(lambda configs, i=index: render_user_data(configs[i]))
            )
            self.instances[node.name] = openstack.compute.Instance(
                node.name,
                name=node.name,
                image_name=settings.image_name,
                flavor_name=settings.flavor_name,
                key_pair=settings.key_pair_name,
                networks=[openstack.compute.InstanceNetworkArgs(port=self.node_ports[node.name].id)],
                scheduler_hints=[openstack.compute.InstanceSchedulerHintArgs(group=self.server_group.id)],
                user_data=self.user_data[node.name],
                # The replacement boots on the same port, which can belong to
                # one instance at a time: the old one must go first.
                opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
            )

        self.nodes_output = pulumi.Output.all(
            *(
                pulumi.Output.all(
                    instance_id=self.instances[node.name].id,
                    port_id=self.node_ports[node.name].id,
                    ip_address=self.node_addresses[node.name],
                ).apply(
                    lambda values, node=node: {
                        "name": node.name,
                        "instanceId": values["instance_id"],
                        "portId": values["port_id"],
                        "ipAddress": values["ip_address"],
                        "priority": node.priority,
                    }
                )
                for node in settings.nodes
            )
        )
        self.register_outputs({"nodes": self.nodes_output})

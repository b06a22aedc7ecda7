"""Security groups: VRRP among the nodes, SSH and ICMP to them only from the
jumphost, SSH to the jumphost only from the allowed CIDRs. Nothing else in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_openstack as openstack

VRRP_PROTOCOL = "112"


@dataclass
class VipSecurityGroupsArgs:
    ssh_allowed_cidrs: Sequence[str]
    # (protocol, port) the nodes serve on the VIP, and who may reach them.
    service_ports: Sequence[tuple[str, int]] = ()
    service_allowed_cidrs: Sequence[str] = ()


class VipSecurityGroups(pulumi.ComponentResource):
    node_group: openstack.networking.SecGroup
    jumphost_group: openstack.networking.SecGroup

    def __init__(self, name: str, args: VipSecurityGroupsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("keepalived-vip:openstack:VipSecurityGroups", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.node_group = openstack.networking.SecGroup(
            f"{name}-nodes",
            name=f"{name}-nodes",
            description="keepalived nodes: VRRP among themselves, SSH and ICMP from the jumphost",
            opts=child,
        )
        self.jumphost_group = openstack.networking.SecGroup(
            f"{name}-jumphost",
            name=f"{name}-jumphost",
            description="jumphost: SSH from the allowed CIDRs only",
            opts=child,
        )
        self.rules: list[openstack.networking.SecGroupRule] = []

        def ingress(rule_name: str, group, description: str, **match) -> None:
            self.rules.append(
                openstack.networking.SecGroupRule(
                    f"{name}-{rule_name}",
                    security_group_id=group.id,
                    direction="ingress",
                    ethertype="IPv4",
                    description=description,
                    opts=child,
                    **match,
                )
            )

        # Without VRRP between the nodes, each thinks the other dead and both
        # take the VIP.
        ingress("vrrp", self.node_group, "VRRP between keepalived nodes",
                protocol=VRRP_PROTOCOL, remote_group_id=self.node_group.id)
        ingress("ssh-from-jumphost", self.node_group, "SSH from the jumphost",
                protocol="tcp", port_range_min=22, port_range_max=22, remote_group_id=self.jumphost_group.id)
        ingress("icmp-from-jumphost", self.node_group, "ping of the nodes and the VIP from the jumphost",
                protocol="icmp", remote_group_id=self.jumphost_group.id)
        for index, cidr in enumerate(args.ssh_allowed_cidrs):
            ingress(f"ssh-{index}", self.jumphost_group, f"SSH from {cidr}",
                    protocol="tcp", port_range_min=22, port_range_max=22, remote_ip_prefix=cidr)
        # The service behind the VIP: only what the user listed, only from whom they listed.
        for protocol, port in args.service_ports:
            for index, cidr in enumerate(args.service_allowed_cidrs):
                ingress(f"service-{protocol}-{port}-{index}", self.node_group, f"{protocol}/{port} from {cidr}",
                        protocol=protocol, port_range_min=port, port_range_max=port, remote_ip_prefix=cidr)

        self.register_outputs(
            {"nodeSecurityGroupId": self.node_group.id, "jumphostSecurityGroupId": self.jumphost_group.id}
        )

"""Security groups: VRRP among the nodes, SSH and ICMP to them only from the
jumphost, SSH to the jumphost only from the allowed CIDRs. Nothing else in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

VRRP_PROTOCOL = "112"


def cidr_key(cidr: str) -> str:
    """A CIDR as part of a logical name: 198.51.100.0/24 -> 198.51.100.0-24."""
    return cidr.replace("/", "-")


@dataclass
class VipSecurityGroupsArgs:
    ssh_allowed_cidrs: Sequence[str]
    # (protocol, port) the nodes serve on the VIP, and who may reach them.
    service_ports: Sequence[tuple[str, int]] = ()
    service_allowed_cidrs: Sequence[str] = ()
    # The security group of a jumphost shared with other VIPs; None: this
    # component makes the jumphost's group (SSH from ssh_allowed_cidrs) itself.
    jumphost_group_id: pulumi.Input[str] | None = None


class VipSecurityGroups(pulumi.ComponentResource):
    """Rules are named by what they allow (protocol, port, CIDR), so removing
    one CIDR from a list touches that CIDR's rule alone."""

    node_group: openstack.networking.SecGroup
    node_group_id: pulumi.Output[str]
    jumphost_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: VipSecurityGroupsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("keepalived-vip:openstack:VipSecurityGroups", name, None, opts)
        self.node_group = openstack.networking.SecGroup(
            f"{name}-nodes",
            name=f"{name}-nodes",
            description="keepalived nodes: VRRP among themselves, SSH and ICMP from the jumphost",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.node_group_id = self.node_group.id
        self.rules: list[openstack.networking.SecGroupRule] = []

        def ingress(rule_name: str, group_id, description: str, old_name: str | None = None, **match) -> None:
            # old_name: the positional name the rule had before rules were
            # keyed by what they allow, so existing stacks keep their rules.
            aliases = [pulumi.Alias(name=f"{name}-{old_name}")] if old_name else None
            self.rules.append(
                openstack.networking.SecGroupRule(
                    f"{name}-{rule_name}",
                    security_group_id=group_id,
                    direction="ingress",
                    ethertype="IPv4",
                    description=description,
                    opts=pulumi.ResourceOptions(parent=self, aliases=aliases),
                    **match,
                )
            )

        if args.jumphost_group_id is None:
            self.jumphost_group: openstack.networking.SecGroup | None = openstack.networking.SecGroup(
                f"{name}-jumphost",
                name=f"{name}-jumphost",
                description="jumphost: SSH from the allowed CIDRs only",
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.jumphost_group_id = self.jumphost_group.id
            for index, cidr in enumerate(args.ssh_allowed_cidrs):
                ingress(
                    f"ssh-{cidr_key(cidr)}",
                    self.jumphost_group_id,
                    f"SSH from {cidr}",
                    old_name=f"ssh-{index}",
                    protocol="tcp",
                    port_range_min=22,
                    port_range_max=22,
                    remote_ip_prefix=cidr,
                )
        else:
            self.jumphost_group = None
            self.jumphost_group_id = pulumi.Output.from_input(args.jumphost_group_id)

        # Without VRRP between the nodes, each thinks the other dead and both
        # take the VIP.
        ingress(
            "vrrp",
            self.node_group_id,
            "VRRP between keepalived nodes",
            protocol=VRRP_PROTOCOL,
            remote_group_id=self.node_group_id,
        )
        ingress(
            "ssh-from-jumphost",
            self.node_group_id,
            "SSH from the jumphost",
            protocol="tcp",
            port_range_min=22,
            port_range_max=22,
            remote_group_id=self.jumphost_group_id,
        )
        ingress(
            "icmp-from-jumphost",
            self.node_group_id,
            "ping of the nodes and the VIP from the jumphost",
            protocol="icmp",
            remote_group_id=self.jumphost_group_id,
        )
        # The service behind the VIP: only what the user listed, only from whom they listed.
        for protocol, port in args.service_ports:
            for index, cidr in enumerate(args.service_allowed_cidrs):
                ingress(
                    f"service-{protocol}-{port}-{cidr_key(cidr)}",
                    self.node_group_id,
                    f"{protocol}/{port} from {cidr}",
                    old_name=f"service-{protocol}-{port}-{index}",
                    protocol=protocol,
                    port_range_min=port,
                    port_range_max=port,
                    remote_ip_prefix=cidr,
                )

        self.register_outputs(
            {"nodeSecurityGroupId": self.node_group_id, "jumphostSecurityGroupId": self.jumphost_group_id}
        )

"""The whole scenario as one component: what `__main__.py` declares, and what
another Pulumi program can declare too."""

from __future__ import annotations

from typing import Any, Optional

import pulumi

from .jumphost import Jumphost, JumphostArgs
from .lookups import CloudFacts
from .network import VipNetwork, VipNetworkArgs
from .nodes import KeepalivedNodes, KeepalivedNodesArgs
from .security import VipSecurityGroups, VipSecurityGroupsArgs
from .settings import Settings
from .vip_port import VipPort, VipPortArgs


class KeepalivedVip(pulumi.ComponentResource):
    """Network, security groups, reserved VIP port, keepalived nodes and jumphost.

    `settings` must come from `parse_settings` and `cloud` from
    `gather_cloud_facts`: both validate before anything is declared.
    """

    def __init__(
        self, name: str, settings: Settings, cloud: CloudFacts, opts: Optional[pulumi.ResourceOptions] = None
    ):
        super().__init__("keepalived-vip:openstack:KeepalivedVip", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.settings = settings

        self.network = VipNetwork(
            name,
            VipNetworkArgs(
                network=settings.network,
                subnet=cloud.subnet,
                reserved_addresses=[settings.vip_address]
                + [node.ip_address for node in settings.nodes if node.ip_address],
                external_network_id=cloud.external_network_id,
            ),
            opts=child,
        )
        self.security = VipSecurityGroups(
            name,
            VipSecurityGroupsArgs(
                ssh_allowed_cidrs=settings.ssh_allowed_cidrs,
                service_ports=[(p.protocol, p.port) for p in settings.service_ports],
                service_allowed_cidrs=settings.service_allowed_cidrs,
            ),
            opts=child,
        )
        self.vip_port = VipPort(
            f"{name}-vip",
            VipPortArgs(
                network_id=self.network.network_id,
                subnet_id=self.network.subnet_id,
                vip_address=settings.vip_address,
                security_group_ids=[self.security.node_group.id],
                floating_ip_pool=settings.network.external_network_name if settings.vip_floating_ip else None,
                depends_on=self.network.ready,
            ),
            opts=child,
        )
        self.jumphost = Jumphost(
            settings.jumphost_name,
            JumphostArgs(
                name=settings.jumphost_name,
                network_id=self.network.network_id,
                subnet_id=self.network.subnet_id,
                security_group_id=self.security.jumphost_group.id,
                image_id=cloud.image_id,
                flavor_name=settings.flavor_name,
                key_pair_name=settings.key_pair_name,
                external_network_name=settings.network.external_network_name,
                depends_on=self.network.ready,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.vip_port]),
        )
        self.nodes = KeepalivedNodes(
            f"{name}-nodes",
            KeepalivedNodesArgs(
                settings=settings,
                network_id=self.network.network_id,
                subnet_id=self.network.subnet_id,
                subnet_cidr=cloud.subnet.cidr,
                security_group_id=self.security.node_group.id,
                image_id=cloud.image_id,
                jumphost_address=self.jumphost.floating_ip_address,
                serving_nodes=cloud.serving_nodes,
            ),
            # The VIP port first, so Neutron never hands its address to a node port.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.vip_port]),
        )
        self.outputs = self._outputs()
        self.register_outputs(self.outputs)

    def _outputs(self) -> dict[str, Any]:
        """The contract other stacks rely on (see the README)."""
        return {
            "vipAddress": self.settings.vip_address,
            "vipPortId": self.vip_port.port_id,
            # None unless vipFloatingIp is true.
            "vipFloatingIp": self.vip_port.floating_ip_address,
            "networkId": self.network.network_id,
            "subnetId": self.network.subnet_id,
            "nodeSecurityGroupId": self.security.node_group.id,
            "jumphostFloatingIp": self.jumphost.floating_ip_address,
            "jumphostName": self.settings.jumphost_name,
            "nodes": self.nodes.nodes_output,
        }

"""The keepalived nodes: one port each that may carry the VIP, one instance
each that configures itself at boot from cloud-init user data, and one gate
each that makes changes roll out one node at a time (see rollout.py)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_openstack as openstack
from pydantic import SecretStr

from .rendering import KeepalivedConfig, VrrpGroup, plan_keepalived, render_keepalived_conf, render_user_data
from .rollout import NodeInService, NodeInServiceArgs, config_fingerprint, fixed_wait_warning, rollout_order
from .settings import NodeSettings
from .vip_port import stack_tag

# Every input whose change would otherwise rebuild or resize the instance in
# place, all nodes at once: as a replacement it goes through the rollout.
ROLLED_OUT_INPUTS = ["imageId", "flavorId", "flavorName"]


def _config_of(node_name: str, configs: dict[str, KeepalivedConfig]) -> KeepalivedConfig:
    return configs[node_name]


def _node_output(node: NodeSettings, values: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": node.name,
        "instanceId": values["instance_id"],
        "portId": values["port_id"],
        "ipAddress": values["ip_address"],
        "priority": node.priority,
    }


def node_port_name(node_name: str) -> str:
    return f"{node_name}-port"


@dataclass
class KeepalivedNodesArgs:
    # The nodes, the VIP, and how their keepalived runs VRRP.
    vrrp: VrrpGroup
    vrrp_password: SecretStr
    flavor_name: str
    key_pair_name: str | None
    server_group_policy: str
    # How a rollout learns that a replaced node is in service (Settings.rollout_uses_ssh):
    # over SSH as ssh_user, or after a fixed wait.
    rollout_uses_ssh: bool
    rollout_timeout_seconds: int
    rollout_fixed_wait_seconds: int
    ssh_user: str
    # A first deployment's gates wait for the VIP served (waitForService).
    wait_for_service: bool
    network_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    subnet_cidr: str
    security_group_id: pulumi.Input[str]
    # imageName as resolved before the update.
    image_id: str
    # Where the rollout reaches the nodes from (the jumphost's floating IP);
    # None without a jumphost: rollouts then wait a fixed time.
    jumphost_address: pulumi.Input[str] | None
    # Nodes already running: changes roll out one at a time. None running (a
    # first deployment): the nodes are created side by side.
    serving_nodes: Sequence[str] = field(default_factory=tuple)
    # The port that reserves the VIP. Deleted in the same run as a gate (a
    # destroy, or a new VIP address), the VIP goes away: the gate's drain
    # would protect nothing, and the engine skips it.
    vip_port: pulumi.Resource | None = None


class KeepalivedNodes(pulumi.ComponentResource):
    node_ports: dict[str, openstack.networking.Port]
    instances: dict[str, openstack.compute.Instance]
    # Node name -> rendered cloud-config, a secret: it holds the VRRP password.
    user_data: dict[str, pulumi.Output[str]]
    # Node name -> its gate in the rollout.
    in_service: dict[str, NodeInService]

    def __init__(self, name: str, args: KeepalivedNodesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("keepalived-vip:openstack:KeepalivedNodes", name, None, opts)
        vrrp = args.vrrp
        # Without a jumphost nothing reaches the nodes: the rollout waits a fixed time.
        rollout_check = "ssh" if args.rollout_uses_ssh and args.jumphost_address is not None else "fixed-wait"
        child = pulumi.ResourceOptions(parent=self)
        if rollout_check == "fixed-wait":
            pulumi.log.warn(fixed_wait_warning(args.rollout_fixed_wait_seconds), resource=self)

        def named(key: str) -> tuple[str, pulumi.ResourceOptions]:
            """A child's logical name: this component's name and a stable key.
            Children were once named by the key alone: the alias keeps
            existing stacks' resources."""
            return f"{name}-{key}", pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(name=key)])

        # One hypervisor failure must not take every node, or the VIP has
        # nowhere to go.
        self.server_group = openstack.compute.ServerGroup(
            f"{name}-server-group", name=name, policies=args.server_group_policy, opts=child
        )

        self.node_ports = {}
        for node in vrrp.nodes:
            port_name, port_opts = named(node_port_name(node.name))
            self.node_ports[node.name] = openstack.networking.Port(
                port_name,
                name=node_port_name(node.name),
                network_id=args.network_id,
                fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=args.subnet_id, ip_address=node.ip_address)],
                security_group_ids=[args.security_group_id],
                # Allowed-address-pairs need port security; with it off Neutron
                # refuses them.
                port_security_enabled=True,
                tags=[stack_tag()],
                # Exactly the VIP, not the procedure's /24: IP source guard
                # must keep a node from speaking for the whole subnet.
                allowed_address_pairs=[openstack.networking.PortAllowedAddressPairArgs(ip_address=vrrp.vip_address)],
                opts=port_opts,
            )
        self.node_addresses: dict[str, pulumi.Output[str]] = {
            node_name: port.all_fixed_ips.apply(lambda ips: ips[0]) for node_name, port in self.node_ports.items()
        }

        names = [node.name for node in vrrp.nodes]
        addresses = pulumi.Output.all(*(self.node_addresses[n] for n in names))
        node_ports = [pulumi.Output.all(self.node_addresses[n], self.node_ports[n].id) for n in names]
        password = pulumi.Output.secret(args.vrrp_password.get_secret_value())
        keepalived_configs = pulumi.Output.all(addresses, password).apply(
            lambda pair: dict(zip(names, plan_keepalived(vrrp, dict(zip(names, pair[0])), args.subnet_cidr, pair[1])))
        )
        self.user_data = {}
        self.instances = {}
        self.in_service = {}
        rolling = bool(args.serving_nodes)
        previous: NodeInService | None = None
        for node in rollout_order(vrrp.nodes):
            config = keepalived_configs.apply(functools.partial(_config_of, node.name))
            # Output.secret again, though the password already makes it one:
            # the user data must stay secret even if its inputs change.
            self.user_data[node.name] = pulumi.Output.secret(config.apply(render_user_data))
            instance_name, instance_opts = named(node.name)
            self.instances[node.name] = openstack.compute.Instance(
                instance_name,
                name=node.name,
                image_id=args.image_id,
                flavor_name=args.flavor_name,
                key_pair=args.key_pair_name,
                networks=[openstack.compute.InstanceNetworkArgs(port=self.node_ports[node.name].id)],
                scheduler_hints=[openstack.compute.InstanceSchedulerHintArgs(group=self.server_group.id)],
                user_data=self.user_data[node.name],
                opts=pulumi.ResourceOptions.merge(
                    instance_opts,
                    pulumi.ResourceOptions(
                        # The replacement boots on the same port, which can belong
                        # to one instance at a time: the old one must go first.
                        delete_before_replace=True,
                        replace_on_changes=ROLLED_OUT_INPUTS,
                        # Not before the node ahead of it in the rollout is back
                        # in service; on a first deployment nothing serves the VIP
                        # yet, and the nodes are created side by side.
                        depends_on=[previous] if rolling and previous is not None else [],
                    ),
                ),
            )
            peers = [self.node_addresses[other] for other in names if other != node.name]
            gate_name, gate_opts = named(f"{node.name}-in-service")
            previous = self.in_service[node.name] = NodeInService(
                gate_name,
                NodeInServiceArgs(
                    node_name=node.name,
                    instance_id=self.instances[node.name].id,
                    address=self.node_addresses[node.name],
                    peers=peers,
                    node_ports=node_ports,
                    vip=vrrp.vip_address,
                    jumphost=args.jumphost_address,
                    ssh_user=args.ssh_user,
                    check=rollout_check,
                    timeout_seconds=args.rollout_timeout_seconds,
                    fixed_wait_seconds=args.rollout_fixed_wait_seconds,
                    wait="node" if rolling else "group" if args.wait_for_service else "none",
                    settle_seconds=round(vrrp.master_down_interval(node.priority), 3),
                    config_sha256=config.apply(lambda c: config_fingerprint(render_keepalived_conf(c))),
                ),
                opts=pulumi.ResourceOptions.merge(gate_opts, pulumi.ResourceOptions(deleted_with=args.vip_port)),
            )

        self.nodes_output = pulumi.Output.all(
            *(
                pulumi.Output.all(
                    instance_id=self.instances[node.name].id,
                    port_id=self.node_ports[node.name].id,
                    ip_address=self.node_addresses[node.name],
                ).apply(functools.partial(_node_output, node))
                for node in vrrp.nodes
            )
        )
        self.register_outputs({"nodes": self.nodes_output})

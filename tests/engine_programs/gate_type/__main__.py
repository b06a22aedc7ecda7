"""One node's rollout gate, under its component, as each release declared it
(config `release`):

- before-components-as-library: named by its node alone, of the SDK's
  generic dynamic type;
- before-gate-type: named by its component too, still of the generic type;
- now: vip_stack's NodeInService, of its own type, with the aliases it and
  the components give it.

The gate is the product's own, provider included (the engine's provider
process unpickles vip_stack.rollout.NodeInServiceProvider); it neither waits
nor drains (check fixed-wait, wait none), so it needs no cloud."""

import pulumi
import pulumi.dynamic

from vip_stack.rollout import NodeInService, NodeInServiceArgs, NodeInServiceProvider

COMPONENT_TYPE = "keepalived-vip:openstack:KeepalivedNodes"
COMPONENT_NAME = "keepalived-vip-nodes"
NODE = "kld-vm-1"
ARGS = NodeInServiceArgs(
    node_name=NODE,
    instance_id="i-1",
    address="192.168.0.11",
    peers=["192.168.0.22"],
    node_ports=[["192.168.0.11", "port-1"], ["192.168.0.22", "port-2"]],
    vip="192.168.0.254",
    jumphost=None,
    ssh_user="ubuntu",
    check="fixed-wait",
    timeout_seconds=900,
    fixed_wait_seconds=0,
    wait="none",
    settle_seconds=3.53,
    config_sha256="0" * 64,
)


class GenericGate(pulumi.dynamic.Resource):
    """The gate as the releases before its own type declared it: a subclass
    with the SDK's default type, the same provider and the same inputs."""

    def __init__(self, name: str, args: NodeInServiceArgs, opts: pulumi.ResourceOptions):
        props = {
            "nodeName": args.node_name,
            "instanceId": args.instance_id,
            "address": args.address,
            "peers": args.peers,
            "vip": args.vip,
            "jumphost": args.jumphost,
            "sshUser": args.ssh_user,
            "check": args.check,
            "timeoutSeconds": args.timeout_seconds,
            "fixedWaitSeconds": args.fixed_wait_seconds,
            # As those releases had it: a boolean, and no nodePorts.
            "wait": False,
            "settleSeconds": args.settle_seconds,
            "configSha256": pulumi.Output.secret(args.config_sha256),
        }
        opts = pulumi.ResourceOptions.merge(
            opts,
            pulumi.ResourceOptions(
                additional_secret_outputs=["configSha256"],
                custom_timeouts=pulumi.CustomTimeouts(create=f"{args.timeout_seconds + 600}s"),
            ),
        )
        super().__init__(NodeInServiceProvider(), name, props, opts)


release = pulumi.Config().require("release")
component = pulumi.ComponentResource(COMPONENT_TYPE, COMPONENT_NAME)
if release == "before-components-as-library":
    gate: pulumi.CustomResource = GenericGate(f"{NODE}-in-service", ARGS, pulumi.ResourceOptions(parent=component))
elif release == "before-gate-type":
    gate = GenericGate(
        f"{COMPONENT_NAME}-{NODE}-in-service",
        ARGS,
        pulumi.ResourceOptions(parent=component, aliases=[pulumi.Alias(name=f"{NODE}-in-service")]),
    )
elif release == "now":
    # As vip_stack.nodes declares it.
    gate = NodeInService(
        f"{COMPONENT_NAME}-{NODE}-in-service",
        ARGS,
        pulumi.ResourceOptions(parent=component, aliases=[pulumi.Alias(name=f"{NODE}-in-service")]),
    )
else:
    raise ValueError(f"unknown release {release!r}")
pulumi.export("gateId", gate.id)

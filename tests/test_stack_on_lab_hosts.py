"""The stack's steps that need many fast boots, on the local cloud whose
instances are lab hosts (make cloud, COMPUTE=namespace): a rolling update of
priorities and a notify command, a rollout that stops and resumes, a stack
reference, a user's existing network. The real Pulumi CLI and OpenStack
provider (make engine), in the order a user goes, on a fresh local backend;
each test builds on the ones before it, and the module's fixture destroys
whatever is left if a step fails. The life cycle on virtual machines is
tests/test_lifecycle.py."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.local_stack import (
    PASSWORD,
    STACK,
    STACK_FILE,
    THIS_MACHINE,
    assert_gone,
    assert_no_instance_left_on_the_machine,
    assert_one_node_at_a_time,
    config_set,
    destroy_leaving_nothing,
    journey_on,
    replaced_in_order,
    roll_out,
    stack_resources,
    start_stack,
    timed,
)
from tests.real_engine import PROJECT_DIR
from tests.test_program import OUTPUT_KEYS
from vip_lab.drills import HANDOVER_GAP_BOUND_S

# The real engine (make engine) against the local cloud (make cloud).
pytestmark = [pytest.mark.engine, pytest.mark.cloud]

# The outputs README.md documents; vipFloatingIp is null without a public
# VIP, and the engine keeps no null output.
OUTPUTS = OUTPUT_KEYS - {"vipFloatingIp"}
HEALTH_CHECK_THAT_FAILS = {"command": "false", "interval": 1, "fall": 1, "rise": 1}


@pytest.fixture(scope="module")
def journey(local_cloud, engine_home, tmp_path_factory):
    with journey_on(local_cloud, engine_home, tmp_path_factory.mktemp("lab-host-stack")) as found:
        yield found


def test_a_user_sets_the_stack_up_from_the_local_stack_file(journey):
    config = start_stack(journey)
    assert config["keepalived-vip:flavorName"]["value"] == "m1.small"
    assert config["keepalived-vip:imageName"]["value"] == "debian-12"
    assert config["keepalived-vip:sshUser"]["value"] == "debian"
    assert json.loads(config["keepalived-vip:sshAllowedCidrs"]["value"]) == [f"{THIS_MACHINE}/32"]
    assert config["keepalived-vip:vrrpPassword"]["secret"] is True


def test_preview_then_up_create_every_resource_with_the_documented_outputs(journey, local_cloud):
    stack = journey.stack
    preview = stack.run("preview")
    assert "to create" in preview and "error" not in preview.lower(), preview
    first_up = timed(lambda: stack.up(event_log=journey.user.root / "up.jsonl"))
    print(f"figure: first pulumi up {first_up.seconds} s")
    outputs = journey.outputs = stack.outputs()
    assert set(outputs) == OUTPUTS
    assert outputs["vipAddress"] == "192.168.0.254"
    assert [(n["name"], n["priority"]) for n in outputs["nodes"]] == [("kld-vm-1", 120), ("kld-vm-2", 90)]
    admin = local_cloud.admin()
    for node in outputs["nodes"]:
        server = admin.compute.get_server(node["instanceId"])
        assert server.status == "ACTIVE", server.fault
        port = admin.network.get_port(node["portId"])
        assert port.status == "ACTIVE" and port.binding_vif_type == "ovs"
        assert [pair["ip_address"] for pair in port.allowed_address_pairs] == [outputs["vipAddress"]]
        journey.instance_ids.add(node["instanceId"])
    vip_port = admin.network.get_port(outputs["vipPortId"])
    assert vip_port.is_admin_state_up is False and not vip_port.device_id


def test_the_tutorials_check_passes_through_the_jumphosts_floating_ip(journey):
    result = journey.user.check(journey.stack, "--failover")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the jumphost's pings resumed" in result.stdout, "a stopped master handed the VIP over"
    assert "holds the VIP" in result.stdout and "all checks passed" in result.stdout


def test_a_second_run_changes_nothing(journey):
    journey.stack.run("preview", "--expect-no-changes")
    journey.stack.run("refresh", "--yes", "--expect-no-changes")


def test_a_rolling_update_replaces_one_node_at_a_time_while_the_vip_answers(journey):
    """New priorities and a notify command (the life cycle on virtual
    machines rolls out a new password)."""
    stack = journey.stack
    for key, value in {"nodes[0].priority": 110, "nodes[1].priority": 100}.items():
        stack.run("config", "set", "--path", "--type", "int", key, str(value))
    config_set(stack, "notifyCommand", 'echo "$1" >> /var/tmp/vrrp-states')
    log = journey.user.root / "rollout.jsonl"
    rollout = roll_out(journey.user, stack, log)
    print(f"figure: rollout {rollout.seconds} s, longest ping gap {rollout.pings.longest_gap:.3f} s")
    # Lowest priority first: kld-vm-2 (90, then 100), the master last.
    assert_one_node_at_a_time(replaced_in_order(log), ["kld-vm-2", "kld-vm-1"])
    # The master handed the VIP over before it stopped: the clients do not notice.
    assert rollout.pings.longest_gap <= HANDOVER_GAP_BOUND_S, rollout.pings
    journey.outputs = stack.outputs()
    # Exactly one: which one depends on whether kld-vm-1, back in service as
    # BACKUP, has already taken the VIP back by preemption.
    holders = journey.user.holders(journey.outputs)
    assert len(holders) == 1, f"the VIP is held by {holders or 'no node'}"
    new_ids = {n["instanceId"] for n in journey.outputs["nodes"]}
    assert not new_ids & journey.instance_ids, "every node was replaced"
    journey.instance_ids |= new_ids


def test_a_rollout_that_cannot_bring_a_node_into_service_stops_and_resumes_once_fixed(journey):
    stack = journey.stack
    before = {n["name"]: n["instanceId"] for n in journey.outputs["nodes"]}
    for key, value in HEALTH_CHECK_THAT_FAILS.items():
        # With --path the CLI guesses a type from the text ("false" is a
        # boolean), so each is said.
        kind = "int" if isinstance(value, int) else "string"
        stack.run("config", "set", "--path", "--type", kind, f"healthCheck.{key}", str(value))
    config_set(stack, "rolloutTimeoutSeconds", 60)
    rollout = roll_out(journey.user, stack, journey.user.root / "stopped.jsonl", check=False)
    assert rollout.returncode != 0, "pulumi up exited 0 though kld-vm-2 never came back in service"
    assert "kld-vm-2 (" in rollout.output and "is not back in service" in rollout.output, rollout.output[-3000:]
    assert rollout.pings.longest_gap < 1.0, "the VIP kept answering"
    admin_view = {
        server.name: server.id for server in journey.user.connect("local").compute.servers() if server.name in before
    }
    assert admin_view["kld-vm-1"] == before["kld-vm-1"], "the master was not touched"
    stack.run("config", "rm", "healthCheck")
    stack.run("config", "rm", "rolloutTimeoutSeconds")
    stack.up(event_log=journey.user.root / "fixed.jsonl")
    journey.outputs = stack.outputs()
    journey.instance_ids |= {n["instanceId"] for n in journey.outputs["nodes"]}
    result = journey.user.check(stack)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_outputs_consumer_reads_the_stack_through_a_stack_reference(journey, local_cloud):
    consumer = journey.user.project(PROJECT_DIR / "examples" / "consumer", "consumer")
    consumer.run("stack", "init", "dev")
    consumer.run("config", "set", "vipStack", f"organization/keepalived-vip/{STACK}")
    consumer.run("config", "set", "clientCidr", "203.0.113.0/24")
    try:
        consumer.up()
        outputs = consumer.outputs()
        assert outputs["vipServiceAddress"] == journey.outputs["vipAddress"]
        rule = local_cloud.admin().network.get_security_group_rule(outputs["serviceRuleId"])
        assert rule.security_group_id == journey.outputs["nodeSecurityGroupId"]
        assert (rule.protocol, rule.port_range_min, rule.remote_ip_prefix) == ("tcp", 443, "203.0.113.0/24")
    finally:
        consumer.run("destroy", "--yes", "--skip-preview", check=False)
        consumer.run("stack", "rm", "--yes", "dev", check=False)


def test_destroy_leaves_nothing_of_the_stack(journey, local_cloud):
    assert len([r for r in stack_resources(journey.stack) if r[0].endswith("Instance")]) == 3
    destroyed = destroy_leaving_nothing(journey, local_cloud)
    print(f"figure: pulumi destroy {destroyed.seconds} s")
    journey.stack.run("stack", "rm", "--yes", STACK)


def comparable(resource) -> dict:
    """What a user's network is in Neutron: all but openstacksdk's own note
    of where it was read from. The stack tags only its own ports, so even
    the user's tags and revision must be as they were."""
    ignored = {"location"}
    return {key: value for key, value in resource.to_dict().items() if key not in ignored}


@pytest.fixture
def existing_network(journey):
    """A user's network made beforehand: network, subnet, router to ext-net."""
    demo = journey.user.connect("local")
    network = demo.network.create_network(name="t19-existing-net")
    subnet = demo.network.create_subnet(
        name="t19-existing-subnet", network_id=network.id, ip_version=4, cidr="10.19.0.0/24"
    )
    external = demo.network.find_network("ext-net")
    router = demo.network.create_router(name="t19-existing-router", external_gateway_info={"network_id": external.id})
    demo.network.add_interface_to_router(router, subnet=subnet.id)
    try:
        yield demo, network, subnet, router
    finally:
        demo.network.remove_interface_from_router(router, subnet=subnet.id)
        demo.network.delete_router(router)
        demo.network.delete_subnet(subnet)
        demo.network.delete_network(network)


def test_an_existing_network_is_used_and_left_exactly_as_it_was(journey, existing_network, local_cloud):
    demo, network, subnet, router = existing_network

    def snapshot():
        return (
            comparable(demo.network.get_network(network.id)),
            comparable(demo.network.get_subnet(subnet.id)),
            comparable(demo.network.get_router(router.id)),
            sorted(port.id for port in demo.network.ports(network_id=network.id)),
        )

    before = snapshot()
    stack = journey.user.project(PROJECT_DIR, "existing")
    shutil.copy(STACK_FILE, stack.workdir / "Pulumi.existing.yaml")
    stack.run("stack", "init", "existing")
    config_set(stack, "createNetwork", False)
    config_set(stack, "networkName", network.name)
    config_set(stack, "subnetName", subnet.name)
    config_set(stack, "vipAddress", "10.19.0.254")
    config_set(stack, "keyPairName", journey.user.key_pair)
    config_set(stack, "vrrpPassword", PASSWORD, "--secret")
    try:
        stack.up()
        outputs = stack.outputs()
        assert (outputs["networkId"], outputs["subnetId"]) == (network.id, subnet.id)
        result = journey.user.check(stack)
        assert result.returncode == 0, result.stdout + result.stderr
        resources = stack_resources(stack)
        instance_ids = {n["instanceId"] for n in outputs["nodes"]}
        stack.run("destroy", "--yes", "--skip-preview")
        assert_gone(local_cloud, resources)
        assert_no_instance_left_on_the_machine(local_cloud, instance_ids)
        assert snapshot() == before
    finally:
        stack.run("destroy", "--yes", "--skip-preview", check=False)
        stack.run("stack", "rm", "--yes", "existing", check=False)

"""Rollouts: an update that changes the nodes replaces them one at a time,
lowest priority first, each drained before it goes and seen back in service
before the next is touched. The program's side under mocks, the gate's logic
against a stand-in node; the lab's rollout drill runs it on real keepalived."""

import base64
import pickle
import pickletools
import subprocess
from typing import Any

import pytest
from pulumi.runtime import rpc

from vip_lab.fake_openstack import unwrap
from vip_stack.remote import RemoteError
from vip_stack.rendering import HANDOVER_PATH, KEEPALIVED_CONF_PATH
from vip_stack.rollout import (
    DRAIN_COMMAND,
    HANDOVER_AT_REST,
    HANDOVER_FAULT,
    HANDOVER_LOWER,
    HANDOVER_RAISE,
    INSTANCE_ID_COMMAND,
    POLL_SECONDS,
    PROBE_COMMAND,
    NodeInServiceProvider,
    NodeNotInService,
    announce_command,
    config_fingerprint,
    drain_node,
    drain_view_command,
    handover_command,
    holds_vip_command,
    parse_probe,
    rollout_order,
    wait_in_service,
    wait_released_command,
    wait_vip_held_once,
)
from vip_stack.settings import InvalidConfig, NodeSettings, parse_settings

from .harness import EXAMPLE_CONFIG, FakeCloud, run_program
from .test_program import keepalived_conf_of

SSH_CONFIG = {**EXAMPLE_CONFIG, "keyPairName": "ops"}
CONF_SHA = config_fingerprint("vrrp_instance VI_254 { ... }\n")


def rerun_cloud() -> FakeCloud:
    """The cloud as a second `pulumi up` finds it: both nodes running."""
    cloud = FakeCloud.with_external_network()
    cloud.add_running_node("kld-vm-1")
    cloud.add_running_node("kld-vm-2")
    return cloud


def gates(deployment):
    return deployment.gates()


# --- the program ----------------------------------------------------------------


def test_the_lowest_priority_goes_first_and_the_master_last():
    nodes = [
        NodeSettings(name="a", priority=120),
        NodeSettings(name="b", priority=60),
        NodeSettings(name="c", priority=90),
    ]
    assert [n.name for n in rollout_order(nodes)] == ["b", "c", "a"]


def test_an_update_replaces_the_master_only_once_the_backup_is_back_in_service():
    deployment = run_program(SSH_CONFIG, rerun_cloud())
    gate = gates(deployment)
    master, backup = deployment.called("kld-vm-1", "Instance"), deployment.called("kld-vm-2", "Instance")
    assert gate["kld-vm-2"].urn in master.dependencies, "kld-vm-1 waits for kld-vm-2 to be in service"
    assert not {g.urn for g in gate.values()} & set(backup.dependencies), "the first node waits for nobody"
    for name, instance in (("kld-vm-1", master), ("kld-vm-2", backup)):
        assert gate[name].input("instanceId") == instance.id, "the gate is replaced (drained) with its instance"
        assert gate[name].input("wait") == "node"
        assert gate[name].input("check") == "ssh"
        assert gate[name].input("jumphost") == deployment.outputs["jumphostFloatingIp"]
        priority = {"kld-vm-1": 120, "kld-vm-2": 90}[name]
        assert gate[name].input("settleSeconds") == pytest.approx(3 + (256 - priority) / 256, abs=1e-3)
        assert instance.delete_before_replace


def test_destroying_the_vip_deletes_the_nodes_without_draining_them():
    """`pulumi destroy` takes the VIP away: a drain, let alone a handover,
    would protect nobody. The engine skips a gate's delete when the resource
    it is deleted with goes in the same run: the VIP's port, deleted only by
    a destroy or a new VIP address, never by a rollout."""
    deployment = run_program(SSH_CONFIG, rerun_cloud())
    (vip_port,) = [port for port in deployment.of_type("Port") if port.input("adminStateUp") is False]
    for name, gate in gates(deployment).items():
        assert gate.deleted_with == vip_port.urn, name
    for instance in deployment.of_type("Instance"):
        assert not instance.deleted_with, f"{instance.name}: an instance is always deleted for real"


def test_a_first_deployment_creates_the_nodes_side_by_side_and_waits_for_the_vip_served():
    deployment = run_program(SSH_CONFIG)
    gate_urns = {g.urn for g in gates(deployment).values()}
    for instance in deployment.of_type("Instance"):
        assert not gate_urns & set(instance.dependencies), f"{instance.name} waits for another node"
    for gate in gates(deployment).values():
        assert not gate_urns & set(gate.dependencies), "the gates wait side by side"
        assert gate.input("wait") == "group", "pulumi up returns once the VIP is served"


def test_a_first_deployment_can_return_as_soon_as_the_instances_are_active():
    deployment = run_program({**SSH_CONFIG, "waitForService": False})
    assert all(g.input("wait") == "none" for g in gates(deployment).values())


def test_the_gate_knows_the_new_configuration_only_as_a_secret():
    deployment = run_program(SSH_CONFIG, rerun_cloud())
    for name, gate in gates(deployment).items():
        assert gate.is_secret("configSha256")
        assert "configSha256" in gate.additional_secret_outputs
        assert gate.input("configSha256") == config_fingerprint(keepalived_conf_of(deployment, name)["content"])
        peers = gate.input("peers")
        assert gate.input("address") not in peers and len(peers) == 1
        # Where each node's console, and so its host key, is found: its port.
        ports = {node: deployment.called(f"{node}-port", "Port") for node in ("kld-vm-1", "kld-vm-2")}
        assert sorted(gate.input("nodePorts")) == sorted(
            [unwrap(port.outputs["allFixedIps"])[0], port.id] for port in ports.values()
        )


# What the SDK's dill pickle of the provider is today: 61 bytes, 84 in base64.
# A class pickled by value (its code) is thousands; this bound leaves room for
# a longer module path, never for code or data.
PICKLED_PROVIDER_BOUND = 256


def test_every_gate_names_its_provider_by_reference_and_holds_no_secret_in_it():
    """What each gate keeps in the state as `__provider`, the SDK's pickle of
    NodeInServiceProvider: a reference to the class, which the engine's
    provider process imports (vip_stack.rollout must keep it, by that name),
    no code and nothing of the stack's settings."""
    password = "Pw5-XyZq"
    deployment = run_program({**SSH_CONFIG, "vrrpPassword": password}, rerun_cloud())
    for name, gate in gates(deployment).items():
        serialized = gate.input("__provider")
        assert gate.is_secret("__provider"), "the SDK keeps it as a secret whatever it holds"
        assert len(serialized) <= PICKLED_PROVIDER_BOUND, f"{name}: {len(serialized)} characters"
        pickled = base64.b64decode(serialized)
        opcodes = [(op.name, arg) for op, arg, _ in pickletools.genops(pickled)]
        texts = [arg for op, arg in opcodes if "UNICODE" in op]
        assert texts == ["vip_stack.rollout", "NodeInServiceProvider"], f"{name} pickles more than a reference: {texts}"
        assert ("STACK_GLOBAL", None) in opcodes
        assert not [op for op, _ in opcodes if op in ("BUILD", "REDUCE")], "no state, no call beyond the class"
        assert password.encode() not in pickled
        assert gate.input("configSha256").encode() not in pickled
        assert type(pickle.loads(pickled)) is NodeInServiceProvider


def test_image_and_flavor_changes_are_replacements_never_rebuilds_in_place():
    cloud = rerun_cloud()
    cloud.images["Ubuntu-22.04"] = "image-ubuntu-2204-v2"  # Glance got a new image under the name
    deployment = run_program(SSH_CONFIG, cloud)
    for instance in [deployment.called("kld-vm-1", "Instance"), deployment.called("kld-vm-2", "Instance")]:
        assert instance.input("imageId") == "image-ubuntu-2204-v2"
        assert {"imageId", "flavorId", "flavorName"} <= set(instance.replace_on_changes)


def test_a_missing_image_fails_naming_the_key_before_anything_is_declared():
    deployment = run_program({**SSH_CONFIG, "imageName": "Ubuntu-99.04"}, expect_failure=True)
    assert isinstance(deployment.error, InvalidConfig)
    assert "keepalived-vip:imageName: no image named 'Ubuntu-99.04'" in str(deployment.error)
    assert deployment.resources == []


def test_without_a_key_pair_rollouts_wait_a_fixed_time_and_the_preview_says_what_that_risks():
    deployment = run_program(EXAMPLE_CONFIG, rerun_cloud())
    assert all(g.input("check") == "fixed-wait" for g in gates(deployment).values())
    (warning,) = [w for w in deployment.warnings if "rollouts" in w]
    assert "one at a time, 300 s apart" in warning and "crash" in warning and "keyPairName" in warning
    assert not [w for w in run_program(SSH_CONFIG).warnings if "rollouts" in w]


def test_ssh_checks_need_a_key_pair():
    with pytest.raises(InvalidConfig, match="keepalived-vip:rolloutCheck: ssh needs keyPairName"):
        parse_settings({**EXAMPLE_CONFIG, "rolloutCheck": "ssh"})
    assert not parse_settings({**SSH_CONFIG, "rolloutCheck": "fixed-wait"}).rollout_uses_ssh
    # auto: ssh with a key pair, a fixed wait without one.
    assert parse_settings({**SSH_CONFIG, "rolloutCheck": "auto"}).rollout_uses_ssh
    assert not parse_settings({**EXAMPLE_CONFIG, "rolloutCheck": "auto"}).rollout_uses_ssh


# --- the gate -------------------------------------------------------------------


class StandInNode:
    """Answers the probe as a booting node would: not yet, then in service."""

    def __init__(self, answers, drain_ok=True, holder=None):
        self.answers = list(answers)
        self.commands: list[tuple[str, str]] = []
        self.drain_ok, self.holder = drain_ok, holder

    def run(self, address, host, command, timeout):
        self.commands.append((address, command))
        if command == PROBE_COMMAND:
            answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
            if isinstance(answer, Exception):
                raise answer
            return subprocess.CompletedProcess([], 0, answer, "")
        if command == DRAIN_COMMAND:
            if not self.drain_ok:
                raise RemoteError("cannot reach kld-vm-1 on port 22")
            return subprocess.CompletedProcess([], 0, "", "")
        return subprocess.CompletedProcess([], 0, "announced\n" if address == self.holder else "", "")

    def how_to_look(self, address):
        return f"ssh {address}"


def probe_text(cloud_init="done", keepalived="active", config=CONF_SHA, fresh="yes", vrrp="BACKUP", age=10.0):
    state = f"{vrrp} 1764000000.25" if vrrp else ""
    return (
        f"cloud-init={cloud_init}\nkeepalived={keepalived}\nconfig={config}\nfresh={fresh}\n"
        f"vrrp={state}\nnow={1764000000.25 + age}\n"
    )


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_a_replaced_node_is_in_service_once_booted_configured_and_in_the_vrrp_group():
    node = StandInNode(
        [
            RemoteError("cannot reach kld-vm-2 on port 22"),
            probe_text(cloud_init="running"),
            probe_text(vrrp=""),
            probe_text(),
        ]
    )
    clock = Clock()
    probe = wait_in_service(
        node, "kld-vm-2", "192.168.0.22", CONF_SHA, timeout=600, poll=5, clock=clock, sleep=clock.sleep
    )
    assert probe.vrrp_state == "BACKUP"
    assert clock.now == 15, "asked four times, 5 s apart"


def test_a_new_backup_is_in_service_only_once_it_has_heard_a_master_for_its_master_down_interval():
    """A new node that cannot understand the old ones (another virtualRouterId)
    is BACKUP at first too; draining the old master then would leave the VIP
    unheld until the new node's master down interval ran out."""
    probe = parse_probe(probe_text(vrrp="BACKUP", age=1.5))
    assert probe.vrrp_state == "BACKUP" and probe.vrrp_state_age == pytest.approx(1.5)
    assert probe.problems(CONF_SHA, settle_seconds=3.65) == [
        "it has been BACKUP for 1.5 s, not yet its master down interval (3.65 s) in which it must hear a master"
    ]
    assert parse_probe(probe_text(vrrp="BACKUP", age=4)).problems(CONF_SHA, settle_seconds=3.65) == []
    assert parse_probe(probe_text(vrrp="MASTER", age=0.1)).problems(CONF_SHA, settle_seconds=3.65) == []


@pytest.mark.parametrize(
    "answer, words",
    [
        (probe_text(config="0" * 64), "keepalived.conf is not the one this update rendered"),
        (probe_text(fresh="no"), "keepalived has not started since its configuration was written"),
        (probe_text(keepalived="failed"), "keepalived is failed"),
        (probe_text(vrrp="FAULT"), "its VRRP state is FAULT"),
    ],
)
def test_a_node_that_never_comes_back_stops_the_rollout_naming_it(answer, words):
    clock = Clock()
    with pytest.raises(NodeNotInService) as raised:
        wait_in_service(
            StandInNode([answer]),
            "kld-vm-2",
            "192.168.0.22",
            CONF_SHA,
            timeout=60,
            poll=5,
            clock=clock,
            sleep=clock.sleep,
        )
    message = str(raised.value)
    assert message.startswith("kld-vm-2 (192.168.0.22) is not back in service") and words in message
    assert "not touched" in message and "ssh 192.168.0.22" in message
    assert CONF_SHA not in message, "the fingerprint is derived from the password"
    assert clock.now <= 60


def test_cloud_init_failing_stops_the_wait_at_once():
    clock = Clock()
    with pytest.raises(NodeNotInService, match="cloud-init is error"):
        wait_in_service(
            StandInNode([probe_text(cloud_init="error")]),
            "kld-vm-2",
            "192.168.0.22",
            CONF_SHA,
            timeout=600,
            clock=clock,
            sleep=clock.sleep,
        )
    assert clock.now == 0


class StandInGroup:
    """Nodes of one VRRP group as a drain meets them over SSH: each answers
    the drain's questions from its own state, and VRRP's choice follows the
    handover files: a backup raised above a preempting holder takes the VIP,
    a stopped holder's VIP goes to the highest backup left. `groups`: nodes
    in another group (old and new nodes that cannot hear each other) hold
    the VIP on their own side."""

    def __init__(self, priorities, holders=(), preempt=True, tracks=None, unreachable=(), groups=None, instances=None):
        self.priorities = dict(priorities)
        # The instance at each address, as cloud-init recorded it.
        self.instances = instances or {address: f"instance-at-{address}" for address in self.priorities}
        self.holding = set(holders) or {max(self.priorities, key=lambda address: self.priorities[address])}
        self.preempt, self.unreachable = preempt, set(unreachable)
        self.tracks = set(self.priorities) if tracks is None else set(tracks)
        self.groups = groups or {address: 0 for address in self.priorities}
        self.handover = {address: 0 for address in self.priorities}
        # (address, value) of every write to a handover file, in order.
        self.written: list[tuple[str, int]] = []
        self.running = set(self.priorities)
        self.faulted: set[str] = set()
        self.commands: list[tuple[str, str]] = []

    def effective(self, address):
        raised = self.priorities[address] + (self.handover[address] if address in self.tracks else 0)
        return min(254, max(1, raised))

    def run(self, address, host, command, timeout):
        if address in self.unreachable:
            raise RemoteError(f"cannot reach {host} on port 22")
        self.commands.append((address, command))
        answer = ""
        if command == INSTANCE_ID_COMMAND:
            answer = self.instances[address] + "\n"
        elif command == drain_view_command(VIP):
            state = "MASTER" if address in self.holding else "BACKUP"
            answer = f"vip={'held' if address in self.holding else 'free'}\nvrrp={state}\n"
            answer += f"priority={self.priorities[address]}\n" + ("" if self.preempt else "preempt=no\n")
            answer += "handover=yes\n" if address in self.tracks else ""
        elif command.startswith("printf '%s\\n' ") and HANDOVER_PATH in command:
            self.handover[address] = int(command.split()[2])
            self.written.append((address, self.handover[address]))
            if address in self.tracks and self.handover[address] < -253:
                # FAULT: the VIP goes at once, to the group's best backup if any.
                self.faulted.add(address)
                if address in self.holding:
                    self.holding.discard(address)
                    self.elect(self.groups[address])
            if wait_released_command(VIP, RELEASE_SECONDS) in command:
                answer = "vip=kept\n" if address in self.holding else "vip=released\n"
        elif command == wait_released_command(VIP, RELEASE_SECONDS):
            self.preempt_now(address)
            answer = "vip=kept\n" if address in self.holding else "vip=released\n"
        elif command == DRAIN_COMMAND:
            self.running.discard(address)
            if address in self.holding:
                self.holding.discard(address)
                self.elect(self.groups[address])
        elif command == announce_command(VIP):
            answer = "announced\n" if address in self.holding else ""
        return subprocess.CompletedProcess([], 0, answer, "")

    def backups(self, group):
        return [a for a in self.running - self.holding - self.faulted if self.groups[a] == group]

    def preempt_now(self, holder):
        better = [a for a in self.backups(self.groups[holder]) if self.effective(a) > self.effective(holder)]
        if self.preempt and better:
            self.holding = (self.holding - {holder}) | {max(better, key=self.effective)}

    def elect(self, group):
        if self.backups(group):
            self.holding.add(max(self.backups(group), key=self.effective))

    def how_to_look(self, address):
        return f"ssh {address}"

    def sent(self, command):
        return [address for address, sent in self.commands if sent == command]


VIP = "192.168.0.254"
MASTER, BACKUP, THIRD = "192.168.0.11", "192.168.0.22", "192.168.0.33"
# The drained master's master down interval at advert 1 s.
SETTLE = 3 + (256 - 120) / 256
RELEASE_SECONDS = 2 * SETTLE + 1


def drain(group, address=MASTER, others=(BACKUP,), **options):
    return drain_node(group, "kld-vm-1", address, VIP, list(others), settle_seconds=SETTLE, **options)


def test_a_holder_hands_the_vip_to_its_backup_before_it_stops():
    group = StandInGroup({MASTER: 120, BACKUP: 90})
    notes = drain(group)
    raised, waited, stopped = (
        group.commands.index((BACKUP, handover_command(HANDOVER_RAISE))),
        group.commands.index((MASTER, wait_released_command(VIP, RELEASE_SECONDS))),
        group.commands.index((MASTER, DRAIN_COMMAND)),
    )
    assert raised < waited < stopped, "the backup takes the VIP before the holder stops"
    assert group.holding == {BACKUP}
    assert group.handover == {MASTER: 0, BACKUP: 0}, "the raise is undone once the holder has stopped"
    assert group.commands[-1] == (BACKUP, handover_command(HANDOVER_AT_REST))
    assert not group.sent(announce_command(VIP)), "the new holder announced itself when it took over"
    assert notes == [
        f"{BACKUP}: raised above kld-vm-1 ({MASTER}) to take the VIP over",
        f"kld-vm-1 ({MASTER}): released the VIP to a higher priority",
        f"kld-vm-1 ({MASTER}): keepalived stopped",
    ]


def test_a_drain_leaves_alone_another_instance_at_the_nodes_address():
    """The node's instance was deleted by hand: `pulumi up` creates the new
    one first, and the old gate's drain reaches it at the same address."""
    new, deleted = "5d6f0c8e-3d1b-4a53-9f0e-8c1f2b7a9e01", "0b9c1ba5-6a3e-4c4e-9a59-2f3d1f6f1a11"
    group = StandInGroup({MASTER: 120, BACKUP: 90}, instances={MASTER: new, BACKUP: "b"})
    notes = drain(group, instance_id=deleted)
    assert group.commands == [(MASTER, INSTANCE_ID_COMMAND)], "nothing else is asked of the new instance"
    assert MASTER in group.running and group.holding == {MASTER}
    assert notes == [f"kld-vm-1 ({MASTER}): not drained: the instance there is {new}, not {deleted}, which is gone"]


def test_a_drain_that_cannot_tell_the_instance_drains_as_before():
    """An image booted through the EC2 metadata knows itself as i-0000002a."""
    group = StandInGroup({MASTER: 120, BACKUP: 90}, instances={MASTER: "i-0000002a", BACKUP: "i-0000002b"})
    drain(group, instance_id="0b9c1ba5-6a3e-4c4e-9a59-2f3d1f6f1a11")
    assert group.holding == {BACKUP} and MASTER not in group.running


def test_a_drain_of_the_instance_it_was_made_for_hands_over_as_ever():
    group = StandInGroup({MASTER: 120, BACKUP: 90})
    drain(group, instance_id=f"instance-at-{MASTER}")
    assert group.commands[0] == (MASTER, INSTANCE_ID_COMMAND)
    assert group.holding == {BACKUP} and MASTER not in group.running


def test_with_three_nodes_the_next_priority_takes_the_vip():
    group = StandInGroup({MASTER: 120, BACKUP: 90, THIRD: 60})
    drain(group, others=(THIRD, BACKUP))
    assert (BACKUP, handover_command(HANDOVER_RAISE)) in group.commands
    assert (THIRD, handover_command(HANDOVER_RAISE)) not in group.commands
    assert group.holding == {BACKUP}


def test_without_preemption_the_raised_backup_takes_over_at_the_stop():
    """A backup that does not preempt never takes a live holder's VIP: raised,
    it takes it after the shortest skew VRRP has once the holder sends priority 0."""
    group = StandInGroup({MASTER: 120, BACKUP: 90}, preempt=False)
    drain(group)
    assert not group.sent(wait_released_command(VIP, RELEASE_SECONDS)), "nothing to wait for"
    assert group.commands.index((BACKUP, handover_command(HANDOVER_RAISE))) < group.commands.index(
        (MASTER, DRAIN_COMMAND)
    )
    assert group.holding == {BACKUP} and group.handover[BACKUP] == 0


def test_nodes_that_cannot_hear_each_other_hand_over_by_announcing_around_the_holders_release():
    # A new password: the new node is master of its own group already, and
    # neighbours follow whichever announced last. The holder going away
    # refreshes its announce every few seconds until it stops: put in FAULT
    # first, it releases the VIP at once and cannot announce after the new one.
    group = StandInGroup({MASTER: 120, BACKUP: 90}, holders=[MASTER, BACKUP], groups={MASTER: 0, BACKUP: 1})
    notes = drain(group)
    fault = f"{handover_command(HANDOVER_FAULT)} && {wait_released_command(VIP, RELEASE_SECONDS)}"
    released, stopped = group.commands.index((MASTER, fault)), group.commands.index((MASTER, DRAIN_COMMAND))
    assert group.sent(announce_command(VIP)) == [BACKUP, BACKUP]
    assert group.commands[released - 1] == (BACKUP, announce_command(VIP))
    assert group.commands[released + 1] == (BACKUP, announce_command(VIP))
    assert released + 1 < stopped, "the VIP is announced again as soon as the holder released it"
    assert group.written == [(MASTER, HANDOVER_FAULT)], "nothing to raise: the new node holds the VIP already"
    assert group.holding == {BACKUP}
    assert notes == [
        f"{BACKUP}: holds the VIP and announced it before the drain",
        f"kld-vm-1 ({MASTER}): released the VIP in FAULT",
        f"{BACKUP}: holds the VIP and announced it after the drain",
        f"kld-vm-1 ({MASTER}): keepalived stopped",
    ]


def test_a_holder_without_a_handover_file_is_stopped_between_two_announces():
    """A node from before the handover cannot be put in FAULT: its stop is."""
    group = StandInGroup(
        {MASTER: 120, BACKUP: 90}, holders=[MASTER, BACKUP], groups={MASTER: 0, BACKUP: 1}, tracks=[BACKUP]
    )
    notes = drain(group)
    stopped = group.commands.index((MASTER, DRAIN_COMMAND))
    assert not group.written
    assert group.commands[stopped - 1] == group.commands[stopped + 1] == (BACKUP, announce_command(VIP))
    assert notes == [
        f"{BACKUP}: holds the VIP and announced it before the drain",
        f"kld-vm-1 ({MASTER}): keepalived stopped",
        f"{BACKUP}: holds the VIP and announced it after the drain",
    ]


def test_a_successor_out_of_reach_gets_the_vip_from_the_holder_lowering_itself():
    group = StandInGroup({MASTER: 120, BACKUP: 90}, unreachable=[BACKUP])
    notes = drain(group)
    assert group.commands.index((MASTER, handover_command(HANDOVER_LOWER))) < group.commands.index(
        (MASTER, DRAIN_COMMAND)
    )
    assert group.holding == {BACKUP}, "VRRP's own next priority took it before the stop"
    assert notes[0].startswith(f"{BACKUP}: cannot be reached, no handover to it")
    assert f"kld-vm-1 ({MASTER}): released the VIP to a higher priority" in notes


@pytest.mark.parametrize(
    "case, group",
    [
        ("no preemption", StandInGroup({MASTER: 120, BACKUP: 90}, preempt=False, unreachable=[BACKUP])),
        ("nodes rendered before the handover", StandInGroup({MASTER: 120, BACKUP: 90}, tracks=[])),
    ],
)
def test_with_nothing_to_raise_or_lower_the_drain_is_the_one_before_the_handover(case, group):
    notes = drain(group)
    assert not group.written, case
    assert f"kld-vm-1 ({MASTER}): no node to hand the VIP over to first" in notes
    assert f"kld-vm-1 ({MASTER}): keepalived stopped" in notes


def test_a_backup_is_stopped_with_nothing_handed_over():
    group = StandInGroup({MASTER: 120, BACKUP: 90})
    notes = drain_node(group, "kld-vm-2", BACKUP, VIP, [MASTER], settle_seconds=SETTLE)
    assert [c for _, c in group.commands] == [drain_view_command(VIP), DRAIN_COMMAND]
    assert notes == [f"kld-vm-2 ({BACKUP}): does not hold the VIP", f"kld-vm-2 ({BACKUP}): keepalived stopped"]
    assert group.holding == {MASTER}


def test_the_drain_before_the_handover_is_kept_for_comparison():
    group = StandInGroup({MASTER: 120, BACKUP: 90})
    drain(group, handover=False)
    assert [a for a, _ in group.commands] == [BACKUP, MASTER, BACKUP]
    assert group.holding == {BACKUP}, "after the backup's skew, the holder's stop hands over"


def test_a_handover_that_does_not_take_falls_back_to_the_drain_and_undoes_the_raise():
    """A raised backup that never takes the VIP (it does not hear the holder):
    the drain waits its bound, no longer, and stops the holder as before."""
    group = StandInGroup({MASTER: 120, BACKUP: 90}, groups={MASTER: 0, BACKUP: 1})
    notes = drain(group)
    assert f"kld-vm-1 ({MASTER}): still held the VIP after {RELEASE_SECONDS:.1f} s" in notes
    assert (MASTER, DRAIN_COMMAND) in group.commands and group.handover[BACKUP] == 0


def test_the_wait_for_the_handover_is_bounded_on_the_node_itself():
    command = wait_released_command(VIP, 8.3)
    assert "end=$(($(date +%s) + 9))" in command and "vip=released" in command
    # keepalived adds the file's value to the priority and clamps the sum to 1..254.
    assert all(priority + HANDOVER_RAISE >= 254 for priority in range(1, 255)), "raised above any holder"
    assert all(priority + HANDOVER_LOWER <= 1 for priority in range(1, 255)), "lowered below any backup"
    assert HANDOVER_LOWER >= -253, "below -253 keepalived puts the node in FAULT: a break, not a handover"


class Holders:
    """Nodes answering whether they hold the VIP, one answer per round."""

    def __init__(self, rounds):
        self.rounds = list(rounds)
        self.asked = 0

    def run(self, address, host, command, timeout):
        assert command == holds_vip_command("192.168.0.254")
        held = self.rounds[min(self.asked // 2, len(self.rounds) - 1)]
        self.asked += 1
        if held == "silent":
            raise RemoteError(f"cannot reach {address} on port 22")
        return subprocess.CompletedProcess([], 0, "vip=held\n" if address in held else "vip=free\n", "")

    def how_to_look(self, address):
        return f"ssh {address}"


NODES = ["192.168.0.11", "192.168.0.22"]


def test_a_first_deployment_waits_until_exactly_one_node_holds_the_vip():
    clock = Clock()
    nodes = Holders([[], NODES, ["192.168.0.11"]])
    holder = wait_vip_held_once(nodes, "192.168.0.254", NODES, 60, clock=clock, sleep=clock.sleep)
    assert holder == "192.168.0.11" and clock.now == 2 * POLL_SECONDS


def test_a_vip_nobody_holds_stops_the_first_deployment_saying_so():
    clock = Clock()
    with pytest.raises(NodeNotInService, match=r"192.168.0.254 is not held by exactly one node.*held by nobody"):
        wait_vip_held_once(Holders([[]]), "192.168.0.254", NODES, 30, clock=clock, sleep=clock.sleep)
    assert clock.now <= 30


def test_a_silent_node_is_no_proof_of_a_single_holder():
    clock = Clock()
    with pytest.raises(NodeNotInService, match="no answer from 192.168.0.11"):
        wait_vip_held_once(Holders(["silent"]), "192.168.0.254", NODES, 10, clock=clock, sleep=clock.sleep)


def test_an_unreachable_node_is_deleted_undrained_never_blocking_destroy():
    group = StandInGroup({MASTER: 120, BACKUP: 90}, unreachable=[MASTER])
    notes = drain(group)
    assert notes[-1].startswith(f"kld-vm-1 ({MASTER}): not drained, it goes down as in a crash")


def gate_props(**changes):
    return {
        "nodeName": "kld-vm-2",
        "instanceId": "i-1",
        "address": "192.168.0.22",
        "peers": ["192.168.0.11"],
        "vip": "192.168.0.254",
        "jumphost": "203.0.113.1",
        "sshUser": "ubuntu",
        "check": "ssh",
        "timeoutSeconds": 900,
        "fixedWaitSeconds": 300,
        "wait": "node",
        "settleSeconds": 3.65,
        "configSha256": CONF_SHA,
        **changes,
    }


def test_the_gate_is_replaced_only_with_its_instance():
    provider = NodeInServiceProvider()
    same = provider.diff("kld-vm-2:i-1", gate_props(), gate_props(timeoutSeconds=600))
    assert same.changes and not same.replaces, "a new bound only is recorded, nothing is drained"
    replaced = provider.diff("kld-vm-2:i-1", gate_props(), gate_props(instanceId=rpc.UNKNOWN))
    assert replaced.replaces == ["instanceId"] and replaced.delete_before_replace
    assert not provider.diff("kld-vm-2:i-1", gate_props(), gate_props()).changes


def test_the_run_after_a_first_deployment_changes_no_gate():
    # Found by `pulumi preview --expect-no-changes` on the local cloud: a
    # first deployment's gates wait for the group, the next run's for their
    # own node; that alone is no change to the gate.
    provider = NodeInServiceProvider()
    assert not provider.diff("kld-vm-2:i-1", gate_props(wait="group"), gate_props(wait="node")).changes


def test_the_gate_waits_on_create_and_drains_on_delete(monkeypatch):
    from vip_stack import rollout

    calls: list[tuple[str, Any]] = []

    def record(what):
        def call(*args, **options):
            calls.append((what, args[1:] if what != "sleep" else args[0]))
            if options:
                calls.append((f"{what} options", options))
            return []

        return call

    monkeypatch.setattr(rollout, "wait_in_service", record("wait"))
    monkeypatch.setattr(rollout, "wait_vip_held_once", record("held once"))
    monkeypatch.setattr(rollout, "drain_node", record("drain"))
    monkeypatch.setattr(rollout.time, "sleep", record("sleep"))
    provider = NodeInServiceProvider()

    created = provider.create(gate_props())
    assert created.id == "kld-vm-2:i-1"
    provider.create(gate_props(wait="none"))
    provider.create(gate_props(check="fixed-wait"))
    provider.create(gate_props(check="fixed-wait", wait="group"))
    provider.create(gate_props(wait="group"))
    provider.delete("kld-vm-2:i-1", gate_props())
    provider.delete("kld-vm-2:i-1", gate_props(check="fixed-wait"))
    assert calls[:2] == [("wait", ("kld-vm-2", "192.168.0.22", CONF_SHA, 900.0, 3.65)), ("sleep", 300.0)]
    # A first deployment: the node, then the group, within one bound.
    assert calls[2] == ("wait", ("kld-vm-2", "192.168.0.22", CONF_SHA, 900.0, 3.65))
    assert calls[3][0] == "held once"
    _, (vip, addresses, bound) = calls[3]
    assert vip == "192.168.0.254" and addresses == ["192.168.0.22", "192.168.0.11"] and 890 < bound <= 900
    # The drain waits for a handover within the node's master down interval,
    # and drains only the gate's own instance.
    assert calls[4:] == [
        ("drain", ("kld-vm-2", "192.168.0.22", "192.168.0.254", ["192.168.0.11"])),
        ("drain options", {"settle_seconds": 3.65, "instance_id": "i-1"}),
    ]


def test_the_probe_reads_what_the_node_prints():
    probe = parse_probe(probe_text(vrrp="MASTER"))
    assert probe.problems(CONF_SHA) == [] and probe.vrrp_state == "MASTER"
    assert KEEPALIVED_CONF_PATH in PROBE_COMMAND

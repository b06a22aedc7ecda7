"""A user of the local cloud (make cloud) with the real Pulumi CLI (make
engine): a copy of this project, a file backend, a key pair of their own in
the cloud, an ssh config that takes its key and trusts a new host on first
contact, and what they look at: the check, pings from the jumphost, which
node holds the VIP. Shared by tests/test_lifecycle.py and bench/lifecycle.py."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.real_engine import ENGINE_BIN, PROJECT_DIR, Pulumi, copy_project, steps
from vip_stack.observe import Pinger, PingStats
from vip_stack.remote import Ssh

# The stack file of the README's "Deploying" on the local cloud.
STACK = "local"
STACK_FILE = PROJECT_DIR / f"Pulumi.{STACK}.yaml"
PASSWORD = "k33pal1v"
# cloud-init's last line on an instance's console, with its uptime.
FINAL_MESSAGE = re.compile(r"Cloud-init v\. \S+ finished at .* Up ([\d.]+) seconds")
# This machine's address on ext-net, where SSH is let in from (Pulumi.local.yaml).
THIS_MACHINE = "172.24.4.1"


@dataclass
class LocalUser:
    root: Path
    clouds_yaml: Path
    engine_home: Path
    connect: Any  # name -> openstacksdk Connection
    key_pair: str = field(default_factory=lambda: f"kvip-test-{uuid.uuid4().hex[:8]}")
    processes: list[subprocess.Popen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.backend = self.root / "state"
        self.backend.mkdir(parents=True, exist_ok=True)
        self.key = self.root / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True)
        self.known_hosts = self.root / "known_hosts"
        self.ssh_config = self.root / "ssh_config"
        self.ssh_config.write_text(
            f"Host *\n  IdentityFile {self.key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {self.known_hosts}\n"
        )
        # The user's ssh config reaches every ssh the program runs (the
        # rollout's, in the engine's dynamic provider): OpenSSH reads
        # ~/.ssh/config of the passwd entry, not of $HOME, so this user's
        # `ssh` is one that names its config.
        self.bin = self.root / "bin"
        self.bin.mkdir(exist_ok=True)
        wrapper = self.bin / "ssh"
        wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {shlex.quote(str(self.ssh_config))} "$@"\n')
        wrapper.chmod(0o755)
        self.connect("local").compute.create_keypair(
            name=self.key_pair, public_key=(self.key.with_suffix(".pub")).read_text()
        )

    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.bin}:{ENGINE_BIN}:{PROJECT_DIR / 'venv' / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "OS_CLOUD": "local",
            "OS_CLIENT_CONFIG_FILE": str(self.clouds_yaml),
        }

    def project(self, source: Path, name: str) -> Pulumi:
        """A copy of a project, run with this user's backend and cloud."""
        workdir = copy_project(source, self.root / name)
        return Pulumi(workdir=workdir, home=self.engine_home, backend=self.backend, extra_env=self.env())

    def check(self, stack: Pulumi, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """`pulumi stack output --json --show-secrets | python -m vip_stack.check ...`, as the README says."""
        outputs = stack.run("stack", "output", "--json", "--show-secrets")
        return subprocess.run(
            [sys.executable, "-m", "vip_stack.check", "--ssh-config", str(self.ssh_config), *args],
            input=outputs,
            # The user's credentials: the check reads a new host's key from its console.
            env={**os.environ, **self.env()},
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=PROJECT_DIR,
        )

    def ssh(self, outputs: dict) -> Ssh:
        return Ssh(outputs["jumphostFloatingIp"], user=outputs["sshUser"], config_file=str(self.ssh_config))

    def on_node(self, outputs: dict, name: str, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """A command on a node, through the jumphost, as the user's ssh runs it."""
        node = next(n for n in outputs["nodes"] if n["name"] == name)
        ssh = self.ssh(outputs)
        return ssh.run(ssh.on_node(node["ipAddress"], command), host=name, timeout=timeout)

    def ping_vip(self, outputs: dict, interval: float = 0.02) -> Pinger:
        """The tutorial's ping of the VIP from the jumphost, every `interval` s,
        each reply timestamped here as it arrives."""
        argv = ["sudo", "-n", *Pinger.ping_argv(outputs["vipAddress"], interval)]
        pinger = Pinger(command=self.ssh(outputs).on_jumphost(shlex.join(argv)), track=self._track, interval=interval)
        pinger.start()
        if pinger.wait_for_reply(after=time.monotonic(), timeout=30) is None:
            pinger.stop()
            raise AssertionError(f"the jumphost's ping of the VIP {outputs['vipAddress']} never got a reply")
        return pinger

    def holders(self, outputs: dict, skip: tuple[str, ...] = ()) -> list[str]:
        """The nodes that have the VIP on an interface, asked over SSH (but
        those in skip, which cannot answer)."""
        ssh = self.ssh(outputs)
        found = []
        for node in outputs["nodes"]:
            if node["name"] in skip:
                continue
            result = ssh.run(
                ssh.on_node(
                    node["ipAddress"], f"ip -o -4 addr show | grep -c ' inet {outputs['vipAddress']}/' || true"
                ),
                host=node["name"],
            )
            if result.stdout.strip() not in ("", "0"):
                found.append(node["name"])
        return found

    def _track(self, process: subprocess.Popen) -> subprocess.Popen:
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        try:
            self.connect("local").compute.delete_keypair(self.key_pair, ignore_missing=True)
        except Exception as error:  # noqa: BLE001 - cleanup reports, never hides the test's own failure
            print(f"could not delete the key pair {self.key_pair}: {error}", file=sys.stderr)


@dataclass
class Timed:
    seconds: float
    output: str


def timed(action) -> Timed:
    started = time.monotonic()
    output = action()
    return Timed(round(time.monotonic() - started, 1), output)


@dataclass
class Rollout:
    seconds: float
    pings: PingStats
    output: str
    # pulumi up's exit status.
    returncode: int


def roll_out(
    user: LocalUser, stack: Pulumi, event_log: Path, check: bool = True, timeout: float = 600, interval: float = 0.02
) -> Rollout:
    """`pulumi up` of a change, while the jumphost pings the VIP every `interval` s."""
    pinger = user.ping_vip(stack.outputs(), interval=interval)
    try:
        started = time.monotonic()
        ran = stack.attempt_up(event_log=event_log, timeout=timeout)
        ended = time.monotonic()
        output = ran.checked() if check else ran.output
        # Replies still on their way count to the window.
        time.sleep(0.5)
        return Rollout(round(ended - started, 1), pinger.stats(started, ended), output, ran.returncode)
    finally:
        pinger.stop()


def figures_line(**figures: Any) -> str:
    return json.dumps(figures)


# What the OpenStack resources of a stack are, by their Pulumi type.
OPENSTACK_TYPES = {
    "openstack:compute/instance:Instance": ("compute", "get_server"),
    "openstack:compute/serverGroup:ServerGroup": ("compute", "get_server_group"),
    "openstack:networking/port:Port": ("network", "get_port"),
    "openstack:networking/secGroup:SecGroup": ("network", "get_security_group"),
    "openstack:networking/floatingIp:FloatingIp": ("network", "get_ip"),
    "openstack:networking/router:Router": ("network", "get_router"),
    "openstack:networking/network:Network": ("network", "get_network"),
    "openstack:networking/subnet:Subnet": ("network", "get_subnet"),
}


class Journey:
    """What a life cycle's steps share: the user, their stack, and what they saw."""

    def __init__(self, user: LocalUser, stack: Pulumi):
        self.user, self.stack = user, stack
        self.outputs: dict = {}
        self.instance_ids: set[str] = set()
        # What the project held before the stack: a destroy leaves it so.
        self.project_before: dict[str, set[str]] = {}


@contextmanager
def journey_on(cloud, engine_home: Path, root: Path) -> Iterator[Journey]:
    """A new user with this project and the local stack file, on a fresh
    backend; whatever a failed step leaves is destroyed afterwards."""
    user = LocalUser(root=root, clouds_yaml=cloud.clouds_yaml, engine_home=engine_home, connect=cloud.connect)
    stack = user.project(PROJECT_DIR, "keepalived-vip")
    shutil.copy(STACK_FILE, stack.workdir / STACK_FILE.name)
    try:
        yield Journey(user, stack)
    finally:
        # A step that failed leaves its stack: nothing may outlive the tests.
        listing = stack.run("stack", "ls", "--json", check=False)
        if f'"name": "{STACK}"' in listing:
            # A step that killed `pulumi up` leaves its lock on the stack.
            stack.run("cancel", "--yes", "--stack", STACK, check=False)
            stack.run("destroy", "--yes", "--skip-preview", "--stack", STACK, check=False)
            stack.run("stack", "rm", "--yes", "--force", STACK, check=False)
        user.close()


def config_set(stack: Pulumi, key: str, value, *flags: str) -> None:
    if isinstance(value, bool | int):
        kind = "bool" if isinstance(value, bool) else "int"
        stack.run("config", "set", *flags, "--type", kind, key, str(value).lower())
    else:
        stack.run("config", "set", *flags, key, str(value))


def start_stack(journey: Journey) -> dict:
    """`pulumi stack init` and the two settings the stack file leaves to
    the user; returns the stack's configuration."""
    stack = journey.stack
    journey.project_before = project_inventory(journey.user.connect("local"))
    stack.run("stack", "init", STACK)
    config_set(stack, "keyPairName", journey.user.key_pair)
    config_set(stack, "vrrpPassword", PASSWORD, "--secret")
    return stack.config()


def instance_name(node: str) -> str:
    """The Pulumi name of a node's instance, as the stack declares it."""
    return f"keepalived-vip-nodes-{node}"


def gate_name(node: str) -> str:
    """The Pulumi name of a node's rollout gate (NodeInService)."""
    return f"{instance_name(node)}-in-service"


def replaced_in_order(event_log: Path) -> list[tuple[str, str, str]]:
    """(phase, op, resource) of the steps that replace nodes, as the engine
    ran them: each step's start ("pre") and its end ("done")."""
    return [
        (step.phase, step.op, step.name)
        for step in steps(event_log)
        if step.op in ("delete-replaced", "create-replacement") and "-nodes-kld-vm-" in step.name
    ]


def assert_one_node_at_a_time(order: list[tuple[str, str, str]], nodes_in_order: list[str]) -> None:
    expected = []
    for node in nodes_in_order:
        gate, instance = gate_name(node), instance_name(node)
        # The gate is deleted (the drain) before its instance; the new gate
        # is created (waits until in service) after the new instance. Each
        # step ends before the next starts: the next node's drain starts only
        # once this node's new gate is done, back in service.
        for op, resource in (
            ("delete-replaced", gate),
            ("delete-replaced", instance),
            ("create-replacement", instance),
            ("create-replacement", gate),
        ):
            expected += [("pre", op, resource), ("done", op, resource)]
    assert order == expected


def stack_resources(stack: Pulumi) -> list[tuple[str, str]]:
    state = json.loads(stack.run("stack", "export"))
    return [
        (resource["type"], resource["id"])
        for resource in state["deployment"]["resources"]
        if resource["type"] in OPENSTACK_TYPES and resource.get("id")
    ]


def assert_gone(cloud, resources: list[tuple[str, str]]) -> None:
    import openstack

    admin = cloud.admin()
    left = []
    for kind, resource_id in resources:
        service, getter = OPENSTACK_TYPES[kind]
        try:
            getattr(getattr(admin, service), getter)(resource_id)
            left.append((kind, resource_id))
        except openstack.exceptions.NotFoundException:
            pass
    assert not left, f"left behind: {left}"


def project_inventory(conn) -> dict[str, set[str]]:
    """The ids of everything of these kinds in the project, as its member
    lists them (router interfaces are among the ports): project-wide, not
    only what a stack's state knows of."""
    network, compute = conn.network, conn.compute
    return {
        "servers": {server.id for server in compute.servers()},
        "server groups": {group.id for group in compute.server_groups()},
        "ports": {port.id for port in network.ports()},
        "security groups": {group.id for group in network.security_groups()},
        "security group rules": {rule.id for rule in network.security_group_rules()},
        "floating IPs": {ip.id for ip in network.ips()},
        "routers": {router.id for router in network.routers()},
        "networks": {net.id for net in network.networks()},
        "subnets": {subnet.id for subnet in network.subnets()},
    }


def destroy_leaving_nothing(journey: Journey, cloud) -> Timed:
    """`pulumi destroy`, then nothing of the stack anywhere: none of the ids
    in its state, nothing in the project that was not there before the
    stack, and no instance on this machine, the jumphost's included."""
    resources = stack_resources(journey.stack)
    demo = journey.user.connect("local")
    jumphost = journey.outputs["jumphostName"]
    journey.instance_ids |= {server.id for server in demo.compute.servers() if server.name == jumphost}
    destroyed = timed(lambda: journey.stack.run("destroy", "--yes", "--skip-preview"))
    assert_gone(cloud, resources)
    after = project_inventory(demo)
    left = {kind: sorted(ids - journey.project_before[kind]) for kind, ids in after.items()}
    assert not any(left.values()), f"left in the project: { {kind: ids for kind, ids in left.items() if ids} }"
    assert_no_instance_left_on_the_machine(cloud, journey.instance_ids)
    return destroyed


def assert_no_instance_left_on_the_machine(cloud, instance_ids: set[str]) -> None:
    """Nothing of the instances on this machine: no lab host's namespace, no
    virtual machine's qemu, no instance directory on any compute host."""
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    disks = [cloud.dirs.instances_of(host) for host in cloud.hosts]
    for instance_id in instance_ids:
        assert f"labvm-{instance_id}" not in namespaces, f"the lab host of {instance_id} is still there"
        assert f"uuid {instance_id}" not in processes, f"the qemu of {instance_id} still runs"
        for instances in disks:
            assert not (instances / instance_id).exists(), f"the disk of {instance_id} is still there"

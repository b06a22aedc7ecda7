"""A user of the local cloud (make cloud) with the real Pulumi CLI (make
engine): a copy of this project, a file backend, a key pair of their own in
the cloud, an ssh config that takes its key and trusts a new host on first
contact, and what they look at: the check, pings from the jumphost, which
node holds the VIP. Shared by tests/test_lifecycle.py and bench/lifecycle.py."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.real_engine import ENGINE_BIN, PROJECT_DIR, Pulumi, copy_project
from vip_stack.observe import Pinger, PingStats
from vip_stack.remote import Ssh

# The stack file of the README's "Deploying" on the local cloud.
STACK = "local"
STACK_FILE = PROJECT_DIR / f"Pulumi.{STACK}.yaml"
PASSWORD = "k33pal1v"
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
        return Ssh(outputs["jumphostFloatingIp"], config_file=str(self.ssh_config))

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

    def holders(self, outputs: dict) -> list[str]:
        """The nodes that have the VIP on an interface, asked over SSH."""
        ssh = self.ssh(outputs)
        found = []
        for node in outputs["nodes"]:
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


def roll_out(user: LocalUser, stack: Pulumi, event_log: Path, check: bool = True) -> Rollout:
    """`pulumi up` of a change, while the jumphost pings the VIP every 20 ms."""
    pinger = user.ping_vip(stack.outputs())
    try:
        started = time.monotonic()
        output = stack.up(event_log=event_log, check=check)
        ended = time.monotonic()
        # Replies still on their way count to the window.
        time.sleep(0.5)
        return Rollout(round(ended - started, 1), pinger.stats(started, ended), output)
    finally:
        pinger.stop()


def figures_line(**figures: Any) -> str:
    return json.dumps(figures)

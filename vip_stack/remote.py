"""Reaching the nodes the way a user does: OpenSSH through the jumphost's
floating IP (ProxyJump), with the user's own ssh config and agent.

The rollout uses it to drain a node and to see a replaced one back in service;
the check command (`vip_stack.check`) uses it against a deployment.
"""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .hostkeys import HostKeyVerifier, KnownHosts

# What a node says of its boot and its keepalived, one `key=value` line each:
# the check and the rollout's wait both start from it.
STATUS_PROBE = "; ".join(
    [
        "printf 'cloud-init=%s\\n' \"$(cloud-init status 2>/dev/null | sed -n 's/^status: //p')\"",
        "printf 'keepalived=%s\\n' \"$(systemctl is-active keepalived 2>/dev/null)\"",
    ]
)


class RemoteError(Exception):
    """A problem the user can act on, said in their terms."""


HOST_KEY_PROBLEM = re.compile(
    r"REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed|No \w+ host key is known"
)
# What OpenSSH prints, and what the user should do about it.
SSH_PROBLEMS = (
    (
        HOST_KEY_PROBLEM,
        "the host key of {host} is unknown or has changed (a re-created VM gets a new one): check it, then "
        "remove the old one with `{forget}` and connect once with `{login}` to accept the new key",
    ),
    (
        re.compile(r"Permission denied"),
        "{host} refused the login of {user}: load the key of keyPairName into your agent (`ssh-add`), "
        "and check that sshUser is the image's login user",
    ),
    (
        re.compile(
            r"Connection timed out|No route to host|Connection refused|Network is unreachable|"
            r"Could not resolve|timed out"
        ),
        "cannot reach {host} on port 22: is the stack up, and is your address in sshAllowedCidrs?",
    ),
)


@dataclass
class Ssh:
    jumphost: str
    user: str = "ubuntu"
    config_file: str | None = None
    connect_timeout: int = 10
    # Where host keys are kept: a file the user names, or None for the one
    # their OpenSSH uses (their config's UserKnownHostsFile, ~/.ssh/known_hosts).
    # Keys are checked strictly: OpenSSH never accepts a new one by itself.
    known_hosts_file: str | None = None
    # Trusts a host's key from its console before the first login (a
    # hostkeys.HostKeyVerifier); None: only keys already known are accepted.
    verifier: HostKeyVerifier | None = None
    # A directory for connections kept open between commands (OpenSSH's
    # ControlMaster): a second command to the same node then starts at once
    # instead of after two handshakes. close() ends them.
    reuse_connections_in: str | None = None
    _opened: list[list[str]] = field(default_factory=list, repr=False)
    _known_hosts: KnownHosts | None = field(default=None, repr=False)
    _reached: set[str] = field(default_factory=set, repr=False)

    @property
    def known_hosts(self) -> KnownHosts:
        if self._known_hosts is None:
            from .hostkeys import KnownHosts, users_known_hosts

            self._known_hosts = (
                KnownHosts(Path(self.known_hosts_file), hashed=False)
                if self.known_hosts_file
                else users_known_hosts(self._config(), f"{self.user}@{self.jumphost}")
            )
        return self._known_hosts

    def _config(self) -> list[str]:
        return ["ssh", "-F", self.config_file] if self.config_file else ["ssh"]

    def _options(self) -> list[str]:
        """Options for every connection, the jump's included."""
        known_hosts = ["-o", f"UserKnownHostsFile={self.known_hosts_file}"] if self.known_hosts_file else []
        return known_hosts + [
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={self.connect_timeout}",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
        ]

    def _base(self) -> list[str]:
        argv = self._config()
        if self.reuse_connections_in:
            argv += [
                "-o",
                "ControlMaster=auto",
                "-o",
                f"ControlPath={self.reuse_connections_in}/%C",
                "-o",
                "ControlPersist=120",
            ]
        return argv + self._options()

    def on_jumphost(self, command: str) -> list[str]:
        return self._base() + [f"{self.user}@{self.jumphost}", "--", command]

    def on_node(self, address: str, command: str) -> list[str]:
        # What `ssh -J` does, spelled out: options given with -J would reach
        # the node's connection only, and the jump's must check keys as
        # strictly as the node's.
        jump = shlex.join([*self._config(), *self._options(), "-W", "%h:%p", f"{self.user}@{self.jumphost}"])
        return self._base() + ["-o", f"ProxyCommand={jump}", f"{self.user}@{address}", "--", command]

    def run(
        self, argv: Sequence[str], host: str, timeout: float = 60, address: str | None = None
    ) -> subprocess.CompletedProcess:
        """Runs an ssh argv; `host` names the machine in messages, `address`
        is where it is (the jumphost's when None). With a verifier, the keys
        of the jumphost and of the host are made known from their consoles
        first."""
        if self.verifier is not None:
            # A jumphost nobody can reach says so before its key is looked for.
            self._reachable(f"the jumphost ({self.jumphost})")
            self.verifier.verify(self.jumphost, f"the jumphost ({self.jumphost})")
            if address and address != self.jumphost:
                self.verifier.verify(address, host)
        if self.reuse_connections_in and "--" in argv:
            destination = list(argv[: list(argv).index("--")])
            if destination not in self._opened:
                self._opened.append(destination)
        try:
            result = subprocess.run(
                list(argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired as error:
            raise RemoteError(f"{host} did not answer within {timeout:g} s") from error
        except OSError as error:
            raise RemoteError(f"cannot run ssh: {error}") from error
        if result.returncode == 255:
            raise RemoteError(self.explain(result.stderr, host, address))
        return result

    def explain(self, stderr: str, host: str, address: str | None = None) -> str:
        """What went wrong, in words, with commands that can be copied and run
        as they are (`host` is a label such as "kld-vm-1 (10.0.0.11)")."""
        # Through ProxyJump, a failure may be the jumphost's or the node's.
        address = address or self.jumphost
        if self.verifier is not None and HOST_KEY_PROBLEM.search(stderr):
            # The key was verified from the console before this login: the
            # host answering is not the one that printed it.
            from .hostkeys import refusal

            return refusal(host, address, self.verifier) + (f"\n  ssh said: {stderr.strip().splitlines()[-1]}")
        for pattern, advice in SSH_PROBLEMS:
            if pattern.search(stderr):
                return (
                    advice.format(
                        host=host,
                        user=self.user,
                        forget=self.forget_command(address),
                        login=self.login_command(address),
                    )
                    + f"\n  ssh said: {stderr.strip().splitlines()[-1]}"
                )
        return f"ssh to {host} failed: {stderr.strip() or 'no message'}"

    def _reachable(self, host: str) -> None:
        if self.jumphost in self._reached:
            return
        try:
            socket.create_connection((self.jumphost, 22), timeout=self.connect_timeout).close()
        except OSError as error:
            raise RemoteError(self.explain(f"{error}: Connection timed out", host)) from error
        self._reached.add(self.jumphost)

    def login_command(self, address: str) -> str:
        """The ssh command a user runs to log in to this address by hand."""
        argv = self._config()
        if self.known_hosts_file:
            argv += ["-o", f"UserKnownHostsFile={self.known_hosts_file}"]
        if address != self.jumphost:
            argv += ["-J", f"{self.user}@{self.jumphost}"]
        return shlex.join(argv + [f"{self.user}@{address}"])

    def forget_command(self, address: str) -> str:
        """The command that removes the key known for this address."""
        return self.known_hosts.forget_command(address)

    def close(self) -> None:
        """Ends the connections kept open (reuse_connections_in)."""
        for destination in self._opened:
            subprocess.run(
                [*destination[:-1], "-O", "exit", destination[-1]],
                capture_output=True,
                timeout=10,
                stdin=subprocess.DEVNULL,
            )
        self._opened.clear()

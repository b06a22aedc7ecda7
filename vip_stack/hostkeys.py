"""Host keys verified, never accepted blindly: a VM's key is trusted on first
contact only if it is one the VM printed on its own console at first boot.

cloud-init prints the host keys it made between `-----BEGIN SSH HOST KEY
KEYS-----` and `-----END SSH HOST KEY KEYS-----` on the console (its
keys-to-console module), and the cloud returns that console log to the
project's own credentials (Nova's os-getConsoleOutput). So the key of a new
VM can be checked against a source an attacker on the network cannot write
to, as a careful user does by hand with `openstack console log show`.

Trusted keys go where the user's OpenSSH looks for them (the first
UserKnownHostsFile of their ssh config, ~/.ssh/known_hosts by default), so a
later `ssh -J` by hand verifies the same keys; or into a file the user
names. A key already known for an address is never replaced, except by the
rollout for a node it has just re-created at that address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import pwd
import shlex
import subprocess
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .remote import RemoteError

BEGIN_KEYS = "-----BEGIN SSH HOST KEY KEYS-----"
END_KEYS = "-----END SSH HOST KEY KEYS-----"

# The gates of one `pulumi up` run side by side in one provider process:
# one writer at a time.
_WRITING = threading.Lock()


def console_host_keys(console: str) -> list[str]:
    """The host keys of the last block cloud-init printed, as "type base64"
    (a VM prints the block again at every boot; the last one is current)."""
    blocks = console.split(BEGIN_KEYS)[1:]
    for block in reversed(blocks):
        if END_KEYS not in block:
            continue  # cut off: the console log was read while it was printed
        keys = []
        for line in block.split(END_KEYS)[0].splitlines():
            fields = line.split()
            if len(fields) >= 2 and (fields[0].startswith(("ssh-", "ecdsa-", "sk-"))):
                keys.append(f"{fields[0]} {fields[1]}")
        if keys:
            return keys
    return []


class ConsoleLogs(Protocol):
    def console_output(self, instance_id: str) -> str: ...

    def instance_on_port(self, port_id: str) -> str | None: ...

    def instance_behind_floating_ip(self, address: str) -> str | None: ...


class NovaConsoleLogs:
    """Console logs from Nova with the credentials of the environment
    (OS_CLOUD and clouds.yaml, or an openrc's OS_* variables), as the
    `openstack` CLI and the Pulumi provider find them."""

    def __init__(self) -> None:
        self._connection: Any = None

    def _ask(self, what: str, call):
        # openstacksdk is imported only when the cloud is asked: importing
        # vip_stack stays cheap for the program and the library.
        import keystoneauth1.exceptions
        import openstack
        import openstack.exceptions

        try:
            if self._connection is None:
                self._connection = openstack.connect()
            return call(self._connection)
        except (openstack.exceptions.SDKException, keystoneauth1.exceptions.ClientException) as error:
            raise RemoteError(
                f"could not read {what} from the cloud to verify a host key ({type(error).__name__}: {error}); "
                "are OS_CLOUD or an openrc's OS_* variables set?"
            ) from error

    def console_output(self, instance_id: str) -> str:
        answer = self._ask(
            f"the console log of instance {instance_id}",
            lambda cloud: cloud.compute.get_server_console_output(instance_id),
        )
        return (answer or {}).get("output") or ""

    def instance_on_port(self, port_id: str) -> str | None:
        port = self._ask(f"port {port_id}", lambda cloud: cloud.network.get_port(port_id))
        return port.device_id or None

    def instance_behind_floating_ip(self, address: str) -> str | None:
        ips = self._ask(
            f"the floating IP {address}", lambda cloud: list(cloud.network.ips(floating_ip_address=address))
        )
        port_id = ips[0].port_id if ips else None
        return self.instance_on_port(port_id) if port_id else None


def _hashed(host: str, salt: bytes | None = None) -> str:
    """A known_hosts host field as `HashKnownHosts yes` writes it."""
    salt = salt or os.urandom(20)
    digest = hmac.new(salt, host.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


@dataclass
class KnownHosts:
    """One known_hosts file, read and written as OpenSSH does."""

    path: Path
    hashed: bool = True

    def keys_for(self, host: str) -> set[str]:
        if not self.path.exists():
            return set()
        found = subprocess.run(
            ["ssh-keygen", "-F", host, "-f", str(self.path)], capture_output=True, text=True, check=False
        )
        keys = set()
        for line in found.stdout.splitlines():
            fields = line.split()
            if line.startswith("#") or len(fields) < 3 or fields[0].startswith("@"):
                continue
            keys.add(f"{fields[1]} {fields[2]}")
        return keys

    def trust(self, host: str, keys: Collection[str]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = _hashed(host) if self.hashed else host
        with self.path.open("a") as known:
            known.writelines(f"{name} {key}\n" for key in keys)

    def forget(self, host: str) -> None:
        subprocess.run(["ssh-keygen", "-R", host, "-f", str(self.path)], capture_output=True, check=False)
        Path(f"{self.path}.old").unlink(missing_ok=True)

    def forget_command(self, host: str) -> str:
        return shlex.join(["ssh-keygen", "-f", str(self.path), "-R", host])


def users_known_hosts(ssh_argv: list[str], destination: str) -> KnownHosts:
    """The file the user's OpenSSH keeps host keys in for this destination
    (`ssh -G` resolves their config), and whether it hashes names."""
    resolved = subprocess.run(
        [*ssh_argv, "-G", destination], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    ).stdout
    options = dict(line.split(" ", 1) for line in resolved.splitlines() if " " in line)
    # OpenSSH expands ~ to the account's home, not $HOME.
    home = pwd.getpwuid(os.getuid()).pw_dir
    first = (options.get("userknownhostsfile") or "~/.ssh/known_hosts").split()[0]
    path = Path(home) / first[2:] if first.startswith("~/") else Path(first)
    return KnownHosts(path, hashed=options.get("hashknownhosts", "no") == "yes")


class HostKeyRefused(RemoteError):
    """A host whose key is not the one its console printed."""


class HostKeyNotPrinted(RemoteError):
    """The VM has not printed its host keys yet: it is still booting."""


@dataclass
class HostKeyVerifier:
    """Makes sure a host's key is known, from its console, before any login."""

    known_hosts: KnownHosts
    consoles: ConsoleLogs
    # Address -> the instance at that address.
    instances: Mapping[str, str] = field(default_factory=dict)
    # Address -> the port holding it, whose instance is found when asked
    # (a rollout's gate cannot name instances declared after it).
    ports: Mapping[str, str] = field(default_factory=dict)
    # Floating IPs (the jumphost's): the instance behind one is found when asked.
    floating: Collection[str] = ()
    # Addresses whose instance this run has just created: a key known from
    # an earlier instance there is replaced instead of refused.
    recreated: Collection[str] = ()
    # Addresses whose key this verifier took from the console.
    from_console: set[str] = field(default_factory=set)
    _verified: set[str] = field(default_factory=set, repr=False)

    def verify(self, address: str, host: str) -> None:
        if address in self._verified:
            return
        with _WRITING:
            known = self.known_hosts.keys_for(address)
            if known and address not in self.recreated:
                # Trusted before (from this console or by the user): OpenSSH
                # now holds the host to it.
                self._verified.add(address)
                return
            instance = self.instances.get(address)
            if instance is None and address in self.ports:
                instance = self.consoles.instance_on_port(self.ports[address])
            if instance is None and address in self.floating:
                instance = self.consoles.instance_behind_floating_ip(address)
            if instance is None:
                raise HostKeyRefused(
                    f"the host key of {host} is not known and there is no instance to read it from: connect once "
                    f"by hand after checking its key, or give its instance"
                )
            printed = console_host_keys(self.consoles.console_output(instance))
            if not printed:
                raise HostKeyNotPrinted(
                    f"{host} has not printed its host keys on its console yet (cloud-init prints them at the end "
                    f"of its first boot): see `openstack console log show {instance}`"
                )
            self.from_console.add(address)
            self._verified.add(address)
            if known & set(printed):
                return
            if known:
                self.known_hosts.forget(address)
            self.known_hosts.trust(address, printed)


def refusal(host: str, address: str, verifier: HostKeyVerifier) -> str:
    """What to say when OpenSSH refused a host's key."""
    known_hosts = verifier.known_hosts
    if address in verifier.from_console:
        return (
            f"the host key of {host} is not the one it printed on its console at first boot: refusing to log in; "
            f"something other than that instance answers at {address}"
        )
    instance = verifier.instances.get(address)
    console = f"`openstack console log show {instance}`" if instance else "its console log"
    return (
        f"the host key of {host} is not the one trusted for it in {known_hosts.path}: refusing to log in. If the "
        f"instance was re-created, compare with {console}, remove the old key with "
        f"`{known_hosts.forget_command(address)}` and run this again; if not, something else answers at {address}"
    )

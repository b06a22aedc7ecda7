"""Network namespaces: created by us, used by us, always removed, with every
process still inside them (the one teardown of the lab, the local cloud and
the tests).

Every name starts with a prefix of its maker's (a lab run's, the cloud's
agents' and instances'), so cleanup removes exactly what it made and nothing
else on the machine.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class CommandFailed(RuntimeError):
    pass


def run(argv: Sequence[str], check: bool = True, timeout: float = 30, input: str | None = None):
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, input=input)
    if check and result.returncode != 0:
        raise CommandFailed(
            f"{shlex.join(argv)} exited {result.returncode}: {(result.stderr or result.stdout).strip()}"
        )
    return result


def list_namespaces() -> list[str]:
    out = run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def add_namespace(name: str) -> None:
    run(["ip", "netns", "add", name])
    run(["ip", "-n", name, "link", "set", "lo", "up"])


def kill_namespace_processes(name: str, timeout: float = 5) -> list[str]:
    """SIGKILL to every process in the network namespace; returns once they
    are dead (gone, or zombies waiting for their parent) or after timeout."""
    pids = run(["ip", "netns", "pids", name], check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.01)
    return pids


def delete_namespace(name: str) -> None:
    # Processes still inside would keep the namespace's links alive.
    kill_namespace_processes(name)
    run(["ip", "netns", "del", name], check=False)


def delete_namespaces(prefixes: Sequence[str]) -> list[str]:
    """Every namespace whose name starts with one of the prefixes, removed; returns their names."""
    names = [name for name in list_namespaces() if name.startswith(tuple(prefixes))]
    for name in names:
        delete_namespace(name)
    return names


def alive(pid) -> bool:
    """Running or stopped: anything but gone, or a zombie waiting for its parent."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def in_namespace(namespace: str, argv: Sequence[str], binds: Mapping[str, str] | None = None) -> list[str]:
    """The command line that runs argv inside the namespace, in a private
    mount namespace where each bind target shows the given source instead."""
    prefix = ["ip", "netns", "exec", namespace]
    if not binds:
        return prefix + list(argv)
    mounts = " && ".join(
        f"mount --bind {shlex.quote(str(source))} {shlex.quote(str(target))}" for target, source in binds.items()
    )
    return prefix + [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        f'{mounts} && exec "$@"',
        "sh",
        *argv,
    ]


class ProbeHost:
    """A namespace with one veth end named like a cloud VM's NIC, an address
    and a default route: enough for `keepalived -t` and the interface
    detection. The peer end stays inside the namespace too."""

    def __init__(
        self, name: str, interface: str = "ens3", address: str = "192.168.0.11/24", gateway: str | None = "192.168.0.1"
    ):
        self.name, self.interface, self.address, self.gateway = name, interface, address, gateway

    def __enter__(self) -> ProbeHost:
        add_namespace(self.name)
        try:
            peer = "peer0" if self.interface != "peer0" else "peer1"
            run(["ip", "-n", self.name, "link", "add", self.interface, "type", "veth", "peer", "name", peer])
            run(["ip", "-n", self.name, "addr", "add", self.address, "dev", self.interface])
            run(["ip", "-n", self.name, "link", "set", peer, "up"])
            run(["ip", "-n", self.name, "link", "set", self.interface, "up"])
            if self.gateway:
                run(["ip", "-n", self.name, "route", "add", "default", "via", self.gateway, "dev", self.interface])
        except BaseException:
            delete_namespace(self.name)
            raise
        return self

    def __exit__(self, *exc) -> None:
        delete_namespace(self.name)

    def run(
        self, argv: Sequence[str], binds: Mapping[str, Path] | None = None, check: bool = False, timeout: float = 30
    ):
        return run(
            in_namespace(self.name, argv, {k: str(v) for k, v in (binds or {}).items()}), check=check, timeout=timeout
        )

"""Hosts made of namespaces: a switch, and hosts plugged into it.

A node host is what a VM is to the stack: its own network namespace (one NIC
named as the VM would see it, its address, a default route), and its own mount
and UTS namespaces in which /etc, /var and /home are overlays on the
machine's own (writes land in the lab's directory, never in the machine's) and /run is
private. A holder process keeps those namespaces alive; every command on the
host enters them with nsenter, so cloud-init and keepalived see one machine.

A host can reboot, as a VM does after a crash: every process on it dies, the
disk (/etc, /var, /home) stays, /run starts empty (on a VM it is a tmpfs) and
the NIC comes up with only its own address. A node that is replaced gets a
new host instead, with nothing of the old one but its switch port, address
and MAC (a Neutron port outlives the instances booted on it).

A sealed host (a lab VM, vm.py) has more of its own: /usr/local, /opt and /srv
are overlays too, /root is its own, /tmp is a tmpfs, /dev/console is a file of
its directory, and the rest of the machine's file system is read-only in it,
so nothing run on it can write to the machine outside its own directory. A
host started by another process (a nova-compute since restarted) can be
adopted from its holder's pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from .netns import add_namespace, alive, run
from .supervisor import kill, log_tail, spawn

BRIDGE = "br0"
# Overlaid on a sealed host besides /etc, /var and /home (when the machine has them).
SEALED_OVERLAYS = ("/usr/local", "/opt", "/srv")


class Switch:
    """A namespace holding the subnet's bridge and the gateway address, which
    stands in for the Neutron router (the default route points at it)."""

    def __init__(self, namespace: str, gateway_cidr: str):
        self.namespace, self.gateway_cidr = namespace, gateway_cidr

    def create(self) -> None:
        add_namespace(self.namespace)
        run(["ip", "-n", self.namespace, "link", "add", BRIDGE, "type", "bridge"])
        run(["ip", "-n", self.namespace, "addr", "add", self.gateway_cidr, "dev", BRIDGE])
        run(["ip", "-n", self.namespace, "link", "set", BRIDGE, "up"])

    def plug(self, port: str, host: NodeHost, address_cidr: str, gateway: str, mac: str | None = None) -> None:
        """A cable from the bridge to a host: the host's end is its NIC, which
        comes up configured as DHCP would configure it."""
        peer = ["peer", "name", host.nic] + (["address", mac] if mac else []) + ["netns", host.namespace]
        run(["ip", "-n", self.namespace, "link", "add", port, "type", "veth", *peer])
        run(["ip", "-n", self.namespace, "link", "set", port, "master", BRIDGE])
        run(["ip", "-n", self.namespace, "link", "set", port, "up"])
        host.address_cidr, host.gateway = address_cidr, gateway
        host.configure_nic()

    def unplug(self, port: str) -> None:
        """Removes a cable, both ends at once (a namespace's deletion would
        take its end only some time later)."""
        run(["ip", "-n", self.namespace, "link", "del", port])

    def set_port(self, port: str, up: bool) -> None:
        """Pulls or plugs a host's cable: its NIC loses or regains carrier."""
        run(["ip", "-n", self.namespace, "link", "set", port, "up" if up else "down"])

    def isolate(self, ports: Sequence[str], isolated: bool) -> None:
        """Isolated bridge ports cannot reach each other but still reach every
        other port: the nodes stop hearing each other while their links stay
        up and the jumphost still reaches each of them."""
        for port in ports:
            run(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.namespace,
                    "bridge",
                    "link",
                    "set",
                    "dev",
                    port,
                    "isolated",
                    "on" if isolated else "off",
                ]
            )


class _AdoptedHolder:
    """The holder of a host another process started: what NodeHost uses of
    a Popen, for a process that is not this one's child."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and not alive(self.pid):
            self.returncode = -signal.SIGKILL
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"holder {self.pid}", timeout or 0)
            time.sleep(0.01)
        return self.returncode or 0


def process_start_time(pid: int) -> int | None:
    """When the process started, in clock ticks since the machine booted: with
    the pid, it tells a process from a later one that got the same pid."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


class NodeHost:
    """A keepalived node: network, mount and UTS namespaces held open by one process."""

    def __init__(self, name: str, namespace: str, nic: str, root: Path, sealed: bool = False):
        self.name, self.namespace, self.nic = name, namespace, nic
        self.root = root  # the lab's directory for this host
        self.sealed = sealed
        self.etc_upper = root / "etc"
        self.var_upper = root / "var"
        self.home_upper = root / "home"
        self.log_dir = root / "log"
        self.boots = 0
        # Set when the host is plugged into the switch.
        self.address_cidr: str | None = None
        self.gateway: str | None = None
        self._holder: subprocess.Popen | _AdoptedHolder | None = None

    @property
    def overlays(self) -> dict[str, Path]:
        """Mount point -> the upper directory (in the host's directory) that
        holds what the host wrote there; each has a work directory beside it.
        (cloud-init creates the image's default user, with a home.)"""
        overlays = {"/etc": self.etc_upper, "/var": self.var_upper, "/home": self.home_upper}
        if self.sealed:
            for mount in SEALED_OVERLAYS:
                if Path(mount).is_dir():
                    overlays[mount] = self.root / mount.strip("/").replace("/", "-")
        return overlays

    @property
    def root_home(self) -> Path:
        """What a sealed host sees as /root."""
        return self.root / "roothome"

    @property
    def console(self) -> Path:
        """What a sealed host sees as /dev/console (cloud-init opens it with
        "w" for each message, so the file keeps the last one)."""
        return self.root / "console"

    @property
    def run_dir(self) -> Path:
        """What the host sees as /run in its current boot: a new, empty
        directory every boot, so nothing (a pid file above all) survives a reboot."""
        return self.root / f"run.{self.boots}"

    def create(self) -> None:
        add_namespace(self.namespace)
        self.make_directories()

    def make_directories(self) -> None:
        """The host's disk: the overlays' upper and work directories, its logs."""
        for upper in self.overlays.values():
            upper.mkdir(parents=True, exist_ok=True)
            upper.with_name(f"{upper.name}-work").mkdir(exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.sealed:
            self.root_home.mkdir(mode=0o700, exist_ok=True)
            self.console.touch(mode=0o600, exist_ok=True)

    def configure_nic(self) -> None:
        """The NIC as it is after boot: up, with the port's own address and
        the default route, and nothing else (no VIP left from before)."""
        if self.address_cidr is None or self.gateway is None:
            raise RuntimeError(f"{self.name} is not plugged into the switch")
        run(["ip", "-n", self.namespace, "addr", "flush", "dev", self.nic])
        run(["ip", "-n", self.namespace, "addr", "add", self.address_cidr, "dev", self.nic])
        run(["ip", "-n", self.namespace, "link", "set", self.nic, "up"])
        run(["ip", "-n", self.namespace, "route", "replace", "default", "via", self.gateway, "dev", self.nic])

    def mac(self) -> str:
        return (
            run(["ip", "-n", self.namespace, "-o", "link", "show", "dev", self.nic])
            .stdout.split("link/ether ")[1]
            .split()[0]
        )

    def start(self) -> None:
        """Boots the host: mounts the overlays and a fresh /run in a new mount
        namespace and keeps it open."""
        self.boots += 1
        self.run_dir.mkdir(parents=True)
        # The host's own name resolves, as on a cloud image (sudo asks for it).
        hosts = Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else "127.0.0.1 localhost\n"
        self.write_file("/etc/hosts", hosts + f"127.0.1.1 {self.name}\n")
        mounts = " && ".join([*self._mount_commands(), f"hostname {self.name}", "exec sleep infinity"])
        holder_log = self.log_dir / "holder.log"
        unshare = ["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", mounts]
        holder = spawn(["ip", "netns", "exec", self.namespace, *unshare], holder_log, header=f"--- boot {self.boots}")
        self._holder = holder
        # The holder is ready once the hostname inside has changed.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if holder.poll() is not None:
                raise RuntimeError(f"{self.name}: host did not start: {log_tail(holder_log, 5)}")
            probe = subprocess.run(self.enter(["hostname"]), capture_output=True, text=True)
            if probe.returncode == 0 and probe.stdout.strip() == self.name:
                return
            time.sleep(0.02)
        raise RuntimeError(f"{self.name}: host did not come up within 10 s")

    def _mount_commands(self) -> list[str]:
        """What the holder mounts before it sleeps. A mount that would cover
        the host's own directory comes last: the directories it names must be
        found on the machine's disk, not in the host's view."""
        mounts = [
            (
                mount,
                f"mount -t overlay overlay -o lowerdir={mount},upperdir={upper},"
                f"workdir={upper.with_name(upper.name + '-work')} {mount}",
            )
            for mount, upper in self.overlays.items()
        ]
        mounts.append(("/run", f"mount --bind {self.run_dir} /run"))
        if self.sealed:
            mounts.append(("/root", f"mount --bind {self.root_home} /root"))
            mounts.append(("/tmp", "mount -t tmpfs -o mode=1777,size=256m tmpfs /tmp"))
            if Path("/dev/console").exists():
                mounts.append(("/dev/console", f"mount --bind {self.console} /dev/console"))
        root = str(self.root.resolve())
        mounts.sort(key=lambda mount: root == mount[0] or root.startswith(mount[0].rstrip("/") + "/"))
        commands = [command for _, command in mounts]
        if self.sealed:
            # Everything not mounted above, the machine's own, read-only.
            commands.append("mount -o remount,bind,ro /")
        return commands

    def adopt(self, pid: int, boots: int, start_time: int | None = None) -> bool:
        """Takes over the host as another process started it, from its holder's
        pid (and start time, to tell it from a later process with that pid)
        and the number of boots so far (its /run). Returns whether that holder
        still holds this host's namespaces; if not, the host is left stopped."""
        self.boots = boots
        self._holder = None
        if not alive(pid) or (start_time is not None and process_start_time(pid) != start_time):
            return False
        try:
            same_network = os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{self.namespace}").st_ino
        except OSError:
            return False
        if not same_network:
            return False
        self._holder = _AdoptedHolder(pid)
        return True

    @property
    def running(self) -> bool:
        """Whether the holder is alive (the host is up)."""
        return self._holder is not None and self._holder.poll() is None

    @property
    def holder_pid(self) -> int:
        if self._holder is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._holder.pid

    def enter(self, argv: Sequence[str]) -> list[str]:
        """The command line that runs argv on this host. (Also `command`.)"""
        if self._holder is None:
            raise RuntimeError(f"{self.name} is not started")
        return ["nsenter", "-t", str(self._holder.pid), "-m", "-u", "-n", "--", *argv]

    command = enter

    def run(self, argv: Sequence[str], check: bool = True, timeout: float = 60):
        return run(self.enter(argv), check=check, timeout=timeout)

    def popen(self, argv: Sequence[str], log_name: str) -> subprocess.Popen:
        """Starts argv on the host; it is on the host (a reboot ends it) by the time this returns."""
        process = spawn(self.enter(argv), self.log_dir / log_name)
        host_mounts = _mount_namespace(self.holder_pid)
        deadline = time.monotonic() + 5
        while _mount_namespace(process.pid) != host_mounts and process.poll() is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: {argv[0]} did not enter the host within 5 s")
            time.sleep(0.001)
        return process

    def write_file(self, path: str, content: str, mode: int = 0o644) -> None:
        """Writes a file as the host sees it at `path` (under /etc or /var, or
        another of its overlays)."""
        for mount, upper in self.overlays.items():
            if path.startswith(mount + "/"):
                target = upper / path[len(mount) + 1 :]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
                target.chmod(mode)
                return
        raise ValueError(f"{path} is outside the host's writable /etc and /var")

    def read_file(self, path: str) -> str | None:
        result = self.run(["cat", path], check=False)
        return result.stdout if result.returncode == 0 else None

    def processes(self) -> list[int]:
        """Every live process on this host (in its mount namespace), the holder included."""
        if self._holder is None or self._holder.poll() is not None:
            return []
        mine = _mount_namespace(self._holder.pid)
        if mine is None:
            return []
        return [
            int(entry)
            for entry in os.listdir("/proc")
            if entry.isdigit() and _mount_namespace(int(entry)) == mine and alive(entry)
        ]

    def stop(self) -> None:
        """Power off: every process on the host dies at once, and its mounts with them."""
        pids = self.processes()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self._holder is not None and self._holder.poll() is None:
            kill(self._holder)
        # The overlays cannot be mounted again while an old process keeps the
        # old mount namespace alive.
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in pids):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: processes {[p for p in pids if alive(p)]} outlived SIGKILL")
            time.sleep(0.01)
        self._holder = None

    def reboot(self) -> None:
        """What a VM's reset does: everything running dies, the disk stays, /run
        and the NIC's addresses start afresh."""
        self.stop()
        self.configure_nic()
        self.start()


def _mount_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None

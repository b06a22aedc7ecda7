"""A lab run's cluster: the spec's hosts booted, keepalived started and
stopped on them, nodes crashed, recovered and replaced, the VIP watched and
pinged, and every event on one clock. The drills (drills.py) and the faults
(faults.py) act on it; runner.py runs them in order."""

from __future__ import annotations

import functools
import logging
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vip_hosts.boot import KeepalivedService, apply_user_data, write_by_hand
from vip_hosts.hosts import NodeHost
from vip_hosts.netns import run as run_command
from vip_hosts.sshd import LAB_PATH, default_user, install_systemctl, serve_ssh
from vip_stack.observe import Pinger, VipWatcher
from vip_stack.rendering import render_jumphost_user_data
from vip_stack.rollout import NodeAccess

from .faults import Stress
from .results import DrillResult, PingFigures
from .scenario import LabSpec
from .topology import Lab, Topology
from .watch import ping_from, watch_replaced_node, watch_vip

# A run's progress, as it goes: the lab's command shows it on stderr.
log = logging.getLogger(__name__)

# Where the lab's stand-in service listens on each node, for the health-check drill.
SERVICE_PORT = 8080


@dataclass
class Event:
    at: float
    label: str


@dataclass
class LabAccess:
    """The rollout's way onto a lab node: a shell of the image's default user
    on the node with that address (sudo and systemctl as on a VM), where
    `pulumi up` goes through the jumphost with SSH."""

    topology: Topology

    def host(self, address: str) -> NodeHost:
        for host in self.topology.nodes.values():
            if host.address_cidr and host.address_cidr.split("/")[0] == address:
                return host
        raise KeyError(address)

    def run(self, address: str, host_label: str, command: str, timeout: float) -> subprocess.CompletedProcess:
        host = self.host(address)
        return run_command(
            host.enter(["runuser", "-u", default_user(host), "--", "env", f"PATH={LAB_PATH}", "sh", "-c", command]),
            check=False,
            timeout=timeout,
        )

    def how_to_look(self, address: str) -> str:
        return f"the node's logs in {self.host(address).log_dir}"


class Cluster:
    """The spec's cluster for one lab run: boots its hosts, starts and stops
    keepalived on them, keeps the observers; the drills act on it."""

    def __init__(
        self,
        spec: LabSpec,
        lab: Lab,
        steady_seconds: float = 20,
        rollout_to: LabSpec | None = None,
        stress: Stress | None = None,
        ping_interval: float = 0.02,
        handover: bool = True,
        successor_unreachable: bool = False,
    ):
        self.spec, self.lab = spec, lab
        self.ping_interval = ping_interval
        self.stress = stress or Stress()
        # What `pulumi up` declares after a config change, for the rollout drill.
        self.rollout_to = rollout_to
        # Whether the rollout's drains hand the VIP over first (else as before the handover).
        self.handover = handover
        # Whether the other nodes cannot be reached while the holder is drained.
        self.successor_unreachable = successor_unreachable
        # Node name -> when its current host booted (a replaced node's is new).
        self.host_since: dict[str, float] = {}
        # How the rollout drill reaches the nodes, one access per step as the
        # gate makes one per create or delete; None: LabAccess.
        self.node_access: Callable[[], NodeAccess] | None = None
        self.steady_seconds = steady_seconds
        self.t0 = time.monotonic()
        self.events: list[Event] = []
        self.results: list[DrillResult] = []
        self.notes: list[str] = []
        self._topology: Topology | None = None
        self.services: dict[str, KeepalivedService] = {}
        # Node name -> what its image starts at every boot, besides keepalived.
        self.boot_units: dict[str, list[Callable[[], Any]]] = {}
        self.cut: set[str] = set()  # nodes whose cable is pulled
        self._watcher: VipWatcher | None = None
        self._pinger: Pinger | None = None

    # --- plumbing -----------------------------------------------------------

    @property
    def topology(self) -> Topology:
        if self._topology is None:
            raise RuntimeError("the lab has not booted its hosts yet")
        return self._topology

    @property
    def watcher(self) -> VipWatcher:
        if self._watcher is None:
            raise RuntimeError("the lab does not watch the VIP yet")
        return self._watcher

    @property
    def pinger(self) -> Pinger:
        if self._pinger is None:
            raise RuntimeError("the jumphost does not ping the VIP yet")
        return self._pinger

    def say(self, message: str) -> None:
        log.info("[%6.1fs] %s", time.monotonic() - self.t0, message)

    def event(self, label: str) -> float:
        now = time.monotonic()
        self.events.append(Event(now, label))
        return now

    def live_holders(self) -> list[str]:
        # A node whose cable is pulled may still have the VIP on its NIC, but
        # nobody can reach it there.
        return [n for n in self.watcher.holders() if n not in self.cut]

    def wait_holders(self, expected: list[str], timeout: float) -> float | None:
        wanted = sorted(expected)
        return self.watcher.wait_for(lambda holders: sorted(h for h in holders if h not in self.cut) == wanted, timeout)

    def running_by_priority(self) -> list[str]:
        return [n.name for n in self.spec.by_priority() if self.services[n.name].running and n.name not in self.cut]

    def mdi(self, name: str) -> float:
        return self.spec.master_down_interval(self.spec.node(name).priority)

    # --- boot ---------------------------------------------------------------

    def boot(self) -> None:
        spec = self.spec
        self.say(f"building hosts: switch, {len(spec.nodes)} nodes, jumphost (namespaces {self.lab.prefix}-*)")
        self._topology = self.lab.build(
            gateway_cidr=f"{spec.gateway}/{spec.prefix_length}",
            prefix_length=spec.prefix_length,
            gateway=spec.gateway,
            nodes=[(n.name, n.address) for n in spec.nodes],
            jumphost=(spec.jumphost_name, spec.jumphost_address),
            nic=spec.nic,
        )
        for node in spec.nodes:
            host = self.topology.nodes[node.name]
            if node.user_data is not None:
                ran = apply_user_data(host, node.user_data)
                self.say(f"{node.name}: cloud-init applied its user data ({'; '.join(ran)})")
            else:
                write_by_hand(host, node.files)
                self.say(f"{node.name}: keepalived.conf written by hand, as the procedure does")
            install_systemctl(host)
            self.services[node.name] = KeepalivedService(host)
            self.host_since[node.name] = self.t0
        self.notes.append(
            "package installation is not repeated: keepalived is the Debian package already "
            "on this machine, the one the nodes' user data installs"
        )
        self.say(self.notes[-1])
        self._watcher = watch_vip(list(self.topology.nodes.values()), spec.vip, self.lab.track)
        self.services_behind_vip: dict[str, subprocess.Popen] = {}
        if spec.health_check:
            for name in self.topology.nodes:
                self.on_every_boot(name, functools.partial(self.start_service, name))
            self.say(
                f"a stand-in service answers http://127.0.0.1:{SERVICE_PORT}/healthz on every node "
                "(what the health check watches)"
            )

    def on_every_boot(self, name: str, start: Callable[[], Any]) -> None:
        """Something the node's image starts at boot (an enabled unit): started
        now, and again whenever the node reboots."""
        self.boot_units.setdefault(name, []).append(start)
        start()

    def start_service(self, name: str) -> None:
        """The service the VIP fronts, as the health check sees it: an HTTP
        server on the node's loopback."""
        host = self.topology.nodes[name]
        root = host.run_dir / "lab-service"
        root.mkdir(exist_ok=True)
        (root / "healthz").write_text("ok\n")
        self.services_behind_vip[name] = self.lab.track(
            host.popen(
                [
                    "/usr/bin/python3",
                    "-m",
                    "http.server",
                    str(SERVICE_PORT),
                    "--bind",
                    "127.0.0.1",
                    "--directory",
                    "/run/lab-service",
                ],
                "service.log",
            )
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = host.run(
                ["curl", "-fsS", "-o", "/dev/null", f"http://127.0.0.1:{SERVICE_PORT}/healthz"], check=False
            )
            if probe.returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{name}: the stand-in service did not come up")

    def stop_service(self, name: str) -> float:
        at = self.event(f"service down on {name}")
        process = self.services_behind_vip.pop(name)
        process.terminate()
        process.wait(timeout=10)
        return at

    def enable_ssh(self, public_key: str) -> str:
        """OpenSSH on the jumphost and every node, the jumphost booted by
        cloud-init from the stack's own user data, like the nodes; returns
        the login that takes the key."""
        jumphost = self.topology.jumphost
        apply_user_data(jumphost, render_jumphost_user_data())
        user = serve_ssh(jumphost, self.spec.jumphost_address, public_key, self.lab.track)
        for node in self.spec.nodes:
            self.on_every_boot(
                node.name,
                functools.partial(self._serve_ssh, node.name, node.address, public_key),
            )
        self.say(f"sshd listens on the jumphost and every node; login {user}")
        return user

    def _serve_ssh(self, name: str, address: str, public_key: str) -> str:
        # The node's host as it is now: a replaced node's is a new one.
        return serve_ssh(self.topology.nodes[name], address, public_key, self.lab.track)

    def outputs(self) -> dict[str, Any]:
        """The stack outputs a deployment of this spec would have, the jumphost's
        lab address standing in for its floating IP."""
        return {
            "vipAddress": self.spec.vip,
            "jumphostFloatingIp": self.spec.jumphost_address,
            "jumphostName": self.spec.jumphost_name,
            "nodes": [
                {"name": n.name, "instanceId": n.name, "ipAddress": n.address, "priority": n.priority}
                for n in self.spec.nodes
            ],
        }

    def hosts_by_instance(self) -> dict[str, NodeHost]:
        """The hosts by the instance ids of outputs() (the jumphost's by its
        name): a replaced node's is its new host."""
        return {self.spec.jumphost_name: self.topology.jumphost, **self.topology.nodes}

    def instances_by_address(self) -> dict[str, str]:
        return {
            self.spec.jumphost_address: self.spec.jumphost_name,
            **{node.address: node.name for node in self.spec.nodes},
        }

    def start_pinging(self) -> None:
        """As in the procedure, the jumphost pings the VIP once it is up: before
        that, unanswered ARP would fill the send queue and ping would stall."""
        self._pinger = ping_from(self.topology.jumphost, self.spec.vip, self.lab.track, self.ping_interval)
        self.pinger.start()
        self.say(f"{self.spec.jumphost_name}: pinging {self.spec.vip} every {self.pinger.interval:g} s")

    def start(self, name: str) -> float:
        """The moment keepalived is up, as systemd would report it started:
        the drills' bounds are VRRP's timers, which run from there, not from
        the config check and process start before it (slow on a busy host)."""
        self.services[name].start(self.lab.track)
        return self.event(f"start {name}")

    def stop(self, name: str) -> float:
        at = self.event(f"stop {name}")
        self.services[name].stop()
        return at

    def crash(self, name: str) -> float:
        at = self.event(f"crash {name}")
        self.cut.add(name)
        self.topology.switch.set_port(self.topology.ports[name], up=False)
        self.services[name].kill()
        return at

    def recover(self, name: str) -> float:
        """The crashed VM boots again, as a reset VM does: every process gone,
        /run empty, only its own address on the NIC; the cable back; what
        the image enables started, keepalived last."""
        self.services_behind_vip.pop(name, None)
        self.topology.nodes[name].reboot()
        self.topology.switch.set_port(self.topology.ports[name], up=True)
        self.cut.discard(name)
        for start in self.boot_units.get(name, []):
            start()
        return self.start(name)

    def replace_node(self, name: str, user_data: str) -> float:
        """The node's instance is replaced: a new host on the same port boots
        from the new user data, what the image enables starts, keepalived last."""
        at = self.event(f"replace {name}")
        self.services_behind_vip.pop(name, None)
        host = self.lab.replace(self.topology, name)
        self.host_since[name] = time.monotonic()
        watch_replaced_node(self.watcher, host)
        apply_user_data(host, user_data)
        install_systemctl(host)
        self.services[name] = KeepalivedService(host)
        for start in self.boot_units.get(name, []):
            start()
        self.start(name)
        return at

    def restore(self) -> None:
        """Every drill but the restart starts from the whole cluster up and
        converged: nodes a previous drill stopped are started again."""
        stopped = [n.name for n in self.spec.nodes if not self.services[n.name].running or n.name in self.cut]
        if not stopped:
            return
        self.say(f"restoring the cluster: starting {', '.join(stopped)} again")
        for name in stopped:
            if name in self.cut:
                self.recover(name)
            else:
                self.start(name)
        top = self.spec.by_priority()[0].name
        bound = max(self.mdi(n.name) for n in self.spec.nodes) + self.spec.advert_interval + 5
        if self.spec.preempt:
            self.wait_holders([top], timeout=bound)
        else:
            self.watcher.wait_for(lambda holders: len([h for h in holders if h not in self.cut]) == 1, bound)
        self.watcher.stable_for(2 * self.spec.advert_interval)

    def record(self, result: DrillResult) -> DrillResult:
        self.results.append(result)
        self.say(result.verdict())
        return result

    def ping_figures(self, start: float, end: float) -> PingFigures:
        stats = self.pinger.stats(start, end)
        return PingFigures(sent=stats.sent, received=stats.received, longest_gap_s=round(stats.longest_gap, 3))

    def finish(self) -> PingFigures:
        totals = self._pinger.totals() if self._pinger else None
        if self._pinger:
            self.pinger.stop()
        self.event("lab ends")
        for service in self.services.values():
            service.stop()
        return PingFigures(
            sent=totals.sent if totals else 0,
            received=totals.received if totals else 0,
            longest_gap_s=round(totals.longest_gap, 3) if totals else 0.0,
        )

"""The drills: the reference procedure's check and the failures a real cluster
meets, each with a pass/fail verdict against bounds taken from VRRP's own
timers (master down interval = 3 x advert_int + skew), never tuned constants.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from vip_stack.observe import Pinger, VipWatcher
from vip_stack.rendering import GARP
from vip_stack.rollout import NodeAccess, NodeNotInService, drain_node, wait_in_service

from .boot import KeepalivedService, apply_user_data, write_by_hand
from .hosts import Lab, NodeHost, Topology
from .netns import run as run_command
from .scenario import LabSpec
from .sshd import LAB_PATH, default_user, install_systemctl, serve_ssh
from .watch import ping_from, watch_replaced_node, watch_vip

# A run's progress, as it goes: the lab's command shows it on stderr.
log = logging.getLogger(__name__)

# Where the lab's stand-in service listens on each node, for the health-check drill.
SERVICE_PORT = 8080


@dataclass
class DrillResult:
    name: str
    passed: bool
    summary: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class Event:
    at: float
    label: str


@dataclass(frozen=True)
class Stress:
    """The stress drill's bad day."""

    seconds: float = 60
    loss_percent: float = 1
    stall_ms: int = 250
    # A stall every this many seconds.
    stall_every: float = 3


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


class LabRun:
    """One lab run: boots the spec's hosts, keeps the observers, runs drills."""

    def __init__(
        self,
        spec: LabSpec,
        lab: Lab,
        steady_seconds: float = 20,
        rollout_to: LabSpec | None = None,
        stress: Stress | None = None,
    ):
        self.spec, self.lab = spec, lab
        self.stress = stress or Stress()
        # What `pulumi up` declares after a config change, for the rollout drill.
        self.rollout_to = rollout_to
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
        cloud-init like the nodes; returns the login that takes the key."""
        jumphost = self.topology.jumphost
        apply_user_data(jumphost, "#cloud-config\n{}\n")
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
            "nodes": [{"name": n.name, "ipAddress": n.address, "priority": n.priority} for n in self.spec.nodes],
        }

    def start_pinging(self) -> None:
        """As in the procedure, the jumphost pings the VIP once it is up: before
        that, unanswered ARP would fill the send queue and ping would stall."""
        self._pinger = ping_from(self.topology.jumphost, self.spec.vip, self.lab.track)
        self.pinger.start()
        self.say(f"{self.spec.jumphost_name}: pinging {self.spec.vip} every {self.pinger.interval:g} s")

    def start(self, name: str) -> float:
        at = self.event(f"start {name}")
        self.services[name].start(self.lab.track)
        return at

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
        self.say(f"{'PASS' if result.passed else 'FAIL'} {result.name}: {result.summary}")
        return result

    def ping_figures(self, start: float, end: float) -> dict[str, Any]:
        stats = self.pinger.stats(start, end)
        return {
            "pings_sent": stats.sent,
            "pings_received": stats.received,
            "longest_ping_gap_s": round(stats.longest_gap, 3),
        }

    # --- drills -------------------------------------------------------------

    def drill_convergence(self) -> DrillResult:
        top = self.spec.by_priority()[0].name
        lowest = self.spec.by_priority()[-1]
        bound = self.spec.master_down_interval(lowest.priority) + self.spec.advert_interval
        self.say(f"convergence: starting keepalived on every node, waiting for {top} alone to hold the VIP")
        first = min(self.start(node.name) for node in self.spec.nodes)
        converged = self.wait_holders([top], timeout=bound + 5)
        figures: dict[str, Any] = {"bound_s": round(bound, 3)}
        if converged is None:
            return self.record(
                DrillResult("convergence", False, f"holders {self.live_holders()} after {bound + 5:.1f} s", figures)
            )
        figures["convergence_s"] = round(max(0.0, converged - first), 3)
        self.start_pinging()
        # Exactly one holder, and it stays so for two adverts.
        steady = self.watcher.stable_for(2 * self.spec.advert_interval) and self.live_holders() == [top]
        figures["holder"] = top
        reachable = self.pinger.stats(time.monotonic() - self.spec.advert_interval, time.monotonic()).received > 0
        passed = steady and reachable and figures["convergence_s"] <= bound
        summary = (
            f"{top} holds the VIP alone after {figures['convergence_s']:.2f} s (bound {bound:.2f} s)"
            + ("" if steady else "; but it did not stay so")
            + ("" if reachable else f"; {self.spec.jumphost_name} gets no answer from the VIP")
        )
        return self.record(DrillResult("convergence", passed, summary, figures))

    def _takeover(self, drill: str, action: Callable[[str], float], verb: str, past: str) -> DrillResult:
        self.restore()
        holders = self.live_holders()
        if len(holders) != 1:
            return self.record(DrillResult(drill, False, f"needs one holder to start from, found {holders}"))
        victim = holders[0]
        survivors = [n for n in self.running_by_priority() if n != victim]
        if not survivors:
            return self.record(DrillResult(drill, False, "no other node is running to take over"))
        expected = survivors[0]
        bound = self.mdi(expected) + (self.spec.advert_interval if drill == "crash failover" else 0)
        self.say(f"{drill}: {verb} {victim}, waiting for {expected} to take the VIP (bound {bound:.2f} s)")
        window_start = time.monotonic() - 0.5
        at = action(victim)
        taken = self.wait_holders([expected], timeout=bound + 5)
        figures: dict[str, Any] = {"from": victim, "to": expected, "bound_s": round(bound, 3)}
        if taken is None:
            figures.update(self.ping_figures(window_start, time.monotonic()))
            return self.record(
                DrillResult(drill, False, f"holders {self.live_holders()} after {bound + 5:.1f} s", figures)
            )
        figures["failover_s"] = round(max(0.0, taken - at), 3)
        # Let the pings that follow the takeover come back before counting.
        time.sleep(max(1.0, 2 * self.spec.advert_interval))
        figures.update(self.ping_figures(window_start, time.monotonic()))
        resumed = self.pinger.stats(time.monotonic() - 0.5, time.monotonic()).received > 0
        passed = figures["failover_s"] <= bound and resumed
        summary = (
            f"{expected} took the VIP {figures['failover_s']:.2f} s after {victim} {past}"
            f"; longest ping gap {figures['longest_ping_gap_s']:.2f} s" + ("" if resumed else "; pings did not resume")
        )
        return self.record(DrillResult(drill, passed, summary, figures))

    def drill_graceful(self) -> DrillResult:
        return self._takeover("graceful failover", self.stop, "stopping keepalived on", "stopped")

    def drill_crash(self) -> DrillResult:
        result = self._takeover("crash failover", self.crash, "crashing", "crashed")
        victim = result.figures.get("from")
        if victim:
            self.say(f"crash failover: {victim} boots again")
            self.recover(victim)
            back = self.wait_holders(
                [self.running_by_priority()[0]], timeout=self.mdi(victim) + self.spec.advert_interval + 5
            )
            if back is None:
                result.passed = False
                result.summary += f"; after recovery holders are {self.live_holders()}"
        return result

    def drill_restart(self) -> DrillResult:
        """The procedure's last step: the stopped master starts again and takes the VIP back."""
        stopped = [n.name for n in self.spec.by_priority() if not self.services[n.name].running]
        if not stopped:
            self.stop(self.live_holders()[0])
            self.wait_holders([self.running_by_priority()[0]], timeout=self.mdi(self.running_by_priority()[0]) + 5)
            stopped = [n.name for n in self.spec.by_priority() if not self.services[n.name].running]
        master = stopped[0]
        before = self.live_holders()
        expected = master if self.spec.preempt else (before[0] if before else master)
        bound = self.mdi(master) + self.spec.advert_interval
        self.say(f"master restart: starting {master} again, expecting {expected} to hold the VIP")
        window_start = time.monotonic() - 0.5
        at = self.start(master)
        taken = self.wait_holders([expected], timeout=bound + 5)
        figures: dict[str, Any] = {"restarted": master, "holder": expected, "bound_s": round(bound, 3)}
        if taken is None:
            return self.record(
                DrillResult("master restart", False, f"holders {self.live_holders()} after {bound + 5:.1f} s", figures)
            )
        steady = self.watcher.stable_for(2 * self.spec.advert_interval) and self.live_holders() == [expected]
        figures["takeback_s"] = round(max(0.0, taken - at), 3)
        figures.update(self.ping_figures(window_start, time.monotonic()))
        passed = steady and figures["takeback_s"] <= bound
        summary = (
            f"{expected} holds the VIP {figures['takeback_s']:.2f} s after {master} started; "
            f"longest ping gap {figures['longest_ping_gap_s']:.2f} s"
        )
        return self.record(DrillResult("master restart", passed, summary, figures))

    def drill_partition(self) -> DrillResult:
        """The nodes stop hearing each other (links up, jumphost still reaching
        each): every one may claim the VIP; once healed, exactly one holds it."""
        self.restore()
        order = self.running_by_priority()
        if len(order) < 2:
            return self.record(DrillResult("partition and heal", False, "needs two running nodes"))
        master = order[0]
        node_ports = [self.topology.ports[name] for name in order]
        claim_bound = max(self.mdi(name) for name in order[1:]) + self.spec.advert_interval
        self.say(
            f"partition: the nodes can no longer hear each other; each may claim the VIP within {claim_bound:.2f} s"
        )
        self.event("partition")
        self.topology.switch.isolate(node_ports, True)
        split = self.watcher.wait_for(lambda holders: len(holders) > 1, timeout=claim_bound + 5)
        claimed = self.live_holders()
        heal_bound = 3 * self.spec.advert_interval
        self.say(f"partition: healing; {master} alone expected within {heal_bound:.2f} s")
        healed_at = self.event("heal")
        self.topology.switch.isolate(node_ports, False)
        one = self.wait_holders([master], timeout=heal_bound + 5)
        figures: dict[str, Any] = {"claimed_while_cut": claimed, "heal_bound_s": round(heal_bound, 3)}
        if one is None:
            return self.record(
                DrillResult("partition and heal", False, f"holders {self.live_holders()} after healing", figures)
            )
        figures["heal_s"] = round(max(0.0, one - healed_at), 3)
        steady = self.watcher.stable_for(2 * self.spec.advert_interval) and self.live_holders() == [master]
        # From the heal on: how long the jumphost, which may have followed
        # the other side's claim, took to reach the VIP again (bounded by the
        # gratuitous ARP refresh, which re-teaches every neighbour).
        self.pinger.wait_for_reply(after=one, timeout=GARP.refresh + 1)
        figures.update(self.ping_figures(healed_at, time.monotonic()))
        passed = steady and figures["heal_s"] <= heal_bound and figures["longest_ping_gap_s"] <= heal_bound
        summary = (
            f"while cut, {', '.join(claimed) if split else 'only ' + master} held the VIP; "
            f"{figures['heal_s']:.2f} s after healing {master} holds it alone; longest ping gap after "
            f"healing {figures['longest_ping_gap_s']:.2f} s"
        )
        return self.record(DrillResult("partition and heal", passed, summary, figures))

    def drill_cascade(self) -> DrillResult:
        """Three or more nodes: stop the top two, the next priority wins; start them, the top wins."""
        self.restore()
        order = self.running_by_priority()
        if len(order) < 3:
            return self.record(DrillResult("next priority wins", False, "needs three running nodes"))
        first, second, third = order[:3]
        self.say(f"next priority: stopping {first} then {second}, expecting {third}")
        self.stop(first)
        got_second = self.wait_holders([second], timeout=self.mdi(second) + 5)
        self.stop(second)
        got_third = self.wait_holders([third], timeout=self.mdi(third) + 5)
        self.start(second)
        self.start(first)
        back = self.wait_holders([first], timeout=self.mdi(first) + self.spec.advert_interval + 5)
        passed = None not in (got_second, got_third, back)
        return self.record(
            DrillResult(
                "next priority wins",
                passed,
                f"{second}, then {third} took over in priority order; {first} holds it again"
                if passed
                else f"holders went wrong: now {self.live_holders()}",
                {"order": [first, second, third]},
            )
        )

    def drill_health(self) -> DrillResult:
        """The service on the holder stops answering: its health check fails
        `fall` times, the node leaves the election and a backup takes the VIP.
        The service comes back: after `rise` successes the node is eligible
        again and (with preemption) takes the VIP back."""
        if self.spec.health_check is None:
            return self.record(DrillResult("health check", False, "the stack has no healthCheck"))
        interval, fall, rise = self.spec.health_check
        self.restore()
        holders = self.live_holders()
        if len(holders) != 1:
            return self.record(DrillResult("health check", False, f"needs one holder, found {holders}"))
        sick = holders[0]
        expected = [n for n in self.running_by_priority() if n != sick][0]
        # The script runs every interval and may take up to one more to time out.
        fail_bound = (fall + 1) * interval + self.mdi(expected)
        self.say(f"health check: the service on {sick} stops; {expected} should hold the VIP within {fail_bound:.2f} s")
        window_start = time.monotonic() - 0.5
        at = self.stop_service(sick)
        moved = self.wait_holders([expected], timeout=fail_bound + 5)
        figures: dict[str, Any] = {"sick": sick, "to": expected, "bound_s": round(fail_bound, 3)}
        if moved is None:
            return self.record(
                DrillResult(
                    "health check", False, f"holders {self.live_holders()} after {fail_bound + 5:.1f} s", figures
                )
            )
        figures["failover_s"] = round(max(0.0, moved - at), 3)
        back_to = sick if self.spec.preempt else expected
        back_bound = (rise + 1) * interval + self.mdi(sick) + self.spec.advert_interval
        self.say(f"health check: the service on {sick} answers again; {back_to} should hold the VIP")
        recovered_at = self.event(f"service up on {sick}")
        self.start_service(sick)
        back = self.wait_holders([back_to], timeout=back_bound + 5)
        steady = back is not None and self.watcher.stable_for(max(interval, 2 * self.spec.advert_interval))
        figures["recovery_s"] = round(max(0.0, back - recovered_at), 3) if back is not None else None
        figures.update(self.ping_figures(window_start, time.monotonic()))
        passed = (
            figures["failover_s"] <= fail_bound and back is not None and steady and self.live_holders() == [back_to]
        )
        summary = f"{expected} took the VIP {figures['failover_s']:.2f} s after {sick}'s service stopped; " + (
            f"{back_to} holds it {figures['recovery_s']:.2f} s after the service came back"
            if back is not None
            else f"after recovery holders are {self.live_holders()}"
        )
        return self.record(DrillResult("health check", passed, summary, figures))

    def drill_rollout(self) -> DrillResult:
        """`pulumi up` after a config change, step by step as the engine runs
        the program's chain: for each node, lowest priority first, its gate
        is deleted (the node is drained), the instance replaced, and the gate
        created again (it waits until the new node is in service), with the
        gate's own code. The VIP must answer throughout and end on the top
        priority alone."""
        target = self.rollout_to
        if target is None:
            return self.record(DrillResult("rollout", False, "no config change to roll out"))
        self.restore()

        # As `pulumi up` reaches the nodes when a test set it (OpenSSH through
        # the jumphost), else a shell on the node.
        def access() -> NodeAccess:
            return self.node_access() if self.node_access else LabAccess(self.topology)

        # A drained master hands over after the next one's skew; add one
        # advert for the handover's first gratuitous ARP to land.
        lowest = min(n.priority for n in target.nodes)
        bound = self.spec.skew(lowest) + self.spec.advert_interval
        self.say(
            f"rollout: {target.label}; order {', '.join(target.rollout_order)}; "
            f"the longest ping gap must stay within {bound:.2f} s"
        )
        window_start = time.monotonic() - 0.5
        self.event("rollout starts")
        steps: list[dict[str, Any]] = []
        for name in target.rollout_order:
            node = target.node(name)
            others = [n.address for n in target.nodes if n.name != name]
            self.event(f"drain {name}")
            notes = drain_node(access(), name, node.address, target.vip, others)
            self.say(f"rollout: {'; '.join(notes)}")
            if node.user_data is None or node.config_sha256 is None:
                return self.record(DrillResult("rollout", False, f"{name} has no user data to roll out"))
            replaced_at = self.replace_node(name, node.user_data)
            try:
                wait_in_service(
                    access(),
                    name,
                    node.address,
                    node.config_sha256,
                    timeout=60 + 10 * target.advert_interval,
                    settle_seconds=target.master_down_interval(node.priority),
                    poll=0.1,
                )
            except NodeNotInService as error:
                return self.record(DrillResult("rollout", False, str(error), {"steps": steps}))
            in_service_s = time.monotonic() - replaced_at
            self.event(f"{name} in service")
            self.say(f"rollout: {name} is back in service after {in_service_s:.2f} s")
            steps.append({"node": name, "in_service_s": round(in_service_s, 3), "drain": notes})
        self.spec = target
        top = target.by_priority()[0].name
        expected = top if target.preempt else None
        settled = self.watcher.wait_for(
            lambda holders: len(holders) == 1 and (expected is None or holders == [expected]),
            timeout=max(self.mdi(n.name) for n in target.nodes) + target.advert_interval + 5,
        )
        steady = settled is not None and self.watcher.stable_for(2 * target.advert_interval)
        end = self.event("rollout ends")
        changes = self.watcher.changes_between(window_start, end)
        figures: dict[str, Any] = {
            "change": target.label,
            "order": list(target.rollout_order),
            "steps": steps,
            "holder": self.live_holders(),
            "transitions": len(changes),
            "bound_s": round(bound, 3),
            "both_claimed_s": round(self._overlap(window_start, end), 3),
            **self.ping_figures(window_start, end),
        }
        holders = self.live_holders()
        passed = (
            steady
            and len(holders) == 1
            and (expected is None or holders == [expected])
            and figures["longest_ping_gap_s"] <= bound
        )
        summary = (
            f"{', '.join(target.rollout_order)} replaced one at a time; {self.live_holders()} "
            f"hold(s) the VIP; longest ping gap {figures['longest_ping_gap_s']:.2f} s "
            f"(bound {bound:.2f} s), two holders for {figures['both_claimed_s']:.2f} s"
        )
        return self.record(DrillResult("rollout", passed, summary, figures))

    def _overlap(self, start: float, end: float) -> float:
        """How long more than one node held the VIP between start and end."""
        holding: dict[str, bool] = {}
        total, since = 0.0, None
        for change in self.watcher.changes_between(0, end):
            holding[change.node] = change.holds
            many = sum(holding.values()) > 1
            if many and since is None:
                since = max(change.at, start)
            elif not many and since is not None:
                total, since = total + max(0.0, change.at - since), None
        return total + (end - since if since is not None else 0.0)

    @contextlib.contextmanager
    def busy_cores(self, seconds: float) -> Iterator[int]:
        """Every core kept busy while the block runs; yields how many."""
        cores = os.cpu_count() or 1
        # Each burner stops by itself after the drill even if nobody kills it.
        burn = f"import time\nend = time.monotonic() + {seconds + 5}\nwhile time.monotonic() < end: pass\n"
        burners: list[subprocess.Popen] = []
        try:
            for _ in range(cores):
                # Inside the lab's switch namespace, so that removing the lab's
                # namespaces kills a burner even if Ctrl-C lands before it is
                # tracked; and with no inherited output, so it never holds the
                # lab's pipes open.
                burners.append(
                    self.lab.track(
                        subprocess.Popen(
                            ["ip", "netns", "exec", self.topology.switch.namespace, sys.executable, "-c", burn],
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            start_new_session=True,
                        )
                    )
                )
            yield cores
        finally:
            for burner in burners:
                burner.kill()
                burner.wait()

    @contextlib.contextmanager
    def packet_loss(self, percent: float) -> Iterator[None]:
        """Drops `percent` of every node's incoming packets (nftables: this
        kernel has no netem), VRRP adverts included."""
        table = "vlstress"
        rules = (
            f"add table inet {table}\n"
            f"add chain inet {table} input {{ type filter hook input priority 0 ; }}\n"
            f"add rule inet {table} input numgen random mod 1000 < {round(percent * 10)} drop\n"
        )
        namespaces = [host.namespace for host in self.topology.nodes.values()] if percent > 0 else []
        try:
            for namespace in namespaces:
                run_command(["ip", "netns", "exec", namespace, "nft", "-f", "-"], input=rules)
            yield
        finally:
            for namespace in namespaces:
                run_command(["ip", "netns", "exec", namespace, "nft", "delete", "table", "inet", table], check=False)

    def drill_stress(self) -> DrillResult:
        """A bad day with nothing wrong: both cores busy, a share of every
        node's incoming packets lost, and the holder frozen (every keepalived
        process stopped, as a hypervisor stall freezes a VM) for stall_ms every
        few seconds. The VIP must not move once."""
        stress = self.stress
        self.restore()
        holders = self.live_holders()
        if len(holders) != 1:
            return self.record(DrillResult("stress", False, f"needs one holder, found {holders}"))
        holder = holders[0]
        self.say(
            f"stress: {stress.seconds:g} s of busy cores, {stress.loss_percent:g}% loss, {holder} frozen "
            f"{stress.stall_ms} ms every {stress.stall_every:g} s; the VIP must stay on {holder}"
        )
        group = self.services[holder].process
        stalls = 0
        start = self.event(f"stress: {stress.loss_percent:g}% loss, {stress.stall_ms} ms stalls")
        with self.busy_cores(stress.seconds), self.packet_loss(stress.loss_percent):
            deadline = time.monotonic() + stress.seconds
            while time.monotonic() + stress.stall_every < deadline:
                time.sleep(stress.stall_every)
                if group is None or group.poll() is not None:
                    break
                # keepalived runs as a parent and a VRRP child: freeze both.
                os.killpg(group.pid, signal.SIGSTOP)
                try:
                    time.sleep(stress.stall_ms / 1000)
                finally:
                    os.killpg(group.pid, signal.SIGCONT)
                stalls += 1
            time.sleep(max(0.0, deadline - time.monotonic()))
        end = self.event("stress ends")
        changes = self.watcher.changes_between(start, end)
        figures: dict[str, Any] = {
            "seconds": stress.seconds,
            "loss_percent": stress.loss_percent,
            "stall_ms": stress.stall_ms,
            "stalls": stalls,
            "transitions": len(changes),
            **self.ping_figures(start, end),
        }
        passed = not changes and self.live_holders() == [holder] and stalls > 0
        summary = (
            f"{len(changes)} holder changes in {stress.seconds:g} s with {stalls} stalls of {stress.stall_ms} ms and "
            f"{stress.loss_percent:g}% loss; longest ping gap {figures['longest_ping_gap_s']:.2f} s"
        )
        return self.record(DrillResult("stress", passed, summary, figures))

    def drill_steady(self, seconds: float | None = None) -> DrillResult:
        """Nothing happens but load: both cores busy, and no holder may change."""
        seconds = seconds if seconds is not None else self.steady_seconds
        self.restore()
        holders = self.live_holders()
        cores = os.cpu_count() or 1
        self.say(f"steady: {cores} busy processes for {seconds:g} s; the VIP must stay on {holders}")
        start = self.event(f"load x{cores}")
        with self.busy_cores(seconds):
            time.sleep(seconds)
        end = self.event("load ends")
        changes = self.watcher.changes_between(start, end)
        figures: dict[str, Any] = {
            "seconds": seconds,
            "busy_processes": cores,
            "transitions": len(changes),
            **self.ping_figures(start, end),
        }
        passed = not changes and len(holders) == 1 and self.live_holders() == holders
        summary = (
            f"{len(changes)} holder changes in {seconds:g} s with {cores} cores busy; "
            f"pings {figures['pings_received']}/{figures['pings_sent']}, "
            f"longest gap {figures['longest_ping_gap_s']:.2f} s"
        )
        return self.record(DrillResult("steady under load", passed, summary, figures))

    def drill_notify(self) -> DrillResult:
        """The notify hook ran on every change: each time a node took the VIP
        its log has a MASTER line, and every run of the command succeeded."""
        figures: dict[str, Any] = {}
        problems = []
        for name, host in self.topology.nodes.items():
            log = host.var_upper / "log" / "keepalived-vip-notify.log"
            entries = [line.split() for line in log.read_text().splitlines()] if log.exists() else []
            masters = sum(1 for entry in entries if entry[1] == "MASTER")
            # The log lives on the node's disk: a replaced node's starts anew.
            gains = sum(
                1
                for change in self.watcher.changes
                if change.node == name and change.holds and change.at >= self.host_since[name]
            )
            failed = [entry for entry in entries if entry[2] != "0"]
            figures[name] = {
                "runs": len(entries),
                "master_runs": masters,
                "vip_gains": gains,
                "states": sorted({entry[1] for entry in entries}),
            }
            if masters != gains:
                problems.append(f"{name} took the VIP {gains} times but the hook saw MASTER {masters} times")
            if not entries:
                problems.append(f"the hook never ran on {name}")
            if failed:
                problems.append(f"the command failed on {name}: {failed[0]}")
        summary = "; ".join(problems) or ", ".join(
            f"{name}: {f['runs']} runs, MASTER {f['master_runs']}x" for name, f in figures.items()
        )
        return self.record(DrillResult("notify hook", not problems, summary, figures))

    def finish(self) -> dict[str, Any]:
        totals = self._pinger.totals() if self._pinger else None
        if self._pinger:
            self.pinger.stop()
        self.event("lab ends")
        for service in self.services.values():
            service.stop()
        return {
            "sent": totals.sent if totals else 0,
            "received": totals.received if totals else 0,
            "longest_gap_s": round(totals.longest_gap, 3) if totals else 0.0,
        }


DRILLS = {
    "convergence": LabRun.drill_convergence,
    "graceful": LabRun.drill_graceful,
    "restart": LabRun.drill_restart,
    "crash": LabRun.drill_crash,
    "partition": LabRun.drill_partition,
    "cascade": LabRun.drill_cascade,
    "health": LabRun.drill_health,
    "steady": LabRun.drill_steady,
    "rollout": LabRun.drill_rollout,
    "stress": LabRun.drill_stress,
    "notify": LabRun.drill_notify,
}
DEFAULT_DRILLS = (
    "convergence",
    "graceful",
    "restart",
    "crash",
    "partition",
    "cascade",
    "health",
    "steady",
    "rollout",
    "notify",
)


def applicable(drill: str, spec: LabSpec, rollout_to: LabSpec | None = None) -> bool:
    return {
        "cascade": len(spec.nodes) >= 3,
        "health": spec.health_check is not None,
        "notify": spec.notify,
        "rollout": rollout_to is not None,
    }.get(drill, True)


def run_drills(
    spec: LabSpec,
    drills=DEFAULT_DRILLS,
    prefix: str | None = None,
    steady_seconds: float = 20,
    rollout_to: LabSpec | None = None,
    stress: Stress | None = None,
) -> dict[str, Any]:
    """Boots the spec in a fresh lab, runs the drills that apply to it in
    order, removes everything. Convergence always runs first (every other
    drill starts from a converged cluster), notify last (it reads the whole
    run's log)."""
    unknown = set(drills) - set(DRILLS)
    if unknown:
        raise ValueError(f"unknown drills {sorted(unknown)}; known: {', '.join(DRILLS)}")
    wanted = ["convergence"] + [
        d for d in drills if d not in ("convergence", "notify") and applicable(d, spec, rollout_to)
    ]
    if "notify" in drills and applicable("notify", spec):
        wanted.append("notify")
    with Lab(prefix=prefix) as lab:
        run = LabRun(spec, lab, steady_seconds=steady_seconds, rollout_to=rollout_to, stress=stress)
        try:
            run.boot()
            for name in wanted:
                result = DRILLS[name](run)
                if name == "convergence" and not result.passed:
                    break
        finally:
            ping = run.finish()
        timeline = {
            "changes": [(c.at - run.t0, c.node, c.holds) for c in run._watcher.changes] if run._watcher else [],
            "replies": [t - run.t0 for t in run._pinger.replies] if run._pinger else [],
            "events": [(e.at - run.t0, e.label) for e in run.events],
            "nodes": [n.name for n in spec.by_priority()],
        }
    return {
        "label": spec.label,
        "vrrp": {
            "mode": spec.mode,
            "version": spec.vrrp_version,
            "advert_int_s": spec.advert_interval,
            "nodes": {n.name: n.priority for n in spec.nodes},
        },
        "drills": {r.name: {"passed": r.passed, "summary": r.summary, **r.figures} for r in run.results},
        "ping": ping,
        "notes": run.notes,
        "passed": bool(run.results) and all(r.passed for r in run.results),
        "timeline": timeline,
    }

"""Rolling updates of the keepalived nodes: one node at a time, lowest
priority first, each drained before it goes and seen back in service before
the next is touched.

Pulumi's engine does the ordering. Each node has a `NodeInService` resource
(a dynamic resource) that takes the node's instance id as an input, and the
next node's instance depends on it:

- when an instance is replaced (delete before replace: the new one boots on
  the same port), the engine first deletes the resources whose inputs come
  from it and that would be replaced too: `NodeInService.delete` runs before
  the instance is deleted, and drains the node (keepalived stops gracefully,
  sends priority 0 and the VIP moves after the backup's skew, not after a
  crash's master down interval);
- once the new instance exists, `NodeInService.create` waits until it is in
  service: booted, cloud-init done, keepalived active with the configuration
  this update rendered, and in the VRRP group (BACKUP or MASTER);
- the next node's instance is registered only after that, so a node that
  never comes back stops the rollout with the remaining nodes untouched.

On a first deployment the nodes are created side by side and their gates
wait side by side too: each until its node is in service and exactly one
node of the group holds the VIP, so that `pulumi up` returns with the VIP
served (`waitForService: false` returns as soon as Nova reports the
instances ACTIVE).

The waiting and draining are plain functions over a `NodeAccess` (OpenSSH
through the jumphost in a deployment, the node's namespaces in the lab), so
the lab's rollout drill runs the very code `pulumi up` runs.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pulumi
import pulumi.dynamic

from .hostkeys import HostKeyRefused, HostKeyVerifier, NovaConsoleLogs
from .remote import STATUS_PROBE, RemoteError, Ssh
from .rendering import HANDOVER_PATH, KEEPALIVED_CONF_PATH, VRRP_STATE_PATH
from .settings import NodeSettings

IN_SERVICE_STATES = ("MASTER", "BACKUP")
# How often a node is asked whether it is in service.
POLL_SECONDS = 5
# A drain that cannot reach its node gives up after this long: `pulumi
# destroy` must never hang on an unreachable node.
DRAIN_TIMEOUT_SECONDS = 30

# One line per fact; every command is bounded and none needs a terminal.
PROBE_COMMAND = "; ".join(
    [
        STATUS_PROBE,
        f"printf 'config=%s\\n' \"$(sudo -n sha256sum {KEEPALIVED_CONF_PATH} 2>/dev/null | cut -d' ' -f1)\"",
        # keepalived writes its pid file when it starts: newer than its config
        # means it runs the configuration on disk.
        f"if [ /run/keepalived.pid -nt {KEEPALIVED_CONF_PATH} ]; then echo fresh=yes; else echo fresh=no; fi",
        # The state and when it began, and the node's clock now.
        f"printf 'vrrp=%s\\n' \"$(cat {VRRP_STATE_PATH} 2>/dev/null)\"",
        "printf 'now=%s\\n' \"$(date +%s.%N)\"",
    ]
)
DRAIN_COMMAND = "sudo -n systemctl stop keepalived"
# What a drain writes to a node's handover file (rendering.HANDOVER_PATH),
# added to its priority and clamped by keepalived to 1..254: raised, a
# backup outranks any holder; lowered, a holder is outranked by any backup.
# Below -253 keepalived puts the node in FAULT: it releases the VIP at once
# whatever its peers do, which only a holder no peer can hear is given.
HANDOVER_RAISE = 254
HANDOVER_LOWER = -253
HANDOVER_FAULT = -254
HANDOVER_AT_REST = 0
# How often a node waiting to lose the VIP looks again, on the node itself.
RELEASE_POLL_SECONDS = 0.02


def rollout_order(nodes: Sequence[NodeSettings]) -> list[NodeSettings]:
    """Lowest priority first: the master goes last, and only once."""
    return sorted(nodes, key=lambda node: node.priority)


def config_fingerprint(keepalived_conf: str) -> str:
    return hashlib.sha256(keepalived_conf.encode()).hexdigest()


def _has_vip(vip: str) -> str:
    """A shell test that the node has the VIP on an interface."""
    return f"ip -o -4 addr show | grep -q ' inet {vip}/'"


def announce_command(vip: str) -> str:
    """Makes a node that holds the VIP announce it again (keepalived sends
    gratuitous ARP when it reloads as master), so that neighbours never keep
    pointing at a node that has just released it."""
    return f"if {_has_vip(vip)}; then sudo -n systemctl reload keepalived; echo announced; fi"


class NodeAccess(Protocol):
    def run(self, address: str, host: str, command: str, timeout: float) -> subprocess.CompletedProcess: ...

    def how_to_look(self, address: str) -> str: ...


@dataclass
class SshAccess:
    """The nodes over OpenSSH through the jumphost, as the user reaches them."""

    ssh: Ssh

    def run(self, address: str, host: str, command: str, timeout: float) -> subprocess.CompletedProcess:
        return self.ssh.run(self.ssh.on_node(address, command), host=host, timeout=timeout, address=address)

    def how_to_look(self, address: str) -> str:
        user = self.ssh.user
        return (
            f"ssh -J {user}@{self.ssh.jumphost} {user}@{address} "
            "'cloud-init status --long; sudo systemctl status keepalived; sudo journalctl -u keepalived -n 50'"
        )


@dataclass(frozen=True)
class NodeProbe:
    cloud_init: str
    keepalived: str
    config_sha256: str
    started_after_config: bool
    vrrp_state: str
    # Seconds the node has been in vrrp_state, by its own clock.
    vrrp_state_age: float | None = None

    def problems(self, expected_sha256: str, settle_seconds: float = 0) -> list[str]:
        """What keeps the node out of service, in words (never the expected
        fingerprint itself: it is derived from a secret).

        A new node starts as BACKUP and stays so only while it hears a master
        of its own VRRP group: one that has been BACKUP for its master down
        interval (`settle_seconds`) does. Before that it may be alone, as
        when old and new nodes cannot understand each other, and draining
        the old master then would leave the VIP unheld until it times out."""
        found = []
        if self.cloud_init != "done":
            found.append(f"cloud-init is {self.cloud_init or 'not reporting yet'}")
        if self.keepalived != "active":
            found.append(f"keepalived is {self.keepalived or 'not reporting'}")
        if self.config_sha256 != expected_sha256:
            found.append("keepalived.conf is not the one this update rendered")
        elif not self.started_after_config:
            found.append("keepalived has not started since its configuration was written")
        if self.vrrp_state not in IN_SERVICE_STATES:
            found.append(f"its VRRP state is {self.vrrp_state or 'not reported yet'}, not BACKUP or MASTER")
        elif self.vrrp_state == "BACKUP" and (self.vrrp_state_age or 0) < settle_seconds:
            found.append(
                f"it has been BACKUP for {self.vrrp_state_age or 0:.1f} s, not yet its master down "
                f"interval ({settle_seconds:.2f} s) in which it must hear a master"
            )
        return found


def parse_probe(text: str) -> NodeProbe:
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    state, _, since = fields.get("vrrp", "").strip().partition(" ")
    try:
        age: float | None = float(fields.get("now", "")) - float(since)
    except ValueError:
        age = None
    return NodeProbe(
        cloud_init=fields.get("cloud-init", "").strip(),
        keepalived=fields.get("keepalived", "").strip(),
        config_sha256=fields.get("config", "").strip(),
        started_after_config=fields.get("fresh", "").strip() == "yes",
        vrrp_state=state,
        vrrp_state_age=age,
    )


class NodeNotInService(Exception):
    pass


# What a gate's create waits for: nothing; its node in service (a rolling
# update: the node ahead was seen in service already); or its node in
# service and exactly one node of the group holding the VIP (a first
# deployment, where every node boots at once).
WAIT_MODES = ("none", "node", "group")


def holds_vip_command(vip: str) -> str:
    return f"if {_has_vip(vip)}; then echo vip=held; else echo vip=free; fi"


def wait_vip_held_once(
    access: NodeAccess,
    vip: str,
    addresses: Sequence[str],
    timeout: float,
    poll: float = POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Asks every node whether it holds the VIP until exactly one does;
    returns its address. Raises NodeNotInService saying who held it last."""
    deadline = clock() + timeout
    last = "no node answered"
    while True:
        holders, silent = [], []
        for address in addresses:
            try:
                answer = access.run(address, address, holds_vip_command(vip), timeout=max(5.0, min(60.0, timeout)))
            except RemoteError as error:
                silent.append(f"{address} ({error})")
                continue
            if "vip=held" in answer.stdout:
                holders.append(address)
        if len(holders) == 1 and not silent:
            return holders[0]
        last = f"held by {' and '.join(holders) or 'nobody'}" + (
            f"; no answer from {', '.join(silent)}" if silent else ""
        )
        if clock() + poll > deadline:
            break
        sleep(poll)
    raise NodeNotInService(
        f"the VIP {vip} is not held by exactly one node after the first deployment ({timeout:g} s at most): "
        f"{last}.\nLook at the nodes with:\n  {access.how_to_look(addresses[0])}\n"
        "then fix the cause and run `pulumi up` again."
    )


def wait_in_service(
    access: NodeAccess,
    name: str,
    address: str,
    expected_sha256: str,
    timeout: float,
    settle_seconds: float = 0,
    poll: float = POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> NodeProbe:
    """Asks the node every `poll` seconds until it is in service; raises
    NodeNotInService naming it, saying what was last seen and how to look."""
    host = f"{name} ({address})"
    deadline = clock() + timeout
    last = "it never answered"
    while True:
        try:
            result = access.run(address, host, PROBE_COMMAND, timeout=max(5.0, min(60.0, timeout)))
            probe = parse_probe(result.stdout)
            problems = probe.problems(expected_sha256, settle_seconds)
            if not problems:
                return probe
            last = "; ".join(problems)
            if probe.cloud_init == "error":
                # cloud-init does not run again by itself: waiting longer changes nothing.
                break
        except HostKeyRefused as error:
            # Not the host that printed the key: waiting changes nothing.
            last = str(error)
            break
        except RemoteError as error:
            last = str(error)
        if clock() + poll > deadline:
            break
        sleep(poll)
    raise NodeNotInService(
        f"{host} is not back in service after it was replaced ({timeout:g} s at most): {last}.\n"
        f"The nodes after it in the rollout were not touched. Look at it with:\n  {access.how_to_look(address)}\n"
        "then fix the cause and run `pulumi up` again."
    )


@dataclass(frozen=True)
class DrainView:
    """A node as a drain sees it: whether it holds the VIP, its VRRP state,
    and from the keepalived.conf it runs, its priority, whether it preempts
    and whether it tracks the handover file (nodes rendered before the
    handover existed do not)."""

    holds_vip: bool
    vrrp_state: str
    priority: int
    preempts: bool
    tracks_handover: bool


# cloud-init's record of the instance it booted: on OpenStack, Nova's server id.
INSTANCE_ID_COMMAND = "cat /var/lib/cloud/data/instance-id 2>/dev/null || true"


def _is_uuid(text: str) -> bool:
    """Whether cloud-init's instance id is a Nova server id. Through the EC2
    metadata some images boot with `i-0000002a` instead: that tells nothing,
    and the drain goes on as it did before it asked."""
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def drain_view_command(vip: str) -> str:
    # Only these facts leave the node: the file also holds the password.
    return "; ".join(
        [
            holds_vip_command(vip),
            f"printf 'vrrp=%s\\n' \"$(cut -d' ' -f1 {VRRP_STATE_PATH} 2>/dev/null)\"",
            "sudo -n sed -n"
            " -e 's/^ *priority \\([0-9][0-9]*\\)$/priority=\\1/p'"
            " -e 's/^ *nopreempt$/preempt=no/p'"
            f" -e 's|^ *file \"{HANDOVER_PATH}\"$|handover=yes|p'"
            f" {KEEPALIVED_CONF_PATH}",
        ]
    )


def parse_drain_view(text: str) -> DrainView:
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    priority = fields.get("priority", "").strip()
    return DrainView(
        holds_vip=fields.get("vip", "").strip() == "held",
        vrrp_state=fields.get("vrrp", "").strip(),
        priority=int(priority) if priority.isdigit() else 0,
        preempts=fields.get("preempt", "").strip() != "no",
        tracks_handover=fields.get("handover", "").strip() == "yes",
    )


def handover_command(value: int) -> str:
    """Writes the node's handover file; keepalived sees it at once (inotify)."""
    return f"printf '%s\\n' {value} | sudo -n tee {HANDOVER_PATH} >/dev/null"


def wait_released_command(vip: str, seconds: float) -> str:
    """Waits on the node, not over the network, until it no longer holds
    the VIP (a holder gives it up when it hears a higher priority: the
    successor has taken it), for at most `seconds`."""
    return (
        f"end=$(($(date +%s) + {math.ceil(seconds)})); while {_has_vip(vip)}; do "
        '[ "$(date +%s)" -ge "$end" ] && { echo vip=kept; exit 0; }; '
        f"sleep {RELEASE_POLL_SECONDS:g}; done; echo vip=released"
    )


@dataclass
class Handover:
    """What a drain did before its stop. `handed_over`: another node took
    the VIP and this one released it (make before break); `successor_raised`
    without it: the successor outranks every node, so the holder's stop
    (priority 0) hands over after the successor's shortest skew. `written`:
    the nodes whose handover file must go back to 0, whatever happens."""

    handed_over: bool = False
    successor_raised: bool = False
    two_holders: bool = False
    holds_vip: bool = True
    # The holder has a handover file (a node from before the handover has none).
    tracks_handover: bool = False
    written: list[str] = field(default_factory=list)


def _hand_over(
    access: NodeAccess,
    host: str,
    address: str,
    vip: str,
    others: Sequence[str],
    timeout: float,
    release_seconds: float,
    notes: list[str],
) -> Handover:
    done = Handover()
    try:
        me = parse_drain_view(access.run(address, host, drain_view_command(vip), timeout).stdout)
    except RemoteError as error:
        notes.append(f"{host}: could not be asked whether it holds the VIP: {error}")
        return done
    if not me.holds_vip:
        done.holds_vip = False
        return done
    done.tracks_handover = me.tracks_handover
    peers: list[tuple[str, DrainView]] = []
    for other in others:
        try:
            peers.append((other, parse_drain_view(access.run(other, other, drain_view_command(vip), timeout).stdout)))
        except RemoteError as error:
            notes.append(f"{other}: cannot be reached, no handover to it: {error}")
    if any(view.holds_vip for _, view in peers):
        # Old and new nodes cannot hear each other: the successor holds the
        # VIP already, and announcing it before the stop is the handover.
        done.two_holders = True
        return done
    candidates = sorted(
        ((view.priority, other) for other, view in peers if view.tracks_handover and view.vrrp_state == "BACKUP"),
        reverse=True,
    )
    try:
        if candidates:
            successor = candidates[0][1]
            done.written.append(successor)
            access.run(successor, successor, handover_command(HANDOVER_RAISE), timeout).check_returncode()
            notes.append(f"{successor}: raised above {host} to take the VIP over")
            if not me.preempts:
                # Without preemption nobody takes a live holder's VIP: the
                # stop hands over, after the raised successor's skew.
                done.successor_raised = True
                return done
        elif me.tracks_handover and me.preempts:
            done.written.append(address)
            access.run(address, host, handover_command(HANDOVER_LOWER), timeout).check_returncode()
            notes.append(f"{host}: lowered below its backups, for the next of them to take the VIP over")
        else:
            notes.append(f"{host}: no node to hand the VIP over to first")
            return done
        waited = access.run(address, host, wait_released_command(vip, release_seconds), release_seconds + timeout)
        done.handed_over = "vip=released" in waited.stdout
        done.successor_raised = bool(candidates)
        notes.append(
            f"{host}: released the VIP to a higher priority"
            if done.handed_over
            else f"{host}: still held the VIP after {release_seconds:.1f} s"
        )
    except (RemoteError, subprocess.CalledProcessError) as error:
        notes.append(f"{host}: the handover did not happen: {error}")
    return done


def drain_node(
    access: NodeAccess,
    name: str,
    address: str,
    vip: str,
    others: Sequence[str],
    timeout: float = DRAIN_TIMEOUT_SECONDS,
    settle_seconds: float = 0,
    handover: bool = True,
    instance_id: str | None = None,
) -> list[str]:
    """Stops keepalived on the node before it is deleted; a node that holds
    the VIP hands it over first (make before break). Never raises and never
    hangs: a node that cannot be drained goes down as a crash would, and its
    peers take over anyway. Returns what happened, for the log.

    The handover (docs/rollout.md): the backup of the highest priority is
    raised above the holder through its handover file, preempts it once its
    master down interval runs out and sends its gratuitous ARPs; the holder,
    hearing a higher priority, releases the VIP; only then does it stop.
    Without preemption the raised backup cannot take a live holder's VIP: the
    holder's stop (priority 0) hands over after the raised backup's skew, the
    shortest VRRP has. A successor that cannot be reached: with preemption
    the holder lowers itself instead, and VRRP's own next priority takes over.
    When another node holds the VIP already (old and new nodes that cannot
    hear each other), it announces the VIP, the holder is put in FAULT
    through its handover file (it releases the VIP at once and sends no
    gratuitous ARP after), and the other announces it again before the stop.
    When nothing above could be done (`handover=False` too), the drain is the
    one before the handover: whichever other node holds the VIP announces it
    just before the stop and just after. The announce before also opens the
    connections (kept open by the access) that make the one after immediate.

    `settle_seconds`: the node's master down interval; a handover waits at
    most twice that and a second for the VIP to move.

    `instance_id`: the instance to drain. Another one at its address is left
    alone: when an instance was deleted by hand, `pulumi up` creates the new
    one before it replaces the gate, whose drain then reaches the new
    instance, maybe already in service."""
    host = f"{name} ({address})"
    notes: list[str] = []
    if instance_id is not None:
        try:
            found = access.run(address, host, INSTANCE_ID_COMMAND, timeout).stdout.strip()
        except RemoteError as error:
            return [f"{host}: not drained, it goes down as in a crash: {error}"]
        if not found or (found != instance_id and _is_uuid(found)):
            return [
                f"{host}: not drained: the instance there is {found or 'one still booting'}, "
                f"not {instance_id}, which is gone"
            ]
    release_seconds = 2 * settle_seconds + 1

    def announce(when: str) -> None:
        for other in others:
            try:
                if "announced" in access.run(other, other, announce_command(vip), timeout).stdout:
                    notes.append(f"{other}: holds the VIP and announced it {when} the drain")
            except RemoteError as error:
                notes.append(f"{other}: could not be asked to announce the VIP: {error}")

    def release_in_fault() -> None:
        try:
            released = access.run(
                address,
                host,
                f"{handover_command(HANDOVER_FAULT)} && {wait_released_command(vip, release_seconds)}",
                release_seconds + timeout,
            )
            notes.append(
                f"{host}: released the VIP in FAULT"
                if "vip=released" in released.stdout
                else f"{host}: still held the VIP in FAULT after {release_seconds:.1f} s"
            )
        except RemoteError as error:
            notes.append(f"{host}: could not be put in FAULT: {error}")

    def stop() -> None:
        try:
            result = access.run(address, host, DRAIN_COMMAND, timeout)
            notes.append(
                f"{host}: keepalived stopped"
                if result.returncode == 0
                else f"{host}: stopping keepalived failed ({result.stderr.strip() or result.returncode})"
            )
        except RemoteError as error:
            notes.append(f"{host}: not drained, it goes down as in a crash: {error}")

    done = Handover()
    try:
        if handover:
            done = _hand_over(access, host, address, vip, others, timeout, release_seconds, notes)
        if not done.holds_vip:
            notes.append(f"{host}: does not hold the VIP")
            stop()
        elif done.handed_over or done.successor_raised:
            stop()
        elif done.two_holders and done.tracks_handover:
            # The neighbours follow the last gratuitous ARP, and the holder
            # going away sends one every few seconds (garp_master_refresh)
            # until it stops, which takes a second: released in FAULT at
            # once, it cannot send one after the successor's announce.
            announce("before")
            release_in_fault()
            announce("after")
            stop()
        else:
            announce("before")
            stop()
            announce("after")
    finally:
        for written in done.written:
            try:
                access.run(written, written, handover_command(HANDOVER_AT_REST), timeout)
            except RemoteError as error:
                notes.append(f"{written}: its handover file could not be set back to 0: {error}")
    return notes


@contextlib.contextmanager
def _access(props: dict[str, Any], recreated: Sequence[str] = ()) -> Iterator[SshAccess]:
    """The nodes as the user reaches them, each host's key verified against
    its console before the first login and kept in the user's known_hosts
    (a later `ssh -J` by hand trusts the same keys). `recreated`: the
    addresses whose instance this step has just created, where a key known
    from an earlier instance gives way to the new one's. Connections stay
    open for the step: a drain's announce then follows its stop at once."""
    with tempfile.TemporaryDirectory(prefix="kvip-") as scratch:
        ssh = Ssh(props["jumphost"], user=props["sshUser"], reuse_connections_in=scratch)
        ssh.verifier = HostKeyVerifier(
            ssh.known_hosts,
            NovaConsoleLogs(),
            ports=dict(props.get("nodePorts") or []),
            floating=[props["jumphost"]],
            recreated=recreated,
        )
        try:
            yield SshAccess(ssh)
        finally:
            ssh.close()


class NodeInServiceProvider(pulumi.dynamic.ResourceProvider):
    """The engine's hooks into the rollout (see the module's docstring).

    Do not move this class out of vip_stack.rollout nor rename it. The SDK
    pickles a dynamic resource's provider into the resource's inputs and
    outputs (`__provider`), and a class of an importable module by reference:
    every stack's state names `vip_stack.rollout.NodeInServiceProvider`. A
    delete unpickles the provider its gate was created or last updated with,
    from the state, whatever the program declares now: a gate whose state
    names a class that is no longer there cannot be deleted, so its node
    cannot be drained, replaced or destroyed. Keep the class free of
    attributes too: the pickle would carry them, secrets included
    (tests/test_rollout.py checks what it holds).
    """

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        wait = props.get("wait")
        if wait in ("node", "group") and props["check"] == "ssh":
            timeout = float(props["timeoutSeconds"])
            started = time.monotonic()
            # This node's instance is new; on a first deployment, every one is.
            recreated = [props["jumphost"], *(a for a, _ in props.get("nodePorts") or [])] if wait == "group" else []
            with _access(props, [props["address"], *recreated]) as access:
                wait_in_service(
                    access,
                    props["nodeName"],
                    props["address"],
                    props["configSha256"],
                    timeout,
                    float(props["settleSeconds"]),
                )
                if wait == "group":
                    # One bound for the whole wait, as the setting promises.
                    remaining = max(POLL_SECONDS, timeout - (time.monotonic() - started))
                    wait_vip_held_once(access, props["vip"], [props["address"], *props.get("peers", [])], remaining)
        elif wait == "node":
            # Nothing reaches the nodes: a fixed wait is all a rollout can do.
            # A first deployment has nothing to wait for behind it.
            time.sleep(float(props["fixedWaitSeconds"]))
        return pulumi.dynamic.CreateResult(id_=f"{props['nodeName']}:{props['instanceId']}", outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        # Replaced (deleted first: that is the drain) only with its instance;
        # any other change just records the new values. `wait` is not a
        # setting but what the cloud was at the time ("group" on a first
        # deployment, "node" once nodes serve): it only matters to a create,
        # which reads the new inputs, and counting it made the run after a
        # first deployment an update (seen with the real engine).
        keys = (set(olds) | set(news)) - {"__provider", "wait"}
        changed = [key for key in keys if olds.get(key) != news.get(key)]
        replaces = ["instanceId"] if olds.get("instanceId") != news.get("instanceId") else []
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=True)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(outs=news)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        if props.get("check") != "ssh":
            return
        with _access(props) as access:
            notes = drain_node(
                access,
                props["nodeName"],
                props["address"],
                props["vip"],
                props.get("peers", []),
                settle_seconds=float(props.get("settleSeconds") or 0),
                instance_id=props["instanceId"],
            )
        # The provider's stderr reaches the engine's log (`pulumi up --logtostderr -v=9`).
        print("\n".join(notes), file=sys.stderr)


@dataclass
class NodeInServiceArgs:
    node_name: str
    instance_id: pulumi.Input[str]
    address: pulumi.Input[str]
    # The other nodes' addresses: after a drain, the one holding the VIP announces it.
    peers: pulumi.Input[Sequence[pulumi.Input[str]]]
    # [address, port id] of every node: the instance on the port shows the
    # node's host key on its console before the first login. Ports, not
    # instances: they outlive a rollout, and the next node's instance is
    # declared after this gate.
    node_ports: pulumi.Input[Sequence[pulumi.Input[Sequence[pulumi.Input[str]]]]]
    vip: str
    # None without a jumphost: then check is "fixed-wait".
    jumphost: pulumi.Input[str] | None
    ssh_user: str
    check: str
    timeout_seconds: int
    fixed_wait_seconds: int
    # What the create waits for, one of WAIT_MODES: "node" in a rollout,
    # "group" on a first deployment, "none" when asked not to wait.
    wait: str
    # The node's master down interval: how long it must stay BACKUP to prove it hears a master.
    settle_seconds: float
    # sha256 of the node's keepalived.conf, a secret (the file holds the password).
    config_sha256: pulumi.Input[str]


# What the gates were registered as before they had a type of their own: the
# SDK's one type for every dynamic resource. Stacks made then hold them so.
GENERIC_DYNAMIC_TYPE = "pulumi-python:dynamic:Resource"
# Theirs now: the SDK makes it of the class's `module` and `name`.
NODE_IN_SERVICE_TYPE = "pulumi-python:dynamic/keepalived-vip:NodeInService"


def _under_the_generic_type(aliases: Sequence[Any] | None) -> list[pulumi.Alias]:
    """The gate's own names, current and aliased, under the generic type:
    an alias changes only what it names, so an old name needs its old type
    said again."""
    renamed = [alias for alias in aliases or () if isinstance(alias, pulumi.Alias)]
    retyped = []
    for alias in renamed:
        copied = copy.copy(alias)
        copied.type_ = GENERIC_DYNAMIC_TYPE
        retyped.append(copied)
    return [pulumi.Alias(type_=GENERIC_DYNAMIC_TYPE), *retyped]


class NodeInService(pulumi.dynamic.Resource, module="keepalived-vip", name="NodeInService"):
    """A node is in service: its gate in the rollout (see the module's docstring).

    Its type (NODE_IN_SERVICE_TYPE) says what it is in `pulumi preview` and
    in the state; its package must stay `pulumi-python`, which names the
    engine's provider of dynamic resources."""

    def __init__(self, name: str, args: NodeInServiceArgs, opts: pulumi.ResourceOptions | None = None):
        props = {
            "nodeName": args.node_name,
            "instanceId": args.instance_id,
            "address": args.address,
            "peers": args.peers,
            "nodePorts": args.node_ports,
            "vip": args.vip,
            "jumphost": args.jumphost,
            "sshUser": args.ssh_user,
            "check": args.check,
            "timeoutSeconds": args.timeout_seconds,
            "fixedWaitSeconds": args.fixed_wait_seconds,
            "wait": args.wait,
            "settleSeconds": args.settle_seconds,
            "configSha256": pulumi.Output.secret(args.config_sha256),
        }
        opts = pulumi.ResourceOptions.merge(
            opts,
            pulumi.ResourceOptions(
                additional_secret_outputs=["configSha256"],
                # Long enough for any node to boot, whatever the rollout's own bound.
                custom_timeouts=pulumi.CustomTimeouts(create=f"{args.timeout_seconds + 600}s"),
                # Stacks made before the gate had its own type keep their
                # gates: the same resource, not a delete (a drain) and a create.
                aliases=_under_the_generic_type(opts.aliases if opts else None),
            ),
        )
        super().__init__(NodeInServiceProvider(), name, props, opts)


def fixed_wait_warning(fixed_wait_seconds: int) -> str:
    return (
        "rollouts without SSH access to the nodes (no keyPairName, or rolloutCheck: fixed-wait): an update "
        f"that replaces nodes replaces them one at a time, {fixed_wait_seconds} s apart, without draining them "
        "and without seeing them back in service. Risks: the master goes down as in a crash (the VIP moves "
        "after the master down interval, not a graceful handover), and a node that does not come back is not "
        "noticed before the next one is replaced, which can leave no node to hold the VIP. Set keyPairName "
        "(and load its key into your ssh agent) for drained, checked rollouts."
    )

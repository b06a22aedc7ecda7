"""The reference procedure's check against a real deployment, in one command.

    pulumi stack output --json --show-secrets | python -m vip_stack.check [--failover]
    python -m vip_stack.check --outputs outputs.json [--user LOGIN] [--ssh-config ~/.ssh/config]

Over SSH through the jumphost's floating IP (OpenSSH, ProxyJump, your ssh
config and agent), it reports for each node whether cloud-init finished,
whether keepalived is active and whether it holds the VIP, and whether the
jumphost reaches the VIP. With --failover it runs the procedure's drill: the
jumphost pings the VIP while keepalived stops on the holder, another node must
take the VIP and the pings resume; keepalived starts again and the final
holder is reported. Exits non-zero if any check fails.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .hostkeys import HostKeyVerifier, NovaConsoleLogs
from .observe import Pinger, VipWatcher
from .remote import STATUS_PROBE, RemoteError, Ssh

REQUIRED_OUTPUTS = ("vipAddress", "jumphostFloatingIp", "nodes")


class CheckError(Exception):
    """The outputs the check was given are not a deployed stack's: said in the user's terms."""


@dataclass(frozen=True)
class Node:
    name: str
    address: str
    priority: int
    # Whose console shows the node's host key; None in outputs without it.
    instance_id: str | None = None


@dataclass(frozen=True)
class DeployedStack:
    vip: str
    jumphost: str
    nodes: tuple[Node, ...]
    # The image's login user, as the stack was configured (sshUser); None
    # from a stack deployed before it was an output.
    ssh_user: str | None = None


def parse_outputs(text: str) -> DeployedStack:
    try:
        outputs = json.loads(text)
    except json.JSONDecodeError as error:
        raise CheckError(
            f"the stack outputs are not JSON ({error.msg}); pipe in `pulumi stack output --json --show-secrets`"
        ) from error
    if not isinstance(outputs, dict):
        raise CheckError("the stack outputs must be a JSON object, as `pulumi stack output --json` prints")
    missing = [key for key in REQUIRED_OUTPUTS if not outputs.get(key)]
    if missing:
        raise CheckError(
            f"the stack outputs have no {', '.join(missing)}: are they the keepalived-vip stack's, "
            "after a successful `pulumi up`?"
        )
    try:
        nodes = tuple(
            Node(n["name"], n["ipAddress"], int(n["priority"]), n.get("instanceId")) for n in outputs["nodes"]
        )
    except (KeyError, TypeError, ValueError) as error:
        raise CheckError(f"the nodes output is not a list of {{name, ipAddress, priority}}: {error}") from error
    return DeployedStack(
        vip=outputs["vipAddress"],
        jumphost=outputs["jumphostFloatingIp"],
        nodes=nodes,
        ssh_user=outputs.get("sshUser") or None,
    )


@dataclass
class NodeStatus:
    name: str
    cloud_init: str
    keepalived: str
    holds_vip: bool


NODE_PROBE = f"{STATUS_PROBE}; ip -o -4 addr show"
JUMPHOST_BOOT_TIMEOUT = 600
# cloud-init's state once its boot has ended (or the wait has).
JUMPHOST_BOOT_PROBE = (
    f"timeout {JUMPHOST_BOOT_TIMEOUT} cloud-init status --wait >/dev/null 2>&1; "
    "cloud-init status 2>/dev/null | sed -n 's/^status: //p'"
)


def node_status(ssh: Ssh, node: Node, vip: str) -> NodeStatus:
    result = ssh.run(ssh.on_node(node.address, NODE_PROBE), host=f"{node.name} ({node.address})", address=node.address)
    fields = dict(line.split("=", 1) for line in result.stdout.splitlines() if re.match(r"^[a-z-]+=", line))
    holds = bool(re.search(rf"\binet {re.escape(vip)}/", result.stdout))
    return NodeStatus(node.name, fields.get("cloud-init") or "unknown", fields.get("keepalived") or "unknown", holds)


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def check(self, ok: bool, what: str) -> bool:
        self.lines.append(f"{'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            self.failures.append(what)
        return ok


def status(ssh: Ssh, deployment: DeployedStack, report: Report) -> list[NodeStatus]:
    jumphost = f"the jumphost ({deployment.jumphost})"
    ssh.run(ssh.on_jumphost("true"), host=jumphost)
    report.check(True, f"the jumphost {deployment.jumphost} answers over SSH as {ssh.user}")
    # Its ping comes with its user data: `pulumi up` returns once the nodes
    # serve the VIP, which may be before the jumphost's boot has finished.
    booted = ssh.run(ssh.on_jumphost(JUMPHOST_BOOT_PROBE), host=jumphost, timeout=JUMPHOST_BOOT_TIMEOUT + 60)
    state = booted.stdout.strip() or "unknown"
    report.check(state == "done", f"the jumphost: cloud-init {state}")
    statuses = []
    for node in deployment.nodes:
        node_state = node_status(ssh, node, deployment.vip)
        statuses.append(node_state)
        report.check(node_state.cloud_init == "done", f"{node.name}: cloud-init {node_state.cloud_init}")
        report.check(node_state.keepalived == "active", f"{node.name}: keepalived {node_state.keepalived}")
    holders = [s.name for s in statuses if s.holds_vip]
    report.check(len(holders) == 1, f"VIP {deployment.vip} held by {', '.join(holders) or 'nobody'}")
    report.figures["holders"] = holders
    ping = ssh.run(
        ssh.on_jumphost(f"ping -n -c 3 -i 0.2 -W 1 {shlex.quote(deployment.vip)}"),
        host=f"the jumphost ({deployment.jumphost})",
    )
    report.check(ping.returncode == 0, f"the jumphost reaches the VIP {deployment.vip}")
    return statuses


def failover(ssh: Ssh, deployment: DeployedStack, report: Report, timeout: float, interval: float) -> None:
    """The procedure's drill, measured like the lab's."""
    tracked: list[subprocess.Popen] = []

    def track(process: subprocess.Popen) -> subprocess.Popen:
        tracked.append(process)
        return process

    watcher = VipWatcher(
        {
            node.name: (
                ssh.on_node(node.address, "ip -o monitor address"),
                ssh.on_node(node.address, "ip -o -4 addr show"),
            )
            for node in deployment.nodes
        },
        deployment.vip,
        track,
    )
    try:
        # The remote ping stops by itself after its deadline, even if this process dies.
        pinger = Pinger(
            ssh.on_jumphost(
                shlex.join(Pinger.ping_argv(deployment.vip, interval, deadline_seconds=int(4 * timeout) + 60))
            ),
            track=track,
            interval=interval,
        )
        pinger.start()
        time.sleep(max(1.0, 5 * interval))
        holders = watcher.holders()
        if len(holders) != 1:
            report.check(False, f"failover needs one holder to start from, found {holders or 'none'}")
            return
        holder = holders[0]
        by_name = {n.name: n for n in deployment.nodes}
        start = time.monotonic() - 0.5
        stopped_at = time.monotonic()
        address = by_name[holder].address
        ssh.run(ssh.on_node(address, "sudo systemctl stop keepalived"), host=holder, address=address)
        taken = watcher.wait_for(lambda now: len(now) == 1 and now[0] != holder, timeout)
        if taken is None:
            report.check(False, f"another node took the VIP after keepalived stopped on {holder}")
            return
        new_holder = watcher.holders()[0]
        report.figures["failover_s"] = round(max(0.0, taken - stopped_at), 3)
        time.sleep(2)
        stats = pinger.stats(start, time.monotonic())
        resumed = pinger.stats(time.monotonic() - 1, time.monotonic()).received > 0
        report.figures.update(
            stopped=holder,
            took_over=new_holder,
            pings_sent=stats.sent,
            pings_received=stats.received,
            longest_ping_gap_s=round(stats.longest_gap, 3),
        )
        report.check(
            resumed,
            f"{new_holder} holds the VIP {report.figures['failover_s']:.2f} s later and the "
            f"jumphost's pings resumed (longest gap {stats.longest_gap:.2f} s)",
        )
        ssh.run(ssh.on_node(address, "sudo systemctl start keepalived"), host=holder, address=address)
        if holder == max(deployment.nodes, key=lambda n: n.priority).name:
            # A preempting master takes the VIP back a master down interval
            # after it starts (3.5 s at advert_int 1), a nopreempt one never.
            # A fixed quiet window raced that takeover: wait for it instead.
            watcher.wait_for(lambda now: now == [holder], timeout)
        # Then read the final holder once nothing has changed for 3 s.
        deadline = time.monotonic() + timeout
        while not watcher.stable_for(3) and time.monotonic() < deadline:
            pass
        final = watcher.holders()
        settled = len(final) == 1
        report.figures["final_holder"] = final
        report.check(
            settled, f"after keepalived started again on {holder}, the VIP is held by {', '.join(final) or 'nobody'}"
        )
    finally:
        for process in tracked:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vip_stack.check", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--outputs", type=Path, help="a file with `pulumi stack output --json --show-secrets` (default: standard input)"
    )
    parser.add_argument("--user", help="login on the VMs (default: the stack's sshUser)")
    parser.add_argument("--ssh-config", help="an ssh config file (default: your own, ~/.ssh/config)")
    parser.add_argument(
        "--known-hosts",
        help="where host keys are kept (default: where your OpenSSH keeps them, ~/.ssh/known_hosts); "
        "a new one is trusted only if the VM printed it on its console",
    )
    parser.add_argument("--failover", action="store_true", help="also run the failover drill")
    parser.add_argument("--timeout", type=float, default=30, help="seconds to wait for a takeover (default 30)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)

    report = Report()
    try:
        text = args.outputs.read_text() if args.outputs else sys.stdin.read()
        deployment = parse_outputs(text)
        user = args.user or deployment.ssh_user
        if not user:
            raise CheckError(
                "the stack outputs have no sshUser (a stack deployed before it was exported): run `pulumi up` "
                "once, or pass --user with the image's login user"
            )
        ssh = Ssh(deployment.jumphost, user=user, config_file=args.ssh_config, known_hosts_file=args.known_hosts)
        ssh.verifier = HostKeyVerifier(
            ssh.known_hosts,
            NovaConsoleLogs(),
            instances={node.address: node.instance_id for node in deployment.nodes if node.instance_id},
            floating=[deployment.jumphost],
        )
        status(ssh, deployment, report)
        if args.failover and not report.failures:
            failover(ssh, deployment, report, timeout=args.timeout, interval=0.1)
    except (CheckError, RemoteError) as error:
        report.lines.append(f"FAIL {error}")
        report.failures.append(str(error))
    except OSError as error:
        report.lines.append(f"FAIL cannot run ssh: {error}")
        report.failures.append(str(error))
    if args.json:
        print(json.dumps({"passed": not report.failures, "failures": report.failures, **report.figures}, indent=2))
    else:
        print("\n".join(report.lines))
        print("all checks passed" if not report.failures else f"{len(report.failures)} check(s) failed")
    return 0 if not report.failures else 1


if __name__ == "__main__":
    sys.exit(main())

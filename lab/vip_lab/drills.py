"""The drills: the reference procedure's check and the failures a real cluster
meets, each with a pass/fail verdict against bounds taken from VRRP's own
timers (master down interval = 3 x advert_int + skew), never tuned constants.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from vip_stack.remote import RemoteError
from vip_stack.rendering import GARP
from vip_stack.rollout import NodeAccess, NodeNotInService, drain_node, wait_in_service

from .cluster import Cluster, LabAccess
from .faults import busy_cores, packet_loss
from .results import (
    CascadeResult,
    ConvergenceResult,
    DrillResult,
    HealthCheckResult,
    NotifyHookRuns,
    NotifyResult,
    PartitionResult,
    RestartResult,
    RolloutResult,
    RolloutStep,
    SteadyResult,
    StressResult,
    TakeoverResult,
)
from .scenario import LabSpec


def convergence(run: Cluster) -> DrillResult:
    top = run.spec.by_priority()[0].name
    lowest = run.spec.by_priority()[-1]
    bound = run.spec.master_down_interval(lowest.priority) + run.spec.advert_interval
    result = ConvergenceResult(
        name="convergence",
        passed=False,
        summary="",
        expected=f"{top} alone holds the VIP within {bound:.2f} s and keeps it, "
        f"and {run.spec.jumphost_name} gets answers from the VIP",
        bound_s=round(bound, 3),
        expected_holder=top,
    )
    run.say(f"convergence: starting keepalived on every node, waiting for {top} alone to hold the VIP")
    first = min(run.start(node.name) for node in run.spec.nodes)
    converged = run.wait_holders([top], timeout=bound + 5)
    if converged is None:
        result.summary = f"holders {run.live_holders()} after {bound + 5:.1f} s"
        return run.record(result)
    result.convergence_s = round(max(0.0, converged - first), 3)
    run.start_pinging()
    # Exactly one holder, and it stays so for two adverts.
    steady = run.watcher.stable_for(2 * run.spec.advert_interval) and run.live_holders() == [top]
    reachable = run.pinger.stats(time.monotonic() - run.spec.advert_interval, time.monotonic()).received > 0
    result.passed = steady and reachable and result.convergence_s <= bound
    result.summary = (
        f"{top} holds the VIP alone after {result.convergence_s:.2f} s"
        + ("" if steady else f"; but it did not stay so: holders {run.live_holders()}")
        + ("" if reachable else f"; {run.spec.jumphost_name} gets no answer from the VIP")
    )
    return run.record(result)


def _one_holder_to_start_from(drill: str, holders: list[str]) -> DrillResult:
    return DrillResult(
        name=drill, passed=False, summary=f"holders {holders}", expected="one node holding the VIP to start from"
    )


def _takeover(run: Cluster, drill: str, action: Callable[[str], float], verb: str, past: str) -> DrillResult:
    """The drill's result, not yet recorded: the crash drill adds the recovery first."""
    run.restore()
    holders = run.live_holders()
    if len(holders) != 1:
        return _one_holder_to_start_from(drill, holders)
    victim = holders[0]
    survivors = [n for n in run.running_by_priority() if n != victim]
    if not survivors:
        return DrillResult(
            name=drill, passed=False, summary=f"only {victim} runs", expected="another running node to take over"
        )
    successor = survivors[0]
    bound = run.mdi(successor) + (run.spec.advert_interval if drill == "crash failover" else 0)
    result = TakeoverResult(
        name=drill,
        passed=False,
        summary="",
        expected=f"{successor} holds the VIP within {bound:.2f} s of {victim} {past}, and pings resume",
        bound_s=round(bound, 3),
        victim=victim,
        successor=successor,
    )
    run.say(f"{drill}: {verb} {victim}, waiting for {successor} to take the VIP (bound {bound:.2f} s)")
    window_start = time.monotonic() - 0.5
    at = action(victim)
    taken = run.wait_holders([successor], timeout=bound + 5)
    if taken is None:
        result.pings = run.ping_figures(window_start, time.monotonic())
        result.summary = f"holders {run.live_holders()} after {bound + 5:.1f} s"
        return result
    result.failover_s = round(max(0.0, taken - at), 3)
    # Let the pings that follow the takeover come back before counting.
    time.sleep(max(1.0, 2 * run.spec.advert_interval))
    result.pings = run.ping_figures(window_start, time.monotonic())
    resumed = run.pinger.stats(time.monotonic() - 0.5, time.monotonic()).received > 0
    result.passed = result.failover_s <= bound and resumed
    result.summary = (
        f"{successor} took the VIP {result.failover_s:.2f} s after {victim} {past}"
        f"; longest ping gap {result.pings.longest_gap_s:.2f} s" + ("" if resumed else "; pings did not resume")
    )
    return result


def graceful(run: Cluster) -> DrillResult:
    return run.record(_takeover(run, "graceful failover", run.stop, "stopping keepalived on", "stopped"))


def crash(run: Cluster) -> DrillResult:
    result = _takeover(run, "crash failover", run.crash, "crashing", "crashed")
    if isinstance(result, TakeoverResult):
        run.say(f"crash failover: {result.victim} boots again")
        run.recover(result.victim)
        top = run.running_by_priority()[0]
        result.expected += f"; once {result.victim} is back, {top} holds the VIP"
        back = run.wait_holders([top], timeout=run.mdi(result.victim) + run.spec.advert_interval + 5)
        if back is None:
            result.passed = False
            result.summary += f"; after recovery holders are {run.live_holders()}"
    return run.record(result)


def restart(run: Cluster) -> DrillResult:
    """The procedure's last step: the stopped master starts again and takes the VIP back."""
    stopped = [n.name for n in run.spec.by_priority() if not run.services[n.name].running]
    if not stopped:
        run.stop(run.live_holders()[0])
        run.wait_holders([run.running_by_priority()[0]], timeout=run.mdi(run.running_by_priority()[0]) + 5)
        stopped = [n.name for n in run.spec.by_priority() if not run.services[n.name].running]
    master = stopped[0]
    before = run.live_holders()
    expected = master if run.spec.preempt else (before[0] if before else master)
    bound = run.mdi(master) + run.spec.advert_interval
    result = RestartResult(
        name="master restart",
        passed=False,
        summary="",
        expected=f"{expected} holds the VIP within {bound:.2f} s of {master} starting, and keeps it",
        bound_s=round(bound, 3),
        restarted=master,
        expected_holder=expected,
    )
    run.say(f"master restart: starting {master} again, expecting {expected} to hold the VIP")
    window_start = time.monotonic() - 0.5
    at = run.start(master)
    taken = run.wait_holders([expected], timeout=bound + 5)
    if taken is None:
        result.summary = f"holders {run.live_holders()} after {bound + 5:.1f} s"
        return run.record(result)
    steady = run.watcher.stable_for(2 * run.spec.advert_interval) and run.live_holders() == [expected]
    result.takeback_s = round(max(0.0, taken - at), 3)
    result.pings = run.ping_figures(window_start, time.monotonic())
    result.passed = steady and result.takeback_s <= bound
    result.summary = (
        f"{expected} holds the VIP {result.takeback_s:.2f} s after {master} started; "
        f"longest ping gap {result.pings.longest_gap_s:.2f} s"
        + ("" if steady else f"; but it did not keep it: holders {run.live_holders()}")
    )
    return run.record(result)


def partition(run: Cluster) -> DrillResult:
    """The nodes stop hearing each other (links up, jumphost still reaching
    each): every one may claim the VIP; once healed, exactly one holds it."""
    run.restore()
    order = run.running_by_priority()
    if len(order) < 2:
        return run.record(
            DrillResult(
                name="partition and heal", passed=False, summary=f"running: {order}", expected="two running nodes"
            )
        )
    master = order[0]
    node_ports = [run.topology.ports[name] for name in order]
    claim_bound = max(run.mdi(name) for name in order[1:]) + run.spec.advert_interval
    run.say(f"partition: the nodes can no longer hear each other; each may claim the VIP within {claim_bound:.2f} s")
    run.event("partition")
    run.topology.switch.isolate(node_ports, True)
    split = run.watcher.wait_for(lambda holders: len(holders) > 1, timeout=claim_bound + 5)
    claimed = run.live_holders()
    heal_bound = 3 * run.spec.advert_interval
    # Its bound is the heal's: the column every drill reports as bound_s.
    result = PartitionResult(
        name="partition and heal",
        passed=False,
        summary="",
        expected=f"{master} alone holds the VIP within {heal_bound:.2f} s of healing and keeps it; "
        f"no ping gap after healing longer than that",
        bound_s=round(heal_bound, 3),
        claimed_while_cut=claimed,
    )
    run.say(f"partition: healing; {master} alone expected within {heal_bound:.2f} s")
    healed_at = run.event("heal")
    run.topology.switch.isolate(node_ports, False)
    one = run.wait_holders([master], timeout=heal_bound + 5)
    if one is None:
        result.summary = f"holders {run.live_holders()} {heal_bound + 5:.1f} s after healing"
        return run.record(result)
    result.heal_s = round(max(0.0, one - healed_at), 3)
    steady = run.watcher.stable_for(2 * run.spec.advert_interval) and run.live_holders() == [master]
    # From the heal on: how long the jumphost, which may have followed
    # the other side's claim, took to reach the VIP again (bounded by the
    # gratuitous ARP refresh, which re-teaches every neighbour).
    run.pinger.wait_for_reply(after=one, timeout=GARP.refresh + 1)
    result.pings = run.ping_figures(healed_at, time.monotonic())
    result.passed = steady and result.heal_s <= heal_bound and result.pings.longest_gap_s <= heal_bound
    result.summary = (
        f"while cut, {', '.join(claimed) if split else 'only ' + master} held the VIP; "
        f"{result.heal_s:.2f} s after healing {master} holds it alone; longest ping gap after "
        f"healing {result.pings.longest_gap_s:.2f} s"
        + ("" if steady else f"; but it did not keep it: holders {run.live_holders()}")
    )
    return run.record(result)


def cascade(run: Cluster) -> DrillResult:
    """Three or more nodes: stop the top two, the next priority wins; start them, the top wins."""
    run.restore()
    order = run.running_by_priority()
    if len(order) < 3:
        return run.record(
            DrillResult(
                name="next priority wins", passed=False, summary=f"running: {order}", expected="three running nodes"
            )
        )
    first, second, third = order[:3]
    run.say(f"next priority: stopping {first} then {second}, expecting {third}")
    run.stop(first)
    got_second = run.wait_holders([second], timeout=run.mdi(second) + 5)
    seen_second = run.live_holders()
    run.stop(second)
    got_third = run.wait_holders([third], timeout=run.mdi(third) + 5)
    seen_third = run.live_holders()
    run.start(second)
    run.start(first)
    back = run.wait_holders([first], timeout=run.mdi(first) + run.spec.advert_interval + 5)
    passed = None not in (got_second, got_third, back)
    return run.record(
        CascadeResult(
            name="next priority wins",
            passed=passed,
            summary=f"{second}, then {third} took over in priority order; {first} holds it again"
            if passed
            else f"holders {seen_second} with {first} stopped, {seen_third} with {second} stopped too, "
            f"{run.live_holders()} once both started again",
            expected=f"{second} holds the VIP with {first} stopped, {third} with {second} stopped too, "
            f"{first} once both start again, each within its master down interval + 5 s",
            order=[first, second, third],
        )
    )


def health(run: Cluster) -> DrillResult:
    """The service on the holder stops answering: its health check fails
    `fall` times, the node leaves the election and a backup takes the VIP.
    The service comes back: after `rise` successes the node is eligible
    again and (with preemption) takes the VIP back."""
    check = run.spec.health_check
    if check is None:
        return run.record(
            DrillResult(
                name="health check",
                passed=False,
                summary="the stack has no healthCheck",
                expected="a stack with a healthCheck",
            )
        )
    run.restore()
    holders = run.live_holders()
    if len(holders) != 1:
        return run.record(_one_holder_to_start_from("health check", holders))
    sick = holders[0]
    successor = [n for n in run.running_by_priority() if n != sick][0]
    # The script runs every interval and may take up to one more to time out.
    fail_bound = (check.fall + 1) * check.interval + run.mdi(successor)
    back_to = sick if run.spec.preempt else successor
    back_bound = (check.rise + 1) * check.interval + run.mdi(sick) + run.spec.advert_interval
    result = HealthCheckResult(
        name="health check",
        passed=False,
        summary="",
        expected=f"{successor} holds the VIP within {fail_bound:.2f} s of {sick}'s service stopping; "
        f"{back_to} within {back_bound:.2f} s of it answering again, and keeps it",
        bound_s=round(fail_bound, 3),
        sick=sick,
        successor=successor,
    )
    run.say(f"health check: the service on {sick} stops; {successor} should hold the VIP within {fail_bound:.2f} s")
    window_start = time.monotonic() - 0.5
    at = run.stop_service(sick)
    moved = run.wait_holders([successor], timeout=fail_bound + 5)
    if moved is None:
        result.summary = f"holders {run.live_holders()} {fail_bound + 5:.1f} s after {sick}'s service stopped"
        return run.record(result)
    result.failover_s = round(max(0.0, moved - at), 3)
    run.say(f"health check: the service on {sick} answers again; {back_to} should hold the VIP")
    recovered_at = run.event(f"service up on {sick}")
    run.start_service(sick)
    back = run.wait_holders([back_to], timeout=back_bound + 5)
    steady = back is not None and run.watcher.stable_for(max(check.interval, 2 * run.spec.advert_interval))
    result.recovery_s = round(max(0.0, back - recovered_at), 3) if back is not None else None
    result.pings = run.ping_figures(window_start, time.monotonic())
    result.passed = (
        result.failover_s <= fail_bound and result.recovery_s is not None and steady and run.live_holders() == [back_to]
    )
    result.summary = f"{successor} took the VIP {result.failover_s:.2f} s after {sick}'s service stopped; " + (
        f"{back_to} holds it {result.recovery_s:.2f} s after the service came back"
        if result.recovery_s is not None
        else f"after recovery holders are {run.live_holders()}"
    )
    return run.record(result)


# The longest ping gap a handover may leave: VRRP moves the VIP without a
# silence (the successor's advert reaches the holder as its gratuitous ARP
# reaches the jumphost), so this is the margin for a noisy machine,
# not a timer.
HANDOVER_GAP_BOUND_S = 0.2


@dataclass
class CannotReach:
    """The rollout's access with some nodes out of its reach, as when SSH to
    them fails: what a drain meets when its successor cannot be reached."""

    access: NodeAccess
    addresses: frozenset[str]

    def run(self, address: str, host: str, command: str, timeout: float) -> subprocess.CompletedProcess:
        if address in self.addresses:
            raise RemoteError(f"cannot reach {host} on port 22")
        return self.access.run(address, host, command, timeout)

    def how_to_look(self, address: str) -> str:
        return self.access.how_to_look(address)


def rollout(run: Cluster) -> DrillResult:
    """`pulumi up` after a config change, step by step as the engine runs
    the program's chain: for each node, lowest priority first, its gate
    is deleted (the node is drained), the instance replaced, and the gate
    created again (it waits until the new node is in service), with the
    gate's own code. The VIP must answer throughout and end on the top
    priority alone; with the handover (run.handover), the longest ping gap
    within HANDOVER_GAP_BOUND_S."""
    target = run.rollout_to
    if target is None:
        return run.record(
            DrillResult(
                name="rollout", passed=False, summary="no config change to roll out", expected="a config change"
            )
        )
    run.restore()

    # As `pulumi up` reaches the nodes when a test set it (OpenSSH through
    # the jumphost), else a shell on the node.
    def access() -> NodeAccess:
        return run.node_access() if run.node_access else LabAccess(run.topology)

    # Without the handover a drained master hands over after the next one's
    # skew; add one advert for the first gratuitous ARP to land.
    lowest = min(n.priority for n in target.nodes)
    bound = HANDOVER_GAP_BOUND_S if run.handover else run.spec.skew(lowest) + run.spec.advert_interval
    top = target.by_priority()[0].name
    expected = top if target.preempt else None
    result = RolloutResult(
        name="rollout",
        passed=False,
        summary="",
        expected=f"{', '.join(target.rollout_order)} replaced one at a time, each back in service; then "
        f"{expected or 'one node'} alone holds the VIP, the longest ping gap within {bound:.2f} s",
        bound_s=round(bound, 3),
        change=target.label,
        order=list(target.rollout_order),
        handover=run.handover,
    )
    run.say(
        f"rollout: {target.label}; order {', '.join(target.rollout_order)}; "
        f"{'handover' if run.handover else 'drain without handover'}"
        f"{', the other nodes out of reach while a node is drained' if run.successor_unreachable else ''}; "
        f"the longest ping gap must stay within {bound:.2f} s"
    )
    window_start = time.monotonic() - 0.5
    run.event("rollout starts")
    for name in target.rollout_order:
        node = target.node(name)
        others = [n.address for n in target.nodes if n.name != name]
        drain_access = access()
        if run.successor_unreachable:
            drain_access = CannotReach(drain_access, frozenset(others))
        run.event(f"drain {name}")
        notes = drain_node(
            drain_access,
            name,
            node.address,
            target.vip,
            others,
            # The node as it runs now: the old settings.
            settle_seconds=run.spec.master_down_interval(run.spec.node(name).priority),
            handover=run.handover,
        )
        run.say(f"rollout: {'; '.join(notes)}")
        if node.user_data is None or node.config_sha256 is None:
            result.summary = f"{name} has no user data to roll out"
            return run.record(result)
        replaced_at = run.replace_node(name, node.user_data)
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
            result.summary = str(error)
            return run.record(result)
        in_service_s = time.monotonic() - replaced_at
        run.event(f"{name} in service")
        run.say(f"rollout: {name} is back in service after {in_service_s:.2f} s")
        result.steps.append(RolloutStep(node=name, in_service_s=round(in_service_s, 3), drain=notes))
    run.spec = target
    settled = run.watcher.wait_for(
        lambda holders: len(holders) == 1 and (expected is None or holders == [expected]),
        timeout=max(run.mdi(n.name) for n in target.nodes) + target.advert_interval + 5,
    )
    steady = settled is not None and run.watcher.stable_for(2 * target.advert_interval)
    end = run.event("rollout ends")
    result.holders = run.live_holders()
    result.transitions = len(run.watcher.changes_between(window_start, end))
    result.both_claimed_s = round(_overlap(run, window_start, end), 3)
    result.pings = run.ping_figures(window_start, end)
    result.passed = (
        steady
        and len(result.holders) == 1
        and (expected is None or result.holders == [expected])
        and result.pings.longest_gap_s <= bound
    )
    result.summary = (
        f"{', '.join(target.rollout_order)} replaced one at a time; {result.holders} "
        f"hold(s) the VIP; longest ping gap {result.pings.longest_gap_s:.2f} s, "
        f"two holders for {result.both_claimed_s:.2f} s"
    )
    return run.record(result)


def _overlap(run: Cluster, start: float, end: float) -> float:
    """How long more than one node held the VIP between start and end."""
    holding: dict[str, bool] = {}
    total, since = 0.0, None
    for change in run.watcher.changes_between(0, end):
        holding[change.node] = change.holds
        many = sum(holding.values()) > 1
        if many and since is None:
            since = max(change.at, start)
        elif not many and since is not None:
            total, since = total + max(0.0, change.at - since), None
    return total + (end - since if since is not None else 0.0)


def stress(run: Cluster) -> DrillResult:
    """A bad day with nothing wrong: both cores busy, a share of every
    node's incoming packets lost, and the holder frozen (every keepalived
    process stopped, as a hypervisor stall freezes a VM) for stall_ms every
    few seconds.

    What it may promise is VRRP's: a backup takes over only after a master
    down interval without an advert. When the conditions cannot silence
    the holder that long (Stress.keeps_holder), the VIP must not move once.
    When they can (random loss, or stalls too long for the interval), a move
    is VRRP doing its job, not a failure: the drill counts the moves and
    requires the VIP back on exactly one node, the holder, at the end."""
    stress = run.stress
    run.restore()
    holders = run.live_holders()
    if len(holders) != 1:
        return run.record(_one_holder_to_start_from("stress", holders))
    holder = holders[0]
    # The backups' bound: the shortest master down interval among them.
    bound = min(run.mdi(n.name) for n in run.spec.nodes if n.name != holder)
    certain = stress.keeps_holder(run.spec.advert_interval, bound)
    silence = stress.longest_silence_s(run.spec.advert_interval)
    run.say(
        f"stress: {stress.seconds:g} s of busy cores, {stress.loss_percent:g}% loss ({stress.advert_loss} for "
        f"adverts), {holder} frozen {stress.stall_ms} ms every {stress.stall_every:g} s; longest silence "
        + (f"{silence:.2f} s" if silence is not None else "unbounded")
        + f" against a master down interval of {bound:.2f} s: "
        + (f"the VIP must stay on {holder}" if certain else "moves are counted, not failed")
    )
    group = run.services[holder].process
    stalls = 0
    start = run.event(f"stress: {stress.loss_percent:g}% loss, {stress.stall_ms} ms stalls")
    with busy_cores(run, stress.seconds), packet_loss(run, stress.loss_percent, stress.advert_loss):
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
    end = run.event("stress ends")
    changes = run.watcher.changes_between(start, end)
    if not certain and run.spec.preempt and run.live_holders() != [holder]:
        # A preempting holder that lost the VIP takes it back within one
        # master down interval of its own once the conditions end.
        run.wait_holders([holder], run.mdi(holder) + 2)
    pings = run.ping_figures(start, end)
    final = run.live_holders()
    # Without preemption whoever took the VIP keeps it.
    settled = final == [holder] if run.spec.preempt else len(final) == 1
    return run.record(
        StressResult(
            name="stress",
            passed=stalls > 0 and settled and (not changes or not certain),
            summary=f"{len(changes)} holder changes in {stress.seconds:g} s with {stalls} stalls of "
            f"{stress.stall_ms} ms and {stress.loss_percent:g}% loss, {final} at the end; "
            f"longest ping gap {pings.longest_gap_s:.2f} s",
            expected=(
                f"no holder change: {holder} holds the VIP throughout, frozen at least once"
                if certain
                else "the holder frozen at least once, and one node holding the VIP at the end "
                + ("(the holder: it preempts; moves counted)" if run.spec.preempt else "(moves counted)")
            ),
            pings=pings,
            seconds=stress.seconds,
            loss_percent=stress.loss_percent,
            stall_ms=stress.stall_ms,
            stalls=stalls,
            transitions=len(changes),
            promised_no_move=certain,
        )
    )


def steady(run: Cluster, seconds: float | None = None) -> DrillResult:
    """Nothing happens but load: both cores busy, and no holder may change."""
    seconds = seconds if seconds is not None else run.steady_seconds
    run.restore()
    holders = run.live_holders()
    cores = os.cpu_count() or 1
    run.say(f"steady: {cores} busy processes for {seconds:g} s; the VIP must stay on {holders}")
    start = run.event(f"load x{cores}")
    with busy_cores(run, seconds):
        time.sleep(seconds)
    end = run.event("load ends")
    changes = run.watcher.changes_between(start, end)
    pings = run.ping_figures(start, end)
    return run.record(
        SteadyResult(
            name="steady under load",
            passed=not changes and len(holders) == 1 and run.live_holders() == holders,
            summary=f"{len(changes)} holder changes in {seconds:g} s with {cores} cores busy, "
            f"{run.live_holders()} at the end; pings {pings.received}/{pings.sent}, "
            f"longest gap {pings.longest_gap_s:.2f} s",
            expected=f"one holder ({holders}) and no holder change throughout",
            pings=pings,
            seconds=seconds,
            busy_processes=cores,
            transitions=len(changes),
        )
    )


def notify(run: Cluster) -> DrillResult:
    """The notify hook ran on every change: each time a node took the VIP
    its log has a MASTER line, and every run of the command succeeded."""
    nodes: dict[str, NotifyHookRuns] = {}
    problems = []
    for name, host in run.topology.nodes.items():
        log = host.var_upper / "log" / "keepalived-vip-notify.log"
        entries = [line.split() for line in log.read_text().splitlines()] if log.exists() else []
        masters = sum(1 for entry in entries if entry[1] == "MASTER")
        # The log lives on the node's disk: a replaced node's starts anew.
        gains = sum(
            1
            for change in run.watcher.changes
            if change.node == name and change.holds and change.at >= run.host_since[name]
        )
        failed = [entry for entry in entries if entry[2] != "0"]
        nodes[name] = NotifyHookRuns(
            runs=len(entries), master_runs=masters, vip_gains=gains, states=sorted({entry[1] for entry in entries})
        )
        if masters != gains:
            problems.append(f"{name} took the VIP {gains} times but the hook saw MASTER {masters} times")
        if not entries:
            problems.append(f"the hook never ran on {name}")
        if failed:
            problems.append(f"the command failed on {name}: {failed[0]}")
    summary = "; ".join(problems) or ", ".join(
        f"{name}: {runs.runs} runs, MASTER {runs.master_runs}x" for name, runs in nodes.items()
    )
    return run.record(
        NotifyResult(
            name="notify hook",
            passed=not problems,
            summary=summary,
            expected="on every node, the hook ran, once with MASTER for each time the node took the VIP, "
            "and every run succeeded",
            nodes=nodes,
        )
    )


DRILLS = {
    "convergence": convergence,
    "graceful": graceful,
    "restart": restart,
    "crash": crash,
    "partition": partition,
    "cascade": cascade,
    "health": health,
    "steady": steady,
    "rollout": rollout,
    "stress": stress,
    "notify": notify,
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

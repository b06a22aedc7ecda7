"""The drills: the reference procedure's check and the failures a real cluster
meets, each with a pass/fail verdict against bounds taken from VRRP's own
timers (master down interval = 3 x advert_int + skew), never tuned constants.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

from vip_stack.rendering import GARP
from vip_stack.rollout import NodeAccess, NodeNotInService, drain_node, wait_in_service

from .cluster import DrillResult, LabAccess, LabRun
from .faults import busy_cores, packet_loss
from .scenario import LabSpec


def convergence(run: LabRun) -> DrillResult:
    top = run.spec.by_priority()[0].name
    lowest = run.spec.by_priority()[-1]
    bound = run.spec.master_down_interval(lowest.priority) + run.spec.advert_interval
    run.say(f"convergence: starting keepalived on every node, waiting for {top} alone to hold the VIP")
    first = min(run.start(node.name) for node in run.spec.nodes)
    converged = run.wait_holders([top], timeout=bound + 5)
    figures: dict[str, Any] = {"bound_s": round(bound, 3)}
    if converged is None:
        return run.record(
            DrillResult("convergence", False, f"holders {run.live_holders()} after {bound + 5:.1f} s", figures)
        )
    figures["convergence_s"] = round(max(0.0, converged - first), 3)
    run.start_pinging()
    # Exactly one holder, and it stays so for two adverts.
    steady = run.watcher.stable_for(2 * run.spec.advert_interval) and run.live_holders() == [top]
    figures["holder"] = top
    reachable = run.pinger.stats(time.monotonic() - run.spec.advert_interval, time.monotonic()).received > 0
    passed = steady and reachable and figures["convergence_s"] <= bound
    summary = (
        f"{top} holds the VIP alone after {figures['convergence_s']:.2f} s (bound {bound:.2f} s)"
        + ("" if steady else "; but it did not stay so")
        + ("" if reachable else f"; {run.spec.jumphost_name} gets no answer from the VIP")
    )
    return run.record(DrillResult("convergence", passed, summary, figures))


def _takeover(run: LabRun, drill: str, action: Callable[[str], float], verb: str, past: str) -> DrillResult:
    run.restore()
    holders = run.live_holders()
    if len(holders) != 1:
        return run.record(DrillResult(drill, False, f"needs one holder to start from, found {holders}"))
    victim = holders[0]
    survivors = [n for n in run.running_by_priority() if n != victim]
    if not survivors:
        return run.record(DrillResult(drill, False, "no other node is running to take over"))
    expected = survivors[0]
    bound = run.mdi(expected) + (run.spec.advert_interval if drill == "crash failover" else 0)
    run.say(f"{drill}: {verb} {victim}, waiting for {expected} to take the VIP (bound {bound:.2f} s)")
    window_start = time.monotonic() - 0.5
    at = action(victim)
    taken = run.wait_holders([expected], timeout=bound + 5)
    figures: dict[str, Any] = {"from": victim, "to": expected, "bound_s": round(bound, 3)}
    if taken is None:
        figures.update(run.ping_figures(window_start, time.monotonic()))
        return run.record(DrillResult(drill, False, f"holders {run.live_holders()} after {bound + 5:.1f} s", figures))
    figures["failover_s"] = round(max(0.0, taken - at), 3)
    # Let the pings that follow the takeover come back before counting.
    time.sleep(max(1.0, 2 * run.spec.advert_interval))
    figures.update(run.ping_figures(window_start, time.monotonic()))
    resumed = run.pinger.stats(time.monotonic() - 0.5, time.monotonic()).received > 0
    passed = figures["failover_s"] <= bound and resumed
    summary = (
        f"{expected} took the VIP {figures['failover_s']:.2f} s after {victim} {past}"
        f"; longest ping gap {figures['longest_ping_gap_s']:.2f} s" + ("" if resumed else "; pings did not resume")
    )
    return run.record(DrillResult(drill, passed, summary, figures))


def graceful(run: LabRun) -> DrillResult:
    return _takeover(run, "graceful failover", run.stop, "stopping keepalived on", "stopped")


def crash(run: LabRun) -> DrillResult:
    result = _takeover(run, "crash failover", run.crash, "crashing", "crashed")
    victim = result.figures.get("from")
    if victim:
        run.say(f"crash failover: {victim} boots again")
        run.recover(victim)
        back = run.wait_holders([run.running_by_priority()[0]], timeout=run.mdi(victim) + run.spec.advert_interval + 5)
        if back is None:
            result.passed = False
            result.summary += f"; after recovery holders are {run.live_holders()}"
    return result


def restart(run: LabRun) -> DrillResult:
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
    run.say(f"master restart: starting {master} again, expecting {expected} to hold the VIP")
    window_start = time.monotonic() - 0.5
    at = run.start(master)
    taken = run.wait_holders([expected], timeout=bound + 5)
    figures: dict[str, Any] = {"restarted": master, "holder": expected, "bound_s": round(bound, 3)}
    if taken is None:
        return run.record(
            DrillResult("master restart", False, f"holders {run.live_holders()} after {bound + 5:.1f} s", figures)
        )
    steady = run.watcher.stable_for(2 * run.spec.advert_interval) and run.live_holders() == [expected]
    figures["takeback_s"] = round(max(0.0, taken - at), 3)
    figures.update(run.ping_figures(window_start, time.monotonic()))
    passed = steady and figures["takeback_s"] <= bound
    summary = (
        f"{expected} holds the VIP {figures['takeback_s']:.2f} s after {master} started; "
        f"longest ping gap {figures['longest_ping_gap_s']:.2f} s"
    )
    return run.record(DrillResult("master restart", passed, summary, figures))


def partition(run: LabRun) -> DrillResult:
    """The nodes stop hearing each other (links up, jumphost still reaching
    each): every one may claim the VIP; once healed, exactly one holds it."""
    run.restore()
    order = run.running_by_priority()
    if len(order) < 2:
        return run.record(DrillResult("partition and heal", False, "needs two running nodes"))
    master = order[0]
    node_ports = [run.topology.ports[name] for name in order]
    claim_bound = max(run.mdi(name) for name in order[1:]) + run.spec.advert_interval
    run.say(f"partition: the nodes can no longer hear each other; each may claim the VIP within {claim_bound:.2f} s")
    run.event("partition")
    run.topology.switch.isolate(node_ports, True)
    split = run.watcher.wait_for(lambda holders: len(holders) > 1, timeout=claim_bound + 5)
    claimed = run.live_holders()
    heal_bound = 3 * run.spec.advert_interval
    run.say(f"partition: healing; {master} alone expected within {heal_bound:.2f} s")
    healed_at = run.event("heal")
    run.topology.switch.isolate(node_ports, False)
    one = run.wait_holders([master], timeout=heal_bound + 5)
    # Its bound is the heal's: the column every drill reports as bound_s.
    figures: dict[str, Any] = {"claimed_while_cut": claimed, "bound_s": round(heal_bound, 3)}
    if one is None:
        return run.record(
            DrillResult("partition and heal", False, f"holders {run.live_holders()} after healing", figures)
        )
    figures["heal_s"] = round(max(0.0, one - healed_at), 3)
    steady = run.watcher.stable_for(2 * run.spec.advert_interval) and run.live_holders() == [master]
    # From the heal on: how long the jumphost, which may have followed
    # the other side's claim, took to reach the VIP again (bounded by the
    # gratuitous ARP refresh, which re-teaches every neighbour).
    run.pinger.wait_for_reply(after=one, timeout=GARP.refresh + 1)
    figures.update(run.ping_figures(healed_at, time.monotonic()))
    passed = steady and figures["heal_s"] <= heal_bound and figures["longest_ping_gap_s"] <= heal_bound
    summary = (
        f"while cut, {', '.join(claimed) if split else 'only ' + master} held the VIP; "
        f"{figures['heal_s']:.2f} s after healing {master} holds it alone; longest ping gap after "
        f"healing {figures['longest_ping_gap_s']:.2f} s"
    )
    return run.record(DrillResult("partition and heal", passed, summary, figures))


def cascade(run: LabRun) -> DrillResult:
    """Three or more nodes: stop the top two, the next priority wins; start them, the top wins."""
    run.restore()
    order = run.running_by_priority()
    if len(order) < 3:
        return run.record(DrillResult("next priority wins", False, "needs three running nodes"))
    first, second, third = order[:3]
    run.say(f"next priority: stopping {first} then {second}, expecting {third}")
    run.stop(first)
    got_second = run.wait_holders([second], timeout=run.mdi(second) + 5)
    run.stop(second)
    got_third = run.wait_holders([third], timeout=run.mdi(third) + 5)
    run.start(second)
    run.start(first)
    back = run.wait_holders([first], timeout=run.mdi(first) + run.spec.advert_interval + 5)
    passed = None not in (got_second, got_third, back)
    return run.record(
        DrillResult(
            "next priority wins",
            passed,
            f"{second}, then {third} took over in priority order; {first} holds it again"
            if passed
            else f"holders went wrong: now {run.live_holders()}",
            {"order": [first, second, third]},
        )
    )


def health(run: LabRun) -> DrillResult:
    """The service on the holder stops answering: its health check fails
    `fall` times, the node leaves the election and a backup takes the VIP.
    The service comes back: after `rise` successes the node is eligible
    again and (with preemption) takes the VIP back."""
    if run.spec.health_check is None:
        return run.record(DrillResult("health check", False, "the stack has no healthCheck"))
    check = run.spec.health_check
    interval, fall, rise = check.interval, check.fall, check.rise
    run.restore()
    holders = run.live_holders()
    if len(holders) != 1:
        return run.record(DrillResult("health check", False, f"needs one holder, found {holders}"))
    sick = holders[0]
    expected = [n for n in run.running_by_priority() if n != sick][0]
    # The script runs every interval and may take up to one more to time out.
    fail_bound = (fall + 1) * interval + run.mdi(expected)
    run.say(f"health check: the service on {sick} stops; {expected} should hold the VIP within {fail_bound:.2f} s")
    window_start = time.monotonic() - 0.5
    at = run.stop_service(sick)
    moved = run.wait_holders([expected], timeout=fail_bound + 5)
    figures: dict[str, Any] = {"sick": sick, "to": expected, "bound_s": round(fail_bound, 3)}
    if moved is None:
        return run.record(
            DrillResult("health check", False, f"holders {run.live_holders()} after {fail_bound + 5:.1f} s", figures)
        )
    figures["failover_s"] = round(max(0.0, moved - at), 3)
    back_to = sick if run.spec.preempt else expected
    back_bound = (rise + 1) * interval + run.mdi(sick) + run.spec.advert_interval
    run.say(f"health check: the service on {sick} answers again; {back_to} should hold the VIP")
    recovered_at = run.event(f"service up on {sick}")
    run.start_service(sick)
    back = run.wait_holders([back_to], timeout=back_bound + 5)
    steady = back is not None and run.watcher.stable_for(max(interval, 2 * run.spec.advert_interval))
    figures["recovery_s"] = round(max(0.0, back - recovered_at), 3) if back is not None else None
    figures.update(run.ping_figures(window_start, time.monotonic()))
    passed = figures["failover_s"] <= fail_bound and back is not None and steady and run.live_holders() == [back_to]
    summary = f"{expected} took the VIP {figures['failover_s']:.2f} s after {sick}'s service stopped; " + (
        f"{back_to} holds it {figures['recovery_s']:.2f} s after the service came back"
        if back is not None
        else f"after recovery holders are {run.live_holders()}"
    )
    return run.record(DrillResult("health check", passed, summary, figures))


def rollout(run: LabRun) -> DrillResult:
    """`pulumi up` after a config change, step by step as the engine runs
    the program's chain: for each node, lowest priority first, its gate
    is deleted (the node is drained), the instance replaced, and the gate
    created again (it waits until the new node is in service), with the
    gate's own code. The VIP must answer throughout and end on the top
    priority alone."""
    target = run.rollout_to
    if target is None:
        return run.record(DrillResult("rollout", False, "no config change to roll out"))
    run.restore()

    # As `pulumi up` reaches the nodes when a test set it (OpenSSH through
    # the jumphost), else a shell on the node.
    def access() -> NodeAccess:
        return run.node_access() if run.node_access else LabAccess(run.topology)

    # A drained master hands over after the next one's skew; add one
    # advert for the handover's first gratuitous ARP to land.
    lowest = min(n.priority for n in target.nodes)
    bound = run.spec.skew(lowest) + run.spec.advert_interval
    run.say(
        f"rollout: {target.label}; order {', '.join(target.rollout_order)}; "
        f"the longest ping gap must stay within {bound:.2f} s"
    )
    window_start = time.monotonic() - 0.5
    run.event("rollout starts")
    steps: list[dict[str, Any]] = []
    for name in target.rollout_order:
        node = target.node(name)
        others = [n.address for n in target.nodes if n.name != name]
        run.event(f"drain {name}")
        notes = drain_node(access(), name, node.address, target.vip, others)
        run.say(f"rollout: {'; '.join(notes)}")
        if node.user_data is None or node.config_sha256 is None:
            return run.record(DrillResult("rollout", False, f"{name} has no user data to roll out"))
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
            return run.record(DrillResult("rollout", False, str(error), {"steps": steps}))
        in_service_s = time.monotonic() - replaced_at
        run.event(f"{name} in service")
        run.say(f"rollout: {name} is back in service after {in_service_s:.2f} s")
        steps.append({"node": name, "in_service_s": round(in_service_s, 3), "drain": notes})
    run.spec = target
    top = target.by_priority()[0].name
    expected = top if target.preempt else None
    settled = run.watcher.wait_for(
        lambda holders: len(holders) == 1 and (expected is None or holders == [expected]),
        timeout=max(run.mdi(n.name) for n in target.nodes) + target.advert_interval + 5,
    )
    steady = settled is not None and run.watcher.stable_for(2 * target.advert_interval)
    end = run.event("rollout ends")
    changes = run.watcher.changes_between(window_start, end)
    figures: dict[str, Any] = {
        "change": target.label,
        "order": list(target.rollout_order),
        "steps": steps,
        "holder": run.live_holders(),
        "transitions": len(changes),
        "bound_s": round(bound, 3),
        "both_claimed_s": round(_overlap(run, window_start, end), 3),
        **run.ping_figures(window_start, end),
    }
    holders = run.live_holders()
    passed = (
        steady
        and len(holders) == 1
        and (expected is None or holders == [expected])
        and figures["longest_ping_gap_s"] <= bound
    )
    summary = (
        f"{', '.join(target.rollout_order)} replaced one at a time; {run.live_holders()} "
        f"hold(s) the VIP; longest ping gap {figures['longest_ping_gap_s']:.2f} s "
        f"(bound {bound:.2f} s), two holders for {figures['both_claimed_s']:.2f} s"
    )
    return run.record(DrillResult("rollout", passed, summary, figures))


def _overlap(run: LabRun, start: float, end: float) -> float:
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


def stress(run: LabRun) -> DrillResult:
    """A bad day with nothing wrong: both cores busy, a share of every
    node's incoming packets lost, and the holder frozen (every keepalived
    process stopped, as a hypervisor stall freezes a VM) for stall_ms every
    few seconds. The VIP must not move once."""
    stress = run.stress
    run.restore()
    holders = run.live_holders()
    if len(holders) != 1:
        return run.record(DrillResult("stress", False, f"needs one holder, found {holders}"))
    holder = holders[0]
    run.say(
        f"stress: {stress.seconds:g} s of busy cores, {stress.loss_percent:g}% loss, {holder} frozen "
        f"{stress.stall_ms} ms every {stress.stall_every:g} s; the VIP must stay on {holder}"
    )
    group = run.services[holder].process
    stalls = 0
    start = run.event(f"stress: {stress.loss_percent:g}% loss, {stress.stall_ms} ms stalls")
    with busy_cores(run, stress.seconds), packet_loss(run, stress.loss_percent):
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
    figures: dict[str, Any] = {
        "seconds": stress.seconds,
        "loss_percent": stress.loss_percent,
        "stall_ms": stress.stall_ms,
        "stalls": stalls,
        "transitions": len(changes),
        **run.ping_figures(start, end),
    }
    passed = not changes and run.live_holders() == [holder] and stalls > 0
    summary = (
        f"{len(changes)} holder changes in {stress.seconds:g} s with {stalls} stalls of {stress.stall_ms} ms and "
        f"{stress.loss_percent:g}% loss; longest ping gap {figures['longest_ping_gap_s']:.2f} s"
    )
    return run.record(DrillResult("stress", passed, summary, figures))


def steady(run: LabRun, seconds: float | None = None) -> DrillResult:
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
    figures: dict[str, Any] = {
        "seconds": seconds,
        "busy_processes": cores,
        "transitions": len(changes),
        **run.ping_figures(start, end),
    }
    passed = not changes and len(holders) == 1 and run.live_holders() == holders
    summary = (
        f"{len(changes)} holder changes in {seconds:g} s with {cores} cores busy; "
        f"pings {figures['pings_received']}/{figures['pings_sent']}, "
        f"longest gap {figures['longest_ping_gap_s']:.2f} s"
    )
    return run.record(DrillResult("steady under load", passed, summary, figures))


def notify(run: LabRun) -> DrillResult:
    """The notify hook ran on every change: each time a node took the VIP
    its log has a MASTER line, and every run of the command succeeded."""
    figures: dict[str, Any] = {}
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
    return run.record(DrillResult("notify hook", not problems, summary, figures))


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

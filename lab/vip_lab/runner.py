"""Runs drills in a fresh lab, in order, and removes everything after."""

from __future__ import annotations

from .cluster import Cluster
from .drills import DEFAULT_DRILLS, DRILLS, applicable
from .faults import Stress
from .results import LabReport, Timeline, VrrpFigures
from .scenario import LabSpec
from .topology import Lab


def run_drills(
    spec: LabSpec,
    drills=DEFAULT_DRILLS,
    prefix: str | None = None,
    steady_seconds: float = 20,
    rollout_to: LabSpec | None = None,
    stress: Stress | None = None,
    ping_interval: float = 0.02,
    handover: bool = True,
    successor_unreachable: bool = False,
) -> LabReport:
    """Boots the spec in a fresh lab, runs the drills that apply to it in
    order, removes everything. Convergence always runs first (every other
    drill starts from a converged cluster), notify last (it reads the whole
    run's log). The jumphost pings the VIP every `ping_interval` s. The
    rollout drill's drains hand the VIP over first unless `handover` is
    False; with `successor_unreachable`, the other nodes cannot be reached
    while the holder is drained."""
    unknown = set(drills) - set(DRILLS)
    if unknown:
        raise ValueError(f"unknown drills {sorted(unknown)}; known: {', '.join(DRILLS)}")
    wanted = ["convergence"] + [
        d for d in drills if d not in ("convergence", "notify") and applicable(d, spec, rollout_to)
    ]
    if "notify" in drills and applicable("notify", spec):
        wanted.append("notify")
    with Lab(prefix=prefix) as lab:
        run = Cluster(
            spec,
            lab,
            steady_seconds=steady_seconds,
            rollout_to=rollout_to,
            stress=stress,
            ping_interval=ping_interval,
            handover=handover,
            successor_unreachable=successor_unreachable,
        )
        try:
            run.boot()
            for name in wanted:
                result = DRILLS[name](run)
                if name == "convergence" and not result.passed:
                    break
        finally:
            ping = run.finish()
        timeline = Timeline(
            changes=[(c.at - run.t0, c.node, c.holds) for c in run._watcher.changes] if run._watcher else [],
            replies=[t - run.t0 for t in run._pinger.replies] if run._pinger else [],
            events=[(e.at - run.t0, e.label) for e in run.events],
            nodes=[n.name for n in spec.by_priority()],
        )
    return LabReport(
        label=spec.label,
        vrrp=VrrpFigures(
            mode=spec.mode,
            version=spec.vrrp_version,
            advert_int_s=spec.advert_interval,
            nodes={n.name: n.priority for n in spec.nodes},
        ),
        drills={result.name: result for result in run.results},
        ping=ping,
        notes=run.notes,
        timeline=timeline,
    )

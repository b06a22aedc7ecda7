"""What a lab run found: a typed result per drill, and the run's report.

Every result names its drill, says whether it passed, what the drill saw
(`summary`) and what it expected; its figures are the fields of its kind.
A drill that could not start (too few nodes, no single holder) gives a plain
`DrillResult`. `LabReport.as_json()` is the lab's --json: the same
structure as plain data, so the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar


@dataclass(frozen=True)
class PingFigures:
    """The jumphost's pings to the VIP over a stretch of the run."""

    sent: int
    received: int
    longest_gap_s: float


@dataclass(kw_only=True)
class DrillResult:
    name: str
    passed: bool
    # What the drill saw.
    summary: str
    # What it expected to see; with the summary, why a failed drill failed.
    expected: str
    # The time the drill allowed for what it waited on, from VRRP's timers.
    bound_s: float | None = None
    # The jumphost's pings while the drill ran, for the drills that count them.
    pings: PingFigures | None = None

    def verdict(self) -> str:
        if self.passed:
            return f"PASS {self.name}: {self.summary}"
        return f"FAIL {self.name}: saw {self.summary}; expected {self.expected}"


@dataclass(kw_only=True)
class ConvergenceResult(DrillResult):
    # The top priority, which must end up holding the VIP alone.
    expected_holder: str
    convergence_s: float | None = None


@dataclass(kw_only=True)
class TakeoverResult(DrillResult):
    """Graceful and crash failover: the holder goes, the next priority takes the VIP."""

    # The holder that was stopped or crashed.
    victim: str
    # The running node of the highest priority left, which must take over.
    successor: str
    failover_s: float | None = None


@dataclass(kw_only=True)
class RestartResult(DrillResult):
    restarted: str
    # The restarted master with preemption, else whoever held the VIP.
    expected_holder: str
    takeback_s: float | None = None


@dataclass(kw_only=True)
class PartitionResult(DrillResult):
    claimed_while_cut: list[str]
    heal_s: float | None = None


@dataclass(kw_only=True)
class CascadeResult(DrillResult):
    # The top three priorities, in the order they must hold the VIP.
    order: list[str]


@dataclass(kw_only=True)
class HealthCheckResult(DrillResult):
    # The holder whose service stopped answering.
    sick: str
    successor: str
    failover_s: float | None = None
    # From the service answering again to the expected node holding the VIP.
    recovery_s: float | None = None


@dataclass(frozen=True)
class RolloutStep:
    node: str
    in_service_s: float
    # What draining the node did, step by step.
    drain: list[str]


@dataclass(kw_only=True)
class RolloutResult(DrillResult):
    # The config change, as the target spec's label says it.
    change: str
    order: list[str]
    steps: list[RolloutStep] = field(default_factory=list)
    # Who held the VIP once the rollout ended.
    holders: list[str] = field(default_factory=list)
    transitions: int | None = None
    # How long two nodes held the VIP at once.
    both_claimed_s: float | None = None
    # Whether each holder handed the VIP over before it stopped (False: the
    # drain before the handover existed, for comparison).
    handover: bool = True


@dataclass(kw_only=True)
class SteadyResult(DrillResult):
    seconds: float
    busy_processes: int
    transitions: int


@dataclass(kw_only=True)
class StressResult(DrillResult):
    seconds: float
    loss_percent: float
    stall_ms: int
    stalls: int
    transitions: int
    # Whether the conditions made "no move" certain (Stress.keeps_holder).
    promised_no_move: bool


@dataclass(frozen=True)
class NotifyHookRuns:
    """One node's notify log against the VIP's changes."""

    runs: int
    master_runs: int
    # How often the watcher saw the node take the VIP.
    vip_gains: int
    states: list[str]


@dataclass(kw_only=True)
class NotifyResult(DrillResult):
    nodes: dict[str, NotifyHookRuns]


@dataclass(frozen=True)
class VrrpFigures:
    mode: str
    version: int
    advert_int_s: float
    # Node name -> priority.
    nodes: dict[str, int]


@dataclass(frozen=True)
class Timeline:
    """For the plot; times in seconds since the run started."""

    # (at, node, holds the VIP from then on)
    changes: list[tuple[float, str, bool]]
    # When the jumphost's pings were answered.
    replies: list[float]
    # (at, what a drill did)
    events: list[tuple[float, str]]
    # By priority, highest first.
    nodes: list[str]


Kind = TypeVar("Kind", bound=DrillResult)


@dataclass
class LabReport:
    label: str
    vrrp: VrrpFigures
    # Drill name -> its result, in the order they ran.
    drills: dict[str, DrillResult]
    # Over the whole run.
    ping: PingFigures
    notes: list[str]
    timeline: Timeline

    @property
    def passed(self) -> bool:
        return bool(self.drills) and all(result.passed for result in self.drills.values())

    def failures(self) -> list[DrillResult]:
        return [result for result in self.drills.values() if not result.passed]

    def drill(self, name: str, kind: type[Kind]) -> Kind:
        """The named drill's result, which must be of that kind: a drill that
        could not start has a plain DrillResult, and this says why."""
        result = self.drills[name]
        if not isinstance(result, kind):
            raise TypeError(f"{name} has no {kind.__name__}: {result.verdict()}")
        return result

    def as_json(self) -> dict[str, Any]:
        """The lab's --json: everything but the raw timeline (which is for the plot)."""
        data = dataclasses.asdict(self)
        del data["timeline"]
        data["passed"] = self.passed
        return data

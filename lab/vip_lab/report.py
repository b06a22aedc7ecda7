"""How a lab run is shown: a table on the terminal and a PNG timeline for
people (machines take `LabReport.as_json()`)."""

from __future__ import annotations

from collections.abc import Sequence

from tabulate import tabulate

from .results import (
    ConvergenceResult,
    DrillResult,
    HealthCheckResult,
    LabReport,
    PartitionResult,
    RestartResult,
    TakeoverResult,
    Timeline,
)

# The figures worth a column, in the order a reader asks for them.
HEADER = (
    "drill",
    "result",
    "converge s",
    "failover s",
    "takeback s",
    "heal s",
    "bound s",
    "max ping gap s",
    "pings recv/sent",
)


def _seconds(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else ""


def row(result: DrillResult) -> list[str]:
    """The drill's line of the table: the figures its kind has, blank where it has none."""
    pings = result.pings
    return [
        result.name,
        "PASS" if result.passed else "FAIL",
        _seconds(result.convergence_s if isinstance(result, ConvergenceResult) else None),
        _seconds(result.failover_s if isinstance(result, (TakeoverResult, HealthCheckResult)) else None),
        _seconds(result.takeback_s if isinstance(result, RestartResult) else None),
        _seconds(result.heal_s if isinstance(result, PartitionResult) else None),
        _seconds(result.bound_s),
        _seconds(pings.longest_gap_s if pings else None),
        f"{pings.received}/{pings.sent}" if pings else "",
    ]


def format_table(report: LabReport) -> str:
    """The table, and for each failed drill what it saw and what it expected."""
    lines = tabulate(
        [row(result) for result in report.drills.values()], headers=HEADER, tablefmt="simple", disable_numparse=True
    ).splitlines()
    vrrp = report.vrrp
    title = (
        f"{report.label}: VRRP v{vrrp.version} {vrrp.mode}, advert_int {vrrp.advert_int_s:g} s, "
        f"nodes {', '.join(f'{n}/{p}' for n, p in vrrp.nodes.items())}"
    )
    footer = (
        f"pings from the jumphost over the whole run: {report.ping.received}/{report.ping.sent} answered, "
        f"longest gap {report.ping.longest_gap_s:.2f} s"
    )
    failures = [result.verdict() for result in report.failures()]
    verdict = "all drills passed" if report.passed else "SOME DRILLS FAILED"
    return "\n".join([title, *lines, footer, *failures, verdict])


def _end(timeline: Timeline) -> float:
    """The timeline's last moment, plus a second of margin."""
    moments = [t for t, *_ in timeline.changes] + timeline.replies + [e[0] for e in timeline.events]
    return max(moments + [1]) + 1


# How many 7-point characters fit across the plot, and how far apart (in
# rows) two lines of labels stand.
LABEL_CHARS_ACROSS = 190
LANE_HEIGHT = 0.3


def label_lanes(events: Sequence[tuple[float, str]], seconds_per_char: float) -> list[int]:
    """A line for each event's label, the lowest where it overlaps no label
    already placed: labels of events close in time stack instead of
    overprinting each other."""
    lane_ends: list[float] = []
    lanes = []
    for at, label in events:
        width = (len(label) + 1) * seconds_per_char
        lane = next((i for i, busy_until in enumerate(lane_ends) if busy_until <= at), len(lane_ends))
        if lane == len(lane_ends):
            lane_ends.append(0.0)
        lane_ends[lane] = at + width
        lanes.append(lane)
    return lanes


def plot_timeline(reports: Sequence[LabReport], path: str) -> None:
    """One panel per run: a bar per node while it holds the VIP, the pings
    that came back, gaps in red, and the drills' actions as labelled lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ends = [_end(report.timeline) for report in reports]
    lanes_of = [label_lanes(r.timeline.events, end / LABEL_CHARS_ACROSS) for r, end in zip(reports, ends)]
    rows_per_panel = max(
        len(r.timeline.nodes) + LANE_HEIGHT * max(lanes, default=0) for r, lanes in zip(reports, lanes_of)
    )
    figure, axes = plt.subplots(len(reports), 1, figsize=(14, 2.2 + 1.1 * rows_per_panel * len(reports)), squeeze=False)
    for axis, report, end, lanes in zip(axes[:, 0], reports, ends, lanes_of):
        timeline = report.timeline
        nodes = timeline.nodes
        rows_ = {name: len(nodes) - i for i, name in enumerate(nodes)}
        for name in nodes:
            held_since = None
            for at, node, holds in timeline.changes:
                if node != name:
                    continue
                if holds and held_since is None:
                    held_since = at
                elif not holds and held_since is not None:
                    axis.broken_barh([(held_since, at - held_since)], (rows_[name] - 0.35, 0.7), color="tab:green")
                    held_since = None
            if held_since is not None:
                axis.broken_barh([(held_since, end - held_since)], (rows_[name] - 0.35, 0.7), color="tab:green")
        replies = timeline.replies
        axis.plot(replies, [0] * len(replies), "|", color="tab:blue", markersize=8)
        gap_threshold = 0.1  # five missed pings at the lab's 20 ms interval
        for a, b in zip(replies, replies[1:]):
            if b - a > gap_threshold:
                axis.broken_barh([(a, b - a)], (-0.35, 0.7), color="tab:red")
                axis.annotate(f"{b - a:.2f} s", (b, 0.4), fontsize=7, color="tab:red")
        for (at, label), lane in zip(timeline.events, lanes):
            axis.axvline(at, color="grey", linestyle=":", linewidth=0.8)
            axis.annotate(label, (at, len(nodes) + 0.45 + LANE_HEIGHT * lane), fontsize=7, color="dimgrey")
        axis.set_yticks([0] + [rows_[n] for n in nodes])
        axis.set_yticklabels(["pings (red: lost)"] + [f"{n} holds VIP" for n in nodes])
        axis.set_ylim(-0.8, len(nodes) + 0.9 + LANE_HEIGHT * max(lanes, default=0))
        axis.set_xlim(0, end)
        axis.set_xlabel("seconds since the lab started")
        vrrp = report.vrrp
        axis.set_title(
            f"{report.label}: VRRP v{vrrp.version} {vrrp.mode}, advert_int {vrrp.advert_int_s:g} s"
            f" — {'all drills passed' if report.passed else 'some drills FAILED'}",
            fontsize=10,
        )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)

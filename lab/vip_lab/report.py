"""How a lab run is shown: a table on the terminal, a JSON object for
machines, and a PNG timeline for people."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

# The figures worth a column, in the order a reader asks for them.
COLUMNS = (
    ("drill", "drill"),
    ("result", "result"),
    ("convergence_s", "converge s"),
    ("failover_s", "failover s"),
    ("takeback_s", "takeback s"),
    ("heal_s", "heal s"),
    ("bound_s", "bound s"),
    ("longest_ping_gap_s", "max ping gap s"),
    ("pings", "pings recv/sent"),
)


def rows(result: dict[str, Any]) -> list[list[str]]:
    table = []
    for name, drill in result["drills"].items():
        row = []
        for key, _ in COLUMNS:
            if key == "drill":
                row.append(name)
            elif key == "result":
                row.append("PASS" if drill["passed"] else "FAIL")
            elif key == "pings":
                row.append(f"{drill['pings_received']}/{drill['pings_sent']}" if "pings_sent" in drill else "")
            elif key == "bound_s":
                bound = drill.get("bound_s")
                row.append(f"{bound:.2f}" if bound is not None else "")
            else:
                value = drill.get(key)
                row.append(f"{value:.2f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "")
        table.append(row)
    return table


def format_table(result: dict[str, Any]) -> str:
    header = [title for _, title in COLUMNS]
    lines = tabulate(rows(result), headers=header, tablefmt="simple", disable_numparse=True).splitlines()
    vrrp = result["vrrp"]
    ping = result["ping"]
    title = (
        f"{result['label']}: VRRP v{vrrp['version']} {vrrp['mode']}, advert_int {vrrp['advert_int_s']:g} s, "
        f"nodes {', '.join(f'{n}/{p}' for n, p in vrrp['nodes'].items())}"
    )
    footer = (
        f"pings from the jumphost over the whole run: {ping['received']}/{ping['sent']} answered, "
        f"longest gap {ping['longest_gap_s']:.2f} s"
    )
    verdict = "all drills passed" if result["passed"] else "SOME DRILLS FAILED"
    return "\n".join([title, *lines, footer, verdict])


def machine_readable(result: dict[str, Any]) -> dict[str, Any]:
    """The result without the raw timeline (which is for the plot)."""
    return {key: value for key, value in result.items() if key != "timeline"}


def _end(timeline: dict[str, Any]) -> float:
    """The timeline's last moment, plus a second of margin."""
    moments = [t for t, *_ in timeline["changes"]] + timeline["replies"] + [e[0] for e in timeline["events"]]
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


def plot_timeline(results: Sequence[dict[str, Any]], path: str) -> None:
    """One panel per run: a bar per node while it holds the VIP, the pings
    that came back, gaps in red, and the drills' actions as labelled lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ends = [_end(result["timeline"]) for result in results]
    lanes_of = [label_lanes(r["timeline"]["events"], end / LABEL_CHARS_ACROSS) for r, end in zip(results, ends)]
    rows_per_panel = max(
        len(r["timeline"]["nodes"]) + LANE_HEIGHT * max(lanes, default=0) for r, lanes in zip(results, lanes_of)
    )
    figure, axes = plt.subplots(len(results), 1, figsize=(14, 2.2 + 1.1 * rows_per_panel * len(results)), squeeze=False)
    for axis, result, end, lanes in zip(axes[:, 0], results, ends, lanes_of):
        timeline = result["timeline"]
        nodes = timeline["nodes"]
        rows_ = {name: len(nodes) - i for i, name in enumerate(nodes)}
        for name in nodes:
            held_since = None
            for at, node, holds in timeline["changes"]:
                if node != name:
                    continue
                if holds and held_since is None:
                    held_since = at
                elif not holds and held_since is not None:
                    axis.broken_barh([(held_since, at - held_since)], (rows_[name] - 0.35, 0.7), color="tab:green")
                    held_since = None
            if held_since is not None:
                axis.broken_barh([(held_since, end - held_since)], (rows_[name] - 0.35, 0.7), color="tab:green")
        replies = timeline["replies"]
        axis.plot(replies, [0] * len(replies), "|", color="tab:blue", markersize=8)
        gap_threshold = 0.1  # five missed pings at the lab's 20 ms interval
        for a, b in zip(replies, replies[1:]):
            if b - a > gap_threshold:
                axis.broken_barh([(a, b - a)], (-0.35, 0.7), color="tab:red")
                axis.annotate(f"{b - a:.2f} s", (b, 0.4), fontsize=7, color="tab:red")
        for (at, label), lane in zip(timeline["events"], lanes):
            axis.axvline(at, color="grey", linestyle=":", linewidth=0.8)
            axis.annotate(label, (at, len(nodes) + 0.45 + LANE_HEIGHT * lane), fontsize=7, color="dimgrey")
        axis.set_yticks([0] + [rows_[n] for n in nodes])
        axis.set_yticklabels(["pings (red: lost)"] + [f"{n} holds VIP" for n in nodes])
        axis.set_ylim(-0.8, len(nodes) + 0.9 + LANE_HEIGHT * max(lanes, default=0))
        axis.set_xlim(0, end)
        axis.set_xlabel("seconds since the lab started")
        vrrp = result["vrrp"]
        axis.set_title(
            f"{result['label']}: VRRP v{vrrp['version']} {vrrp['mode']}, advert_int {vrrp['advert_int_s']:g} s"
            f" — {'all drills passed' if result['passed'] else 'some drills FAILED'}",
            fontsize=10,
        )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)

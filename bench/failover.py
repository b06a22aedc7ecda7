"""Failover figures of the stack against the reference procedure, measured
in one run on this machine with the lab.

    sudo venv/bin/python bench/failover.py [--config Pulumi.dev.yaml ...] [--rounds 3]
                                           [--steady-seconds 120] [--json] [--plot FILE]

For each configuration (the reference procedure's own two keepalived.conf
files first, then each stack file) it boots a fresh lab per round and runs the
graceful-stop and crash drills, then prints the median of each figure and
its ratio to the reference's. Figures are seconds: time until another node
holds the VIP, and the longest silence in the jumphost's pings. Then one more
lab per configuration keeps both cores busy for --steady-seconds and counts
VIP transitions, which must be none, and one more runs the stress drill for
--stress-seconds (cores busy, 1% of every node's packets lost, the holder's
keepalived frozen 250 ms every 3 s), where none must happen either.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import statistics
import sys
from pathlib import Path

from tabulate import tabulate

from vip_lab.evaluate import EXAMPLE_STACK_FILE
from vip_lab.faults import Stress
from vip_lab.plan import stack_config
from vip_lab.report import plot_timeline
from vip_lab.results import DrillResult, SteadyResult, StressResult, TakeoverResult
from vip_lab.runner import run_drills
from vip_lab.scenario import reference_spec, stack_spec

# The benchmark's own progress on stderr; the drills' step by step stays quiet.
log = logging.getLogger("bench")


def _failover_s(result: TakeoverResult) -> float | None:
    return result.failover_s


def _ping_gap_s(result: TakeoverResult) -> float | None:
    return result.pings.longest_gap_s if result.pings else None


# (drill, title, the figure of its result)
FIGURES = (
    ("graceful failover", "graceful failover s", _failover_s),
    ("crash failover", "crash failover s", _failover_s),
    ("graceful failover", "ping gap, graceful s", _ping_gap_s),
    ("crash failover", "ping gap, crash s", _ping_gap_s),
)


def _transitions(result: DrillResult | None) -> int | None:
    """The VIP's holder changes the steady or the stress drill counted (None: it could not start)."""
    return result.transitions if isinstance(result, (SteadyResult, StressResult)) else None


def measure(spec, rounds: int, steady_seconds: float, stress: Stress | None = None) -> dict:
    samples: dict[str, list[float]] = {title: [] for _, title, _ in FIGURES}
    failures, last = [], None
    for round_ in range(1, rounds + 1):
        log.info(f"{spec.label}: round {round_}/{rounds}")
        last = run_drills(spec, drills=["graceful", "restart", "crash"])
        failures += [f"round {round_}: {failed.verdict()}" for failed in last.failures()]
        for drill, title, figure in FIGURES:
            result = last.drills.get(drill)
            value = figure(result) if isinstance(result, TakeoverResult) else None
            if value is not None:
                samples[title].append(value)
    transitions = None
    if steady_seconds > 0:
        log.info(f"{spec.label}: steady run, both cores busy for {steady_seconds:g} s")
        steady = run_drills(spec, drills=["steady"], steady_seconds=steady_seconds)
        transitions = _transitions(steady.drills.get("steady under load"))
        failures += [failed.verdict() for failed in steady.failures()]
    stress_transitions = None
    if stress is not None:
        log.info(f"{spec.label}: stress run, {stress.seconds:g} s")
        stressed = run_drills(spec, drills=["stress"], stress=stress)
        stress_transitions = _transitions(stressed.drills.get("stress"))
        failures += [failed.verdict() for failed in stressed.failures()]
    assert last is not None, "at least one round"
    return {
        "label": spec.label,
        "vrrp": dataclasses.asdict(last.vrrp),
        "steady_seconds": steady_seconds,
        "steady_transitions": transitions,
        "stress": None
        if stress is None
        else {
            "seconds": stress.seconds,
            "loss_percent": stress.loss_percent,
            "stall_ms": stress.stall_ms,
            "transitions": stress_transitions,
        },
        "median": {title: statistics.median(v) if v else None for title, v in samples.items()},
        "samples": samples,
        "failures": failures,
        "last_run": last,
    }


def table(results: list[dict]) -> str:
    reference = results[0]
    header = ["figure (median)"] + [r["label"] for r in results]
    lines = [header]
    for _, title, _ in FIGURES:
        row = [title]
        for result in results:
            value = result["median"][title]
            base = reference["median"][title]
            cell = "n/a" if value is None else f"{value:.2f}"
            if result is not reference and value is not None and base:
                cell += f" ({value / base:.2f}x)"
            row.append(cell)
        lines.append(row)
    if any(r["steady_transitions"] is not None for r in results):
        lines.append(
            ["VIP changes, cores busy"]
            + [
                "n/a" if r["steady_transitions"] is None else f"{r['steady_transitions']} in {r['steady_seconds']:g} s"
                for r in results
            ]
        )
    if any(r["stress"] for r in results):
        lines.append(
            ["VIP changes, stress"]
            + [
                "n/a"
                if not r["stress"] or r["stress"]["transitions"] is None
                else f"{r['stress']['transitions']} in {r['stress']['seconds']:g} s"
                for r in results
            ]
        )
    text = tabulate(lines[1:], headers=lines[0], tablefmt="simple", disable_numparse=True).splitlines()
    for result in results:
        vrrp = result["vrrp"]
        text.append(
            f"{result['label']}: VRRP v{vrrp['version']} {vrrp['mode']}, advert_int {vrrp['advert_int_s']:g} s, "
            f"{len(result['samples'][FIGURES[0][1]])} rounds"
            + (f"; FAILED: {'; '.join(result['failures'])}" if result["failures"] else "")
        )
    return "\n".join(text)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("vip_lab").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, action="append", help="stack files to compare (default Pulumi.dev.yaml)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--steady-seconds", type=float, default=120, help="length of the steady run with both cores busy (0 to skip)"
    )
    parser.add_argument(
        "--stress-seconds",
        type=float,
        default=60,
        help="length of the stress run: cores busy, 1%% loss, the holder frozen 250 ms every 3 s (0 to skip)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--plot", metavar="FILE", help="PNG timelines of each configuration's last round")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("the benchmark runs the lab, which needs root", file=sys.stderr)
        return 2
    specs = [reference_spec("kld-pass")]
    for path in args.config or [EXAMPLE_STACK_FILE]:
        config, _ = stack_config(path)
        specs.append(stack_spec(config, label=path.name))
    stress = Stress(seconds=args.stress_seconds) if args.stress_seconds > 0 else None
    results = [measure(spec, args.rounds, args.steady_seconds, stress) for spec in specs]
    if args.plot:
        plot_timeline([r["last_run"] for r in results], args.plot)
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "last_run"} for r in results], indent=2))
    else:
        print(f"machine: {os.cpu_count()} cores; {args.rounds} rounds per configuration")
        print(table(results))
    return 0 if not any(r["failures"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

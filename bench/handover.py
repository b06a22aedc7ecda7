"""A rolling update's gap in service, with the handover and with the drain
before it, for every change class, measured in one run on this machine with
the lab.

    sudo venv/bin/python -m bench.handover [--config Pulumi.dev.yaml] [--classes compatible,...] [--json]

For each change class it boots a fresh lab twice and runs the rollout drill
(`pulumi up`'s own drain and wait, step by step) while the jumphost pings
the VIP every 10 ms: once with the drain as it was before the handover
(stop the holder, its backup takes over after its skew), once with the
handover (the next holder takes the VIP before the old one stops). It
prints, for each, the longest ping gap, the pings lost and how long two
nodes held the VIP at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from tabulate import tabulate

from tests.change_classes import CHANGE_CLASSES, ChangeClass
from vip_lab.evaluate import EXAMPLE_STACK_FILE
from vip_lab.plan import stack_config
from vip_lab.results import RolloutResult
from vip_lab.runner import run_drills
from vip_lab.scenario import rollout_spec, stack_spec

log = logging.getLogger("bench")

PING_INTERVAL_S = 0.01


def measure(change_class: ChangeClass, base: dict[str, Any], handover: bool) -> RolloutResult | None:
    config = change_class.stack_before(base)
    if "nodes" not in config:
        config = {**config, "nodes": [{"name": "kld-vm-1", "priority": 120}, {"name": "kld-vm-2", "priority": 90}]}
    spec = stack_spec(config, label=change_class.name)
    target = rollout_spec(config, change_class.change(config), spec)
    report = run_drills(
        spec,
        drills=["rollout"],
        rollout_to=target,
        ping_interval=PING_INTERVAL_S,
        handover=handover,
        successor_unreachable=change_class.successor_unreachable,
    )
    result = report.drills.get("rollout")
    if not isinstance(result, RolloutResult):
        log.info(f"{change_class.name}: the rollout did not run: {result.verdict() if result else 'no result'}")
        return None
    for step in result.steps:
        log.info(f"  drain {step.node}: {'; '.join(step.drain)}")
    log.info(result.verdict())
    return result


def figures(result: RolloutResult | None) -> dict[str, Any]:
    if result is None or result.pings is None:
        return {"longest_gap_s": None, "pings_lost": None, "two_holders_s": None, "passed": False}
    return {
        "longest_gap_s": result.pings.longest_gap_s,
        "pings_lost": result.pings.sent - result.pings.received,
        "pings_sent": result.pings.sent,
        "two_holders_s": result.both_claimed_s,
        "passed": result.passed,
    }


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("vip_lab").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", type=Path, default=EXAMPLE_STACK_FILE, help="the stack file every class starts from"
    )
    parser.add_argument(
        "--classes", default=",".join(CHANGE_CLASSES), help=f"comma-separated, of: {', '.join(CHANGE_CLASSES)}"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("the benchmark runs the lab, which needs root", file=sys.stderr)
        return 2
    base, _ = stack_config(args.config)
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for name in args.classes.split(","):
        change_class = CHANGE_CLASSES[name.strip()]
        rows[change_class.name] = {}
        for handover in (False, True):
            log.info(f"{change_class.name}: {'handover' if handover else 'drain before the handover'}")
            rows[change_class.name]["handover" if handover else "drain"] = figures(
                measure(change_class, base, handover)
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0

    def cell(row: dict[str, Any], key: str) -> str:
        value = row[key]
        return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    table = [
        [
            name,
            cell(by["drain"], "longest_gap_s"),
            cell(by["handover"], "longest_gap_s"),
            cell(by["drain"], "pings_lost"),
            cell(by["handover"], "pings_lost"),
            cell(by["drain"], "two_holders_s"),
            cell(by["handover"], "two_holders_s"),
            "PASS" if by["handover"]["passed"] else "FAIL",
        ]
        for name, by in rows.items()
    ]
    headers = [
        "change class",
        "gap s before",
        "gap s handover",
        "lost before",
        "lost handover",
        "two holders s before",
        "two holders s handover",
        "drill",
    ]
    print(f"machine: {os.cpu_count()} cores; ping every {PING_INTERVAL_S * 1000:g} ms; {args.config.name}")
    print(tabulate(table, headers=headers, tablefmt="simple", disable_numparse=True))
    return 0 if all(by["handover"]["passed"] for by in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

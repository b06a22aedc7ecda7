"""The speed/robustness curve: how fast the VIP fails over at each
advertInterval, and whether it survives a bad day at that interval.

    sudo venv/bin/python bench/sweep.py [--intervals 1,0.5,0.2,0.1,0.05] [--stress-seconds 20]
                                        [--plot sweep.png] [--json]

For each interval (the example stack with advertInterval changed) it runs the
graceful-stop and crash drills in a fresh lab, then, in one more lab, the
stress drill for every stall (100, 250, 500 ms of the holder's keepalived
frozen every 3 s) and loss (0, 1, 5% of every node's incoming packets) with
both cores busy, counting VIP transitions. It prints one table and plots the
curve: failover times falling with the interval, transitions appearing once
the master down interval comes within reach of a stall.
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

from vip_lab import drills as lab_drills
from vip_lab.cluster import Cluster
from vip_lab.evaluate import EXAMPLE_STACK_FILE
from vip_lab.faults import Stress
from vip_lab.plan import stack_config
from vip_lab.results import DrillResult, StressResult, TakeoverResult
from vip_lab.runner import run_drills
from vip_lab.scenario import stack_spec
from vip_lab.topology import Lab

# The benchmark's own progress on stderr; the drills' step by step stays quiet.
log = logging.getLogger("bench")

STALLS_MS = (100, 250, 500)
LOSSES = (0, 1, 5)


def _takeover(result: DrillResult | None) -> TakeoverResult | None:
    """A failover drill's result, if it got as far as the takeover."""
    return result if isinstance(result, TakeoverResult) else None


def measure(config: dict, label: str, stress_seconds: float) -> dict:
    spec = stack_spec(config, label=label)
    log.info(f"{spec.label}: failover drills")
    drills = run_drills(spec, drills=["graceful", "crash"]).drills
    graceful, crash = _takeover(drills.get("graceful failover")), _takeover(drills.get("crash failover"))
    result: dict[str, Any] = {
        "label": label,
        "advert_interval_s": spec.advert_interval,
        "vrrp_version": spec.vrrp_version,
        "master_down_interval_s": round(spec.master_down_interval(90), 3),
        "graceful_s": graceful.failover_s if graceful else None,
        "crash_s": crash.failover_s if crash else None,
        "longest_ping_gap_s": max(
            takeover.pings.longest_gap_s if takeover and takeover.pings else 0 for takeover in (graceful, crash)
        ),
        "stress": {},
    }
    with Lab() as lab:
        run = Cluster(spec, lab)
        try:
            run.boot()
            lab_drills.convergence(run)
            for stall in STALLS_MS:
                for loss in LOSSES:
                    log.info(f"{spec.label}: stress, {stall} ms stalls, {loss}% loss")
                    # Random loss, as the curve was first measured: it counts how often a
                    # run of lost adverts moves the VIP.
                    run.stress = Stress(seconds=stress_seconds, loss_percent=loss, stall_ms=stall, advert_loss="random")
                    outcome = lab_drills.stress(run)
                    result["stress"][f"{stall}ms/{loss}%"] = (
                        outcome.transitions if isinstance(outcome, StressResult) else None
                    )
        finally:
            run.finish()
    return result


def table(results: list[dict]) -> str:
    combos = list(results[0]["stress"])
    header = ["configuration", "VRRP", "graceful s", "crash s", "max gap s", *[f"moves {c}" for c in combos]]
    lines = [header]
    for r in results:
        lines.append(
            [
                r["label"],
                f"v{r['vrrp_version']}",
                f"{r['graceful_s']:.2f}" if r["graceful_s"] is not None else "n/a",
                f"{r['crash_s']:.2f}" if r["crash_s"] is not None else "n/a",
                f"{r['longest_ping_gap_s']:.2f}",
                *["n/a" if r["stress"][c] is None else str(r["stress"][c]) for c in combos],
            ]
        )
    text = tabulate(lines[1:], headers=lines[0], tablefmt="simple", disable_numparse=True).splitlines()
    return "\n".join(text)


def plot(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (speed, robustness) = plt.subplots(1, 2, figsize=(13, 4.5))
    results = [r for r in results if r["label"].startswith("advertInterval")]  # the curve, not the profiles
    intervals = [r["advert_interval_s"] for r in results]
    speed.plot(intervals, [r["crash_s"] for r in results], "o-", label="crash failover")
    speed.plot(intervals, [r["graceful_s"] for r in results], "s-", label="graceful failover")
    speed.plot(intervals, [r["longest_ping_gap_s"] for r in results], "^--", label="longest ping gap")
    speed.set_xscale("log")
    speed.set_yscale("log")
    speed.invert_xaxis()
    speed.set_xlabel("advertInterval (s)")
    speed.set_ylabel("seconds")
    speed.set_title("faster adverts, faster failover")
    speed.legend(fontsize=8)
    for combo in results[0]["stress"]:
        robustness.plot(intervals, [r["stress"][combo] or 0 for r in results], "o-", label=combo)
    robustness.set_xscale("log")
    robustness.invert_xaxis()
    robustness.set_xlabel("advertInterval (s)")
    robustness.set_ylabel("VIP transitions under stress")
    robustness.set_title("stalls and loss: needless failovers")
    robustness.legend(fontsize=7, ncol=3, title="holder stall / packet loss", title_fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("vip_lab").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=EXAMPLE_STACK_FILE)
    parser.add_argument("--intervals", default="1,0.5,0.2,0.1,0.05")
    parser.add_argument("--stress-seconds", type=float, default=20)
    parser.add_argument(
        "--profile",
        type=Path,
        action="append",
        default=[],
        help="a stack file measured the same way after the sweep (bench/fast-failover.yaml, say)",
    )
    parser.add_argument("--plot", metavar="FILE")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("the sweep runs the lab, which needs root", file=sys.stderr)
        return 2
    config, _ = stack_config(args.config)
    intervals = [float(i) for i in args.intervals.split(",")]
    runs = [({**config, "advertInterval": str(i)}, f"advertInterval {i:g}") for i in intervals]
    runs += [(stack_config(profile)[0], profile.name) for profile in args.profile]
    results = [measure(run_config, label, args.stress_seconds) for run_config, label in runs]
    if args.plot:
        plot(results, args.plot)
    print(json.dumps(results, indent=2) if args.json else table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

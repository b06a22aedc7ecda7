"""The stress drill's pass rate over many runs, both cores busy: how often
its promise held under each set of conditions, in one lab.

    sudo venv/bin/python bench/stress.py [--runs 20] [--advert-interval 0.2]
                                         [--seconds 7] [--stall-every 2] [--loss 5]
                                         [--condition 250:random --condition 150:spaced ...]

Each condition is STALL_MS:ADVERT_LOSS. For each, the drill runs --runs times
on one converged cluster (VRRP v3 at --advert-interval) and the table says:
the runs in which the VIP never moved, the runs the drill passed (its verdict:
"no move" where the conditions make it certain, "back on the holder" where
they do not), the moves counted, and the longest silence the conditions
allow against the backup's master down interval.

The default compares the conditions tests/test_lab.py's fast-profile drill
used before (250 ms stalls, adverts lost at random) with the ones it uses now
(150 ms stalls, adverts never lost two in a row).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from tabulate import tabulate

from vip_lab import drills as lab_drills
from vip_lab.cluster import Cluster
from vip_lab.evaluate import EXAMPLE_STACK_FILE
from vip_lab.faults import Stress
from vip_lab.plan import stack_config
from vip_lab.results import StressResult
from vip_lab.scenario import stack_spec
from vip_lab.topology import Lab

log = logging.getLogger("bench")


def condition(text: str) -> tuple[int, str]:
    stall, _, loss = text.partition(":")
    if loss not in ("spaced", "random") or not stall.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: want STALL_MS:spaced or STALL_MS:random")
    return int(stall), loss


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("vip_lab").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=EXAMPLE_STACK_FILE)
    parser.add_argument("--advert-interval", default="0.2")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=7)
    parser.add_argument("--stall-every", type=float, default=2)
    parser.add_argument("--loss", type=float, default=5, help="percent of packets lost (default 5)")
    parser.add_argument("--condition", type=condition, action="append", help="STALL_MS:spaced|random")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("the benchmark runs the lab, which needs root", file=sys.stderr)
        return 2
    conditions = args.condition or [(250, "random"), (150, "spaced")]
    config, _ = stack_config(args.config)
    spec = stack_spec({**config, "advertInterval": args.advert_interval}, label=args.config.name)
    rows = []
    with Lab() as lab:
        run = Cluster(spec, lab)
        try:
            run.boot()
            lab_drills.convergence(run)
            for stall_ms, advert_loss in conditions:
                run.stress = Stress(
                    seconds=args.seconds,
                    loss_percent=args.loss,
                    stall_ms=stall_ms,
                    stall_every=args.stall_every,
                    advert_loss=advert_loss,
                )
                outcomes: list[StressResult] = []
                for number in range(1, args.runs + 1):
                    outcome = lab_drills.stress(run)
                    if not isinstance(outcome, StressResult):
                        log.info(f"{stall_ms} ms/{advert_loss}: run {number} could not start: {outcome.summary}")
                        continue
                    outcomes.append(outcome)
                    log.info(f"{stall_ms} ms/{advert_loss}: run {number}/{args.runs}: {outcome.summary}")
                silence = run.stress.longest_silence_s(spec.advert_interval)
                rows.append(
                    [
                        f"{stall_ms} ms stalls, {args.loss:g}% loss, adverts {advert_loss}",
                        f"{sum(o.transitions == 0 for o in outcomes)}/{len(outcomes)}",
                        f"{sum(o.passed for o in outcomes)}/{len(outcomes)}",
                        sum(o.transitions for o in outcomes),
                        "unbounded" if silence is None else f"{silence:.2f}",
                        "no move" if outcomes and outcomes[0].promised_no_move else "back on the holder",
                    ]
                )
        finally:
            run.finish()
    mdi = spec.master_down_interval(min(n.priority for n in spec.nodes))
    print(
        f"machine: {os.cpu_count()} cores, both kept busy by each drill; VRRP v{spec.vrrp_version} at "
        f"{spec.advert_interval:g} s, backup's master down interval {mdi:.2f} s; "
        f"{args.seconds:g} s per run, a stall every {args.stall_every:g} s"
    )
    print(
        tabulate(
            rows,
            headers=["conditions", "runs with no move", "drill passed", "moves", "longest silence s", "promise"],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

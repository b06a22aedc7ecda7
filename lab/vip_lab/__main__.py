"""The VIP lab: the stack's own user data booted on this machine, and the
reference procedure's check plus the failures a real cluster meets.

    sudo venv/bin/python -m vip_lab [--config Pulumi.dev.yaml] [--json] [--plot lab.png]
                                          [--rollout KEY=VALUE ...]

Needs root (network namespaces) and Debian's keepalived, cloud-init and
iproute2. Every namespace, process and file it makes is removed at the end,
pass, fail or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

from vip_stack.settings import InvalidConfig, parse_settings

from .drills import DEFAULT_DRILLS
from .evaluate import EXAMPLE_STACK_FILE
from .faults import Stress
from .plan import stack_config
from .report import format_table, plot_timeline
from .runner import run_drills
from .scenario import rollout_spec, stack_spec


def rollout_changes(pairs: list[str], config: dict) -> dict[str, str]:
    """--rollout KEY=VALUE pairs; none: move to the next virtualRouterId."""
    if not pairs:
        current = parse_settings(config).virtual_router_id
        return {"virtualRouterId": str(current % 255 + 1)}
    changes = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise ValueError(f"--rollout takes KEY=VALUE, got {pair!r}")
        changes[key] = value
    return changes


def _interrupt(signum, frame):
    # SIGTERM cleans up like Ctrl-C does.
    raise KeyboardInterrupt


def main(argv=None) -> int:
    # The run's progress, step by step, on stderr; the report goes to stdout.
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    parser = argparse.ArgumentParser(prog="python -m vip_lab", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=EXAMPLE_STACK_FILE, help="a Pulumi.<stack>.yaml")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the figures, nothing else")
    parser.add_argument("--plot", metavar="FILE", help="write a PNG timeline of VIP holders and pings")
    parser.add_argument(
        "--drills",
        default=",".join(DEFAULT_DRILLS),
        help=f"comma-separated, from {','.join(DEFAULT_DRILLS)} (convergence always runs)",
    )
    parser.add_argument(
        "--steady-seconds", type=float, default=20, help="how long the steady drill keeps both cores busy (default 20)"
    )
    parser.add_argument("--stress-seconds", type=float, default=60, help="how long the stress drill lasts (default 60)")
    parser.add_argument(
        "--stress-loss", type=float, default=1, help="percent of every node's incoming packets dropped (default 1)"
    )
    parser.add_argument(
        "--stress-stall-ms", type=int, default=250, help="how long the holder is frozen every 3 s (default 250)"
    )
    parser.add_argument(
        "--rollout",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="the config change the rollout drill rolls out (repeatable; default: the next "
        "virtualRouterId, a change old and new nodes cannot agree on)",
    )
    args = parser.parse_args(argv)

    if os.geteuid() != 0:
        print("the lab needs root: it makes network namespaces (try: sudo make lab)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    # Python leaves SIGINT ignored if it started that way (a background job of
    # a script, for one); Ctrl-C must always clean up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    config, origin = stack_config(args.config)
    try:
        changes = rollout_changes(args.rollout, config)
    except ValueError as error:
        parser.error(str(error))
    except InvalidConfig as error:
        print(error, file=sys.stderr)
        return 2
    try:
        spec = stack_spec(config, label=f"{args.config.name}")
        rollout_to = rollout_spec(config, changes, spec)
    except InvalidConfig as error:
        print(error, file=sys.stderr)
        return 2
    print(f"lab for {args.config} ({origin})", file=sys.stderr)
    try:
        report = run_drills(
            spec,
            drills=[d.strip() for d in args.drills.split(",") if d.strip()],
            steady_seconds=args.steady_seconds,
            rollout_to=rollout_to,
            stress=Stress(seconds=args.stress_seconds, loss_percent=args.stress_loss, stall_ms=args.stress_stall_ms),
        )
    except KeyboardInterrupt:
        print("interrupted: every namespace and process of the lab was removed", file=sys.stderr)
        return 130
    if args.plot:
        plot_timeline([report], args.plot)
        print(f"timeline written to {args.plot}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(format_table(report))
        for note in report.notes:
            print(f"note: {note}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())

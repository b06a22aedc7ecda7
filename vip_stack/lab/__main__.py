"""The VIP lab: the stack's own user data booted on this machine, and the
reference procedure's check plus the failures a real cluster meets.

    sudo venv/bin/python -m vip_stack.lab [--config Pulumi.dev.yaml] [--json] [--plot lab.png]

Needs root (network namespaces) and Debian's keepalived, cloud-init and
iproute2. Every namespace, process and file it makes is removed at the end,
pass, fail or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from ..plan import stack_config
from ..settings import InvalidConfig
from .drills import DEFAULT_DRILLS, run_drills
from .evaluate import EXAMPLE_STACK_FILE
from .report import format_table, machine_readable, plot_timeline
from .scenario import stack_spec


def _interrupt(signum, frame):
    # SIGTERM cleans up like Ctrl-C does.
    raise KeyboardInterrupt


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vip_stack.lab", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=EXAMPLE_STACK_FILE, help="a Pulumi.<stack>.yaml")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the figures, nothing else")
    parser.add_argument("--plot", metavar="FILE", help="write a PNG timeline of VIP holders and pings")
    parser.add_argument("--drills", default=",".join(DEFAULT_DRILLS),
                        help=f"comma-separated, from {','.join(DEFAULT_DRILLS)} (convergence always runs)")
    parser.add_argument("--steady-seconds", type=float, default=20,
                        help="how long the steady drill keeps both cores busy (default 20)")
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
        spec = stack_spec(config, label=f"{args.config.name}")
    except InvalidConfig as error:
        print(error, file=sys.stderr)
        return 2
    print(f"lab for {args.config} ({origin})", file=sys.stderr)
    try:
        result = run_drills(spec, drills=[d.strip() for d in args.drills.split(",") if d.strip()],
                            steady_seconds=args.steady_seconds)
    except KeyboardInterrupt:
        print("interrupted: every namespace and process of the lab was removed", file=sys.stderr)
        return 130
    if args.plot:
        plot_timeline([result], args.plot)
        print(f"timeline written to {args.plot}", file=sys.stderr)
    if args.json:
        print(json.dumps(machine_readable(result), indent=2))
    else:
        print(format_table(result))
        for note in result["notes"]:
            print(f"note: {note}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""The user's life cycle on the local cloud, timed: the first `pulumi up`, two
rolling updates while the jumphost pings the VIP every 10 ms (new priorities
and a notify command, which old and new nodes agree on; then a new password,
which they cannot), and `pulumi destroy`.

    sudo venv/bin/python -m bench.lifecycle [--json] [--project DIR]
    sudo venv/bin/python -m bench.lifecycle --classes [NAME,...] [--json] [--project DIR]

With --classes, each change class of a rolling update (those of
bench/handover.py, which measures them in the lab) gets a stack of its own:
its first `pulumi up`, the rolling update under the 10 ms ping, and
`pulumi destroy`. Without a list, every class.

(from the checkout: it runs as the tests' user does, with their helpers)

It needs the real engine (make engine) and the local cloud up (make cloud),
and runs as the tests' user does (tests/local_stack.py): a copy of the
project, a file backend and a key pair of its own, all removed afterwards.
`--project` deploys another copy of the project instead of this checkout,
for instance an earlier commit's (`git archive COMMIT | tar -x -C DIR`), to
measure it in the same run on the same cloud.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from tabulate import tabulate

from tests.change_classes import CHANGE_CLASSES, config_paths
from tests.local_stack import PASSWORD, STACK, STACK_FILE, LocalUser, config_set, roll_out, timed
from tests.real_engine import OPENSTACK_VERSION, install_provider
from vip_cloud.layout import cloud_dirs
from vip_stack.settings import config_from_stack_file

PROJECT_DIR = Path(__file__).resolve().parent.parent
# What a client notices of a rolling update, as issue 28 measures it.
PING_INTERVAL_S = 0.01
# A successor out of reach is measured in the lab only: on the cloud it would
# need SSH to the successor cut between its own step and the holder's drain.
ON_THE_CLOUD = [name for name, c in CHANGE_CLASSES.items() if not c.successor_unreachable]


def connector(clouds_yaml: Path):
    import openstack

    def connect(name: str):
        config = openstack.config.OpenStackConfig(config_files=[str(clouds_yaml)])
        return openstack.connection.Connection(config=config.get_one(cloud=name))

    return connect


def set_path(stack, settings: dict[str, object]) -> None:
    for key, value in settings.items():
        config_set(stack, key, value, "--secret" if key == "vrrpPassword" else "--path")


def measure_classes(user: LocalUser, project: Path, root: Path, names: list[str]) -> list[dict[str, object]]:
    base = {**config_from_stack_file(STACK_FILE), "vrrpPassword": PASSWORD}
    rows: list[dict[str, object]] = []
    for name in names:
        change_class = CHANGE_CLASSES[name]
        config = change_class.stack_before(base)
        stack = user.project(project, f"keepalived-vip-{name.replace(' ', '-')}")
        shutil.copy(STACK_FILE, stack.workdir / STACK_FILE.name)
        try:
            stack.run("stack", "init", STACK)
            config_set(stack, "keyPairName", user.key_pair)
            set_path(stack, {"vrrpPassword": PASSWORD, **config_paths(change_class.before)})
            up = timed(lambda stack=stack: stack.up()).seconds
            set_path(stack, config_paths(change_class.change(config)))
            rollout = roll_out(user, stack, root / f"{name}.jsonl", interval=PING_INTERVAL_S)
            destroyed = timed(lambda stack=stack: stack.run("destroy", "--yes", "--skip-preview")).seconds
            rows.append(
                {
                    "change class": name,
                    "first up (s)": up,
                    "rolling update (s)": rollout.seconds,
                    "longest gap (s)": round(rollout.pings.longest_gap, 3),
                    "pings lost": f"{rollout.pings.lost} of {rollout.pings.sent}",
                    "destroy (s)": destroyed,
                }
            )
        finally:
            stack.run("destroy", "--yes", "--skip-preview", check=False)
            stack.run("stack", "rm", "--yes", "--force", STACK, check=False)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="the figures as JSON")
    parser.add_argument("--project", type=Path, default=PROJECT_DIR, help="the project to deploy (this checkout)")
    parser.add_argument(
        "--classes",
        nargs="?",
        const=",".join(ON_THE_CLOUD),
        help=f"comma-separated, of: {', '.join(ON_THE_CLOUD)} (all without a list)",
    )
    args = parser.parse_args(argv)
    unknown = [n for n in (args.classes or "").split(",") if n and n not in ON_THE_CLOUD]
    if unknown:
        parser.error(f"unknown change class {', '.join(unknown)}: one of {', '.join(ON_THE_CLOUD)}")
    clouds_yaml = cloud_dirs().clouds_yaml
    if not clouds_yaml.exists():
        print(f"no local cloud ({clouds_yaml} is missing): run make cloud first", file=sys.stderr)
        return 1
    root = Path(tempfile.mkdtemp(prefix="kvip-bench-"))
    home = root / "pulumi-home"
    home.mkdir()
    install_provider(home, OPENSTACK_VERSION)
    user = LocalUser(root=root, clouds_yaml=clouds_yaml, engine_home=home, connect=connector(clouds_yaml))
    if args.classes:
        try:
            rows = measure_classes(user, args.project, root, args.classes.split(","))
        finally:
            user.close()
            shutil.rmtree(root, ignore_errors=True)
        print(json.dumps(rows) if args.json else tabulate(rows, headers="keys", disable_numparse=True))
        return 0
    stack = user.project(args.project, "keepalived-vip")
    shutil.copy(STACK_FILE, stack.workdir / STACK_FILE.name)
    figures: dict[str, float | str] = {}
    try:
        stack.run("stack", "init", STACK)
        config_set(stack, "keyPairName", user.key_pair)
        set_path(stack, {"vrrpPassword": PASSWORD})
        figures["first pulumi up (s)"] = timed(lambda: stack.up()).seconds
        set_path(stack, {"nodes[0].priority": 110, "nodes[1].priority": 100})
        config_set(stack, "notifyCommand", 'echo "$1" >> /var/tmp/vrrp-states')
        for change, event_log in (("new priorities", "rollout.jsonl"), ("new password", "new-password.jsonl")):
            if change == "new password":
                set_path(stack, {"vrrpPassword": PASSWORD[::-1]})
            rollout = roll_out(user, stack, root / event_log, interval=PING_INTERVAL_S)
            figures[f"rolling update, {change} (s)"] = rollout.seconds
            figures[f"rolling update, {change}: longest ping gap (s)"] = round(rollout.pings.longest_gap, 3)
            figures[f"rolling update, {change}: pings lost"] = f"{rollout.pings.lost} of {rollout.pings.sent}"
        figures["pulumi destroy (s)"] = timed(lambda: stack.run("destroy", "--yes", "--skip-preview")).seconds
    finally:
        stack.run("destroy", "--yes", "--skip-preview", check=False)
        stack.run("stack", "rm", "--yes", "--force", STACK, check=False)
        user.close()
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(figures))
    else:
        print(tabulate(figures.items(), headers=["figure", "value"], tablefmt="simple", disable_numparse=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

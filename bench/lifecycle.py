"""The user's life cycle on the local cloud, timed: the first `pulumi up`, two
rolling updates while the jumphost pings the VIP every 10 ms (new priorities
and a notify command, which old and new nodes agree on; then a new password,
which they cannot), and `pulumi destroy`.

    sudo venv/bin/python -m bench.lifecycle [--json] [--project DIR]
    sudo venv/bin/python -m bench.lifecycle --classes [NAME,...] [--json] [--project DIR]

With --classes, each change class of a rolling update
(tests/change_classes.py; bench.handover measures them in the lab) gets a
stack of its own: its first `pulumi up`, the rolling update under the 10 ms
ping, and `pulumi destroy`. Without a list, every class. For a successor out
of reach, the jumphost drops SSH to the other nodes during the holder's
drain (lab-host instances only).

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
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from tests.change_classes import CHANGE_CLASSES, config_paths
from tests.local_stack import PASSWORD, STACK, STACK_FILE, LocalUser, config_set, gate_name, roll_out, timed
from tests.real_engine import OPENSTACK_VERSION, install_provider, step_of
from vip_cloud.layout import cloud_dirs
from vip_stack.settings import config_from_stack_file

PROJECT_DIR = Path(__file__).resolve().parent.parent
# What a client notices of a rolling update, as issue 28 measures it.
PING_INTERVAL_S = 0.01


@dataclass
class SuccessorsOutOfReach:
    """A successor that cannot be reached, as the lab's drill has it, on the
    cloud: from the moment the node replaced just before the holder is back
    in service (its new gate done) until the holder's drain is over (its
    gate deleted), the jumphost drops every SSH packet to the other nodes,
    so the drain can ask only the holder. Lab-host instances only: the
    jumphost is then a network namespace of this machine (`labvm-<id>`)."""

    jumphost_namespace: str
    others: list[str]
    event_log: Path
    # (phase, op, resource name) of the engine events that cut and restore.
    cut_on: tuple[str, str, str]
    restore_on: tuple[str, str, str]
    cut_at: float | None = None
    restored_at: float | None = None

    TABLE = "kvip_bench_cut"

    def __enter__(self) -> SuccessorsOutOfReach:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._nft(f"delete table inet {self.TABLE}", check=False)

    def _nft(self, script: str, check: bool = True) -> None:
        subprocess.run(
            ["ip", "netns", "exec", self.jumphost_namespace, "nft", "-f", "-"],
            input=script,
            text=True,
            capture_output=True,
            check=check,
        )

    def _follow(self) -> None:
        # The engine writes each event as a line when it happens.
        offset = 0
        while not self._stop.is_set() and self.restored_at is None:
            time.sleep(0.005)
            try:
                with self.event_log.open("rb") as log:
                    log.seek(offset)
                    chunk = log.read()
            except FileNotFoundError:
                continue
            complete = chunk[: chunk.rfind(b"\n") + 1]
            offset += len(complete)
            for line in complete.decode().splitlines():
                self._on(json.loads(line))

    def _on(self, event: dict) -> None:
        found = step_of(event)
        if found is None:
            return
        step = (found.phase, found.op, found.name)
        if step == self.cut_on and self.cut_at is None:
            addresses = ", ".join(self.others)
            self._nft(
                f"table inet {self.TABLE} {{\n chain out {{\n  type filter hook output priority 0;\n"
                f"  ip daddr {{ {addresses} }} tcp dport 22 drop\n }}\n}}\n"
            )
            self.cut_at = time.monotonic()
        elif step == self.restore_on and self.cut_at is not None:
            self._nft(f"delete table inet {self.TABLE}")
            self.restored_at = time.monotonic()


def out_of_reach_during_the_holders_drain(user: LocalUser, outputs: dict, event_log: Path) -> SuccessorsOutOfReach:
    demo = user.connect("local")
    (jumphost,) = [s for s in demo.compute.servers() if s.name == outputs["jumphostName"]]
    namespace = f"labvm-{jumphost.id}"
    if namespace not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout:
        raise SystemExit("a successor out of reach needs the cloud's lab-host instances (make cloud)")
    by_priority = sorted(outputs["nodes"], key=lambda node: node["priority"])
    holder, successor = by_priority[-1], by_priority[-2]
    return SuccessorsOutOfReach(
        jumphost_namespace=namespace,
        others=[node["ipAddress"] for node in by_priority[:-1]],
        event_log=event_log,
        cut_on=("done", "create-replacement", gate_name(successor["name"])),
        restore_on=("done", "delete-replaced", gate_name(holder["name"])),
    )


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
            event_log = root / f"{name}.jsonl"
            if change_class.successor_unreachable:
                with out_of_reach_during_the_holders_drain(user, stack.outputs(), event_log) as cut:
                    rollout = roll_out(user, stack, event_log, interval=PING_INTERVAL_S)
                if cut.cut_at is None or cut.restored_at is None:
                    raise SystemExit(f"{name}: the other nodes were never cut off during the holder's drain")
            else:
                rollout = roll_out(user, stack, event_log, interval=PING_INTERVAL_S)
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
        const=",".join(CHANGE_CLASSES),
        help=f"comma-separated, of: {', '.join(CHANGE_CLASSES)} (all without a list)",
    )
    args = parser.parse_args(argv)
    unknown = [n for n in (args.classes or "").split(",") if n and n not in CHANGE_CLASSES]
    if unknown:
        parser.error(f"unknown change class {', '.join(unknown)}: one of {', '.join(CHANGE_CLASSES)}")
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

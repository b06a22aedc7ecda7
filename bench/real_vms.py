"""Lab hosts against virtual machines, side by side in one run: the local
cloud brought up with each compute driver in turn (make cloud, then make
cloud COMPUTE=libvirt), and on each the user's life cycle timed: from each
instance's creation to cloud-init `done` (the time stamp of its console's
final line), and for a virtual machine its own boot to it (the uptime that
line gives), the first `pulumi up`, one rolling update (a new password)
under a 20 ms ping, `pulumi destroy`, and the memory each instance takes on
this machine.

    sudo venv/bin/python -m bench.real_vms [--json] [--compute namespace|libvirt ...]

(from the checkout; about 25 minutes on a 2-core machine). It needs the real
engine (make engine) and no cloud running: it brings each up and takes it
down, and runs as the tests' user does (tests/local_stack.py).
"""

from __future__ import annotations

import argparse
import datetime
import email.utils
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tabulate import tabulate

from bench.cloud import down, up
from bench.lifecycle import PROJECT_DIR, connector
from tests.local_stack import FINAL_MESSAGE, PASSWORD, STACK, STACK_FILE, LocalUser, roll_out, timed
from tests.real_engine import OPENSTACK_VERSION, install_provider
from vip_cloud.layout import cloud_dirs

# cloud-init's final line: "... finished at Mon, 07 Dec 2026 08:30:00 +0000. Datasource ..."
FINISHED_AT = re.compile(r"Cloud-init v\. \S+ finished at (.+?[+-]\d{4})\.")


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return round(total / 1024, 1)


def instance_pids(instance_id: str) -> list[int]:
    """A virtual machine's qemu (its -uuid), or every process in a lab host's namespace."""
    namespace = subprocess.run(["ip", "netns", "pids", f"labvm-{instance_id}"], capture_output=True, text=True)
    if namespace.returncode == 0 and namespace.stdout.strip():
        return [int(pid) for pid in namespace.stdout.split()]
    # "--": the pattern starts with a dash, which pgrep would take for options.
    found = subprocess.run(["pgrep", "-f", "--", f"-uuid {instance_id}"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def created_to_done(server, console: str) -> float | str:
    """From Nova's creation of the server to cloud-init's final line, by the
    time stamp the line carries: comparable across drivers, where a lab host
    has no boot of its own."""
    finished = FINISHED_AT.search(console)
    if not finished:
        return "none"
    done = email.utils.parsedate_to_datetime(finished.group(1))
    created = datetime.datetime.fromisoformat(server.created_at.replace("Z", "+00:00"))
    return round((done - created).total_seconds(), 1)


def measure(compute: str) -> dict[str, float | str]:
    down()
    figures: dict[str, float | str] = {"make cloud (s)": round(up(compute=compute), 1)}
    clouds_yaml = cloud_dirs().clouds_yaml
    root = Path(tempfile.mkdtemp(prefix="kvip-bench-"))
    home = root / "pulumi-home"
    home.mkdir()
    install_provider(home, OPENSTACK_VERSION)
    connect = connector(clouds_yaml)
    user = LocalUser(root=root, clouds_yaml=clouds_yaml, engine_home=home, connect=connect)
    stack = user.project(PROJECT_DIR, "keepalived-vip")
    shutil.copy(STACK_FILE, stack.workdir / STACK_FILE.name)
    try:
        stack.run("stack", "init", STACK)
        stack.run("config", "set", "keyPairName", user.key_pair)
        stack.run("config", "set", "--secret", "vrrpPassword", PASSWORD)
        figures["first pulumi up (s)"] = timed(lambda: stack.up(timeout=1500)).seconds
        demo = connect("local")
        for server in sorted(demo.compute.servers(), key=lambda s: s.name):
            console = demo.compute.get_server_console_output(server)["output"]
            figures[f"{server.name}: create to cloud-init done (s)"] = created_to_done(server, console)
            # A lab host shares this machine's kernel: its "uptime" is the machine's.
            final = FINAL_MESSAGE.search(console)
            figures[f"{server.name}: guest boot to cloud-init done (s)"] = (
                float(final.group(1)) if final and compute == "libvirt" else "n/a"
            )
            figures[f"{server.name}: memory on this machine (MiB RSS)"] = rss_mib(instance_pids(server.id))
        stack.run("config", "set", "--secret", "vrrpPassword", "n3wpass1")
        rollout = roll_out(user, stack, root / "rollout.jsonl", timeout=1500)
        figures["rolling update, a new password (s)"] = rollout.seconds
        figures["its longest ping gap (s)"] = round(rollout.pings.longest_gap, 3)
        figures["pulumi destroy (s)"] = timed(lambda: stack.run("destroy", "--yes", "--skip-preview")).seconds
    finally:
        stack.run("destroy", "--yes", "--skip-preview", check=False)
        stack.run("stack", "rm", "--yes", "--force", STACK, check=False)
        user.close()
        shutil.rmtree(root, ignore_errors=True)
        down()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="the figures as JSON")
    parser.add_argument("--compute", action="append", choices=["namespace", "libvirt"], help="one driver only")
    args = parser.parse_args(argv)
    drivers = args.compute or ["namespace", "libvirt"]
    results = {driver: measure(driver) for driver in drivers}
    if args.json:
        print(json.dumps(results))
        return 0
    names = list(dict.fromkeys(name for figures in results.values() for name in figures))
    rows = [[name, *(results[driver].get(name, "") for driver in drivers)] for name in names]
    print(tabulate(rows, headers=["figure", *drivers], tablefmt="simple", disable_numparse=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

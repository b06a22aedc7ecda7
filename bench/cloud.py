"""The local cloud's figures (make cloud, docs/cloud.md), measured on this machine.

    sudo venv/bin/python bench/cloud.py [--running | --warm | --cold] [--boots 3] [--json]

What it measures:

- cold bring-up: the services' virtualenv not installed yet (a fresh cache,
  pip's own cache off, so every package is downloaded and built), then the
  bring-up from an empty state: `bash cloud/install.sh` + `make cloud`;
- warm start: the virtualenv cached, the state empty (nothing under .cloud/):
  what `make cloud` takes after `make cloud-down`, on a machine that has run
  it before;
- memory: the RSS (and PSS, which counts shared pages once) of all the
  cloud's processes together: those whose environment holds
  KVIP_CLOUD_DIR=<its directory>, and those holding a file of it (the
  daemons that retitle themselves overwrite their environment, not their
  logs): the daemons, their workers and helpers, and the lab VMs' sshd and
  holders (what runs inside the VMs, keepalived say, is not counted);
- server create to cloud-init done: from starting `openstack server create`
  (the CLI, as a user runs it) to the instance's cloud-init finishing without
  errors (the mtime of its result.json, on the VM's disk); also to ACTIVE.
  The servers boot a small cloud-config (a file, a runcmd) on a network and
  port of their own (named t18-bench-...), all deleted afterwards.

Modes:

- --running (the default) measures the running cloud without restarting it:
  memory and server create; for the warm start it reports what the cloud's
  supervisor recorded when it came up (a warm start if its virtualenv was
  cached then);
- --warm: `make cloud-down`, then the warm start, then --running's figures;
- --cold: `make cloud-down`, the cold install and bring-up, `make cloud-down`
  again, the warm start, then --running's figures. It downloads all of
  OpenStack (a few hundred MB) into a temporary cache, removed afterwards.

--warm and --cold stop the cloud, and everyone's instances with it: the cloud
is left up, empty but for the seed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import openstack
from tabulate import tabulate

from vip_cloud.cleanup import cloud_namespaces, cloud_processes
from vip_cloud.layout import CloudDirs, cloud_dirs, compute_hosts
from vip_cloud.seed import IMAGE_NAME
from vip_cloud.status import is_ready, read_status, supervisor_pid

CHECKOUT = Path(__file__).resolve().parent.parent

USER_DATA = """\
#cloud-config
write_files:
  - path: /etc/t18-bench/hello
    content: "hello from the benchmark\\n"
runcmd:
  - [sh, -c, "echo ran > /var/lib/t18-bench-runcmd"]
"""
BOOT_TIMEOUT = 300


def made(script: str, env: dict[str, str] | None = None) -> Path:
    """The virtualenv cloud/<script> makes (if it is not made yet) and prints:
    install.sh the services', checkout-venv.sh this checkout's over them."""
    result = subprocess.run(
        ["bash", str(CHECKOUT / "cloud" / script)], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"cloud/{script} failed:\n{result.stderr[-3000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def vip_cloud(env: dict[str, str] | None, *args: str) -> float:
    """`python -m vip_cloud ...` as make cloud runs it; returns its seconds."""
    python = made("checkout-venv.sh", env) / "bin" / "python"
    started = time.monotonic()
    result = subprocess.run(
        [str(python), "-m", "vip_cloud", *args], cwd=CHECKOUT, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"python -m vip_cloud {' '.join(args)} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return time.monotonic() - started


def down(env: dict[str, str] | None = None) -> float:
    return vip_cloud(env, "down")


def up(env: dict[str, str] | None = None, compute: str = "namespace") -> float:
    image = made("guest/build-image.sh", env)
    return vip_cloud(env, "--venv", str(made("install.sh", env)), "--compute", compute, "--image", str(image), "up")


# --- memory -------------------------------------------------------------------


def _kib(path: str, field: str) -> int:
    with contextlib.suppress(OSError), open(path) as lines:
        for line in lines:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _argv(pid: int) -> list[str]:
    try:
        return [a for a in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0") if a]
    except OSError:
        return []


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _name(argv: list[str]) -> str:
    first = argv[0] if argv else "?"
    if first.startswith("gunicorn:"):
        return first.rsplit("[", 1)[-1].rstrip("]")
    if " " in first:  # retitled: "nova-conductor: master process [...]", "neutron-openvswitch-agent (...)"
        return first.split()[0].rstrip(":")
    if "-m" in argv[:-1]:
        module = argv[argv.index("-m") + 1]
        return "supervisor" if module == "vip_cloud" else module.rsplit(".", 1)[-1].replace("_", "-")
    name = Path(first).name
    if (name.startswith("python") or name in ("sh", "bash", "env")) and len(argv) > 1:
        name = Path(argv[1]).name
    return name


def _label(pid: int, supervisor: int | None) -> str:
    """The daemon a process belongs to: the supervisor's child it descends
    from (a daemon with its workers), else its own name (helpers that
    detached themselves: privsep's, Erlang's epmd)."""
    ancestor = pid
    while supervisor is not None and ancestor > 1:
        parent = _parent(ancestor)
        if parent == supervisor:
            return _name(_argv(ancestor))
        ancestor = parent
    return "supervisor" if pid == supervisor else _name(_argv(pid))


def memory(dirs: CloudDirs) -> tuple[int, int, int, dict[str, int]]:
    """(processes, RSS KiB, PSS KiB, RSS KiB per daemon) of the cloud's processes."""
    vm_namespaces = set()
    for name in cloud_namespaces():
        if name.startswith("labvm-"):
            with contextlib.suppress(OSError):
                vm_namespaces.add(os.stat(f"/run/netns/{name}").st_ino)
    pids = cloud_processes(dirs)
    supervisor = supervisor_pid(dirs)
    rss = pss = 0
    by_daemon: dict[str, int] = {}
    for pid in pids:
        kib = _kib(f"/proc/{pid}/status", "VmRSS")
        rss += kib
        pss += _kib(f"/proc/{pid}/smaps_rollup", "Pss")
        try:
            in_vm = os.stat(f"/proc/{pid}/ns/net").st_ino in vm_namespaces
        except OSError:
            in_vm = False
        label = "lab VMs (sshd, holders)" if in_vm else _label(pid, supervisor)
        by_daemon[label] = by_daemon.get(label, 0) + kib
    return len(pids), rss, pss, by_daemon


# --- server create to cloud-init done -------------------------------------------


def _done_at(dirs: CloudDirs, server_id: str) -> float | None:
    """When cloud-init finished on the instance without errors (wall clock),
    if it has, on whichever compute host runs it."""
    hosts = compute_hosts(dirs.compute.read_text().strip(), socket.gethostname())
    for host in hosts:
        for result in (dirs.instances_of(host) / server_id).glob("run.*/cloud-init/result.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                if not json.loads(result.read_text())["v1"]["errors"]:
                    return result.stat().st_mtime
    return None


def server_create(venv: Path, dirs: CloudDirs, boots: int) -> list[dict[str, float]]:
    config = openstack.config.OpenStackConfig(config_files=[str(dirs.clouds_yaml)])
    demo = openstack.connection.Connection(config=config.get_one(cloud="local"))
    run = f"t18-bench-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(dirs.clouds_yaml), "OS_CLOUD": "local"}
    user_data = Path(tempfile.mkdtemp(prefix="t18-bench-")) / "user-data"
    user_data.write_text(USER_DATA)
    network = demo.network.create_network(name=f"{run}-net")
    made: list[tuple[str, str]] = []  # (kind, id), deleted in reverse
    figures = []
    try:
        subnet = demo.network.create_subnet(
            name=f"{run}-subnet", network_id=network.id, ip_version=4, cidr="10.19.0.0/24"
        )
        for boot in range(boots):
            port = demo.network.create_port(
                name=f"{run}-port-{boot}", network_id=network.id, fixed_ips=[{"subnet_id": subnet.id}]
            )
            made.append(("port", port.id))
            started_wall, started = time.time(), time.monotonic()
            created = subprocess.run(
                [str(venv / "bin" / "openstack"), "server", "create", "--image", IMAGE_NAME]
                + ["--flavor", "m1.small", "--port", port.id, "--user-data", str(user_data)]
                + ["-f", "value", "-c", "id", f"{run}-{boot}"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if created.returncode != 0:
                raise SystemExit(f"openstack server create failed: {created.stderr}")
            server_id = created.stdout.strip()
            made.append(("server", server_id))
            cli_s = time.monotonic() - started
            active_s = None
            done_wall = None
            while time.monotonic() - started < BOOT_TIMEOUT:
                if active_s is None:
                    server = demo.compute.get_server(server_id)
                    if server.status == "ERROR":
                        raise SystemExit(f"{run}-{boot} went to ERROR: {server.fault}")
                    if server.status == "ACTIVE":
                        active_s = time.monotonic() - started
                done_wall = done_wall or _done_at(dirs, server_id)
                if active_s is not None and done_wall is not None:
                    break
                time.sleep(0.25)
            if active_s is None or done_wall is None:
                raise SystemExit(f"{run}-{boot}: not ACTIVE with cloud-init done within {BOOT_TIMEOUT} s")
            figures.append({"cli": cli_s, "active": active_s, "done": done_wall - started_wall})
            demo.compute.delete_server(server_id)
            demo.compute.wait_for_delete(demo.compute.get_server(server_id), wait=180)
            made.remove(("server", server_id))
    finally:
        for kind, resource_id in reversed(made):
            with contextlib.suppress(Exception):
                if kind == "server":
                    demo.compute.delete_server(resource_id)
                    demo.compute.wait_for_delete(demo.compute.get_server(resource_id), wait=180)
                else:
                    demo.network.delete_port(resource_id)
        demo.network.delete_network(network.id)
        shutil.rmtree(user_data.parent, ignore_errors=True)
    return figures


# --- the report -----------------------------------------------------------------


def recorded_bring_up(dirs: CloudDirs) -> float | None:
    for event in reversed(read_status(dirs)):
        if "ready" in event:
            return float(event["seconds"])
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--running", action="store_true", help="measure the running cloud, no restart (the default)")
    mode.add_argument("--warm", action="store_true", help="cloud-down, then time the warm start (stops the cloud)")
    mode.add_argument("--cold", action="store_true", help="cloud-down, then time a cold install and bring-up")
    parser.add_argument("--boots", type=int, default=3, help="servers booted one after another (the median is shown)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("the local cloud needs root", file=sys.stderr)
        return 2
    dirs = cloud_dirs()
    venv = made("install.sh")
    figures: dict[str, Any] = {"cores": os.cpu_count()}
    if args.cold or args.warm:
        figures["down_s"] = down()
        if args.cold:
            cache = Path(tempfile.mkdtemp(prefix="kvip-cloud-cold-"))
            cold = {
                **os.environ,
                "KVIP_CLOUD_CACHE": str(cache),
                "KVIP_CLOUD_CHECKOUT_VENV": str(cache / "checkout-venv"),
                "PIP_NO_CACHE_DIR": "1",
            }
            try:
                started = time.monotonic()
                made("checkout-venv.sh", cold)
                figures["cold_install_s"] = time.monotonic() - started
                figures["cold_up_s"] = up(cold)
                down(cold)
            finally:
                shutil.rmtree(cache, ignore_errors=True)
        figures["warm_s"] = up()
    elif not is_ready(dirs):
        print(f"the local cloud is not up ({dirs.root}): make cloud, or --warm/--cold", file=sys.stderr)
        return 1
    else:
        figures["warm_recorded_s"] = recorded_bring_up(dirs)
    count, rss, pss, by_daemon = memory(dirs)
    figures.update(processes=count, rss_mib=rss / 1024, pss_mib=pss / 1024)
    figures["rss_mib_by_daemon"] = {k: v / 1024 for k, v in sorted(by_daemon.items(), key=lambda kv: -kv[1])}
    figures["servers"] = server_create(venv, dirs, args.boots)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(report(figures))
    return 0


def report(figures: dict[str, Any]) -> str:
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} s"

    servers = figures["servers"]

    def median(key: str) -> str:
        values = [s[key] for s in servers]
        return f"{statistics.median(values):.1f} s ({', '.join(f'{v:.1f}' for v in values)})"

    rows = []
    if "cold_install_s" in figures:
        total = figures["cold_install_s"] + figures["cold_up_s"]
        rows.append(["cold bring-up: install + up", seconds(total)])
        rows.append(["  the services' virtualenv (pip, no cache)", seconds(figures["cold_install_s"])])
        rows.append(["  the bring-up", seconds(figures["cold_up_s"])])
    else:
        rows.append(["cold bring-up: install + up", "- (--cold)"])
    if "warm_s" in figures:
        rows.append(["warm start: venv cached, state empty", seconds(figures["warm_s"])])
        rows.append(["make cloud-down", seconds(figures["down_s"])])
    else:
        rows.append(
            ["warm start: venv cached, state empty", f"{seconds(figures['warm_recorded_s'])} (the supervisor's record)"]
        )
    rows.append([f"memory: RSS of its {figures['processes']} processes", f"{figures['rss_mib']:.0f} MiB"])
    rows.append(["memory: PSS (shared pages once)", f"{figures['pss_mib']:.0f} MiB"])
    rows.append([f"server create -> ACTIVE (median of {len(servers)})", median("active")])
    rows.append([f"server create -> cloud-init done (median of {len(servers)})", median("done")])
    rows.append(["  of which the openstack CLI's own run", median("cli")])
    text = f"machine: {figures['cores']} cores\n"
    text += tabulate(rows, headers=["figure", "value"], tablefmt="simple", disable_numparse=True)
    daemons = [[name, f"{mib:.0f}"] for name, mib in figures["rss_mib_by_daemon"].items()]
    text += "\n\n" + tabulate(daemons, headers=["RSS by daemon", "MiB"], tablefmt="simple", disable_numparse=True)
    return text


if __name__ == "__main__":
    sys.exit(main())

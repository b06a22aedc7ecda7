"""make cloud / make cloud-down: `python -m vip_cloud up|down|status`, and
`python -m vip_cloud stop|start SERVICE` as `systemctl` would on a host.

`up` starts a supervisor in the background, which brings every service up in
order and then keeps them running (no systemd here), and follows its progress
until the cloud is ready or has failed. Ctrl-C stops the supervisor, and with
it everything it started. `down` stops it and removes everything the cloud
made. `stop SERVICE` holds one service stopped (the supervisor does not
start it again) until `start SERVICE`: a control plane down while its data
plane runs on. Only one cloud runs on a machine: its services listen on fixed ports.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from vip_hosts.supervisor import ServiceFailed, Supervisor, spawn

from .cleanup import remove_everything, remove_leftovers
from .layout import COMPUTE_DRIVERS, DEFAULT_COMPUTE, MARKER, CloudDirs, cloud_dirs
from .status import is_ready, read_status, record, supervisor_pid

LOCK = Path("/run/lock/keepalived-vip-cloud.lock")
log = logging.getLogger("vip_cloud")


class Stop(Exception):
    pass


def _stop(signum, frame):
    raise Stop()


def supervise(dirs: CloudDirs, venv: Path, compute: str, image: Path) -> int:
    """The supervisor daemon: brings the cloud up, then keeps it running."""
    from .bringup import bring_up

    dirs.make()
    dirs.supervisor_pid.write_text(str(os.getpid()))
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    supervisor = Supervisor(control=dirs.services)
    started = time.monotonic()
    code = 0
    try:
        timings = bring_up(dirs, venv, compute, image, supervisor, lambda name: record(dirs, {"step": name}))
        record(dirs, {"ready": timings, "seconds": round(time.monotonic() - started, 1)})
        while True:
            supervisor.watch_once()
            time.sleep(2)
    except Stop:
        log.info("stopping the cloud")
    except ServiceFailed as error:
        record(dirs, {"failed": str(error)})
        log.error("%s", error)
        code = 1
    except Exception as error:  # anything unforeseen still stops what was started
        record(dirs, {"failed": f"{type(error).__name__}: {error}"})
        log.exception("bring-up failed")
        code = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        supervisor.stop_all()
        remove_leftovers(dirs)
        with contextlib.suppress(OSError):
            dirs.supervisor_pid.unlink()
    return code


def running_compute(dirs: CloudDirs) -> str:
    try:
        return dirs.compute.read_text().strip()
    except OSError:
        return DEFAULT_COMPUTE


def up(dirs: CloudDirs, venv: Path, compute: str, image: Path) -> int:
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("make cloud: another make cloud is bringing the cloud up; nothing done", file=sys.stderr)
            return 1
        if is_ready(dirs):
            running = running_compute(dirs)
            if running != compute:
                print(
                    f"make cloud: the local cloud is up with COMPUTE={running}, not {compute}; "
                    "run make cloud-down first",
                    file=sys.stderr,
                )
                return 1
            print(f"the local cloud is already up: nothing changed (OS_CLOUD=local, {dirs.clouds_yaml})")
            return 0
        if supervisor_pid(dirs) is not None:
            print("make cloud: a supervisor of this cloud is running but not ready; run make cloud-down first")
            return 1
        # Whatever a crashed run left is removed before starting afresh.
        remove_everything(dirs)
        dirs.make()
        return _follow(dirs, venv, compute, image)


def _follow(dirs: CloudDirs, venv: Path, compute: str, image: Path) -> int:
    daemon = spawn(
        [
            sys.executable,
            "-m",
            "vip_cloud",
            "--venv",
            str(venv),
            "--compute",
            compute,
            "--image",
            str(image),
            "supervise",
        ],
        dirs.logs / "supervisor.log",
        env={**os.environ, MARKER: str(dirs.root)},
    )
    started = time.monotonic()
    seen = 0
    try:
        while True:
            events = read_status(dirs)
            for event in events[seen:]:
                if "step" in event:
                    print(f"[{time.monotonic() - started:6.1f} s] {event['step']}", flush=True)
                elif "ready" in event:
                    print(
                        f"the local cloud is up in {event['seconds']} s, its instances "
                        f"{'virtual machines' if compute == 'libvirt' else 'lab hosts'} (COMPUTE={compute}): "
                        f"OS_CLOUD=local with {dirs.clouds_yaml}"
                    )
                    return 0
                elif "failed" in event:
                    print(f"make cloud failed: {event['failed']}", file=sys.stderr)
                    daemon.wait(timeout=180)
                    return 1
            seen = len(events)
            if daemon.poll() is not None:
                print(
                    f"make cloud: the supervisor exited {daemon.returncode}; see {dirs.logs / 'supervisor.log'}",
                    file=sys.stderr,
                )
                return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("interrupted: stopping everything the cloud started", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            daemon.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            daemon.wait(timeout=180)
        remove_leftovers(dirs)
        return 130


def down(dirs: CloudDirs) -> int:
    pid = supervisor_pid(dirs)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 180
        while supervisor_pid(dirs) is not None and time.monotonic() < deadline:
            time.sleep(0.5)
    removed = remove_everything(dirs)
    print(
        f"the local cloud is down: {len(removed['processes'])} processes stopped by the sweep, "
        f"namespaces and devices removed: {', '.join(removed['outside']) or 'none left'}, {dirs.root} removed"
    )
    return 0


def status(dirs: CloudDirs) -> int:
    events = read_status(dirs)
    if is_ready(dirs):
        print(f"up (supervisor {supervisor_pid(dirs)}, COMPUTE={running_compute(dirs)}), {dirs.clouds_yaml}")
        return 0
    print("down" if not events else f"not ready: {events[-1]}")
    return 3


def _service_pid(dirs: CloudDirs, name: str) -> int | None:
    try:
        return int((dirs.services / f"{name}.pid").read_text())
    except (OSError, ValueError):
        return None


def hold(dirs: CloudDirs, name: str, stopped: bool, timeout: float = 60) -> int:
    """`stop`/`start` SERVICE: the supervisor acts on the hold within its
    next watch; this waits until it has."""
    if not is_ready(dirs):
        print("the local cloud is not up (make cloud)", file=sys.stderr)
        return 1
    if not dirs.services.is_dir():
        print("this cloud's supervisor takes no stop or start: make cloud-down, then make cloud", file=sys.stderr)
        return 1
    known = sorted({path.name.rsplit(".", 1)[0] for path in dirs.services.iterdir()})
    if name not in known:
        print(f"no service {name!r} in the local cloud; its services: {', '.join(known)}", file=sys.stderr)
        return 2
    held = dirs.services / f"{name}.held"
    if stopped:
        held.touch()
    else:
        held.unlink(missing_ok=True)
    deadline = time.monotonic() + timeout
    while (_service_pid(dirs, name) is None) != stopped:
        if time.monotonic() > deadline:
            print(f"the supervisor did not {'stop' if stopped else 'start'} {name} within {timeout:.0f} s")
            return 1
        time.sleep(0.2)
    pid = _service_pid(dirs, name)
    print(f"{name} stopped; `start {name}` starts it again" if stopped else f"{name} started (pid {pid})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vip_cloud", description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, help="the services' virtualenv (cloud/install.sh), for up and supervise")
    parser.add_argument(
        "--compute",
        choices=COMPUTE_DRIVERS,
        default=DEFAULT_COMPUTE,
        help="what nova-compute boots instances as: lab hosts (namespace) or virtual machines (libvirt)",
    )
    parser.add_argument(
        "--image", type=Path, help="the guest image's directory (cloud/guest/build-image.sh), for up and supervise"
    )
    parser.add_argument("command", choices=["up", "down", "status", "supervise", "stop", "start"])
    parser.add_argument("service", nargs="?", help="for stop and start: the service, as its log is named")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if os.geteuid() != 0:
        print("the local cloud needs root (namespaces, Open vSwitch, addresses on br-ex)", file=sys.stderr)
        return 1
    dirs = cloud_dirs()
    if args.command in ("up", "supervise") and (args.venv is None or args.image is None):
        parser.error(
            f"{args.command} needs --venv, the services' virtualenv (cloud/install.sh), "
            "and --image, the guest image (cloud/guest/build-image.sh)"
        )
    if args.command == "up":
        return up(dirs, args.venv, args.compute, args.image)
    if args.command == "down":
        return down(dirs)
    if args.command == "status":
        return status(dirs)
    if args.command in ("stop", "start"):
        if not args.service:
            parser.error(f"{args.command} needs the service's name")
        return hold(dirs, args.service, stopped=args.command == "stop")
    return supervise(dirs, args.venv, args.compute, args.image)


if __name__ == "__main__":
    sys.exit(main())

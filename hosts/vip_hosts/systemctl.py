"""The lab's stand-in for systemctl on a node host, where no systemd runs.

    systemctl start|stop|restart|reload|is-active keepalived

Enough for the check command (`vip_stack.check`) to drive keepalived on a lab
node exactly as it drives a real one: it starts keepalived from the unit and
its drop-ins as systemd would (ExecStartPre, then ExecStart), and stops it
with SIGTERM, finding it by the pid file keepalived writes itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .boot import DROPIN_DIR, UNIT_PATHS, BootFailed, plan_start
from .netns import alive
from .supervisor import spawn

PID_FILE = Path("/run/keepalived.pid")
LOG_FILE = Path("/var/log/keepalived-lab.log")
UNIT = "keepalived"


def running_pid() -> int | None:
    try:
        pid = int(PID_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    # A keepalived the lab started and that has exited stays a zombie until
    # the lab reaps it: that is not running.
    return pid if alive(pid) else None


def _read(path: str) -> str | None:
    return Path(path).read_text() if Path(path).exists() else None


def start() -> int:
    if running_pid():
        return 0
    texts = [Path(p).read_text() for p in UNIT_PATHS if Path(p).exists()]
    texts += [p.read_text() for p in sorted(Path(DROPIN_DIR).glob("*.conf"))]
    try:
        plan = plan_start(texts, _read)
    except BootFailed as error:
        print(f"keepalived.service: {error}", file=sys.stderr)
        return 1
    for path in plan.conditions:
        if not (_read(path) or "").strip():
            # systemd skips a unit whose condition fails, without an error.
            print(f"keepalived.service: skipped, {path} is empty or missing", file=sys.stderr)
            return 0
    for argv, ignore_failure in plan.pre:
        if subprocess.run(argv).returncode != 0 and not ignore_failure:
            print(f"keepalived.service: ExecStartPre {' '.join(argv)} failed", file=sys.stderr)
            return 1
    spawn(plan.start, LOG_FILE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if running_pid():
            return 0
        time.sleep(0.05)
    print("keepalived.service: keepalived did not start", file=sys.stderr)
    return 1


def stop() -> int:
    pid = running_pid()
    if pid is None:
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not alive(pid):
            return 0
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    return 0


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[1].removesuffix(".service") != UNIT:
        print(f"the lab's systemctl knows only: start|stop|restart|reload|is-active {UNIT}", file=sys.stderr)
        return 2
    verb = args[0]
    if verb == "is-active":
        active = running_pid() is not None
        print("active" if active else "inactive")
        return 0 if active else 3
    if verb == "start":
        return start()
    if verb == "stop":
        return stop()
    if verb == "restart":
        return stop() or start()
    if verb == "reload":
        # The unit's ExecReload: SIGHUP to the main process.
        pid = running_pid()
        if pid is None:
            print("keepalived.service is not active, cannot reload", file=sys.stderr)
            return 1
        os.kill(pid, signal.SIGHUP)
        return 0
    print(f"the lab's systemctl does not know {verb}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

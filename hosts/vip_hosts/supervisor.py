"""Starting, watching and stopping daemons where no systemd runs: what the
units would do, for the lab's hosts, the local cloud's services and the
tests' own switches. Each daemon runs in a session of its own (a process
group: stopping it reaches its children too) with its output appended to a
log file; a supervised daemon that dies is started again, a few times,
before it is declared broken."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


def spawn(
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    header: str | None = None,
) -> subprocess.Popen:
    """Starts a daemon: a session of its own, no stdin, its output appended
    to log_path (after the header line, if any)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        if header is not None:
            out.write(f"\n{header}\n".encode())
            out.flush()
        return subprocess.Popen(
            list(argv),
            env=None if env is None else dict(env),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


class Daemon(Protocol):
    """A started daemon: a Popen, or a process another one started (vip_hosts.hosts)."""

    pid: int

    def wait(self, timeout: float | None = None) -> int: ...


def stop(process: Daemon, timeout: float = 15) -> None:
    """SIGTERM to the daemon's whole session, as systemd's default
    KillMode=control-group sends it to every process of a unit, then SIGKILL
    to what is left after timeout seconds: its children too (an agent's
    privsep helpers, a server's workers, keepalived's VRRP process)."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    kill(process)


def kill(process: Daemon) -> None:
    """SIGKILL to the daemon's whole session at once, even if its leader is
    gone (children may outlive it): a crash, nothing cleaned up."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


class ServiceFailed(RuntimeError):
    """A daemon or a set-up step failed; the message names it and ends with its log."""


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text[-lines:])


def failure(name: str, what: str, log_path: Path) -> ServiceFailed:
    return ServiceFailed(f"{name}: {what}\n--- the end of {log_path} ---\n{log_tail(log_path)}")


def run_step(name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path, timeout: float = 600) -> None:
    """A one-off set-up command (a database migration, a bootstrap); its
    output is appended to log_path, and a failure names the step."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        started = time.monotonic()
        try:
            result = subprocess.run(
                list(argv),
                env=dict(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise failure(name, f"{argv[0]} did not finish within {timeout:.0f} s", log_path) from None
        # Where a bring-up's time goes, step by step.
        out.write(f"# {name}: exit {result.returncode} after {time.monotonic() - started:.1f} s\n".encode())
    if result.returncode != 0:
        raise failure(name, f"{' '.join(argv[:3])} exited {result.returncode}", log_path)


def tcp_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def unix_socket_open(path: Path) -> bool:
    if not path.exists():
        return False
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(1)
        sock.connect(str(path))
        return True
    return False


def http_answers(host: str, port: int, path: str = "/") -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # any HTTP answer: the application loaded
        except OSError:
            return False

    return probe


def stays_up(seconds: float) -> Callable[[], bool]:
    """For daemons with nothing to probe: up once they have lived a while
    (a wrong option or a missing module kills them within a second)."""
    started: list[float] = []

    def probe() -> bool:
        if not started:
            started.append(time.monotonic())
        return time.monotonic() - started[0] >= seconds

    return probe


@dataclass
class Service:
    """A daemon as its unit file would describe it."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log: Path
    ready: Callable[[], bool]
    ready_timeout: float = 120
    cwd: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)
    restarts: list[float] = field(default_factory=list, repr=False)

    def start(self) -> None:
        self.process = spawn(self.argv, self.log, self.env, self.cwd, header=f"--- start: {' '.join(self.argv)}")

    def wait_ready(self) -> float:
        started = time.monotonic()
        while not self.ready_since(started):
            time.sleep(0.25)
        return time.monotonic() - started

    def ready_since(self, started: float) -> bool:
        """One look, `started` being when the wait began: ready or not yet;
        raises ServiceFailed once it has died or had its time."""
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise failure(self.name, f"exited {code} while starting", self.log)
        if self.ready():
            return True
        if time.monotonic() - started > self.ready_timeout:
            raise failure(self.name, f"not ready within {self.ready_timeout:.0f} s", self.log)
        return False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15) -> None:
        if self.process is not None:
            stop(self.process, timeout)


class Supervisor:
    """Keeps the started services running, in the order they were started.

    `control`: a directory for `systemctl stop` and `start` by hand. The
    supervisor keeps `NAME.pid` there for each running service; a file
    `NAME.held` holds that service stopped (it is stopped if it runs, and
    not started again) until the file is removed. A held stop is not a
    crash: it counts to no restart limit."""

    # A daemon that dies more often than this in RESTART_WINDOW s is broken.
    MAX_RESTARTS = 3
    RESTART_WINDOW = 600
    # SIGTERM's grace before SIGKILL for a service stopped by a hold.
    HELD_STOP_SECONDS = 5

    def __init__(self, control: Path | None = None) -> None:
        self.services: list[Service] = []
        self.control = control
        self._held: set[str] = set()
        if control is not None:
            control.mkdir(parents=True, exist_ok=True)

    def start(self, service: Service) -> float:
        log.info("starting %s", service.name)
        self.services.append(service)
        service.start()
        self._note(service)
        took = service.wait_ready()
        log.info("%s is ready (%.1f s)", service.name, took)
        return took

    def start_together(self, services: Sequence[Service]) -> dict[str, float]:
        """Daemons that need nothing of each other, started at once and
        waited for side by side (as systemd starts units with no order
        between them); returns each one's seconds to ready."""
        for service in services:
            log.info("starting %s", service.name)
            self.services.append(service)
            service.start()
            self._note(service)
        started = time.monotonic()
        took: dict[str, float] = {}
        while len(took) < len(services):
            for service in services:
                if service.name not in took and service.ready_since(started):
                    took[service.name] = time.monotonic() - started
                    log.info("%s is ready (%.1f s)", service.name, took[service.name])
            if len(took) < len(services):
                time.sleep(0.25)
        return took

    def watch_once(self) -> None:
        """Stops what is held, starts again what died or was released;
        raises ServiceFailed for what keeps dying."""
        now = time.monotonic()
        for service in self.services:
            if self.control is not None and (self.control / f"{service.name}.held").exists():
                if service.running:
                    log.info("stopping %s: held", service.name)
                    # What a hold needs is the service down, not its graceful
                    # exit: Neutron's OVS agent ignores SIGTERM for longer.
                    service.stop(timeout=self.HELD_STOP_SECONDS)
                self._held.add(service.name)
                self._note(service)
                continue
            if service.running:
                continue
            if service.name in self._held:
                log.info("starting %s: no longer held", service.name)
                self._held.discard(service.name)
            else:
                code = None if service.process is None else service.process.returncode
                service.restarts = [t for t in service.restarts if now - t < self.RESTART_WINDOW]
                if len(service.restarts) >= self.MAX_RESTARTS:
                    raise failure(service.name, f"exited {code} {self.MAX_RESTARTS} times in a row", service.log)
                log.warning("%s exited %s; starting it again", service.name, code)
                service.restarts.append(now)
            service.start()
            self._note(service)

    def _note(self, service: Service) -> None:
        if self.control is None:
            return
        pid_file = self.control / f"{service.name}.pid"
        if service.running and service.process is not None:
            pid_file.write_text(f"{service.process.pid}\n")
        else:
            pid_file.unlink(missing_ok=True)

    def stop_all(self, timeout: float = 15) -> None:
        """SIGTERM to every service at once, then SIGKILL to what is left
        after timeout seconds, as a machine's shutdown stops units with no
        order between them. One by one, each daemon that outlives SIGTERM
        (the cloud's gunicorn API servers, Neutron's RPC server and OVS agent)
        cost its own 15 s: 2 min 4 s to take the cloud down, 16 s now."""
        running = [(service.name, service.process) for service in reversed(self.services) if service.process]
        for name, process in running:
            log.info("stopping %s", name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s of SIGTERM", name, timeout)
            # Its children too, even when the leader is gone.
            kill(process)
        self.services.clear()

"""Boots a node host from its user data with Debian's real cloud-init, then runs
keepalived the way its systemd unit would.

What a VM's boot does and the lab does not: installing the keepalived package
(it is already on this machine, the same Debian package the VM installs) and
systemd itself (the lab reads the unit and its drop-ins and runs their
ExecStartPre and ExecStart lines).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import supervisor
from .hosts import NodeHost

UNIT_PATHS = ("/lib/systemd/system/keepalived.service", "/etc/systemd/system/keepalived.service")
DROPIN_DIR = "/etc/systemd/system/keepalived.service.d"
LAB_CLOUD_CFG = "/etc/cloud/cloud.cfg.d/99-keepalived-vip-lab.cfg"
# The lab's own cloud-init settings, not the node's: look for the user data in
# the NoCloud seed, leave the network to the lab (as Neutron's DHCP would),
# and run no init modules beyond what the lab asks for with `single`.
LAB_CLOUD_CFG_TEXT = """\
datasource_list: [NoCloud]
network: {config: disabled}
cloud_init_modules: []
cloud_config_modules: []
cloud_final_modules: []
"""
# Modules that configure keepalived from the stack's user data, in the order
# cloud-init's init stage runs them: the files, then the health-check user.
CLOUD_INIT_MODULES = ("write_files", "users_groups")
# keepalived has no syslog to write to here: its messages go to the node's log file.
LAB_KEEPALIVED_ARGS = ("--log-console", "--log-detail")


class BootFailed(RuntimeError):
    pass


# How long keepalived may take to write its pid file after it is started.
STARTUP_TIMEOUT = 10


def _names_pid(pid_file, pid: int) -> bool:
    try:
        return pid_file.read_text().split()[0] == str(pid)
    except (OSError, IndexError):
        return False


def apply_user_data(host: NodeHost, user_data: str) -> list[str]:
    """Hands the user data to cloud-init through a NoCloud seed, lets it
    consume it, then runs the modules that configure keepalived. Returns the
    cloud-init commands run, for the report."""
    host.write_file("/var/lib/cloud/seed/nocloud/user-data", user_data, 0o600)
    host.write_file("/var/lib/cloud/seed/nocloud/meta-data", f"instance-id: {host.name}\nlocal-hostname: {host.name}\n")
    host.write_file(LAB_CLOUD_CFG, LAB_CLOUD_CFG_TEXT)
    commands = (
        [["cloud-init", "init"]]
        + [["cloud-init", "single", "--name", module, "--frequency", "always"] for module in CLOUD_INIT_MODULES]
        + [
            # The later stages, with no modules of their own here (packages are
            # not installed again), so `cloud-init status` says done as on a VM.
            ["cloud-init", "modules", "--mode", "config"],
            ["cloud-init", "modules", "--mode", "final"],
        ]
    )
    for command in commands:
        result = host.run(command, check=False, timeout=120)
        if result.returncode != 0:
            raise BootFailed(
                f"{host.name}: {shlex.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
    return [shlex.join(c) for c in commands]


def write_by_hand(host: NodeHost, files: dict[str, str]) -> None:
    """What the reference procedure does: edit the files over SSH."""
    for path, content in files.items():
        host.write_file(path, content, 0o644)


@dataclass
class ServiceUnit:
    """The parts of keepalived.service (with drop-ins) that starting it uses."""

    exec_start_pre: list[str] = field(default_factory=list)
    exec_start: str | None = None
    environment_files: list[str] = field(default_factory=list)
    condition_file_not_empty: list[str] = field(default_factory=list)


def parse_unit(texts: list[str]) -> ServiceUnit:
    unit = ServiceUnit()
    for text in texts:
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", ";", "[")) or "=" not in line:
                continue
            key, value = (part.strip() for part in line.split("=", 1))
            if key == "ExecStartPre":
                if value:
                    unit.exec_start_pre.append(value)
                else:  # an empty assignment resets the list, as in systemd
                    unit.exec_start_pre.clear()
            elif key == "ExecStart" and value:
                unit.exec_start = value
            elif key == "EnvironmentFile":
                unit.environment_files.append(value)
            elif key == "ConditionFileNotEmpty":
                unit.condition_file_not_empty.append(value)
    return unit


def parse_environment_file(text: str) -> dict[str, str]:
    environment = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        environment[key.strip()] = " ".join(shlex.split(value))
    return environment


def expand_command(command: str, environment: dict[str, str]) -> list[str]:
    """systemd's rules for the cases the unit uses: a leading '-' (failure
    ignored) is dropped by the caller; $VAR splits into words, ${VAR} does not."""
    words = []
    for word in shlex.split(command):
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:
            words += environment.get(whole.group(1), "").split()
        else:
            words.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: environment.get(m.group(1), ""), word))
    return words


@dataclass
class StartPlan:
    """What starting keepalived.service runs, as systemd would work it out."""

    pre: list[tuple[list[str], bool]]  # ExecStartPre lines: (argv, failure ignored)
    start: list[str]  # ExecStart, plus the lab's logging arguments
    conditions: list[str]  # ConditionFileNotEmpty paths


def plan_start(unit_texts: list[str], read_file: Callable[[str], str | None]) -> StartPlan:
    """The unit's texts (unit file first, drop-ins in order) and a way to read
    the host's files in, what to run out; the lab and its systemctl stand-in
    both start keepalived from this."""
    unit = parse_unit(unit_texts)
    if unit.exec_start is None:
        raise BootFailed("keepalived.service has no ExecStart")
    environment: dict[str, str] = {}
    for entry in unit.environment_files:
        text = read_file(entry.lstrip("-"))
        if text is None and not entry.startswith("-"):
            raise BootFailed(f"EnvironmentFile {entry} is missing")
        environment.update(parse_environment_file(text or ""))
    return StartPlan(
        pre=[(expand_command(pre.lstrip("-"), environment), pre.startswith("-")) for pre in unit.exec_start_pre],
        start=expand_command(unit.exec_start, environment) + list(LAB_KEEPALIVED_ARGS),
        conditions=list(unit.condition_file_not_empty),
    )


class KeepalivedService:
    """keepalived on one node, started and stopped as systemd would."""

    def __init__(self, host: NodeHost):
        self.host = host
        self.process: subprocess.Popen | None = None

    def unit_texts(self) -> list[str]:
        texts = [t for t in (self.host.read_file(p) for p in UNIT_PATHS) if t]
        listing = self.host.run(["sh", "-c", f"ls {DROPIN_DIR}/*.conf 2>/dev/null || true"], check=False).stdout
        return texts + [self.host.read_file(path) or "" for path in sorted(listing.split())]

    def start(self, track) -> subprocess.Popen:
        plan = plan_start(self.unit_texts(), self.host.read_file)
        for path in plan.conditions:
            if not (self.host.read_file(path) or "").strip():
                raise BootFailed(f"{self.host.name}: {path} is empty or missing; systemd would not start keepalived")
        for argv, ignore_failure in plan.pre:
            result = self.host.run(argv, check=False)
            with open(self.host.log_dir / "keepalived.log", "a") as log:
                log.write(result.stdout + result.stderr)
            if result.returncode != 0 and not ignore_failure:
                raise BootFailed(f"{self.host.name}: ExecStartPre {shlex.join(argv)} failed: {result.stderr.strip()}")
        self.process = track(self.host.popen(plan.start, "keepalived.log"))
        # Up, as systemd's Type=notify would have it, once keepalived has
        # written its own pid file; an exit before that is a failed start.
        pid_file = self.host.run_dir / "keepalived.pid"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _names_pid(pid_file, self.process.pid):
            if self.process.poll() is not None or time.monotonic() > deadline:
                what = (
                    f"exited at once ({self.process.returncode})"
                    if self.process.poll() is not None
                    else f"wrote no pid file within {STARTUP_TIMEOUT:g} s"
                )
                raise BootFailed(f"{self.host.name}: keepalived {what}; the end of its log:\n" + self.log_tail())
            time.sleep(0.01)
        return self.process

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the node's keepalived log, for an error that must
        make sense after the lab's directory is gone."""
        log = self.host.log_dir / "keepalived.log"
        text = log.read_text(errors="replace") if log.exists() else "(no log)"
        return "\n".join("    " + line for line in text.splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10) -> None:
        """`systemctl stop`: SIGTERM, so keepalived hands over (priority 0) and removes the VIP."""
        if self.process is None or self.process.poll() is not None:
            return
        supervisor.stop(self.process, timeout)

    def kill(self) -> None:
        """A crash: every keepalived process of the node dies at once, nothing is cleaned up."""
        if self.process is not None:
            supervisor.kill(self.process)

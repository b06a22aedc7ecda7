"""Runs the real Pulumi CLI (make engine's .engine/bin) the way a user does,
on a local backend with the passphrase secrets provider, and never the
network: a missing plugin fails at once instead of being downloaded."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent
ENGINE_BIN = PROJECT_DIR / ".engine" / "bin"
# make engine's providers: off PATH, installed into a plugin cache from here.
ENGINE_PLUGINS = PROJECT_DIR / ".engine" / "plugins"
VERSIONS = dict(
    line.split("=", 1)
    for line in (PROJECT_DIR / "engine" / "versions.env").read_text().splitlines()
    if line and not line.startswith("#")
)
PULUMI_VERSION = VERSIONS["PULUMI_VERSION"]
OPENSTACK_VERSION = VERSIONS["OPENSTACK_VERSION"]
PASSPHRASE = "a passphrase for the tests' stacks"
# How long an interrupted command gets to stop its operations and unlock the stack.
STOP_SECONDS = 120


class PulumiFailed(AssertionError):
    pass


@dataclass(frozen=True)
class Ran:
    """A finished `pulumi` command: how it exited and what it printed."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def checked(self) -> str:
        """Its output, if it succeeded."""
        if self.returncode != 0:
            raise PulumiFailed(
                f"`pulumi {' '.join(self.args)}` exited {self.returncode}\n"
                f"--- stdout (end) ---\n{self.stdout[-4000:]}\n--- stderr (end) ---\n{self.stderr[-4000:]}"
            )
        return self.output


@dataclass
class Pulumi:
    """One project directory, one PULUMI_HOME and one file backend."""

    workdir: Path
    home: Path
    backend: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        venv_bin = PROJECT_DIR / "venv" / "bin"
        return {
            **os.environ,
            "PATH": f"{ENGINE_BIN}:{venv_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "PULUMI_HOME": str(self.home),
            "PULUMI_BACKEND_URL": self.backend.as_uri(),
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            # --event-log is a flag only with this set (pkg/cmd/pulumi/operations/up.go).
            "PULUMI_DEBUG_COMMANDS": "true",
            "PULUMI_EXPERIMENTAL": "false",
            "NO_COLOR": "1",
            **self.extra_env,
        }

    def run(self, *args: str, check: bool = True, timeout: float = 600, stdin: str | None = None) -> str:
        ran = self.attempt(*args, timeout=timeout, stdin=stdin)
        return ran.checked() if check else ran.output

    def attempt(self, *args: str, timeout: float = 600, stdin: str | None = None) -> Ran:
        """Runs `pulumi` whether it succeeds or not; a run past `timeout` is interrupted and fails."""
        command = [str(ENGINE_BIN / "pulumi"), *args, "--non-interactive"]
        process = subprocess.Popen(
            command,
            cwd=self.workdir,
            env=self.env(),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            stdout, stderr = process.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            # As a user's Ctrl-C: the engine stops its operations, saves its
            # state and releases the stack's lock, so that the teardown's
            # destroy can run. A kill would leave the lock behind.
            process.send_signal(signal.SIGINT)
            try:
                stdout, stderr = process.communicate(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                stdout, stderr = process.communicate()
            raise PulumiFailed(
                f"`pulumi {' '.join(args)}` still ran after {timeout:.0f} s and was interrupted\n"
                f"--- stdout (end) ---\n{stdout[-4000:]}\n--- stderr (end) ---\n{stderr[-4000:]}"
            ) from None
        return Ran(args=args, returncode=process.returncode, stdout=stdout, stderr=stderr)

    def up(self, *args: str, event_log: Path | None = None, check: bool = True, timeout: float = 600) -> str:
        ran = self.attempt_up(*args, event_log=event_log, timeout=timeout)
        return ran.checked() if check else ran.output

    def attempt_up(self, *args: str, event_log: Path | None = None, timeout: float = 600) -> Ran:
        log = ["--event-log", str(event_log)] if event_log else []
        return self.attempt("up", "--yes", "--skip-preview", *log, *args, timeout=timeout)

    def stack_export(self) -> dict:
        return json.loads(self.run("stack", "export"))

    def outputs(self, show_secrets: bool = False) -> dict:
        flags = ["--show-secrets"] if show_secrets else []
        return json.loads(self.run("stack", "output", "--json", *flags))

    def config(self) -> dict:
        return json.loads(self.run("config", "--json", "--show-secrets"))


def install_provider(home: Path, version: str) -> None:
    """make engine's OpenStack provider into this PULUMI_HOME's plugin cache, as a user installs a local plugin."""
    Pulumi(workdir=home, home=home, backend=home).run(
        "plugin",
        "install",
        "resource",
        "openstack",
        version,
        "--file",
        str(ENGINE_PLUGINS / "pulumi-resource-openstack"),
    )


def copy_project(source: Path, destination: Path) -> Path:
    """A copy of a project whose virtualenv is the checkout's venv."""
    shutil.copytree(
        source, destination, ignore=shutil.ignore_patterns("venv", "__pycache__", ".engine", ".cloud", ".git")
    )
    project_file = destination / "Pulumi.yaml"
    project = yaml.safe_load(project_file.read_text())
    project["runtime"]["options"]["virtualenv"] = str(PROJECT_DIR / "venv")
    project_file.write_text(yaml.safe_dump(project, sort_keys=False))
    return destination


@dataclass(frozen=True)
class Step:
    sequence: int
    phase: str  # "pre" when the step starts, "done" when it has finished
    op: str
    name: str


def step_of(event: dict) -> Step | None:
    """The resource step an engine event starts or ends, if it is one."""
    for key, phase in (("resourcePreEvent", "pre"), ("resOutputsEvent", "done")):
        if key in event:
            metadata = event[key]["metadata"]
            return Step(event["sequence"], phase, metadata["op"], metadata["urn"].rsplit("::", 1)[-1])
    return None


def steps(event_log: Path) -> list[Step]:
    """The resource steps of an engine event log (one JSON event a line), in
    order. A last line without its newline is one the engine is still
    writing: it is left for the next read (read mid-write, it once failed a
    fault test's `pulumi up` at its start)."""
    complete = event_log.read_text().split("\n")[:-1]
    found = [step_of(json.loads(line)) for line in complete if line]
    return sorted((step for step in found if step is not None), key=lambda s: s.sequence)

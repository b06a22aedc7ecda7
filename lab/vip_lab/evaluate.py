"""Runs the stack's `__main__.py` under Pulumi's mock runtime and records what
it declared: every resource with its inputs (secrets still marked), its parent
and dependencies, and the stack outputs.

The tests use it to assert on the program; the lab uses it to take each node's
user data exactly as the program declares it.

It uses the SDK's public testing API only: `set_mocks` (with a monitor of
our own through its `monitor` parameter), `pulumi.runtime.test` to run the
program and wait for everything it started, `reset_options` for a fresh stack
per run, `get_root_resource` for the exports.
"""

from __future__ import annotations

import json
import logging
import runpy
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

from vip_stack.rollout import NODE_IN_SERVICE_TYPE
from vip_stack.settings import NAMESPACE

from .fake_openstack import FakeCloud, OpenStackMocks, unwrap

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
PROGRAM = PROJECT_DIR / "__main__.py"
PROJECT = NAMESPACE

EXAMPLE_STACK_FILE = PROJECT_DIR / "Pulumi.dev.yaml"


@dataclass
class DeclaredResource:
    type: str
    name: str
    urn: str
    parent_urn: str
    dependencies: tuple[str, ...]
    delete_before_replace: bool
    id: str
    inputs: dict
    outputs: dict
    replace_on_changes: tuple[str, ...] = ()
    additional_secret_outputs: tuple[str, ...] = ()
    # The names this resource had before (aliases that keep only a new name).
    alias_names: tuple[str, ...] = ()
    # Each alias spec as (name, type), "" where it keeps the current one.
    aliases: tuple[tuple[str, str], ...] = ()
    # The URN of the resource whose deletion deletes this one too ("": none).
    deleted_with: str = ""

    def input(self, key: str, default: Any = None) -> Any:
        return unwrap(self.inputs.get(key, default))

    def is_secret(self, key: str) -> bool:
        return rpc.is_rpc_secret(self.inputs.get(key))

    @property
    def short_type(self) -> str:
        return self.type.split(":")[-1]


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that keeps each registration request, given to
    set_mocks through its `monitor` parameter. Mocks.new_resource sees a
    resource's type, name and inputs only; the request also holds its parent,
    dependencies, aliases and replacement options, which the tests and the
    lab's rollout order read, and which no other public API shows."""

    def __init__(self, mocks: OpenStackMocks):
        super().__init__(mocks)
        # (registration request, the URN it got), in the order the program made them.
        self.registrations: list[tuple[Any, str]] = []

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        self.registrations.append((request, response.urn))
        return response


class WarningLog(logging.Handler):
    """Keeps what the program said with pulumi.log.warn."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@dataclass
class MockedRun:
    """What the program declared under the mocks (vip_stack.check.DeployedStack is a real one)."""

    resources: list[DeclaredResource]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    mocks: OpenStackMocks
    # What the program raised, when run with expect_failure=True.
    error: BaseException | None = None
    # What it said with pulumi.log.warn, as `pulumi preview` and `up` would show it.
    warnings: tuple[str, ...] = ()

    def of_type(self, short_type: str) -> list[DeclaredResource]:
        return [r for r in self.resources if r.short_type == short_type]

    def called(self, name: str, short_type: str) -> DeclaredResource:
        """The resource of that type whose name in the cloud (its `name` input) is `name`."""
        (match,) = [r for r in self.of_type(short_type) if r.input("name") == name]
        return match

    def gates(self) -> dict[str, DeclaredResource]:
        """Node name -> its NodeInService gate in the rollout."""
        return {r.input("nodeName"): r for r in self.resources if r.type == NODE_IN_SERVICE_TYPE}

    def named(self, name: str, short_type: str | None = None) -> DeclaredResource:
        """The resource of that name; with short_type ("Instance", "Port"...) when a component shares it."""
        (match,) = [r for r in self.resources if r.name == name and (short_type is None or r.short_type == short_type)]
        return match


def _alias_names(request) -> list[str]:
    """The old names a registration carries: as alias specs (what the SDK
    sends a monitor that supports them) or as alias URNs."""
    names = [alias.spec.name for alias in request.aliases if alias.WhichOneof("alias") == "spec" and alias.spec.name]
    names += [urn.rsplit("::", 1)[1] for urn in request.aliasURNs]
    return names


def config_values(config: dict[str, Any], project: str = PROJECT) -> dict[str, str]:
    """Config as Pulumi hands it to a program: namespaced keys (a bare key is
    the project's), text values, lists and objects as JSON."""
    return {
        (key if ":" in key else f"{project}:{key}"): value if isinstance(value, str) else json.dumps(value)
        for key, value in config.items()
    }


@dataclass
class Exports:
    """A program's stack outputs, resolved."""

    values: dict[str, Any]
    # The names of those that are secret.
    secret: set[str]


def run_with_mocks(
    program: Path,
    mocks: pulumi.runtime.Mocks,
    project: str,
    config: dict[str, Any],
    monitor: pulumi_mocks.MockMonitor | None = None,
    logger: logging.Logger | None = None,
) -> Exports:
    """Runs a Pulumi program once, in a fresh stack, against these mocks
    with this config (raw values by key, as config_values takes them); waits
    for everything it started and returns its exports. Raises what the
    program raised."""
    # set_mocks makes a root stack only when there is none: without this, a
    # second run would declare into the first run's stack and keep its exports.
    pulumi.runtime.reset_options(project=project, stack="dev", preview=False)
    pulumi.runtime.set_mocks(mocks, project=project, stack="dev", preview=False, monitor=monitor, logger=logger)
    values = config_values(config, project)
    pulumi.runtime.set_all_config(values, [key for key in values if key.endswith(":vrrpPassword")])
    exports = Exports({}, set())

    async def resolve_exports() -> None:
        # The root stack keeps what the program exported, as Inputs.
        exported: dict[str, Any] = getattr(pulumi.runtime.get_root_resource(), "outputs", {})
        for name, value in exported.items():
            output = pulumi.Output.from_input(value)
            resolved = await output.future()
            # The real engine leaves an output whose value is null out of the
            # stack's outputs (`pulumi stack output` never shows it): so here.
            if resolved is None:
                continue
            exports.values[name] = resolved
            if await output.is_secret():
                exports.secret.add(name)

    @pulumi.runtime.test
    def evaluate() -> Coroutine[Any, Any, None]:
        runpy.run_path(str(program), run_name="__main__")
        # The test runner awaits what this returns (here, the exports
        # resolved), then every registration and output the program started.
        return resolve_exports()

    evaluate()
    return exports


def run_program(
    config: dict[str, Any],
    cloud: FakeCloud | None = None,
    expect_failure: bool = False,
    program: Path = PROGRAM,
    project: str = PROJECT,
) -> MockedRun:
    """Runs the program (this project's, or another's) once with this config
    (raw values by key) against this cloud (one with an external network when
    None) and records what it declared. With expect_failure, returns what was
    declared before the program failed, and the error."""
    mocks = OpenStackMocks(cloud or FakeCloud.with_external_network())
    monitor = RecordingMonitor(mocks)
    warnings = WarningLog()
    logger = logging.getLogger(f"{__name__}.run{id(warnings)}")
    logger.propagate = False
    logger.addHandler(warnings)
    exports = Exports({}, set())
    error: BaseException | None = None
    try:
        exports = run_with_mocks(program, mocks, project, config, monitor=monitor, logger=logger)
    except Exception as exc:
        if not expect_failure:
            raise
        error = exc
    if expect_failure and error is None:
        raise AssertionError("the program was expected to fail but did not")

    resources = []
    registered = monitor.get_registered_resources()
    for request, urn in monitor.registrations:
        registration = registered.get(urn)
        if registration is None:  # the stack itself
            continue
        resources.append(
            DeclaredResource(
                type=request.type,
                name=request.name,
                urn=urn,
                parent_urn=request.parent,
                dependencies=tuple(request.dependencies),
                delete_before_replace=request.deleteBeforeReplace,
                id=registration.id,
                inputs=mocks.inputs.get((request.type, request.name), {}),
                outputs=registration.state,
                replace_on_changes=tuple(request.replaceOnChanges),
                additional_secret_outputs=tuple(request.additionalSecretOutputs),
                alias_names=tuple(_alias_names(request)),
                aliases=tuple(
                    (alias.spec.name, alias.spec.type)
                    for alias in request.aliases
                    if alias.WhichOneof("alias") == "spec"
                ),
                deleted_with=request.deletedWith,
            )
        )
    return MockedRun(
        resources=resources,
        outputs=exports.values,
        secret_outputs=exports.secret,
        mocks=mocks,
        error=error,
        warnings=tuple(warnings.messages),
    )

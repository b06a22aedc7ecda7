"""The real Pulumi engine, built by make engine, on a local backend and no
cloud: what the mock runtime cannot show (state kept between runs, diffs, the
order of a delete-before-replace, dynamic providers, secrets at rest), and our
own Pulumi.yaml as the real CLI reads it."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.real_engine import (
    ENGINE_BIN,
    ENGINE_PLUGINS,
    OPENSTACK_VERSION,
    PROJECT_DIR,
    PULUMI_VERSION,
    Pulumi,
    copy_project,
    steps,
)
from vip_stack.rollout import GENERIC_DYNAMIC_TYPE, NODE_IN_SERVICE_TYPE
from vip_stack.settings import ALL_KEYS, config_from_stack_file, parse_settings

ORDERING = PROJECT_DIR / "tests" / "engine_programs" / "ordering"
OPENSTACK_PREVIEW = PROJECT_DIR / "tests" / "engine_programs" / "openstack_preview"
GATE_TYPE = PROJECT_DIR / "tests" / "engine_programs" / "gate_type"
TOKEN = "t0ken-never-in-clear"


@pytest.fixture
def ordering(pulumi_engine, tmp_path) -> Pulumi:
    pulumi = pulumi_engine(copy_project(ORDERING, tmp_path / "ordering"))
    pulumi.run("stack", "init", "dev")
    pulumi.run("config", "set", "--secret", "token", TOKEN)
    return pulumi


@pytest.mark.engine
def test_the_cli_is_the_pinned_release(pulumi_engine, tmp_path):
    assert pulumi_engine(tmp_path).run("version").strip() == f"v{PULUMI_VERSION}"


@pytest.mark.engine
def test_the_language_host_is_the_pinned_release(pulumi_engine):
    printed = subprocess.run(
        [ENGINE_BIN / "pulumi-language-python", "-version"], capture_output=True, text=True, check=True
    ).stdout
    assert printed.strip() == f"v{PULUMI_VERSION}"


def test_the_python_sdks_are_pinned_to_the_engines_versions():
    import importlib.metadata

    wanted = {"pulumi": PULUMI_VERSION, "pulumi-openstack": OPENSTACK_VERSION}
    requirements = (PROJECT_DIR / "requirements.txt").read_text().split()
    pyproject = (PROJECT_DIR / "pyproject.toml").read_text()
    for package, version in wanted.items():
        assert f"{package}=={version}" in requirements, package
        assert f'"{package}=={version}"' in pyproject, package
        assert importlib.metadata.version(package) == version, package


def sdk_plugin() -> dict:
    """What the installed pulumi-openstack SDK asks the engine for."""
    import pulumi_openstack

    return json.loads((Path(pulumi_openstack.__file__).parent / "pulumi-plugin.json").read_text())


@pytest.mark.engine
def test_the_engine_finds_the_openstack_provider_the_sdk_asks_for(pulumi_engine, tmp_path):
    asked = sdk_plugin()
    assert asked["resource"] is True and asked["name"] == "openstack"
    plugins = json.loads(pulumi_engine(tmp_path).run("plugin", "ls", "--json"))
    found = [p for p in plugins if p["kind"] == "resource" and p["name"] == "openstack"]
    assert [p["version"] for p in found] == [asked["version"]], plugins
    printed = subprocess.run(
        [ENGINE_PLUGINS / "pulumi-resource-openstack", "-version"], capture_output=True, text=True, check=True
    ).stdout
    assert printed.strip() == asked["version"]


@pytest.mark.engine
def test_the_provider_serves_every_token_the_sdk_sends(pulumi_engine, tmp_path):
    import pulumi_openstack

    schema = json.loads(
        pulumi_engine(tmp_path).run("package", "get-schema", str(ENGINE_PLUGINS / "pulumi-resource-openstack"))
    )
    assert schema["name"] == "openstack" and schema["version"] == OPENSTACK_VERSION
    served = set(schema["resources"]) | set(schema["functions"])
    sent = set()
    for module in Path(pulumi_openstack.__file__).parent.rglob("*.py"):
        sent |= set(re.findall(r"'(openstack:[A-Za-z0-9]+/[A-Za-z0-9]+:[A-Za-z0-9]+)'", module.read_text()))
    assert len(sent) > 150
    assert sorted(sent - served) == []
    port = schema["resources"]["openstack:networking/port:Port"]["inputProperties"]
    assert {"networkId", "fixedIps", "allowedAddressPairs", "securityGroupIds", "portSecurityEnabled"} <= set(port)


@pytest.mark.engine
def test_the_provider_plans_the_stacks_kinds_of_resources_without_a_cloud(pulumi_engine, tmp_path):
    pulumi = pulumi_engine(copy_project(OPENSTACK_PREVIEW, tmp_path / "preview"))
    pulumi.run("stack", "init", "dev")
    # Nothing listens there: a call to the cloud would fail the preview.
    pulumi.run("config", "set", "openstack:authUrl", "http://127.0.0.1:9/v3")
    pulumi.run("config", "set", "openstack:insecure", "true")
    previewed = pulumi.run("preview", "--json")
    steps_ = json.loads(previewed[previewed.index("{") :])["steps"]
    created = sorted(step["urn"].split("::")[-2:][0] for step in steps_ if step["op"] == "create")
    assert created == sorted(
        [
            "openstack:compute/instance:Instance",
            "openstack:compute/serverGroup:ServerGroup",
            "openstack:networking/port:Port",
            "openstack:networking/secGroup:SecGroup",
            "openstack:networking/secGroupRule:SecGroupRule",
            "pulumi:pulumi:Stack",
        ]
    ), created
    # The default provider is the one the SDK asked for, at its version.
    assert "default_" + OPENSTACK_VERSION.replace(".", "_") in previewed


@pytest.mark.engine
def test_an_ordinary_preview_prints_no_warning(pulumi_engine, tmp_path):
    # A newcomer's PATH has .engine/bin first, as the README says: no
    # provider may be found there ("using pulumi-resource-openstack from $PATH").
    assert not list(ENGINE_BIN.glob("pulumi-resource-openstack*"))
    pulumi = pulumi_engine(copy_project(OPENSTACK_PREVIEW, tmp_path / "preview"))
    pulumi.run("stack", "init", "dev")
    pulumi.run("config", "set", "openstack:authUrl", "http://127.0.0.1:9/v3")
    pulumi.run("config", "set", "openstack:insecure", "true")
    printed = pulumi.run("preview")
    assert "warning" not in printed.lower(), printed


@pytest.mark.engine
def test_a_program_comes_up_stays_unchanged_and_goes_away(ordering):
    ordering.up()
    outputs = ordering.outputs(show_secrets=True)
    assert outputs["serverId"].startswith("server-1-")
    assert outputs["gateId"] == f"gate-of-{outputs['serverId']}"
    assert outputs["token"] == TOKEN

    # A second run of an unchanged program: nothing to do, in preview or up.
    ordering.run("preview", "--expect-no-changes")
    ordering.up("--expect-no-changes")
    assert ordering.outputs(show_secrets=True)["serverId"] == outputs["serverId"]

    ordering.run("destroy", "--yes", "--skip-preview")
    assert [r["type"] for r in ordering.stack_export()["deployment"].get("resources") or []] == []
    ordering.run("stack", "rm", "--yes")


@pytest.mark.engine
def test_a_secret_config_value_is_never_in_clear_at_rest(ordering):
    ordering.up()
    state = json.dumps(ordering.stack_export())
    assert TOKEN not in state
    assert TOKEN not in ordering.run("stack", "output", "--json")
    assert ordering.outputs(show_secrets=True)["token"] == TOKEN
    exported_server = next(
        r for r in ordering.stack_export()["deployment"]["resources"] if r["urn"].endswith("::server")
    )
    assert exported_server["inputs"]["token"]["4dabf18193072939515e22adb298388d"] == "1b47061264138c4ac30d75fd1eb44270"
    ordering.run("destroy", "--yes", "--skip-preview")


@pytest.mark.engine
def test_a_replaced_server_takes_its_dependent_gate_down_first_and_up_last(ordering, tmp_path):
    """The order the rollout relies on: the gate (drain) is deleted before the
    server it watches, and created (the wait for service) after the new one."""
    ordering.up()
    ordering.run("config", "set", "generation", "2")
    log = tmp_path / "events.jsonl"
    ordering.up(event_log=log)

    order = [(s.phase, s.op, s.name) for s in steps(log) if s.name in ("server", "gate")]
    expected = [
        ("pre", "delete-replaced", "gate"),
        ("done", "delete-replaced", "gate"),
        ("pre", "delete-replaced", "server"),
        ("done", "delete-replaced", "server"),
        ("pre", "create-replacement", "server"),
        ("done", "create-replacement", "server"),
        ("pre", "create-replacement", "gate"),
        ("done", "create-replacement", "gate"),
    ]
    assert [step for step in order if step[1] != "replace"] == expected, order
    outputs = ordering.outputs()
    assert outputs["serverId"].startswith("server-2-")
    assert outputs["gateId"] == f"gate-of-{outputs['serverId']}"
    ordering.run("destroy", "--yes", "--skip-preview")


@pytest.mark.engine
def test_a_change_of_an_in_place_input_updates_without_replacing(ordering, tmp_path):
    ordering.up()
    server_id = ordering.outputs()["serverId"]
    ordering.run("config", "set", "--secret", "token", "another-token")
    log = tmp_path / "events.jsonl"
    ordering.up(event_log=log)
    ops = {(s.op, s.name) for s in steps(log) if s.phase == "done"}
    assert ("update", "server") in ops and not any(op.endswith("replaced") for op, _ in ops), ops
    assert ordering.outputs()["serverId"] == server_id
    ordering.run("destroy", "--yes", "--skip-preview")


def the_gate(pulumi: Pulumi) -> dict:
    """The gate in the stack's state (the program declares one)."""
    resources = pulumi.stack_export()["deployment"]["resources"]
    (gate,) = [r for r in resources if r["urn"].endswith("-in-service")]
    return gate


@pytest.mark.engine
@pytest.mark.parametrize("release", ["before-components-as-library", "before-gate-type"])
def test_a_stack_made_before_the_gate_had_its_own_type_keeps_its_gate(pulumi_engine, tmp_path, release):
    """The gate's new type is the same resource to the engine, by its alias:
    no delete (that would drain the node) and no create (a wait for service)."""
    pulumi = pulumi_engine(copy_project(GATE_TYPE, tmp_path / "gate-type"))
    pulumi.run("stack", "init", "dev")
    pulumi.run("config", "set", "release", release)
    pulumi.up()
    before = the_gate(pulumi)
    assert before["type"] == GENERIC_DYNAMIC_TYPE

    pulumi.run("config", "set", "release", "now")
    previewed = pulumi.run("preview", "--json")
    plan = json.loads(previewed[previewed.index("{") :])
    # The preview lists the steps that change something (none for a same).
    planned = [s for s in plan["steps"] if s["urn"].endswith("-in-service")]
    assert {s["op"] for s in planned} <= {"same", "update"}, planned
    assert set(plan["changeSummary"]) <= {"same", "update"}, plan["changeSummary"]
    log = tmp_path / "events.jsonl"
    pulumi.up(event_log=log)
    done = {s.op for s in steps(log) if s.phase == "done" and s.name.endswith("-in-service")}
    assert done and done <= {"same", "update"}, done

    after = the_gate(pulumi)
    assert after["type"] == NODE_IN_SERVICE_TYPE
    assert after["urn"].endswith(
        f"::keepalived-vip:openstack:KeepalivedNodes${NODE_IN_SERVICE_TYPE}::keepalived-vip-nodes-kld-vm-1-in-service"
    )
    assert (after["id"], after.get("created")) == (before["id"], before.get("created")), "the very same gate"
    pulumi.run("preview", "--expect-no-changes")
    # A delete unpickles the provider the state names: vip_stack's, still there.
    pulumi.run("destroy", "--yes", "--skip-preview")
    assert pulumi.stack_export()["deployment"].get("resources") in (None, [])


# Our own project file, as the real CLI reads it.


# What the test sets beyond the example stack, which tracks no service.
HEALTH_CHECK: dict[str, str | int] = {
    "command": "systemctl is-active --quiet haproxy",
    "interval": 2,
    "fall": 2,
    "rise": 2,
}


def config_set(pulumi: Pulumi, key: str, value: bool | int | str, path: bool = False) -> None:
    """`pulumi config set` of one value, with the type flag the README gives for it."""
    kind = ["--type", "bool"] if isinstance(value, bool) else ["--type", "int"] if isinstance(value, int) else []
    text = str(value).lower() if isinstance(value, bool) else str(value)
    pulumi.run("config", "set", *(["--path"] if path else []), *kind, key, text)


def set_every_key_as_the_readme_says(pulumi: Pulumi) -> None:
    stack = yaml.safe_load((PROJECT_DIR / "Pulumi.dev.yaml").read_text())["config"]
    for full_key, value in stack.items():
        key = full_key.split(":", 1)[1]
        if isinstance(value, (bool, int, str)):
            config_set(pulumi, key, value)
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            for i, item in enumerate(value):
                config_set(pulumi, f"{key}[{i}]", item, path=True)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, item in enumerate(value):
                for field, field_value in item.items():
                    config_set(pulumi, f"{key}[{i}].{field}", field_value, path=True)
        elif value == []:
            continue  # the CLI has no way to write an empty list; the program's default is one
        else:
            raise AssertionError(f"the example stack has {key} of a shape the README does not cover: {value!r}")
    for field, field_value in HEALTH_CHECK.items():
        config_set(pulumi, f"healthCheck.{field}", field_value, path=True)
    config_set(pulumi, "servicePorts[0].protocol", "tcp", path=True)
    config_set(pulumi, "servicePorts[0].port", 443, path=True)
    config_set(pulumi, "serviceAllowedCidrs[0]", "192.168.0.0/24", path=True)
    pulumi.run("config", "set", "--secret", "vrrpPassword", "k33pal1v")


@pytest.fixture
def our_project(pulumi_engine, tmp_path) -> Pulumi:
    workdir = tmp_path / "keepalived-vip"
    workdir.mkdir()
    (workdir / "Pulumi.yaml").write_text((PROJECT_DIR / "Pulumi.yaml").read_text())
    pulumi = pulumi_engine(workdir)
    pulumi.run("stack", "init", "fresh")
    return pulumi


@pytest.mark.engine
def test_every_documented_key_is_accepted_by_the_real_cli_and_listed(our_project):
    set_every_key_as_the_readme_says(our_project)
    config = our_project.config()
    assert {key.split(":", 1)[1] for key in config} == set(ALL_KEYS)
    assert config["keepalived-vip:vrrpPassword"]["secret"] is True
    assert config["keepalived-vip:sshAllowedCidrs"]["objectValue"] == ["198.51.100.0/24"]
    assert config["keepalived-vip:nodes"]["objectValue"] == [
        {"name": "kld-vm-1", "priority": 120},
        {"name": "kld-vm-2", "priority": 90},
    ]
    assert config["keepalived-vip:healthCheck"]["objectValue"]["interval"] == 2
    assert config["keepalived-vip:servicePorts"]["objectValue"] == [{"protocol": "tcp", "port": 443}]
    listed = our_project.run("config")
    assert "vrrpPassword" in listed and "k33pal1v" not in listed

    # What the CLI hands the program (every value a string, objects as JSON)
    # gives the program the same settings as the example stack it came from.
    assert "k33pal1v" not in (our_project.workdir / "Pulumi.fresh.yaml").read_text()
    from_cli = parse_settings({key.split(":", 1)[1]: entry["value"] for key, entry in config.items()})
    example = config_from_stack_file(PROJECT_DIR / "Pulumi.dev.yaml")
    example.update(
        vrrpPassword="k33pal1v",
        healthCheck=HEALTH_CHECK,
        servicePorts=[{"protocol": "tcp", "port": 443}],
        serviceAllowedCidrs=["192.168.0.0/24"],
    )
    assert from_cli == parse_settings(example)


def set_the_required_keys(pulumi: Pulumi) -> None:
    pulumi.run("config", "set", "flavorName", "STD2-1-2")
    pulumi.run("config", "set", "--path", "sshAllowedCidrs[0]", "203.0.113.0/24")


@pytest.mark.engine
def test_the_real_cli_refuses_to_run_with_the_password_in_clear(our_project):
    set_the_required_keys(our_project)
    # `config set` takes it; every run refuses it before the program starts.
    our_project.run("config", "set", "vrrpPassword", "k33pal1v")
    refused = our_project.attempt("preview")
    assert refused.returncode != 0, refused.output
    assert "configuration key 'vrrpPassword' must be encrypted as it's secret" in refused.output, refused.output


@pytest.mark.engine
def test_the_real_cli_refuses_to_run_with_a_value_of_the_wrong_declared_type(our_project):
    set_the_required_keys(our_project)
    our_project.run("config", "set", "--secret", "vrrpPassword", "k33pal1v")
    our_project.run("config", "set", "virtualRouterId", "not-a-number")
    refused = our_project.attempt("preview")
    assert refused.returncode != 0, refused.output
    assert "configuration key 'virtualRouterId' must be of type 'integer'" in refused.output, refused.output

"""The components as a library: the package installs with its templates and
only its runtime dependencies, the core never imports the tools, existing
stacks keep their resources across the renaming, and two VIPs share one
network and one jumphost (examples/library, run from outside the checkout
with the installed package)."""

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from ipaddress import IPv4Address
from pathlib import Path

import pytest
import yaml

from vip_stack.rendering import KEEPALIVED_CONF_PATH
from vip_stack.settings import InvalidConfig

from .harness import EXAMPLE_CONFIG, PROJECT_DIR, run_program

# check and observe are operations against a deployment that a user runs from
# the venv `pulumi up` made: they are the product, and import no tool either.
CORE = (
    "__init__",
    "check",
    "recover",
    "observe",
    "addressing",
    "config_errors",
    "config_sources",
    "hostkeys",
    "jumphost",
    "preflight",
    "network",
    "nodes",
    "remote",
    "rendering",
    "rollout",
    "security",
    "settings",
    "component",
    "vip_port",
    "vrrp",
)
LIBRARY_EXAMPLE = PROJECT_DIR / "examples" / "library"
# What earlier releases declared for EXAMPLE_CONFIG plus these keys: the one
# before the components became a library, and the one before the rollout's
# gates had a type of their own. Stacks made by either must keep every resource.
URNS_BEFORE = [
    PROJECT_DIR / "tests" / "golden" / "urns-before-components-as-library.txt",
    PROJECT_DIR / "tests" / "golden" / "urns-before-gate-type.txt",
]
URN_CONFIG = {
    **EXAMPLE_CONFIG,
    "servicePorts": [{"protocol": "tcp", "port": 443}],
    "serviceAllowedCidrs": ["203.0.113.0/24", "198.51.100.0/24"],
    "sshAllowedCidrs": ["198.51.100.0/24", "192.0.2.0/24"],
    "vipFloatingIp": "true",
}


# The rooms, each a package of its own distribution, and which of the others
# each may import: the product none (what `pulumi up` and a library user
# import, nothing else); the hosts none (and nothing but the standard
# library: the systemctl stand-in is the package copied onto each host); the
# lab the product and the hosts; the cloud the hosts.
ROOMS = {
    "vip_stack": (PROJECT_DIR / "vip_stack", set()),
    "vip_hosts": (PROJECT_DIR / "hosts" / "vip_hosts", set()),
    "vip_lab": (PROJECT_DIR / "lab" / "vip_lab", {"vip_stack", "vip_hosts"}),
    "vip_cloud": (PROJECT_DIR / "cloud" / "vip_cloud", {"vip_hosts"}),
}
OURS = {*ROOMS, "tests", "bench"}


def imported_modules(path: Path, package_root: Path, package: str) -> set[str]:
    """Every module path's imports name, relative imports made absolute."""
    here = [package, *path.parent.relative_to(package_root).parts]
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = ".".join(here[: len(here) - node.level + 1])
                found |= {f"{parent}.{base}"} if base else {f"{parent}.{a.name}" for a in node.names}
            else:
                found.add(base)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def test_the_product_package_holds_the_product_alone():
    modules = {p.stem for p in (PROJECT_DIR / "vip_stack").glob("*.py")}
    assert modules == set(CORE)
    assert not [p for p in (PROJECT_DIR / "vip_stack").iterdir() if p.is_dir() and p.name != "__pycache__"]


@pytest.mark.parametrize("room", ROOMS)
def test_each_room_imports_none_of_the_others_but_those_beneath_it(room):
    root, allowed = ROOMS[room]
    modules = sorted(root.rglob("*.py"))
    assert modules, f"no module in {root}"
    for path in modules:
        ours = {name.split(".")[0] for name in imported_modules(path, root, room)} & OURS
        assert ours <= {room, *allowed}, f"{path.relative_to(PROJECT_DIR)} imports {sorted(ours - {room, *allowed})}"


def test_the_hosts_need_nothing_but_the_standard_library():
    root = ROOMS["vip_hosts"][0]
    for path in root.rglob("*.py"):
        outside = {
            top
            for name in imported_modules(path, root, "vip_hosts")
            if (top := name.split(".")[0]) not in sys.stdlib_module_names and top != "vip_hosts"
        }
        assert not outside, f"{path.relative_to(PROJECT_DIR)} imports {sorted(outside)}, not copied onto the hosts"


def test_importing_every_product_module_loads_no_tool_code():
    modules = ", ".join(f"vip_stack.{m}" for m in CORE if m != "__init__")
    loaded = subprocess.run(
        [sys.executable, "-c", f"import json, sys, {modules}; print(json.dumps(sorted(sys.modules)))"],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    tools = [m for m in json.loads(loaded) if m.split(".")[0] in OURS - {"vip_stack"}]
    assert tools == []


def parents_and_type(urn: str) -> tuple[str, str]:
    """A URN's stack, project and parents' types, and its own type."""
    qualified_type = urn.rsplit("::", 1)[0]
    parents, _, type_ = qualified_type.rpartition("$")
    return parents, type_


def aliases(resource) -> set[tuple[str, str]]:
    """The (name, type) pairs a resource was once known by, as the engine reads
    its alias specs: what a spec leaves out is the resource's own."""
    return {(name or resource.name, type_ or resource.type) for name, type_ in resource.aliases}


@pytest.mark.parametrize("release", URNS_BEFORE, ids=lambda path: path.stem)
def test_an_existing_stack_keeps_every_resource_by_its_urn_or_an_alias(release):
    before = release.read_text().split()
    deployment = run_program(URN_CONFIG)
    now = {r.urn for r in deployment.resources}
    for urn in before:
        if urn in now:
            continue
        parents, old_type = parents_and_type(urn)
        old_name = urn.rsplit("::", 1)[1]
        heirs = [
            r
            for r in deployment.resources
            if parents_and_type(r.urn)[0] == parents and (old_name, old_type) in aliases(r)
        ]
        assert len(heirs) == 1, f"{urn} is neither declared again nor aliased by exactly one resource"


def library_config() -> dict:
    config = yaml.safe_load((LIBRARY_EXAMPLE / "Pulumi.dev.yaml").read_text())["config"]
    return {**config, "web:vrrpPassword": "webpass", "db:vrrpPassword": "dbpass"}


def run_library(config, **kwargs):
    return run_program(config, program=LIBRARY_EXAMPLE / "__main__.py", project="keepalived-vip-library", **kwargs)


def test_two_vips_share_one_network_and_one_jumphost_with_a_node_pair_each():
    deployment = run_library(library_config())
    assert len(deployment.of_type("Network")) == 1 and len(deployment.of_type("Router")) == 1
    assert len(deployment.of_type("Jumphost")) == 1
    assert len(deployment.of_type("FloatingIp")) == 1, "one jumphost, one floating IP"
    nodes = [r for r in deployment.of_type("Instance") if KEEPALIVED_CONF_PATH in r.input("userData")]
    names = sorted(r.input("name") for r in nodes)
    assert names == ["db-1", "db-2", "web-1", "web-2"]
    urns = [r.urn for r in deployment.resources]
    assert len(urns) == len(set(urns)), "no two resources share a name"
    network_id = deployment.of_type("Network")[0].id
    for port in deployment.of_type("Port"):
        assert port.input("networkId") == network_id
    # The created subnet keeps both VIPs out of its DHCP pool.
    (subnet,) = deployment.of_type("Subnet")
    pools = [(IPv4Address(p["start"]), IPv4Address(p["end"])) for p in subnet.input("allocationPools")]
    for vip in ("192.168.10.250", "192.168.10.251"):
        assert not any(start <= IPv4Address(vip) <= end for start, end in pools), vip
    # The db nodes admit SSH from the one jumphost's group.
    jumphost_group = deployment.named("web-jumphost", "SecGroup").id
    db_ssh = deployment.named("db-ssh-from-jumphost")
    assert db_ssh.input("remoteGroupId") == jumphost_group
    assert deployment.outputs["webVip"] == "192.168.10.250" and deployment.outputs["dbVip"] == "192.168.10.251"
    assert deployment.outputs["jumphostFloatingIp"] == jumphost_floating_ip(deployment)


def jumphost_floating_ip(deployment):
    (floating_ip,) = deployment.of_type("FloatingIp")
    return floating_ip.outputs["address"]


def test_two_vips_on_one_network_with_one_virtual_router_id_are_refused():
    deployment = run_library({**library_config(), "db:virtualRouterId": 51}, expect_failure=True)
    assert isinstance(deployment.error, InvalidConfig)
    assert "db:virtualRouterId: 51 is already used by the VIP 'web'" in str(deployment.error)
    assert not [r for r in deployment.resources if r.name.startswith("db")], "nothing of db is declared"


def test_each_vips_bad_keys_are_named_in_its_own_namespace():
    deployment = run_library({**library_config(), "db:vrrpPassword": "far-too-long"}, expect_failure=True)
    assert "db:vrrpPassword: is 12 characters long" in str(deployment.error)
    assert deployment.resources == []


def test_each_run_under_the_mocks_declares_into_a_fresh_stack():
    run_program(EXAMPLE_CONFIG)
    deployment = run_library(library_config())
    assert "vipAddress" not in deployment.outputs, "no export of the run before"
    parents = {r.parent_urn for r in deployment.resources if "::pulumi:pulumi:Stack::" in r.parent_urn}
    assert parents == {"urn:pulumi:dev::keepalived-vip-library::pulumi:pulumi:Stack::keepalived-vip-library-dev"}


def test_a_failed_look_up_names_the_key_in_the_vips_own_namespace():
    deployment = run_library({**library_config(), "db:imageName": "no-such-image"}, expect_failure=True)
    assert "db:imageName: no image named 'no-such-image'" in str(deployment.error)
    assert deployment.resources == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources.
    source = tmp_path_factory.mktemp("source") / "keepalived-vip"
    ignored = (
        "venv",
        ".git",
        ".cloud",
        ".engine",
        "build",
        "*.egg-info",
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
    )
    shutil.copytree(PROJECT_DIR, source, ignore=shutil.ignore_patterns(*ignored))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    (built,) = out.glob("keepalived_vip-*.whl")
    return built


def test_the_package_ships_its_templates_and_needs_no_test_tools_to_run(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    for template in ("keepalived.conf.j2", "user-data.yaml.j2", "notify.sh.j2", "vrrp-interface.sh"):
        assert f"vip_stack/cloud_init/{template}" in names
    packages = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert packages == {"vip_stack"}, packages
    requirements = [
        line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")
    ]
    runtime = [r for r in requirements if "extra ==" not in r]
    assert sorted(r.split(">")[0].split("<")[0].split("=")[0] for r in runtime) == [
        "jinja2",
        "openstacksdk",
        "pulumi",
        "pulumi-openstack",
        "pydantic",
    ]
    assert not [r for r in runtime if r.startswith(("pytest", "matplotlib"))]


def test_the_library_example_runs_outside_the_checkout_with_the_installed_package(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    example = tmp_path / "library"
    shutil.copytree(LIBRARY_EXAMPLE, example)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(library_config()))
    runner = (
        "import json, sys, yaml\n"
        "from pathlib import Path\n"
        "import vip_stack\n"
        "from vip_lab.evaluate import run_program\n"
        "config = yaml.safe_load(Path(sys.argv[1]).read_text())\n"
        "deployment = run_program(config, program=Path('__main__.py'), project='keepalived-vip-library')\n"
        "print(json.dumps({'package': vip_stack.__file__, 'outputs': deployment.outputs}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", runner, str(tmp_path / "config.yaml")],
        cwd=example,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["package"].startswith(str(site)), "the installed package, not the checkout"
    assert report["outputs"]["webVip"] == "192.168.10.250" and report["outputs"]["dbVip"] == "192.168.10.251"
    assert [n["name"] for n in report["outputs"]["dbNodes"]] == ["db-1", "db-2"]


KEYWORDS_PROGRAM = """
import pulumi
from vip_stack import KeepalivedVip, KeepalivedVipArgs

args = KeepalivedVipArgs.of(
    flavor_name="STD2-1-2",
    ssh_allowed_cidrs=["198.51.100.0/24"],
    vrrp_password="s3cr3t",
    nodes=[{"name": "kld-vm-1", "priority": 120}, {"name": "kld-vm-2", "priority": 90}],
    vip_address=VIP,
)
vip = KeepalivedVip("keepalived-vip", args)
for name, value in vip.outputs.items():
    pulumi.export(name, value)
"""


def keywords_program(tmp_path: Path, vip: str) -> Path:
    program = tmp_path / "__main__.py"
    program.write_text(KEYWORDS_PROGRAM.replace("VIP", repr(vip)))
    return program


def test_python_keywords_declare_the_same_vip_as_the_stacks_config(tmp_path):
    from_keywords = run_program({}, program=keywords_program(tmp_path, "192.168.0.254"))
    from_config = run_program(
        {"flavorName": "STD2-1-2", "sshAllowedCidrs": ["198.51.100.0/24"], "vrrpPassword": "s3cr3t"}
    )
    assert from_keywords.error is None
    assert sorted(r.urn for r in from_keywords.resources) == sorted(r.urn for r in from_config.resources)
    # The fake cloud's DHCP hands out node addresses in registration order, which varies.
    same = {k: v for k, v in from_config.outputs.items() if k != "nodes"}
    assert {k: v for k, v in from_keywords.outputs.items() if k != "nodes"} == same
    assert [(n["name"], n["priority"]) for n in from_keywords.outputs["nodes"]] == [
        (n["name"], n["priority"]) for n in from_config.outputs["nodes"]
    ]


def test_a_bad_python_keyword_names_its_key_and_declares_nothing(tmp_path):
    declared = run_program({}, program=keywords_program(tmp_path, "192.168.0.300"), expect_failure=True)
    # The keyword as the caller wrote it.
    assert "keepalived-vip:vip_address: '192.168.0.300' is not an IPv4 address" in str(declared.error)
    assert declared.resources == []

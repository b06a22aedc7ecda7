from __future__ import annotations

import datetime
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHECKOUT = Path(__file__).resolve().parent.parent


def _need(*programs: str, root: bool = False) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    reason = None
    if root and os.geteuid() != 0:
        reason = "needs root (network namespaces)"
    elif missing:
        reason = f"needs {', '.join(missing)} (apt-get install keepalived cloud-init iproute2)"
    if reason is None:
        return
    # In CI these tests are the point: a skip there would hide a broken set-up.
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


# Each test says its tier with a marker (pytest.ini), on the test or on its
# module (pytestmark); a test without one is a unit test. The fixtures below
# need a tier's machine, so a test that uses one (directly or through another
# fixture) and does not say that tier fails at collection: the markers cannot
# drift from what the tests really need.
TIER_FIXTURES = {
    # Root, namespaces, Debian's packages (keepalived, cloud-init, shellcheck).
    "system": {"root_namespaces", "lab_ready", "cloud_init_schema", "shellcheck", "deployment"},
    # The real Pulumi CLI of make engine.
    "engine": {"pulumi_engine"},
    # The local OpenStack of make cloud. These run last, so that the lab's
    # timing-sensitive tests never share the machine's two cores with a
    # running cloud; those on real VMs (COMPUTE=libvirt) after the others,
    # so that the session brings each cloud up once.
    "cloud": {"local_cloud", "local_cloud_vms"},
}


def pytest_collection_modifyitems(config, items):
    unmarked = []
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        for tier, needs in TIER_FIXTURES.items():
            if needs & fixtures and item.get_closest_marker(tier) is None:
                unmarked.append(f"{item.nodeid} uses {', '.join(sorted(needs & fixtures))} but is not marked {tier}")
    if unmarked:
        raise pytest.UsageError("tests without their tier's marker:\n" + "\n".join(unmarked))

    # A stable partition: each tier keeps its order, the cloud's comes last,
    # and of it the real VMs'.
    def rank(item) -> int:
        if item.get_closest_marker("cloud") is None:
            return 0
        return 2 if "local_cloud_vms" in getattr(item, "fixturenames", ()) else 1

    items.sort(key=rank)


# The lines the tests print as "figure: ..." (a first up's seconds, a ping
# gap), gathered from passing tests' captured output too: CI runs without -s
# and would otherwise keep them only for a failure.
FIGURES: list[str] = []


def pytest_runtest_logreport(report):
    if report.when == "call":
        FIGURES.extend(
            f"{report.nodeid.split('::')[-1]}: {line.removeprefix('figure: ')}"
            for line in report.capstdout.splitlines()
            if line.startswith("figure: ")
        )


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def engine_home(tmp_path_factory):
    """A PULUMI_HOME whose plugin cache holds make engine's OpenStack provider,
    installed as a user would (`pulumi plugin install --file`), no registry asked."""
    from tests.real_engine import ENGINE_BIN, OPENSTACK_VERSION, install_provider

    if not (ENGINE_BIN / "pulumi").exists():
        reason = f"needs the real Pulumi CLI in {ENGINE_BIN} (make engine)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("pulumi-home")
    install_provider(home, OPENSTACK_VERSION)
    return home


@pytest.fixture
def pulumi_engine(engine_home, tmp_path):
    """Makes a `Pulumi` for a project directory, with a file backend of this test's own."""
    from tests.real_engine import Pulumi

    backend = tmp_path / "state"
    backend.mkdir()
    return lambda workdir: Pulumi(workdir=workdir, home=engine_home, backend=backend)


@pytest.fixture
def shellcheck():
    _need("shellcheck")
    return shutil.which("shellcheck")


@pytest.fixture
def root_namespaces():
    """Unique namespace names for one test; the test's hosts remove them."""
    _need("ip", "keepalived", "unshare", root=True)
    prefix = f"kvt{uuid.uuid4().hex[:6]}"
    names = (f"{prefix}{i}" for i in range(100))
    yield names
    from vip_hosts.netns import delete_namespaces

    for leftover in delete_namespaces([prefix]):
        pytest.fail(f"namespace {leftover} was left behind")


@pytest.fixture
def cloud_init_schema():
    _need("cloud-init")
    return shutil.which("cloud-init")


# --- the local cloud (make cloud) --------------------------------------------


@dataclass
class LocalCloud:
    """The running local cloud: OS_CLOUD=local (the demo project's member) or
    local-admin with clouds_yaml, and openstacksdk connections to either."""

    clouds_yaml: Path
    # The services' virtualenv (cloud/install.sh): the openstack CLI.
    venv: Path
    # vip_cloud.layout.CloudDirs: where its state, logs and instances are.
    dirs: Any
    # Whether this session brought the cloud up (and takes it down again):
    # if not, someone else may be using it, and nothing may disturb them.
    owned: bool
    # This checkout's cloud interpreter (cloud/checkout-venv.sh).
    python: Path
    # What its instances are (vip_cloud.layout.COMPUTE_DRIVERS).
    compute: str

    def connect(self, name: str) -> Any:
        import openstack

        config = openstack.config.OpenStackConfig(config_files=[str(self.clouds_yaml)])
        return openstack.connection.Connection(config=config.get_one(cloud=name))

    def admin(self) -> Any:
        return self.connect("local-admin")

    def demo(self) -> Any:
        return self.connect("local")

    @property
    def hosts(self) -> Any:
        """Its compute hosts (vip_cloud.layout.ComputeHost), the first this machine's."""
        from vip_cloud.layout import compute_hosts

        return compute_hosts(self.compute, socket.gethostname())

    def host_of(self, server_id: str) -> Any:
        """The compute host a server runs on, as Nova's admin API says."""
        name = self.admin().compute.get_server(server_id).compute_host
        return next(host for host in self.hosts if host.name == name)

    def instance_dir(self, server_id: str) -> Path:
        """Where its compute host's driver keeps a lab host instance."""
        return self.dirs.instances_of(self.host_of(server_id)) / server_id

    def service(self, action: str, name: str) -> None:
        """`python -m vip_cloud stop|start NAME`: the cloud host's systemctl."""
        done = _vip_cloud(self.python, action, name, timeout=120)
        assert done.returncode == 0, f"python -m vip_cloud {action} {name}:\n{_tail(done)}"

    def diagnostics(self) -> str:
        """What a first boot that got no address leaves to read: did Open
        vSwitch open the guest's tap (its Interface's ofport and error, the
        ovs-vswitchd log's lines for it), on the right VLAN (the Port's tag,
        vlan_mode and trunks), and does it read it: the userspace datapath's
        flows, and its packet sockets' interfaces (/proc/net/packet) against
        the taps' ifindexes, where a socket on an old index is a stale tap.
        Not the port counters: on this datapath they are the tap's kernel
        counters and climb even when the switch reads nothing. Then the DHCP
        servers' logs and the end of each instance's console log."""
        run = self.dirs.run / "ovs"
        env = {**os.environ, "OVS_RUNDIR": str(run)}
        parts = []
        for argv in (
            ["ovs-vsctl", "--columns=name,ofport,error,ifindex,admin_state,link_state", "list", "Interface"],
            ["ovs-vsctl", "--columns=name,tag,vlan_mode,trunks", "list", "Port"],
            ["ovs-ofctl", "dump-flows", f"unix:{run / 'br-int.mgmt'}"],
            ["ovs-appctl", "-t", str(run / "ovs-vswitchd.ctl"), "dpctl/dump-flows", "-m"],
            ["ip", "-o", "link", "show"],
            ["cat", "/proc/net/packet"],
        ):
            found = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
            parts.append(f"$ {' '.join(argv)}\n{found.stdout}{found.stderr}")
        switch_log = self.dirs.logs / "ovs-vswitchd.log"
        if switch_log.exists():
            taps = [line for line in switch_log.read_text(errors="replace").splitlines() if "tap" in line]
            parts.append(f"--- {switch_log}, its lines about taps\n" + "\n".join(taps[-80:]))
        for log in sorted((self.dirs.logs / "dnsmasq").glob("*/*")):
            parts.append(f"--- {log} (end)\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))
        admin = self.admin()
        for server in admin.compute.servers(all_projects=True):
            console = admin.compute.get_server_console_output(server).get("output", "")
            parts.append(f"--- console of {server.name} ({server.id}, {server.status}), end\n{console[-3000:]}")
        return "\n".join(parts)

    def cli_env(self, cloud: str = "local") -> dict[str, str]:
        """The environment of the `openstack` CLI as a user of this cloud runs it."""
        return {**os.environ, "OS_CLIENT_CONFIG_FILE": str(self.clouds_yaml), "OS_CLOUD": cloud}


def utc_now() -> datetime.datetime:
    """Now, as the cloud's APIs write their times (UTC, without a zone)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def reported_after(timestamp: str | None, moment: datetime.datetime) -> bool:
    """A time the cloud's API gave (an agent's heartbeat, a service's
    update; either form, "2026-12-07 19:16:16" or "...T19:16:16.000000Z")
    is later than `moment`; no time is never later."""
    return bool(timestamp) and datetime.datetime.fromisoformat(str(timestamp).rstrip("Z")).replace(tzinfo=None) > moment


def skip_or_fail_in_ci(reason: str) -> None:
    """A skip, but in CI a failure: there the cloud's tests are the point,
    and a skip would hide a broken cloud or a test that never ran."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _script(name: str) -> Path:
    """What cloud/<name> prints: a virtualenv's path."""
    made = subprocess.run(["bash", str(CHECKOUT / "cloud" / name)], capture_output=True, text=True, timeout=3600)
    if made.returncode != 0:
        skip_or_fail_in_ci(f"cloud/{name} failed:\n{_tail(made)}")
    return Path(made.stdout.strip().splitlines()[-1])


def _vip_cloud(python: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    """`python -m vip_cloud ...` with the checkout's cloud interpreter, as make cloud runs it."""
    return subprocess.run(
        [str(python), "-m", "vip_cloud", *args], cwd=CHECKOUT, capture_output=True, text=True, timeout=timeout
    )


def _tail(result: subprocess.CompletedProcess, lines: int = 30) -> str:
    return "\n".join((result.stdout + result.stderr).splitlines()[-lines:])


class CloudSession:
    """The session's local cloud, with the compute driver its tests ask for.
    A cloud already up is used and left up, if its driver is the one asked
    for; otherwise the session brings one up and, when it moves to the
    other driver or ends, takes it down and checks that nothing of it is
    left: no namespace of its routers, DHCP servers or instances, no process
    carrying its directory in its environment or holding a file of it, and
    no directory."""

    def __init__(self) -> None:
        self.current: LocalCloud | None = None
        self.compute: str | None = None

    def get(self, compute: str) -> LocalCloud:
        if self.current is not None and self.compute == compute:
            return self.current
        self.close()
        _need("ip", "ovs-vsctl", "ovs-vswitchd", "ovsdb-server", "mariadbd", "cloud-init", "sshd", "ssh", root=True)
        venv = Path(os.environ.get("KVIP_CLOUD_VENV") or _script("install.sh"))
        if not (venv / "bin" / "python").exists():
            skip_or_fail_in_ci(f"no services' virtualenv at {venv} (KVIP_CLOUD_VENV, or bash cloud/install.sh)")
        # This checkout's vip_cloud over the services, as make cloud runs it.
        python = _script("checkout-venv.sh") / "bin" / "python"
        image = _script("guest/build-image.sh")
        from vip_cloud.layout import cloud_dirs
        from vip_cloud.status import supervisor_pid

        dirs = cloud_dirs()
        status = _vip_cloud(python, "status", timeout=60)
        owned = status.returncode != 0
        if not owned and f"COMPUTE={compute}" not in status.stdout:
            skip_or_fail_in_ci(f"the running local cloud is not COMPUTE={compute}: {status.stdout.strip()}")
        if owned and supervisor_pid(dirs) is not None:
            # Someone else's make cloud is under way: wait for it, never take it over.
            deadline = time.monotonic() + 900
            while supervisor_pid(dirs) is not None and time.monotonic() < deadline:
                if _vip_cloud(python, "status", timeout=60).returncode == 0:
                    owned = False
                    break
                time.sleep(5)
            else:
                skip_or_fail_in_ci(f"a local cloud is running in {dirs.root} but did not become ready")
        if owned:
            started = _vip_cloud(python, "--venv", str(venv), "--compute", compute, "--image", str(image), "up")
            if started.returncode != 0:
                if "nothing done" not in started.stderr:
                    # Whatever this failed bring-up left goes before the skip (or failure).
                    _vip_cloud(python, "down", timeout=600)
                skip_or_fail_in_ci(f"the local cloud did not come up (python -m vip_cloud up):\n{_tail(started)}")
        self.compute = compute
        self.current = LocalCloud(
            clouds_yaml=dirs.clouds_yaml, venv=venv, dirs=dirs, owned=owned, python=python, compute=compute
        )
        return self.current

    def close(self) -> None:
        cloud, self.current, self.compute = self.current, None, None
        if cloud is None or not cloud.owned:
            return
        from vip_cloud.cleanup import cloud_namespaces, cloud_processes

        stopped = _vip_cloud(cloud.python, "down", timeout=600)
        assert stopped.returncode == 0, f"python -m vip_cloud down failed:\n{_tail(stopped)}"
        left = {
            "namespaces": [n for n in cloud_namespaces() if n.startswith(("qrouter-", "qdhcp-", "labvm-"))],
            "processes": cloud_processes(cloud.dirs),
            "directory": [str(cloud.dirs.root)] if cloud.dirs.root.exists() else [],
        }
        assert not any(left.values()), f"make cloud-down left {left}"


@pytest.fixture(scope="session")
def cloud_session() -> Iterator[CloudSession]:
    session = CloudSession()
    yield session
    session.close()


@pytest.fixture(scope="module")
def local_cloud(cloud_session) -> LocalCloud:
    """The local OpenStack of make cloud, its instances lab hosts (COMPUTE=namespace)."""
    return cloud_session.get("namespace")


@pytest.fixture(scope="module")
def local_cloud_vms(cloud_session) -> LocalCloud:
    """The local OpenStack of make cloud COMPUTE=libvirt, its instances
    virtual machines of Nova's libvirt driver booting the guest image."""
    return cloud_session.get("libvirt")

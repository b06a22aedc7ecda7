import os
import shutil
import uuid

import pytest


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


# Tests that use one of these need the machine itself: root, namespaces,
# Debian's packages. They are the "system" tier; the rest run anywhere.
SYSTEM_FIXTURES = {"root_namespaces", "lab_ready", "cloud_init_schema", "shellcheck", "deployment"}


# Tests that use this run the real Pulumi CLI of make engine: the "engine" tier.
ENGINE_FIXTURES = {"pulumi_engine"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if SYSTEM_FIXTURES & fixtures:
            item.add_marker(pytest.mark.system)
        if ENGINE_FIXTURES & fixtures:
            item.add_marker(pytest.mark.engine)


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
    from vip_lab.netns import delete_namespace, list_namespaces

    for leftover in [n for n in list_namespaces() if n.startswith(prefix)]:
        delete_namespace(leftover)
        pytest.fail(f"namespace {leftover} was left behind")


@pytest.fixture
def cloud_init_schema():
    _need("cloud-init")
    return shutil.which("cloud-init")

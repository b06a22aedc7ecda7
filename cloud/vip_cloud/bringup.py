"""The cloud's bring-up, in DevStack's order: the databases and the message
queue, Open vSwitch, then Keystone, Glance, Placement, Neutron and Nova, each
migrated, started and waited for, then the seed our stack needs."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from secrets import token_hex

from . import config, infra, seed
from .cleanup import MARKER
from .config import Secrets
from .layout import (
    CLOUD_SOURCE,
    EXTERNAL_CIDR,
    GLANCE_PORT,
    HOST,
    KEYSTONE_PORT,
    LAB_SOURCE,
    NEUTRON_PORT,
    NOVA_PORT,
    PLACEMENT_PORT,
    REGION,
    CloudDirs,
)
from .processes import Service, ServiceFailed, Supervisor, run_step

log = logging.getLogger(__name__)
DATABASES = ["keystone", "glance", "placement", "neutron", "nova_api", "nova_cell0", "nova_cell1"]


def load_secrets(dirs: CloudDirs) -> Secrets:
    if dirs.secrets.exists():
        return Secrets(**json.loads(dirs.secrets.read_text()))
    made = Secrets(
        admin_password=token_hex(16),
        demo_password=token_hex(16),
        service_password=token_hex(16),
        database_password=token_hex(16),
    )
    dirs.secrets.touch(mode=0o600)
    dirs.secrets.write_text(json.dumps(made.__dict__))
    return made


def base_env(dirs: CloudDirs, venv: Path) -> dict[str, str]:
    """Every daemon's environment: the services' virtualenv first on PATH
    (agents run privsep-helper, rootwrap and friends by name), Open vSwitch's
    directories, and the marker by which cleanup finds every process."""
    return {
        "PATH": f"{venv / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONPATH": f"{CLOUD_SOURCE}:{LAB_SOURCE}",
        "PYTHONUNBUFFERED": "1",
        "HOME": str(dirs.data),
        MARKER: str(dirs.root),
        **infra.ovs_env(dirs),
    }


def http_answers(port: int, path: str = "/") -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=2):
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


def gunicorn(
    name: str, app: str, port: int, env: dict[str, str], dirs: CloudDirs, venv: Path, extra_env: dict[str, str]
) -> Service:
    """An API service under gunicorn. DevStack serves them with uwsgi;
    gunicorn is pure Python and in the constraints. One worker with threads:
    the services run on native threads since 2026.2."""
    settings = dirs.etc / "gunicorn" / f"{name}.py"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(
        "\n".join(
            [
                "import sys",
                f"bind = {f'{HOST}:{port}'!r}",
                "workers = 1",
                "threads = 8",
                "timeout = 300",
                # Longer than any client keeps an idle connection (Go's
                # default is 90 s): a server that closes first races the
                # client's next request on it, which then fails with
                # "connection reset by peer" (seen from the OpenStack provider).
                "keepalive = 120",
                f"proc_name = {name!r}",
                # The application parses sys.argv with oslo.config as if it
                # were its own command line: gunicorn's options are not its.
                "del sys.argv[1:]",
                "",
            ]
        )
    )
    return Service(
        name=name,
        argv=[str(venv / "bin" / "gunicorn"), "--config", str(settings), app],
        env={**env, **extra_env},
        log=dirs.logs / f"{name}.log",
        ready=http_answers(port),
        ready_timeout=180,
    )


def python_daemon(name: str, argv: list[str], env: dict[str, str], dirs: CloudDirs, ready_s: float = 3) -> Service:
    return Service(name=name, argv=argv, env=env, log=dirs.logs / f"{name}.log", ready=stays_up(ready_s))


def bring_up(dirs: CloudDirs, venv: Path, supervisor: Supervisor, step: Callable[[str], None]) -> dict[str, float]:
    """Starts everything; returns each phase's seconds. Raises ServiceFailed
    naming what failed, with the end of its log."""
    timings: dict[str, float] = {}

    def phase(name: str) -> Callable[[], None]:
        started = time.monotonic()
        step(name)

        def done() -> None:
            timings[name] = round(time.monotonic() - started, 1)

        return done

    missing = infra.debian_programs_missing()
    if missing:
        raise ServiceFailed(f"the local cloud needs {', '.join(missing)} (make cloud installs Debian's packages)")
    infra.check_socket_paths(dirs)
    dirs.make()
    secrets = load_secrets(dirs)
    env = base_env(dirs, venv)
    bin_ = venv / "bin"

    done = phase("MariaDB, RabbitMQ, Open vSwitch")
    supervisor.start(infra.mariadb(dirs, env))
    infra.create_databases(dirs, env, DATABASES, "openstack", secrets.database_password)
    supervisor.start(infra.rabbitmq(dirs, env))
    supervisor.start(infra.ovsdb_server(dirs, env))
    supervisor.start(infra.ovs_vswitchd(dirs, env))
    gateway = EXTERNAL_CIDR.rsplit(".", 1)[0] + ".1/" + EXTERNAL_CIDR.split("/")[1]
    infra.external_bridge(dirs, env, gateway)
    done()

    done = phase("Keystone")
    keystone_conf = config.keystone_conf(dirs, secrets)
    kenv = {**env, "OS_KEYSTONE_CONFIG_FILES": str(keystone_conf)}
    manage = [str(bin_ / "keystone-manage"), "--config-file", str(keystone_conf)]
    klog = dirs.logs / "keystone-manage.log"
    run_step("keystone db_sync", [*manage, "db_sync"], kenv, klog)
    owner = ["--keystone-user", "root", "--keystone-group", "root"]
    run_step("keystone fernet_setup", [*manage, "fernet_setup", *owner], kenv, klog)
    run_step("keystone credential_setup", [*manage, "credential_setup", *owner], kenv, klog)
    url = f"http://{HOST}:{KEYSTONE_PORT}"
    run_step(
        "keystone bootstrap",
        [
            *manage,
            "bootstrap",
            "--bootstrap-admin-url",
            f"{url}/v3/",
            "--bootstrap-internal-url",
            f"{url}/v3/",
            "--bootstrap-public-url",
            f"{url}/v3/",
            "--bootstrap-region-id",
            REGION,
        ],
        # The password through the environment: never on a command line.
        {**kenv, "OS_BOOTSTRAP_PASSWORD": secrets.admin_password},
        klog,
    )
    supervisor.start(gunicorn("keystone", "keystone.wsgi.api:application", KEYSTONE_PORT, env, dirs, venv, kenv))
    seed.write_clouds_yaml(dirs, secrets)
    seed.identity(seed.connect(dirs, "local-admin"), secrets)
    # A new session: the first one's token carries the catalog as it was
    # before the services' endpoints existed.
    admin = seed.connect(dirs, "local-admin")
    done()

    done = phase("Glance, Placement")
    glance_conf = config.glance_conf(dirs, secrets, venv)
    genv = {**env, "OS_GLANCE_CONFIG_DIR": str(glance_conf.parent)}
    run_step(
        "glance db_sync",
        [str(bin_ / "glance-manage"), "--config-file", str(glance_conf), "db_sync"],
        genv,
        dirs.logs / "glance-manage.log",
    )
    supervisor.start(gunicorn("glance-api", "glance.wsgi.api:application", GLANCE_PORT, env, dirs, venv, genv))
    placement_conf = config.placement_conf(dirs, secrets)
    penv = {**env, "OS_PLACEMENT_CONFIG_DIR": str(placement_conf.parent)}
    run_step(
        "placement db sync",
        [str(bin_ / "placement-manage"), "--config-file", str(placement_conf), "db", "sync"],
        penv,
        dirs.logs / "placement-manage.log",
    )
    supervisor.start(gunicorn("placement-api", "placement.wsgi.api:application", PLACEMENT_PORT, env, dirs, venv, penv))
    done()

    done = phase("Neutron")
    neutron_conf, ml2_conf, ovs_agent_conf, l3_conf = config.neutron_confs(dirs, secrets, venv)
    server_files = ["--config-file", str(neutron_conf), "--config-file", str(ml2_conf)]
    run_step(
        "neutron-db-manage",
        [str(bin_ / "neutron-db-manage"), *server_files, "upgrade", "heads"],
        env,
        dirs.logs / "neutron-db-manage.log",
    )
    nenv = {
        **env,
        "OS_NEUTRON_CONFIG_DIR": str(neutron_conf.parent),
        "OS_NEUTRON_CONFIG_FILES": f"{neutron_conf.name};{ml2_conf.relative_to(neutron_conf.parent)}",
    }
    supervisor.start(gunicorn("neutron-api", "neutron.wsgi.api:application", NEUTRON_PORT, env, dirs, venv, nenv))
    supervisor.start(python_daemon("neutron-rpc-server", [str(bin_ / "neutron-rpc-server"), *server_files], env, dirs))
    supervisor.start(
        python_daemon("neutron-periodic-workers", [str(bin_ / "neutron-periodic-workers"), *server_files], env, dirs)
    )
    agent_files = ["--config-file", str(neutron_conf)]
    supervisor.start(
        python_daemon(
            "neutron-openvswitch-agent",
            [str(bin_ / "neutron-openvswitch-agent"), *agent_files, "--config-file", str(ovs_agent_conf)],
            env,
            dirs,
        )
    )
    supervisor.start(
        python_daemon(
            "neutron-l3-agent",
            [str(bin_ / "neutron-l3-agent"), *agent_files, "--config-file", str(l3_conf)],
            env,
            dirs,
        )
    )
    done()

    done = phase("Nova")
    nova_conf = config.nova_conf(dirs, secrets, venv)
    nenv = {**env, "OS_NOVA_CONFIG_DIR": str(nova_conf.parent)}
    nova_manage = [str(bin_ / "nova-manage"), "--config-file", str(nova_conf)]
    mlog = dirs.logs / "nova-manage.log"
    run_step("nova-manage api_db sync", [*nova_manage, "api_db", "sync"], nenv, mlog)
    run_step(
        "nova-manage cell_v2 map_cell0",
        [*nova_manage, "cell_v2", "map_cell0", "--database_connection", config.database(dirs, secrets, "nova_cell0")],
        nenv,
        mlog,
    )
    run_step("nova-manage cell_v2 create_cell", [*nova_manage, "cell_v2", "create_cell", "--name", "cell1"], nenv, mlog)
    run_step("nova-manage db sync", [*nova_manage, "db", "sync"], nenv, mlog)
    supervisor.start(gunicorn("nova-api", "nova.wsgi.osapi_compute:application", NOVA_PORT, env, dirs, venv, nenv))
    files = ["--config-file", str(nova_conf)]
    supervisor.start(python_daemon("nova-conductor", [str(bin_ / "nova-conductor"), *files], env, dirs))
    supervisor.start(python_daemon("nova-scheduler", [str(bin_ / "nova-scheduler"), *files], env, dirs))
    supervisor.start(python_daemon("nova-compute", [sys.executable, "-m", "vip_cloud.nova_compute", *files], env, dirs))
    seed.wait_for_compute(admin, timeout=120)
    run_step("nova-manage cell_v2 discover_hosts", [*nova_manage, "cell_v2", "discover_hosts"], nenv, mlog)
    done()

    done = phase("the seed: ext-net, the image, the flavor, quotas")
    seed.wait_for_agents(admin, timeout=120)
    seed.cloud(admin, dirs, EXTERNAL_CIDR)
    done()
    os.environ.setdefault("OS_CLIENT_CONFIG_FILE", str(dirs.clouds_yaml))
    return timings

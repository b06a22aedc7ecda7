"""Keystone (DevStack's lib/keystone): fernet tokens, bootstrapped with the
admin, the region and its own endpoint; then the service project, the
roles, the demo project and clouds.yaml (local and local-admin)."""

from __future__ import annotations

from pathlib import Path

from .. import seed
from ..config import database, write_ini
from ..layout import HOST, KEYSTONE_PORT, REGION, CloudDirs
from . import mariadb
from .common import Cloud, api

NAME = "Keystone"
PROGRAMS = ()


def conf(dirs: CloudDirs) -> Path:
    return dirs.etc / "keystone" / "keystone.conf"


def env(cloud: Cloud) -> dict[str, str]:
    return {**cloud.env, "OS_KEYSTONE_CONFIG_FILES": str(conf(cloud.dirs))}


def configure(cloud: Cloud) -> None:
    keys = cloud.dirs.data / "keystone"
    write_ini(
        conf(cloud.dirs),
        {
            "DEFAULT": {"debug": "False", "use_stderr": "True"},
            "database": {"connection": database(cloud.dirs, cloud.secrets, "keystone")},
            "token": {"provider": "fernet"},
            "fernet_tokens": {"key_repository": str(keys / "fernet-keys")},
            "fernet_receipts": {"key_repository": str(keys / "fernet-keys")},
            "credential": {"key_repository": str(keys / "credential-keys")},
        },
    )


def init(cloud: Cloud) -> None:
    mariadb.create(cloud, "keystone")
    manage = [cloud.program("keystone-manage"), "--config-file", str(conf(cloud.dirs))]
    owner = ["--keystone-user", "root", "--keystone-group", "root"]
    for name, args in (
        ("keystone db_sync", ["db_sync"]),
        ("keystone fernet_setup", ["fernet_setup", *owner]),
        ("keystone credential_setup", ["credential_setup", *owner]),
    ):
        cloud.step(name, [*manage, *args], env(cloud), "keystone-manage")
    url = f"http://{HOST}:{KEYSTONE_PORT}/v3/"
    cloud.step(
        "keystone bootstrap",
        [
            *manage,
            "bootstrap",
            "--bootstrap-admin-url",
            url,
            "--bootstrap-internal-url",
            url,
            "--bootstrap-public-url",
            url,
            "--bootstrap-region-id",
            REGION,
        ],
        # The password through the environment: never on a command line.
        {**env(cloud), "OS_BOOTSTRAP_PASSWORD": cloud.secrets.admin_password},
        "keystone-manage",
    )


def start(cloud: Cloud) -> None:
    cloud.supervisor.start(api(cloud, "keystone", "keystone.wsgi.api:application", KEYSTONE_PORT, env(cloud)))
    seed.write_clouds_yaml(cloud.dirs, cloud.secrets)
    seed.identity(cloud.admin(), cloud.secrets)


def cleanup(dirs: CloudDirs) -> list[str]:
    """Nothing outside the cloud's directory."""
    return []

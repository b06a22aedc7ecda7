"""Placement (DevStack's lib/placement): the resource inventory Nova's
scheduler asks."""

from __future__ import annotations

from pathlib import Path

from ..config import authtoken, database, write_ini
from ..layout import PLACEMENT_PORT, CloudDirs
from . import mariadb
from .common import Cloud, api

NAME = "Placement"
PROGRAMS = ()


def conf(dirs: CloudDirs) -> Path:
    return dirs.etc / "placement" / "placement.conf"


def env(cloud: Cloud) -> dict[str, str]:
    return {**cloud.env, "OS_PLACEMENT_CONFIG_DIR": str(conf(cloud.dirs).parent)}


def configure(cloud: Cloud) -> None:
    write_ini(
        conf(cloud.dirs),
        {
            "DEFAULT": {"debug": "False", "use_stderr": "True"},
            "placement_database": {"connection": database(cloud.dirs, cloud.secrets, "placement")},
            "api": {"auth_strategy": "keystone"},
            "keystone_authtoken": authtoken(cloud.secrets, "placement"),
        },
    )


def init(cloud: Cloud) -> None:
    mariadb.create(cloud, "placement")
    manage = [cloud.program("placement-manage"), "--config-file", str(conf(cloud.dirs))]
    cloud.step("placement db sync", [*manage, "db", "sync"], env(cloud), "placement-manage")
    cloud.register("placement", "placement", PLACEMENT_PORT)


def start(cloud: Cloud) -> None:
    app = "placement.wsgi.api:application"
    cloud.supervisor.start(api(cloud, "placement-api", app, PLACEMENT_PORT, env(cloud)))


def cleanup(dirs: CloudDirs) -> list[str]:
    """Nothing outside the cloud's directory."""
    return []

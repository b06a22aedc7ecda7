"""Glance (DevStack's lib/glance): the image API with a file store in the
cloud's directory."""

from __future__ import annotations

from pathlib import Path

from ..config import authtoken, common, database, service_etc, transport_url, write_ini
from ..layout import GLANCE_PORT, CloudDirs
from . import mariadb
from .common import Cloud, api

NAME = "Glance"
PROGRAMS = ()
PASTE = "glance-api-paste.ini"


def conf(dirs: CloudDirs) -> Path:
    return dirs.etc / "glance" / "glance-api.conf"


def env(cloud: Cloud) -> dict[str, str]:
    return {**cloud.env, "OS_GLANCE_CONFIG_DIR": str(conf(cloud.dirs).parent)}


def configure(cloud: Cloud) -> None:
    dirs = cloud.dirs
    etc = service_etc(dirs, cloud.venv, "glance", PASTE)
    images = dirs.data / "glance"
    write_ini(
        conf(dirs),
        {
            "DEFAULT": {
                **common(dirs, "glance"),
                "enabled_backends": "file:file",
                "transport_url": transport_url(),
            },
            "database": {"connection": database(dirs, cloud.secrets, "glance")},
            "glance_store": {"default_backend": "file"},
            "file": {"filesystem_store_datadir": str(images / "images")},
            "os_glance_staging_store": {"filesystem_store_datadir": str(images / "staging")},
            "os_glance_tasks_store": {"filesystem_store_datadir": str(images / "tasks")},
            "keystone_authtoken": authtoken(cloud.secrets, "glance"),
            "paste_deploy": {"flavor": "keystone", "config_file": str(etc / PASTE)},
            "oslo_concurrency": {"lock_path": str(images / "lock")},
        },
    )


def init(cloud: Cloud) -> None:
    mariadb.create(cloud, "glance")
    manage = [cloud.program("glance-manage"), "--config-file", str(conf(cloud.dirs))]
    cloud.step("glance db_sync", [*manage, "db_sync"], env(cloud), "glance-manage")
    cloud.register("glance", "image", GLANCE_PORT)


def start(cloud: Cloud) -> None:
    cloud.supervisor.start(api(cloud, "glance-api", "glance.wsgi.api:application", GLANCE_PORT, env(cloud)))


def cleanup(dirs: CloudDirs) -> list[str]:
    """Nothing outside the cloud's directory."""
    return []

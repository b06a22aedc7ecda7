"""The configuration layer: what every service's configuration files share
(an ini file written for root alone, the database and message queue URLs,
the Keystone sections, the paste pipeline's copy) and the gunicorn settings
each API runs under. Each service's own files are written by its module
(services/), as DevStack's lib/* write them."""

from __future__ import annotations

import configparser
import shutil
from dataclasses import dataclass
from pathlib import Path

from .layout import HOST, KEYSTONE_PORT, RABBIT_PORT, REGION, CloudDirs

Sections = dict[str, dict[str, str]]


@dataclass(frozen=True)
class Secrets:
    """Made once per cloud, kept in its directory (mode 0600)."""

    admin_password: str
    demo_password: str
    service_password: str
    database_password: str


def keystone_url() -> str:
    return f"http://{HOST}:{KEYSTONE_PORT}"


def write_ini(path: Path, sections: Sections) -> Path:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    for section, options in sections.items():
        if section != "DEFAULT":
            parser.add_section(section)
        for key, value in options.items():
            parser.set(section, key, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as out:
        parser.write(out)
    path.chmod(0o600)
    return path


def database(dirs: CloudDirs, secrets: Secrets, name: str) -> str:
    return (
        f"mysql+pymysql://openstack:{secrets.database_password}@localhost/{name}"
        f"?unix_socket={dirs.mysql_socket}&charset=utf8mb4"
    )


def transport_url() -> str:
    return f"rabbit://guest:guest@{HOST}:{RABBIT_PORT}/"


def auth_section(secrets: Secrets, username: str) -> dict[str, str]:
    return {
        "auth_type": "password",
        "auth_url": keystone_url(),
        "project_domain_name": "Default",
        "user_domain_name": "Default",
        "project_name": "service",
        "username": username,
        "password": secrets.service_password,
        "region_name": REGION,
    }


def authtoken(secrets: Secrets, username: str) -> dict[str, str]:
    # No memcached: each API process caches tokens in memory.
    return {**auth_section(secrets, username), "www_authenticate_uri": keystone_url(), "service_type": ""}


def common(dirs: CloudDirs, service: str) -> dict[str, str]:
    return {
        "debug": "False",
        "use_stderr": "True",
        "state_path": str(dirs.data / service),
    }


def service_etc(dirs: CloudDirs, venv: Path, service: str, paste_file: str) -> Path:
    """The service's configuration directory, with the paste pipeline its
    package ships in the virtualenv's etc/."""
    etc = dirs.etc / service
    etc.mkdir(parents=True, exist_ok=True)
    shutil.copy(venv / "etc" / service / paste_file, etc / paste_file)
    return etc


def gunicorn_conf(dirs: CloudDirs, name: str, port: int) -> Path:
    """An API's gunicorn settings. DevStack serves the APIs with uwsgi;
    gunicorn is pure Python and in the constraints. One worker with threads:
    the services run on native threads since 2026.2."""
    path = dirs.etc / "gunicorn" / f"{name}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
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
    return path

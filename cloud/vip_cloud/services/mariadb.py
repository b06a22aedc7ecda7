"""MariaDB (DevStack's lib/databases/mysql): Debian's server with its data in
the cloud's directory, on a Unix socket only (nothing else on the machine
reaches it). Each service's init creates its own databases (create)."""

from __future__ import annotations

import subprocess

from vip_hosts.supervisor import Service, ServiceFailed, unix_socket_open

from ..layout import CloudDirs
from .common import Cloud

NAME = "MariaDB"
PROGRAMS = ("mariadb-install-db", "mariadbd", "mariadb")
# The services' user: each gets ALL on its own databases.
USER = "openstack"


def configure(cloud: Cloud) -> None:
    """Nothing to write: the server takes its options on its command line."""


def init(cloud: Cloud) -> None:
    datadir = cloud.dirs.data / "mysql"
    if (datadir / "mysql").exists():
        return
    datadir.mkdir(parents=True, exist_ok=True)
    cloud.step(
        "mariadb",
        [
            "mariadb-install-db",
            "--no-defaults",
            f"--datadir={datadir}",
            "--user=root",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
        ],
        cloud.env,
        "mariadb",
    )


def start(cloud: Cloud) -> None:
    dirs = cloud.dirs
    cloud.supervisor.start(
        Service(
            name="mariadb",
            argv=[
                "mariadbd",
                "--no-defaults",
                f"--datadir={dirs.data / 'mysql'}",
                f"--socket={dirs.mysql_socket}",
                f"--pid-file={dirs.run / 'mysqld.pid'}",
                "--user=root",
                # The socket only: nothing else on the machine reaches it.
                "--skip-networking",
                "--character-set-server=utf8mb4",
                "--max-connections=1000",
                # The services' connection pools hold many connections idle.
                "--innodb-buffer-pool-size=256M",
                "--skip-log-bin",
            ],
            env=cloud.env,
            log=cloud.log("mariadb"),
            ready=lambda: unix_socket_open(dirs.mysql_socket),
        )
    )
    _sql(cloud, [f"CREATE USER IF NOT EXISTS '{USER}'@'localhost' IDENTIFIED BY '{cloud.secrets.database_password}';"])


def create(cloud: Cloud, *names: str) -> None:
    """A service's databases, all the services' user's (DevStack's recreate_database)."""
    statements = []
    for name in names:
        statements.append(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4;")
        statements.append(f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{USER}'@'localhost';")
    _sql(cloud, statements)


def _sql(cloud: Cloud, statements: list[str]) -> None:
    result = subprocess.run(
        ["mariadb", f"--socket={cloud.dirs.mysql_socket}", "-u", "root"],
        input="\n".join(statements),
        text=True,
        capture_output=True,
        env=cloud.env,
    )
    if result.returncode != 0:
        raise ServiceFailed(f"mariadb: {result.stderr.strip()} (log: {cloud.log('mariadb')})")


def cleanup(dirs: CloudDirs) -> list[str]:
    """Nothing outside the cloud's directory."""
    return []

"""RabbitMQ (DevStack's lib/rpc_backend): Debian's server with its data and
configuration in the cloud's directory, listening on 127.0.0.1 only, for
its `guest` user."""

from __future__ import annotations

from vip_hosts.supervisor import Service, tcp_open

from ..layout import HOST, RABBIT_PORT, CloudDirs
from .common import Cloud

NAME = "RabbitMQ"
SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
PROGRAMS = (SERVER,)


def configure(cloud: Cloud) -> None:
    (cloud.dirs.data / "rabbitmq").mkdir(parents=True, exist_ok=True)
    etc = cloud.dirs.etc / "rabbitmq"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = {HOST}:{RABBIT_PORT}\nloopback_users.guest = true\nlog.console = true\n"
    )
    (etc / "enabled_plugins").write_text("[].\n")
    (etc / "rabbitmq-env.conf").write_text("")


def init(cloud: Cloud) -> None:
    """Nothing: the server makes its database at its first start."""


def start(cloud: Cloud) -> None:
    dirs = cloud.dirs
    base, etc = dirs.data / "rabbitmq", dirs.etc / "rabbitmq"
    env = {
        **cloud.env,
        # The Erlang cookie goes to $HOME: keep it in the cloud's directory.
        "HOME": str(base),
        "RABBITMQ_NODENAME": "kvip-cloud@localhost",
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(dirs.logs / "rabbitmq"),
        "RABBITMQ_CONFIG_FILE": str(etc / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(etc / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(dirs.run / "rabbitmq.pid"),
        "RABBITMQ_CONF_ENV_FILE": str(etc / "rabbitmq-env.conf"),
        "RABBITMQ_DIST_PORT": "25672",
        "ERL_EPMD_ADDRESS": HOST,
    }
    cloud.supervisor.start(
        Service(
            name="rabbitmq",
            argv=[SERVER],
            env=env,
            log=cloud.log("rabbitmq"),
            ready=lambda: tcp_open(RABBIT_PORT),
            ready_timeout=180,
        )
    )


def cleanup(dirs: CloudDirs) -> list[str]:
    """Nothing outside the cloud's directory."""
    return []

"""What every service's module works with: the cloud being brought up, and
the two kinds of daemon its services run (an API under gunicorn, a plain
daemon)."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vip_hosts.supervisor import Service, Supervisor, http_answers, run_step, stays_up

from .. import config, seed
from ..config import Secrets
from ..layout import HOST, CloudDirs, ComputeHost, compute_hosts


@dataclass
class Cloud:
    """The cloud a bring-up makes: its directories, the services'
    virtualenv, its secrets, every daemon's environment, the supervisor
    that starts and keeps its daemons, what nova-compute boots instances as
    (layout.COMPUTE_DRIVERS) and the guest image's directory
    (cloud/guest/build-image.sh) that Glance holds."""

    dirs: CloudDirs
    venv: Path
    secrets: Secrets
    env: dict[str, str]
    supervisor: Supervisor
    compute: str
    image: Path

    @property
    def real_vms(self) -> bool:
        return self.compute == "libvirt"

    @property
    def hosts(self) -> tuple[ComputeHost, ...]:
        """Its compute hosts (layout.compute_hosts)."""
        return compute_hosts(self.compute, socket.gethostname())

    def program(self, name: str) -> str:
        """A program of the services' virtualenv (keystone-manage, neutron-rpc-server...)."""
        return str(self.venv / "bin" / name)

    def log(self, name: str) -> Path:
        return self.dirs.logs / f"{name}.log"

    def step(self, name: str, argv: list[str], env: Mapping[str, str], log: str) -> None:
        """A one-off set-up command (a migration, a bootstrap), its output in the log named."""
        run_step(name, argv, env, self.log(log))

    def admin(self):
        """An openstacksdk connection as the cloud's admin: a new session, so
        that its token's catalog holds the endpoints registered so far."""
        return seed.connect(self.dirs, "local-admin")

    def register(self, name: str, kind: str, port: int, path: str = "") -> None:
        """The service's user and catalog entry in Keystone."""
        seed.service_account(self.admin(), self.secrets, name, kind, f"http://{HOST}:{port}{path}")


def api(cloud: Cloud, name: str, app: str, port: int, env: Mapping[str, str]) -> Service:
    """An API under gunicorn (its settings: config.gunicorn_conf), up once it answers HTTP."""
    settings = config.gunicorn_conf(cloud.dirs, name, port)
    return Service(
        name=name,
        argv=[cloud.program("gunicorn"), "--config", str(settings), app],
        env=env,
        log=cloud.log(name),
        ready=http_answers(HOST, port),
        ready_timeout=180,
    )


def daemon(cloud: Cloud, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> Service:
    """A daemon with nothing to probe: up once it has lived a few seconds."""
    return Service(name=name, argv=argv, env=env or cloud.env, log=cloud.log(name), ready=stays_up(3))

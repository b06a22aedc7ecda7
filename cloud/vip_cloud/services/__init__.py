"""The cloud's services, one module each, as DevStack's lib/* has them: each
names itself (NAME), the Debian programs it needs (PROGRAMS), and has its
configure (its configuration files), init (its databases migrated, its
Keystone account; what runs before the first start), start (its daemons,
up and ready) and cleanup (what it leaves outside the cloud's directory).
A new service is a new module, added to SERVICES where it starts."""

from __future__ import annotations

from typing import Protocol

from ..layout import CloudDirs
from . import glance, keystone, mariadb, neutron, nova, openvswitch, placement, rabbitmq
from .common import Cloud


class CloudService(Protocol):
    """What bring-up and cleanup ask of a service's module."""

    @property
    def NAME(self) -> str: ...

    @property
    def PROGRAMS(self) -> tuple[str, ...]: ...

    def configure(self, cloud: Cloud) -> None: ...

    def init(self, cloud: Cloud) -> None: ...

    def start(self, cloud: Cloud) -> None: ...

    def cleanup(self, dirs: CloudDirs) -> list[str]: ...


# In the order they start, DevStack's: what the others use first.
SERVICES: tuple[CloudService, ...] = (mariadb, rabbitmq, openvswitch, keystone, glance, placement, neutron, nova)

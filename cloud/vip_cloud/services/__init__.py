"""The cloud's services, one module each, as DevStack's lib/* has them: each
names itself (NAME), the Debian programs it needs (PROGRAMS), and has its
configure (its configuration files), init (its databases migrated, its
Keystone account; what runs before the first start), start (its daemons,
up and ready) and cleanup (what it leaves outside the cloud's directory).
A new service is a new module, added to SERVICES where it starts; one that
only real VMs need is in REAL_VMS_ONLY too."""

from __future__ import annotations

from typing import Protocol

from ..layout import CloudDirs
from . import glance, keystone, libvirt, mariadb, mirror, neutron, nova, openvswitch, placement, rabbitmq
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


# In the order they start, DevStack's: what the others use first. The
# mirror listens on br-ex, which Neutron's init makes.
SERVICES: tuple[CloudService, ...] = (
    mariadb,
    rabbitmq,
    openvswitch,
    keystone,
    glance,
    placement,
    neutron,
    mirror,
    libvirt,
    nova,
)
# What only Nova's libvirt driver needs: its daemons, and the mirror its
# guests install packages from (a lab host runs this machine's programs).
REAL_VMS_ONLY: tuple[CloudService, ...] = (mirror, libvirt)


def services_for(compute: str) -> tuple[CloudService, ...]:
    """The services a cloud with this compute driver starts, in order."""
    if compute == "libvirt":
        return SERVICES
    return tuple(service for service in SERVICES if service not in REAL_VMS_ONLY)

"""The cloud's bring-up, in DevStack's order (services.SERVICES): each
service configured, initialised and started, then the seed our stack needs."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from secrets import token_hex

from vip_hosts.supervisor import ServiceFailed, Supervisor

from . import seed
from .config import Secrets
from .layout import EXTERNAL_CIDR, MARKER, UNIX_SOCKET_MAX, CloudDirs
from .services import neutron, services_for
from .services.common import Cloud
from .services.openvswitch import ovs_env


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
        "PYTHONUNBUFFERED": "1",
        "HOME": str(dirs.data),
        MARKER: str(dirs.root),
        **ovs_env(dirs),
    }


def programs_missing(compute: str) -> list[str]:
    wanted = [program for service in services_for(compute) for program in service.PROGRAMS]
    if compute == "libvirt":
        wanted += neutron.DHCP_PROGRAMS
    return [p for p in wanted if shutil.which(p) is None and not os.path.exists(p)]


def image_missing(image: Path) -> list[str]:
    return [name for name in ("root.img", "vmlinuz", "initrd.img", "cmdline") if not (image / name).is_file()]


def bring_up(
    dirs: CloudDirs, venv: Path, compute: str, image: Path, supervisor: Supervisor, step: Callable[[str], None]
) -> dict[str, float]:
    """Starts everything; returns each step's seconds. Raises ServiceFailed
    naming what failed, with the end of its log."""
    missing = programs_missing(compute)
    if missing:
        raise ServiceFailed(f"the local cloud needs {', '.join(missing)} (make cloud installs Debian's packages)")
    if image_missing(image):
        raise ServiceFailed(
            f"no guest image in {image} ({', '.join(image_missing(image))} missing): make guest-image builds it"
        )
    too_long = dirs.sockets_too_long()
    if too_long:
        raise ServiceFailed(
            f"the cloud's directory {dirs.root} is too deep: the socket {too_long[0]} is longer than "
            f"{UNIX_SOCKET_MAX} bytes; set KVIP_CLOUD_DIR to a shorter path"
        )
    dirs.make()
    dirs.compute.write_text(compute)
    cloud = Cloud(dirs, venv, load_secrets(dirs), base_env(dirs, venv), supervisor, compute, image)
    timings: dict[str, float] = {}
    for service in services_for(compute):
        started = time.monotonic()
        step(service.NAME)
        service.configure(cloud)
        service.init(cloud)
        service.start(cloud)
        timings[service.NAME] = round(time.monotonic() - started, 1)
    started = time.monotonic()
    step("the seed: ext-net, the image, the flavor, quotas")
    admin = cloud.admin()
    seed.wait_for_agents(admin, timeout=120, real_vms=cloud.real_vms)
    seed.cloud(admin, image, EXTERNAL_CIDR)
    timings["the seed"] = round(time.monotonic() - started, 1)
    os.environ.setdefault("OS_CLIENT_CONFIG_FILE", str(dirs.clouds_yaml))
    return timings

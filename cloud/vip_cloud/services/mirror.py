"""The guests' package mirror, as clouds run one: Debian's apt-cacher-ng in
front of the Debian archive this machine reaches, listening on the external
network's gateway (br-ex), where the guest image's apt sources point
(cloud/guest/build-image.sh). Guests reach it through their router, as they
would reach any mirror. Its cache is kept outside the cloud's directory
(KVIP_MIRROR_CACHE, /var/cache/keepalived-vip/mirror), so that a new cloud's
guests do not download the same packages again; its log stays in the cloud's
logs, where the tests read which packages the guests fetched."""

from __future__ import annotations

import os
from pathlib import Path

from vip_hosts.supervisor import Service, http_answers

from ..layout import EXTERNAL_CIDR, MIRROR_PORT, CloudDirs
from .common import Cloud

NAME = "the guests' package mirror"
PROGRAMS = ("apt-cacher-ng",)


def address() -> str:
    """The external network's gateway: this machine on br-ex."""
    network = EXTERNAL_CIDR.split("/")[0]
    return f"{network.rsplit('.', 1)[0]}.1"


def cache_dir() -> Path:
    return Path(os.environ.get("KVIP_MIRROR_CACHE", "/var/cache/keepalived-vip/mirror"))


def log_dir(dirs: CloudDirs) -> Path:
    return dirs.logs / "mirror"


def transfers(dirs: CloudDirs) -> str:
    """What the mirror served: one line a file, with its path."""
    log = log_dir(dirs) / "apt-cacher.log"
    return log.read_text(errors="replace") if log.exists() else ""


def configure(cloud: Cloud) -> None:
    conf = cloud.dirs.etc / "apt-cacher-ng"
    conf.mkdir(parents=True, exist_ok=True)
    # Not Debian's /etc/apt-cacher-ng: its remapping sends deb.debian.org's
    # requests to the backend chosen at install (ftp.debian.org), which this
    # machine may not reach. Without it, each request goes where its URL says.
    (conf / "acng.conf").write_text("# Every setting is on the command line (vip_cloud.services.mirror).\n")
    log_dir(cloud.dirs).mkdir(parents=True, exist_ok=True)
    cache_dir().mkdir(parents=True, exist_ok=True)


def init(cloud: Cloud) -> None:
    pass


def start(cloud: Cloud) -> None:
    dirs, listen = cloud.dirs, address()
    cloud.supervisor.start(
        Service(
            name="apt-cacher-ng",
            argv=[
                "apt-cacher-ng",
                "-c",
                str(dirs.etc / "apt-cacher-ng"),
                "ForeGround=1",
                f"BindAddress={listen}",
                f"Port={MIRROR_PORT}",
                f"CacheDir={cache_dir()}",
                f"LogDir={log_dir(dirs)}",
                f"SocketPath={dirs.run / 'apt-cacher-ng.socket'}",
                f"PidFile={dirs.run / 'apt-cacher-ng.pid'}",
            ],
            env=cloud.env,
            log=cloud.log("apt-cacher-ng"),
            ready=http_answers(listen, MIRROR_PORT),
        )
    )


def cleanup(dirs: CloudDirs) -> list[str]:
    """Nothing outside the cloud's directory but the cache, which is kept on purpose."""
    return []

"""Pure rendering: settings and addresses in, keepalived.conf and cloud-config out.

Nothing here knows Pulumi; the components call these functions inside
`Output.apply` once the node addresses are known.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import jinja2

from .settings import NodeSettings, Settings

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "cloud_init"

KEEPALIVED_CONF_PATH = "/etc/keepalived/keepalived.conf"
# Boot-time interface detection lives under /etc/keepalived too, beside the
# file it feeds.
VRRP_INTERFACE_SCRIPT_PATH = "/etc/keepalived/vrrp-interface.sh"
VRRP_INTERFACE_CONF_PATH = "/etc/keepalived/vrrp-interface.conf"
KEEPALIVED_DROPIN_PATH = "/etc/systemd/system/keepalived.service.d/10-vrrp-interface.conf"
VRRP_INTERFACE_VARIABLE = "$VRRP_INTERFACE"

_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
)


@dataclass(frozen=True)
class KeepalivedConfig:
    """One node's keepalived instance, everything decided."""

    router_id: str
    state: str
    priority: int
    # None: detected at boot from the default route.
    interface: Optional[str]
    virtual_router_id: int
    advert_interval: float
    vrrp_version: int
    # None under VRRP v3, which has no PASS authentication.
    auth_pass: Optional[str]
    vip_cidr: str
    # None in multicast mode.
    unicast_src_ip: Optional[str]
    unicast_peers: tuple[str, ...]


@dataclass(frozen=True)
class WrittenFile:
    path: str
    permissions: str
    content: str


def initial_state(node: NodeSettings, nodes: Sequence[NodeSettings]) -> str:
    return "MASTER" if node.priority == max(n.priority for n in nodes) else "BACKUP"


def plan_keepalived(
    settings: Settings,
    node_addresses: Mapping[str, str],
    subnet_cidr: str,
    password: Optional[str],
) -> list[KeepalivedConfig]:
    """Decides every node's keepalived instance from the settings and the
    addresses Neutron gave the node ports."""
    vrrp = settings.vrrp
    prefix = ipaddress.IPv4Network(subnet_cidr).prefixlen
    unicast = vrrp.mode == "unicast"
    configs = []
    for node in settings.nodes:
        own = node_addresses[node.name]
        peers = tuple(node_addresses[other.name] for other in settings.nodes if other.name != node.name)
        configs.append(
            KeepalivedConfig(
                router_id=node.name,
                state=initial_state(node, settings.nodes),
                priority=node.priority,
                interface=vrrp.interface,
                virtual_router_id=vrrp.virtual_router_id,
                advert_interval=vrrp.advert_interval,
                vrrp_version=vrrp.version,
                auth_pass=password if vrrp.uses_authentication else None,
                vip_cidr=f"{settings.vip_address}/{prefix}",
                unicast_src_ip=own if unicast else None,
                unicast_peers=peers if unicast else (),
            )
        )
    return configs


def format_advert_int(seconds: float) -> str:
    return f"{seconds:g}"


def render_keepalived_conf(config: KeepalivedConfig) -> str:
    return _environment.get_template("keepalived.conf.j2").render(
        router_id=config.router_id,
        state=config.state,
        priority=config.priority,
        interface=config.interface,
        interface_ref=config.interface or VRRP_INTERFACE_VARIABLE,
        interface_conf_path=VRRP_INTERFACE_CONF_PATH,
        detect_script_path=VRRP_INTERFACE_SCRIPT_PATH,
        virtual_router_id=config.virtual_router_id,
        advert_int=format_advert_int(config.advert_interval),
        vrrp_version=config.vrrp_version,
        auth_pass=config.auth_pass,
        vip_cidr=config.vip_cidr,
        unicast_src_ip=config.unicast_src_ip,
        unicast_peers=config.unicast_peers,
    )


def vrrp_interface_script() -> str:
    return (TEMPLATE_DIR / "vrrp-interface.sh").read_text()


def keepalived_dropin() -> str:
    # ExecStartPre runs the detection before every start of keepalived, at
    # boot and on every restart alike.
    return f"[Service]\nExecStartPre=/bin/sh {VRRP_INTERFACE_SCRIPT_PATH} {VRRP_INTERFACE_CONF_PATH}\n"


def render_user_data(config: KeepalivedConfig) -> str:
    """The node's cloud-config: install keepalived, write its config (0600:
    it holds the VRRP password), enable and start it."""
    extra_files: list[WrittenFile] = []
    if config.interface is None:
        extra_files = [
            WrittenFile(VRRP_INTERFACE_SCRIPT_PATH, "0755", vrrp_interface_script()),
            WrittenFile(KEEPALIVED_DROPIN_PATH, "0644", keepalived_dropin()),
        ]
    return _environment.get_template("user-data.yaml.j2").render(
        keepalived_conf_path=KEEPALIVED_CONF_PATH,
        keepalived_conf=render_keepalived_conf(config),
        extra_files=extra_files,
    )

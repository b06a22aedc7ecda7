"""Pure rendering: settings and addresses in, keepalived.conf and cloud-config out.

Nothing here knows Pulumi; the components call these functions inside
`Output.apply` once the node addresses are known.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import jinja2

from .settings import HealthCheck, NodeSettings, Settings
from .vrrp import master_down_interval, version_for


def _template_dir() -> Path:
    """The templates: shipped inside the package once installed
    (vip_stack/cloud_init), at the top of the checkout otherwise."""
    here = Path(__file__).resolve().parent
    installed, checkout = here / "cloud_init", here.parent / "cloud_init"
    return installed if installed.is_dir() else checkout


TEMPLATE_DIR = _template_dir()

KEEPALIVED_CONF_PATH = "/etc/keepalived/keepalived.conf"
# Boot-time interface detection lives under /etc/keepalived too, beside the
# file it feeds.
VRRP_INTERFACE_SCRIPT_PATH = "/etc/keepalived/vrrp-interface.sh"
VRRP_INTERFACE_CONF_PATH = "/etc/keepalived/vrrp-interface.conf"
KEEPALIVED_DROPIN_PATH = "/etc/systemd/system/keepalived.service.d/10-vrrp-interface.conf"
VRRP_INTERFACE_VARIABLE = "$VRRP_INTERFACE"
HEALTH_CHECK_PATH = "/etc/keepalived/health-check.sh"
HEALTH_CHECK_NAME = "chk_service"
NOTIFY_SCRIPT_PATH = "/etc/keepalived/notify.sh"
NOTIFY_LOG_PATH = "/var/log/keepalived-vip-notify.log"
# The node's VRRP state as keepalived last announced it (MASTER, BACKUP,
# FAULT, STOP), written by the notify script.
VRRP_STATE_PATH = "/run/keepalived-vip/vrrp-state"
# The file a rolling update writes to move this node's priority for a
# handover (rollout.py): keepalived tracks it, adding what it holds to the
# priority. In /run, which a reboot empties; keepalived writes 0 when it starts.
HANDOVER_PATH = "/run/keepalived-vip-handover"
HANDOVER_NAME = "handover"
# The unprivileged user keepalived runs health checks as; cloud-init creates it.
SCRIPT_USER = "keepalived_script"


@dataclass(frozen=True)
class GarpSettings:
    """Gratuitous ARP after a takeover. keepalived's defaults send one burst
    and a second 5 s later, and never refresh. A second burst after 1 s
    reaches neighbours that dropped the first sooner, and a refresh every 5 s
    (as Octavia does) re-teaches the VIP to a neighbour that forgot it after a
    blip, at the cost of two ARP packets per 5 s."""

    master_delay: int = 1
    master_repeat: int = 3
    refresh: int = 5
    refresh_repeat: int = 2
    # A master that hears a lower priority's advert (a partition has healed,
    # and the other side claimed the VIP meanwhile) announces itself at
    # once, instead of leaving neighbours on the other side's MAC until the
    # next refresh.
    lower_prio_repeat: int = 3
    lower_prio_delay: int = 1


GARP = GarpSettings()

_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
)
_environment.filters["shell_quote"] = shlex.quote
_environment.filters["dirname"] = lambda path: str(PurePosixPath(path).parent)
# What is the same on every node, for every template: where the files go, who
# runs the scripts, and the ARP timing. A template gets its node's values as
# one object (`node`, a KeepalivedConfig).
_environment.globals.update(
    keepalived_conf_path=KEEPALIVED_CONF_PATH,
    interface_conf_path=VRRP_INTERFACE_CONF_PATH,
    detect_script_path=VRRP_INTERFACE_SCRIPT_PATH,
    health_check_name=HEALTH_CHECK_NAME,
    health_check_path=HEALTH_CHECK_PATH,
    notify_script_path=NOTIFY_SCRIPT_PATH,
    notify_log_path=NOTIFY_LOG_PATH,
    vrrp_state_path=VRRP_STATE_PATH,
    handover_path=HANDOVER_PATH,
    handover_name=HANDOVER_NAME,
    unprivileged_user=SCRIPT_USER,
    garp=GARP,
)


@dataclass(frozen=True)
class VrrpGroup:
    """What every node's keepalived shares, decided by the settings before
    any address is known: the nodes, the VIP, and how they run VRRP."""

    nodes: tuple[NodeSettings, ...]
    vip_address: str
    virtual_router_id: int
    advert_interval: float
    unicast: bool
    # None: detected at boot from the default route.
    interface: str | None
    preempt: bool
    health_check: HealthCheck | None
    notify_command: str | None

    @classmethod
    def of(cls, settings: Settings) -> VrrpGroup:
        return cls(
            nodes=settings.nodes,
            vip_address=settings.vip_address,
            virtual_router_id=settings.virtual_router_id,
            advert_interval=settings.advert_interval,
            unicast=settings.vrrp_mode == "unicast",
            interface=settings.vrrp_interface,
            preempt=settings.preempt,
            health_check=settings.health_check,
            notify_command=settings.notify_command,
        )

    @property
    def vrrp_version(self) -> int:
        return version_for(self.advert_interval)

    @property
    def uses_authentication(self) -> bool:
        # keepalived has no PASS authentication under VRRP v3.
        return self.vrrp_version == 2

    def master_down_interval(self, priority: int) -> float:
        return master_down_interval(self.vrrp_version, self.advert_interval, priority)


@dataclass(frozen=True)
class KeepalivedConfig:
    """One node's keepalived instance, everything decided."""

    router_id: str
    state: str
    priority: int
    # None: detected at boot from the default route.
    interface: str | None
    virtual_router_id: int
    advert_interval: float
    vrrp_version: int
    # None under VRRP v3, which has no PASS authentication.
    auth_pass: str | None
    vip_cidr: str
    # None in multicast mode.
    unicast_src_ip: str | None
    unicast_peers: tuple[str, ...]
    preempt: bool = True
    health_check: HealthCheck | None = None
    notify_command: str | None = None

    @property
    def uses_scripts(self) -> bool:
        return self.health_check is not None or self.notify_command is not None

    @property
    def script_user(self) -> str | None:
        """Who runs the scripts that have no user of their own; None without scripts."""
        return SCRIPT_USER if self.uses_scripts else None

    @property
    def interface_ref(self) -> str:
        return self.interface or VRRP_INTERFACE_VARIABLE

    @property
    def advert_int(self) -> str:
        return format_advert_int(self.advert_interval)


@dataclass(frozen=True)
class WrittenFile:
    path: str
    permissions: str
    content: str


def initial_state(node: NodeSettings, nodes: Sequence[NodeSettings], preempt: bool = True) -> str:
    if not preempt:
        # keepalived ignores nopreempt on an instance that starts as MASTER.
        return "BACKUP"
    return "MASTER" if node.priority == max(n.priority for n in nodes) else "BACKUP"


def plan_keepalived(
    group: VrrpGroup,
    node_addresses: Mapping[str, str],
    subnet_cidr: str,
    password: str | None,
) -> list[KeepalivedConfig]:
    """Decides every node's keepalived instance from the group's settings and
    the addresses Neutron gave the node ports."""
    prefix = ipaddress.IPv4Network(subnet_cidr).prefixlen
    configs = []
    for node in group.nodes:
        own = node_addresses[node.name]
        peers = tuple(node_addresses[other.name] for other in group.nodes if other.name != node.name)
        configs.append(
            KeepalivedConfig(
                router_id=node.name,
                state=initial_state(node, group.nodes, group.preempt),
                priority=node.priority,
                interface=group.interface,
                virtual_router_id=group.virtual_router_id,
                advert_interval=group.advert_interval,
                vrrp_version=group.vrrp_version,
                auth_pass=password if group.uses_authentication else None,
                vip_cidr=f"{group.vip_address}/{prefix}",
                unicast_src_ip=own if group.unicast else None,
                unicast_peers=peers if group.unicast else (),
                preempt=group.preempt,
                health_check=group.health_check,
                notify_command=group.notify_command,
            )
        )
    return configs


def format_advert_int(seconds: float) -> str:
    return f"{seconds:g}"


def render_keepalived_conf(config: KeepalivedConfig) -> str:
    return _environment.get_template("keepalived.conf.j2").render(node=config)


def render_health_check_script(check: HealthCheck) -> str:
    return _environment.get_template("health-check.sh.j2").render(check=check)


def render_notify_script(command: str | None) -> str:
    return _environment.get_template("notify.sh.j2").render(command=command)


def vrrp_interface_script() -> str:
    return (TEMPLATE_DIR / "vrrp-interface.sh").read_text()


def keepalived_dropin() -> str:
    # ExecStartPre runs the detection before every start of keepalived, at
    # boot and on every restart alike.
    return f"[Service]\nExecStartPre=/bin/sh {VRRP_INTERFACE_SCRIPT_PATH} {VRRP_INTERFACE_CONF_PATH}\n"


# What the jumphost runs for the check: ping (Debian's package, and Ubuntu's).
JUMPHOST_PACKAGES = ("iputils-ping",)


def render_jumphost_user_data() -> str:
    """The jumphost's cloud-config: the check's tools, nothing secret."""
    return _environment.get_template("jumphost-user-data.yaml.j2").render(packages=JUMPHOST_PACKAGES)


def render_user_data(config: KeepalivedConfig) -> str:
    """The node's cloud-config: install keepalived, write its config (0600:
    it holds the VRRP password), enable and start it."""
    extra_files: list[WrittenFile] = []
    if config.interface is None:
        extra_files += [
            WrittenFile(VRRP_INTERFACE_SCRIPT_PATH, "0755", vrrp_interface_script()),
            WrittenFile(KEEPALIVED_DROPIN_PATH, "0644", keepalived_dropin()),
        ]
    if config.health_check is not None:
        extra_files.append(WrittenFile(HEALTH_CHECK_PATH, "0755", render_health_check_script(config.health_check)))
    extra_files.append(WrittenFile(NOTIFY_SCRIPT_PATH, "0755", render_notify_script(config.notify_command)))
    return _environment.get_template("user-data.yaml.j2").render(
        node=config, keepalived_conf=render_keepalived_conf(config), extra_files=extra_files
    )

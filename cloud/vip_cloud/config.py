"""The OpenStack services' configuration files, as DevStack writes them
(lib/keystone, lib/glance, lib/placement, lib/neutron, lib/nova), with the
differences this machine needs said where they are made."""

from __future__ import annotations

import configparser
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from .infra import mysql_socket, ovsdb_socket
from .layout import (
    EXTERNAL_BRIDGE,
    GLANCE_PORT,
    HOST,
    INTEGRATION_BRIDGE,
    KEYSTONE_PORT,
    NEUTRON_PORT,
    NOVA_PORT,
    PHYSNET,
    PLACEMENT_PORT,
    RABBIT_PORT,
    REGION,
    CloudDirs,
)

Sections = dict[str, dict[str, str]]
SERVICE_USERS = ("glance", "placement", "neutron", "nova")


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
        f"?unix_socket={mysql_socket(dirs)}&charset=utf8mb4"
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


def keystone_conf(dirs: CloudDirs, secrets: Secrets) -> Path:
    keys = dirs.data / "keystone"
    return write_ini(
        dirs.etc / "keystone" / "keystone.conf",
        {
            "DEFAULT": {"debug": "False", "use_stderr": "True"},
            "database": {"connection": database(dirs, secrets, "keystone")},
            "token": {"provider": "fernet"},
            "fernet_tokens": {"key_repository": str(keys / "fernet-keys")},
            "fernet_receipts": {"key_repository": str(keys / "fernet-keys")},
            "credential": {"key_repository": str(keys / "credential-keys")},
        },
    )


def glance_conf(dirs: CloudDirs, secrets: Secrets, venv: Path) -> Path:
    etc = service_etc(dirs, venv, "glance", "glance-api-paste.ini")
    images = dirs.data / "glance"
    return write_ini(
        etc / "glance-api.conf",
        {
            "DEFAULT": {
                **common(dirs, "glance"),
                "enabled_backends": "file:file",
                "transport_url": transport_url(),
            },
            "database": {"connection": database(dirs, secrets, "glance")},
            "glance_store": {"default_backend": "file"},
            "file": {"filesystem_store_datadir": str(images / "images")},
            "os_glance_staging_store": {"filesystem_store_datadir": str(images / "staging")},
            "os_glance_tasks_store": {"filesystem_store_datadir": str(images / "tasks")},
            "keystone_authtoken": authtoken(secrets, "glance"),
            "paste_deploy": {"flavor": "keystone", "config_file": str(etc / "glance-api-paste.ini")},
            "oslo_concurrency": {"lock_path": str(images / "lock")},
        },
    )


def placement_conf(dirs: CloudDirs, secrets: Secrets) -> Path:
    return write_ini(
        dirs.etc / "placement" / "placement.conf",
        {
            "DEFAULT": {"debug": "False", "use_stderr": "True"},
            "placement_database": {"connection": database(dirs, secrets, "placement")},
            "api": {"auth_strategy": "keystone"},
            "keystone_authtoken": authtoken(secrets, "placement"),
        },
    )


def neutron_confs(dirs: CloudDirs, secrets: Secrets, venv: Path) -> list[Path]:
    etc = service_etc(dirs, venv, "neutron", "api-paste.ini")
    state = dirs.data / "neutron"
    ovsdb = f"unix:{ovsdb_socket(dirs)}"
    neutron = write_ini(
        etc / "neutron.conf",
        {
            "DEFAULT": {
                **common(dirs, "neutron"),
                "core_plugin": "ml2",
                # Routers with real NAT through the L3 agent; nothing else.
                "service_plugins": "router",
                "auth_strategy": "keystone",
                "transport_url": transport_url(),
                "api_paste_config": str(etc / "api-paste.ini"),
                "notify_nova_on_port_status_changes": "True",
                "notify_nova_on_port_data_changes": "True",
                "allow_overlapping_ips": "True",
                "api_workers": "1",
                "rpc_workers": "1",
                "rpc_state_report_workers": "1",
                # The instances get their addresses from the compute driver,
                # as a config drive would give them: no DHCP agent.
                "dhcp_agent_notification": "False",
            },
            "database": {"connection": database(dirs, secrets, "neutron")},
            "keystone_authtoken": authtoken(secrets, "neutron"),
            "nova": auth_section(secrets, "nova"),
            "oslo_concurrency": {"lock_path": str(state / "lock")},
            # Every daemon runs as root already, so no sudo (which would
            # also drop the virtualenv from PATH) and no rootwrap: `env` runs
            # commands and privsep helpers as they are, found on PATH. (An
            # empty root_helper would leave oslo.privsep's sudo in place.)
            "agent": {"root_helper": "env", "report_interval": "10"},
        },
    )
    ml2 = write_ini(
        etc / "plugins" / "ml2" / "ml2_conf.ini",
        {
            "ml2": {
                # One host: tenant networks never leave br-int ('local'); the
                # external network is flat on br-ex. DevStack uses VXLAN
                # between hosts, which one host does not need.
                "type_drivers": "local,flat",
                "tenant_network_types": "local",
                "mechanism_drivers": "openvswitch",
                "extension_drivers": "port_security",
            },
            "ml2_type_flat": {"flat_networks": PHYSNET},
            "securitygroup": {"enable_security_group": "True", "firewall_driver": "openvswitch"},
        },
    )
    agent_ovs = {
        "integration_bridge": INTEGRATION_BRIDGE,
        "ovsdb_connection": ovsdb,
        # No kernel module: OVS's userspace datapath (DevStack's OVS_DATAPATH_TYPE=netdev).
        "datapath_type": "netdev",
        "bridge_mappings": f"{PHYSNET}:{EXTERNAL_BRIDGE}",
        "of_listen_address": HOST,
    }
    ovs_agent = write_ini(
        etc / "plugins" / "ml2" / "openvswitch_agent.ini",
        {
            "ovs": agent_ovs,
            "agent": {"tunnel_types": "", "l2_population": "False"},
            "securitygroup": {"enable_security_group": "True", "firewall_driver": "openvswitch"},
        },
    )
    l3 = write_ini(
        etc / "l3_agent.ini",
        {
            "DEFAULT": {
                "interface_driver": "openvswitch",
                # veth pairs, not OVS internal ports, into the routers'
                # namespaces: an internal port of the userspace datapath is
                # a TAP device that the switch process holds open.
                "ovs_use_veth": "True",
                "enable_metadata_proxy": "False",
                "agent_mode": "legacy",
            },
            "ovs": {"integration_bridge": INTEGRATION_BRIDGE, "ovsdb_connection": ovsdb},
        },
    )
    return [neutron, ml2, ovs_agent, l3]


def nova_conf(dirs: CloudDirs, secrets: Secrets, venv: Path) -> Path:
    etc = service_etc(dirs, venv, "nova", "api-paste.ini")
    state = dirs.data / "nova"
    return write_ini(
        etc / "nova.conf",
        {
            "DEFAULT": {
                **common(dirs, "nova"),
                "transport_url": transport_url(),
                "host": socket.gethostname(),
                "my_ip": HOST,
                # Our driver, registered as nova.virt.labhost by vip_cloud.nova_compute.
                "compute_driver": "labhost.LabHostDriver",
                "instances_path": str(dirs.instances),
                "osapi_compute_workers": "1",
                "osapi_compute_listen": HOST,
                "vif_plugging_timeout": "120",
                "vif_plugging_is_fatal": "True",
                # Nothing to reclaim from a fake disk; keep startup short.
                "update_resources_interval": "60",
            },
            "wsgi": {"api_paste_config": str(etc / "api-paste.ini")},
            "api": {"auth_strategy": "keystone"},
            "api_database": {"connection": database(dirs, secrets, "nova_api")},
            "database": {"connection": database(dirs, secrets, "nova_cell1")},
            "keystone_authtoken": authtoken(secrets, "nova"),
            "placement": auth_section(secrets, "placement"),
            "neutron": {**auth_section(secrets, "neutron"), "ovs_bridge": INTEGRATION_BRIDGE},
            "glance": {"region_name": REGION},
            "service_user": {**auth_section(secrets, "nova"), "send_service_user_token": "True"},
            "conductor": {"workers": "1"},
            "scheduler": {"workers": "1", "discover_hosts_in_cells_interval": "-1"},
            "oslo_concurrency": {"lock_path": str(state / "lock")},
            "oslo_messaging_notifications": {"driver": "noop"},
            "vnc": {"enabled": "False"},
        },
    )


def endpoints() -> dict[str, tuple[str, str]]:
    """Service name -> (type, URL) for Keystone's catalog."""
    return {
        "glance": ("image", f"http://{HOST}:{GLANCE_PORT}"),
        "placement": ("placement", f"http://{HOST}:{PLACEMENT_PORT}"),
        "neutron": ("network", f"http://{HOST}:{NEUTRON_PORT}"),
        "nova": ("compute", f"http://{HOST}:{NOVA_PORT}/v2.1"),
    }

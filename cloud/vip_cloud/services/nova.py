"""Nova (DevStack's lib/nova): the API, one conductor, the scheduler, and a
nova-compute for each compute host with the driver make cloud chose: Nova's
own libvirt driver (DevStack's lib/nova_plugins/hypervisor-libvirt), whose
instances are virtual machines, or ours (compute.py), whose instances are
lab hosts, on two hosts (layout.compute_hosts); cell0 and cell1 as DevStack
maps them, each host discovered once it reports."""

from __future__ import annotations

import sys
from pathlib import Path

from vip_hosts.netns import delete_namespaces

from .. import seed
from ..config import Sections, auth_section, authtoken, common, database, service_etc, transport_url, write_ini
from ..layout import HOST, INSTANCE_NAMESPACE_PREFIX, NOVA_PORT, REGION, CloudDirs, ComputeHost
from . import libvirt, mariadb
from .common import Cloud, api, daemon

NAME = "Nova"
# What the compute driver runs on each instance's NIC.
PROGRAMS = ("ethtool", "ip")
NAMESPACE_PREFIXES = (INSTANCE_NAMESPACE_PREFIX,)
DATABASES = ("nova_api", "nova_cell0", "nova_cell1")
# The privsep contexts of nova-compute and the libraries it drives (Nova's
# own, os-vif's Open vSwitch and Linux bridge plugins, os-brick).
PRIVSEP_SECTIONS = ("nova_sys_admin", "vif_plug_ovs_privileged", "vif_plug_linux_bridge_privileged", "privsep_osbrick")


def conf(dirs: CloudDirs) -> Path:
    return dirs.etc / "nova" / "nova.conf"


def host_conf(dirs: CloudDirs, host: ComputeHost) -> Path:
    """What a compute host's nova-compute reads after nova.conf. In a
    directory of its own: Nova looks for the node's compute_id beside every
    configuration file too."""
    return dirs.etc / f"nova-compute{host.suffix}" / "nova-compute.conf"


def compute_name(host: ComputeHost) -> str:
    """The service name of a compute host's nova-compute."""
    return f"nova-compute{host.suffix}"


def env(cloud: Cloud) -> dict[str, str]:
    return {**cloud.env, "OS_NOVA_CONFIG_DIR": str(conf(cloud.dirs).parent)}


def compute_settings(cloud: Cloud) -> Sections:
    """What differs between the two compute drivers."""
    if not cloud.real_vms:
        return {
            "DEFAULT": {
                # Our driver, registered as nova.virt.labhost by vip_cloud.nova_compute.
                "compute_driver": "labhost.LabHostDriver",
                "vif_plugging_timeout": "120",
                # Nothing to reclaim from a fake disk; keep startup short.
                "update_resources_interval": "60",
            },
        }
    return {
        "DEFAULT": {
            "compute_driver": "libvirt.LibvirtDriver",
            # No metadata service: each guest's user data, keys and network
            # data come on a config drive (genisoimage).
            "force_config_drive": "True",
            # Nova's default (300 s) is for a loaded cloud; a first boot
            # under TCG is slower still, but Neutron wires a port in seconds.
            "vif_plugging_timeout": "300",
        },
        "libvirt": {
            # KVM opens on this machine but its guests hang: TCG, as
            # DevStack's LIBVIRT_TYPE=qemu, with DevStack's CPU model for it.
            "virt_type": "qemu",
            "cpu_mode": "custom",
            "cpu_models": "Nehalem",
            "connection_uri": libvirt.connection_uri(cloud.dirs),
        },
        # os-vif plugs each guest's tap into br-int (libvirt makes the tap)
        # through this cloud's Open vSwitch database.
        "os_vif_ovs": {"ovsdb_connection": f"unix:{cloud.dirs.ovsdb_socket}", "ovsdb_interface": "native"},
        # nova-compute runs as root already: its privileged helpers are
        # started as they are, found on PATH (the services' virtualenv), not
        # through sudo and nova-rootwrap (Neutron's root_helper = env).
        **{section: {"helper_command": "privsep-helper"} for section in PRIVSEP_SECTIONS},
    }


def configure(cloud: Cloud) -> None:
    dirs = cloud.dirs
    etc = service_etc(dirs, cloud.venv, "nova", "api-paste.ini")
    state = dirs.data / "nova"
    driver = compute_settings(cloud)
    write_ini(
        conf(dirs),
        {
            "DEFAULT": {
                **common(dirs, "nova"),
                "transport_url": transport_url(),
                "my_ip": HOST,
                "osapi_compute_workers": "1",
                "osapi_compute_listen": HOST,
                "vif_plugging_is_fatal": "True",
                **driver["DEFAULT"],
            },
            "wsgi": {"api_paste_config": str(etc / "api-paste.ini")},
            "api": {"auth_strategy": "keystone"},
            "api_database": {"connection": database(dirs, cloud.secrets, "nova_api")},
            "database": {"connection": database(dirs, cloud.secrets, "nova_cell1")},
            "keystone_authtoken": authtoken(cloud.secrets, "nova"),
            "placement": auth_section(cloud.secrets, "placement"),
            "neutron": auth_section(cloud.secrets, "neutron"),
            "glance": {"region_name": REGION},
            "service_user": {**auth_section(cloud.secrets, "nova"), "send_service_user_token": "True"},
            "conductor": {"workers": "1"},
            "scheduler": {"workers": "1", "discover_hosts_in_cells_interval": "-1"},
            "oslo_concurrency": {"lock_path": str(state / "lock")},
            "oslo_messaging_notifications": {"driver": "noop"},
            "vnc": {"enabled": "False"},
            **{section: options for section, options in driver.items() if section != "DEFAULT"},
        },
    )
    for host in cloud.hosts:
        dirs.instances_of(host).mkdir(parents=True, exist_ok=True)
        write_ini(
            host_conf(dirs, host),
            {
                "DEFAULT": {
                    "host": host.name,
                    "state_path": str(dirs.nova_state(host)),
                    "instances_path": str(dirs.instances_of(host)),
                },
                # The port binding names the host agent's bridge; this is
                # what a binding without one gets.
                "neutron": {"ovs_bridge": host.integration_bridge},
            },
        )


def init(cloud: Cloud) -> None:
    mariadb.create(cloud, *DATABASES)
    manage = [cloud.program("nova-manage"), "--config-file", str(conf(cloud.dirs))]
    cell0 = database(cloud.dirs, cloud.secrets, "nova_cell0")
    for args in (
        ["api_db", "sync"],
        ["cell_v2", "map_cell0", "--database_connection", cell0],
        ["cell_v2", "create_cell", "--name", "cell1"],
        ["db", "sync"],
    ):
        cloud.step(f"nova-manage {' '.join(args[:2])}", [*manage, *args], env(cloud), "nova-manage")
    cloud.register("nova", "compute", NOVA_PORT, "/v2.1")


def start(cloud: Cloud) -> None:
    files = ["--config-file", str(conf(cloud.dirs))]
    cloud.supervisor.start(api(cloud, "nova-api", "nova.wsgi.osapi_compute:application", NOVA_PORT, env(cloud)))
    cloud.supervisor.start_together(
        [daemon(cloud, name, [cloud.program(name), *files]) for name in ("nova-conductor", "nova-scheduler")]
    )
    if cloud.real_vms:
        compute = [cloud.program("nova-compute"), *files]
    else:
        # Our driver registered first (nova_compute.py): this interpreter has
        # vip_cloud and vip_hosts beside the services (checkout-venv.sh).
        compute = [sys.executable, "-m", "vip_cloud.nova_compute", *files]
    cloud.supervisor.start_together(
        [
            daemon(cloud, compute_name(host), [*compute, "--config-file", str(host_conf(cloud.dirs, host))])
            for host in cloud.hosts
        ]
    )
    # Each host is mapped to the cell once it has reported (DevStack's
    # discover_hosts on a multinode controller).
    seed.wait_for_compute(cloud.admin(), [host.name for host in cloud.hosts], timeout=120)
    manage = [cloud.program("nova-manage"), "--config-file", str(conf(cloud.dirs))]
    cloud.step("nova-manage cell_v2 discover_hosts", [*manage, "cell_v2", "discover_hosts"], env(cloud), "nova-manage")


def cleanup(dirs: CloudDirs) -> list[str]:
    """The instances' namespaces (their processes, NICs and mounts go with them)."""
    return delete_namespaces(NAMESPACE_PREFIXES)

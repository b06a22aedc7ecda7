"""Neutron (DevStack's lib/neutron): ML2 with Open vSwitch, the API, the RPC
server, the periodic workers, an Open vSwitch agent with the native
firewall for each compute host, the L3 agent, and for real VMs the DHCP
agent (Debian's dnsmasq); br-ex with this machine's address is the external
network's uplink, and the compute hosts' tenant bridges are patched together
as a switch trunking the tenant VLANs."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from vip_hosts.netns import delete_namespaces

from .. import ovs_conntrack
from ..config import auth_section, authtoken, common, database, service_etc, transport_url, write_ini
from ..layout import (
    EXTERNAL_BRIDGE,
    EXTERNAL_CIDR,
    HOST,
    INTEGRATION_BRIDGE,
    NEUTRON_PORT,
    PHYSNET,
    TENANT_PHYSNET,
    TENANT_VLAN_RANGE,
    CloudDirs,
    ComputeHost,
)
from . import mariadb, openvswitch
from .common import Cloud, api, daemon

NAME = "Neutron"
# What the agents run: NAT and its connection tracking.
PROGRAMS = ("iptables", "conntrack")
# The DHCP agent's, which only real VMs need: a lab host is given its address.
# dhcp_release (dnsmasq-utils) ends a deleted port's lease: without it dnsmasq
# keeps the address leased to the old MAC for a day and answers the next port
# Neutron gives that address to with "no address available".
DHCP_PROGRAMS = ("dnsmasq", "dhcp_release")
# The L3 agent's (and a DHCP agent's) namespaces, named after routers and networks.
NAMESPACE_PREFIXES = ("qrouter-", "qdhcp-", "snat-", "fip-")
SERVER_DAEMONS = ("neutron-rpc-server", "neutron-periodic-workers")
L3_AGENT_CONF = Path("l3_agent.ini")
DHCP_AGENT_CONF = Path("dhcp_agent.ini")
DNSMASQ_CONF = Path("dnsmasq.conf")
# dnsmasq drops to nobody, then re-reads its hosts file (a port added) on
# SIGHUP: under the cloud's directory (mode 0700, it holds secrets) nobody
# cannot read it, and dnsmasq answers no new port's DHCP. It stays root, as
# every other daemon of this cloud is.
DNSMASQ_SETTINGS = "user=root\n"


def conf(dirs: CloudDirs) -> Path:
    return dirs.etc / "neutron" / "neutron.conf"


def ml2_conf(dirs: CloudDirs) -> Path:
    return dirs.etc / "neutron" / "plugins" / "ml2" / "ml2_conf.ini"


def ovs_agent_conf(host: ComputeHost) -> Path:
    return Path("plugins") / "ml2" / f"openvswitch_agent{host.suffix}.ini"


def ovs_agent_name(host: ComputeHost) -> str:
    """The service name of a compute host's Open vSwitch agent."""
    return f"neutron-openvswitch-agent{host.suffix}"


def server_files(dirs: CloudDirs) -> list[str]:
    return ["--config-file", str(conf(dirs)), "--config-file", str(ml2_conf(dirs))]


def configure(cloud: Cloud) -> None:
    dirs = cloud.dirs
    etc = service_etc(dirs, cloud.venv, "neutron", "api-paste.ini")
    state = dirs.data / "neutron"
    ovsdb = f"unix:{dirs.ovsdb_socket}"
    write_ini(
        conf(dirs),
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
                # Real VMs ask DHCP for their address (the config drive's
                # network data says so for a subnet with DHCP); lab hosts
                # are given theirs by the compute driver: no DHCP agent.
                "dhcp_agent_notification": str(cloud.real_vms),
            },
            "database": {"connection": database(dirs, cloud.secrets, "neutron")},
            "keystone_authtoken": authtoken(cloud.secrets, "neutron"),
            "nova": auth_section(cloud.secrets, "nova"),
            "oslo_concurrency": {"lock_path": str(state / "lock")},
            # Every daemon runs as root already, so no sudo (which would
            # also drop the virtualenv from PATH) and no rootwrap: `env` runs
            # commands and privsep helpers as they are, found on PATH. (An
            # empty root_helper would leave oslo.privsep's sudo in place.)
            "agent": {"root_helper": "env", "report_interval": "10"},
        },
    )
    write_ini(
        ml2_conf(dirs),
        {
            "ml2": {
                # Tenant networks are VLANs, which span the compute hosts
                # through their tenant bridges (layout.TENANT_PHYSNET); the
                # external network is flat on br-ex. DevStack's multinode
                # jobs use VXLAN between machines; on one machine's
                # userspace datapath a tunnel would have to loop back
                # through the switch it leaves, where a patch between two
                # bridges is the datapath's own.
                "type_drivers": "local,flat,vlan",
                "tenant_network_types": "vlan",
                "mechanism_drivers": "openvswitch",
                "extension_drivers": "port_security",
            },
            "ml2_type_flat": {"flat_networks": PHYSNET},
            "ml2_type_vlan": {"network_vlan_ranges": f"{TENANT_PHYSNET}:{TENANT_VLAN_RANGE}"},
            "securitygroup": {"enable_security_group": "True", "firewall_driver": "openvswitch"},
        },
    )
    for host in cloud.hosts:
        # The first host is the network node too: the external network's
        # bridge is its alone.
        external = [f"{PHYSNET}:{EXTERNAL_BRIDGE}"] if host.number == 1 else []
        write_ini(
            etc / ovs_agent_conf(host),
            {
                "DEFAULT": {"host": host.name},
                "ovs": {
                    "integration_bridge": host.integration_bridge,
                    "ovsdb_connection": ovsdb,
                    # No kernel module: OVS's userspace datapath (DevStack's OVS_DATAPATH_TYPE=netdev).
                    "datapath_type": "netdev",
                    "bridge_mappings": ",".join([*external, f"{TENANT_PHYSNET}:{host.tenant_bridge}"]),
                    "of_listen_address": HOST,
                    "of_listen_port": str(host.openflow_port),
                },
                "agent": {"tunnel_types": "", "l2_population": "False"},
                "securitygroup": {"enable_security_group": "True", "firewall_driver": "openvswitch"},
            },
        )
    write_ini(
        etc / L3_AGENT_CONF,
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
    (etc / DNSMASQ_CONF).write_text(DNSMASQ_SETTINGS)
    write_ini(
        etc / DHCP_AGENT_CONF,
        {
            "DEFAULT": {
                "interface_driver": "openvswitch",
                # As the L3 agent's: veth pairs into the dnsmasq namespaces.
                "ovs_use_veth": "True",
                # No metadata service: the config drive brings the user data.
                "enable_isolated_metadata": "False",
                "force_metadata": "False",
                "dnsmasq_config_file": str(etc / DNSMASQ_CONF),
                # Each network's DHCP log (leases given), which the tests read.
                "dnsmasq_base_log_dir": str(dirs.logs / "dnsmasq"),
            },
            "ovs": {"integration_bridge": INTEGRATION_BRIDGE, "ovsdb_connection": ovsdb},
        },
    )


def init(cloud: Cloud) -> None:
    mariadb.create(cloud, "neutron")
    manage = [cloud.program("neutron-db-manage"), *server_files(cloud.dirs)]
    cloud.step("neutron-db-manage", [*manage, "upgrade", "heads"], cloud.env, "neutron-db-manage")
    cloud.register("neutron", "network", NEUTRON_PORT)
    external_bridge(cloud)
    tenant_bridges(cloud)


def external_bridge(cloud: Cloud) -> None:
    """br-ex on the userspace datapath, with this machine's address (the
    external network's gateway) on its internal port, a TAP device."""
    network, prefix = EXTERNAL_CIDR.split("/")
    gateway = f"{network.rsplit('.', 1)[0]}.1/{prefix}"
    openvswitch.vsctl(
        cloud.dirs,
        cloud.env,
        "--may-exist",
        "add-br",
        EXTERNAL_BRIDGE,
        "--",
        "set",
        "Bridge",
        EXTERNAL_BRIDGE,
        "datapath_type=netdev",
        "fail_mode=standalone",
    )
    subprocess.run(["ip", "address", "replace", gateway, "dev", EXTERNAL_BRIDGE], check=True)
    subprocess.run(["ip", "link", "set", EXTERNAL_BRIDGE, "up"], check=True)


def tenant_bridges(cloud: Cloud) -> None:
    """Each compute host's tenant bridge (its agent exits if one it maps is
    missing), and a patch pair from the first host's to each other's: the
    switch that trunks the tenant VLANs between hosts. Patches, not veth
    pairs: the userspace datapath joins them itself, with no kernel device."""
    first, *others = cloud.hosts
    for host in cloud.hosts:
        openvswitch.add_bridge(cloud.dirs, cloud.env, host.tenant_bridge)
    for host in others:
        openvswitch.patch(
            cloud.dirs,
            cloud.env,
            (first.tenant_bridge, f"tnt{first.number}-to-{host.number}"),
            (host.tenant_bridge, f"tnt{host.number}-to-{first.number}"),
        )


def start(cloud: Cloud) -> None:
    dirs = cloud.dirs
    api_env = {
        **cloud.env,
        "OS_NEUTRON_CONFIG_DIR": str(conf(dirs).parent),
        "OS_NEUTRON_CONFIG_FILES": f"{conf(dirs).name};{ml2_conf(dirs).relative_to(conf(dirs).parent)}",
    }
    cloud.supervisor.start(api(cloud, "neutron-api", "neutron.wsgi.api:application", NEUTRON_PORT, api_env))
    cloud.supervisor.start_together(
        [daemon(cloud, name, [cloud.program(name), *server_files(dirs)]) for name in SERVER_DAEMONS]
    )
    # The agents once the server's RPC is up, all at once.
    agents = []
    for host in cloud.hosts:
        files = ["--config-file", str(conf(dirs)), "--config-file", str(conf(dirs).parent / ovs_agent_conf(host))]
        # Each agent heeds its own integration bridge's ports only (vip_cloud.ovs_agent).
        argv = [sys.executable, "-m", "vip_cloud.ovs_agent", *files]
        agents.append(daemon(cloud, ovs_agent_name(host), argv, ovs_agent_env(cloud)))
    others = [("neutron-l3-agent", L3_AGENT_CONF)] + (
        [("neutron-dhcp-agent", DHCP_AGENT_CONF)] if cloud.real_vms else []
    )
    for name, agent_conf in others:
        files = ["--config-file", str(conf(dirs)), "--config-file", str(conf(dirs).parent / agent_conf)]
        agents.append(daemon(cloud, name, [cloud.program(name), *files]))
    cloud.supervisor.start_together(agents)


def ovs_agent_env(cloud: Cloud) -> dict[str, str]:
    """The OVS agent's environment: vip_cloud.ovs_conntrack first on its
    PATH as `conntrack` (the firewall's clean-up of the connections it
    marked, which the kernel's tool alone does not do on the userspace
    datapath). The L3 agent's conntrack stays the kernel's: its routers'
    NAT is the kernel's."""
    shims = cloud.dirs.run / "ovs-agent-bin"
    shims.mkdir(parents=True, exist_ok=True)
    script = shims / "conntrack"
    # As a file, without site: it starts in half the time (its docstring says why that matters).
    program = shlex.join([sys.executable, "-I", "-S", ovs_conntrack.__file__])
    script.write_text(f'#!/bin/sh\nexec {program} "$@"\n')
    script.chmod(0o755)
    return {**cloud.env, "PATH": f"{shims}:{cloud.env['PATH']}"}


def cleanup(dirs: CloudDirs) -> list[str]:
    """The routers' namespaces."""
    return delete_namespaces(NAMESPACE_PREFIXES)

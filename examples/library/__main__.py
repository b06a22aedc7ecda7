"""Two VIPs, for a web tier and a database proxy, on one network with one
jumphost: the keepalived-vip components used as a library.

The two are made both ways a program can: the web VIP from Python keywords,
the db VIP from the config namespace `db:`."""

import pulumi

from vip_stack import KeepalivedVip, KeepalivedVipArgs

# Every key of both VIPs is checked, and the cloud looked up for both, before
# anything of either is declared. Errors name the key in the VIP's namespace
# (web:vipAddress, db:vipAddress).
web_args = KeepalivedVipArgs.of(
    namespace="web",
    network_name="vipnet",
    subnet_name="vipsubnet",
    subnet_cidr="192.168.10.0/24",
    vip_address="192.168.10.250",
    flavor_name="STD2-1-2",
    ssh_allowed_cidrs=["198.51.100.0/24"],
    nodes=[{"name": "web-1", "priority": 120}, {"name": "web-2", "priority": 90}],
    jumphost_name="vip-jumphost",
    virtual_router_id=51,
    service_ports=[{"protocol": "tcp", "port": 443}],
    service_allowed_cidrs=["203.0.113.0/24"],
    # Set with `pulumi config set --secret web:vrrpPassword`; the component keeps it secret.
    vrrp_password=pulumi.Config("web").require("vrrpPassword"),
).looked_up()
db_args = KeepalivedVipArgs.from_config(pulumi.Config("db")).looked_up()

# The web VIP creates the network (keeping the db VIP out of its DHCP pool too) and the jumphost.
web = KeepalivedVip("web", web_args.sharing(reserved_addresses=[db_args.settings.vip_address]))
db = KeepalivedVip("db", db_args.sharing(network=web.shared_network, jumphost=web.shared_jumphost))

pulumi.export("webVip", web.vip_address)
pulumi.export("dbVip", db.vip_address)
pulumi.export("jumphostFloatingIp", web.jumphost_floating_ip)
pulumi.export("webNodes", web.nodes)
pulumi.export("dbNodes", db.nodes)

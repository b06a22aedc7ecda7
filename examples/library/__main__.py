"""Two VIPs, for a web tier and a database proxy, on one network with one
jumphost: the keepalived-vip components used as a library."""

import pulumi

from vip_stack import KeepalivedVip, KeepalivedVipArgs, gather_cloud_facts, settings_from_config

# Every key of both VIPs is checked, and the cloud looked up, before anything is declared.
web_settings = settings_from_config(pulumi.Config("web"))
db_settings = settings_from_config(pulumi.Config("db"))
web_cloud = gather_cloud_facts(web_settings)
db_cloud = gather_cloud_facts(db_settings)

# The web VIP creates the network (keeping the db VIP out of its DHCP pool too) and the jumphost.
web = KeepalivedVip("web", KeepalivedVipArgs(web_settings, web_cloud, reserved_addresses=[db_settings.vip_address]))
db = KeepalivedVip(
    "db", KeepalivedVipArgs(db_settings, db_cloud, network=web.shared_network, jumphost=web.shared_jumphost)
)

pulumi.export("webVip", web.vip_address)
pulumi.export("dbVip", db.vip_address)
pulumi.export("jumphostFloatingIp", web.jumphost_floating_ip)
pulumi.export("webNodes", web.nodes)
pulumi.export("dbNodes", db.nodes)

"""Two VIPs, for a web tier and a database proxy, on one network with one
jumphost: the keepalived-vip components used as a library."""

import pulumi

from vip_stack import KeepalivedVip, KeepalivedVipArgs

# Every key of both VIPs is checked, and the cloud looked up for both, before
# anything of either is declared.
web_args = KeepalivedVipArgs.from_config(pulumi.Config("web")).looked_up()
db_args = KeepalivedVipArgs.from_config(pulumi.Config("db")).looked_up()

# The web VIP creates the network (keeping the db VIP out of its DHCP pool too) and the jumphost.
web = KeepalivedVip("web", web_args.sharing(reserved_addresses=[db_args.settings.vip_address]))
db = KeepalivedVip("db", db_args.sharing(network=web.shared_network, jumphost=web.shared_jumphost))

pulumi.export("webVip", web.vip_address)
pulumi.export("dbVip", db.vip_address)
pulumi.export("jumphostFloatingIp", web.jumphost_floating_ip)
pulumi.export("webNodes", web.nodes)
pulumi.export("dbNodes", db.nodes)

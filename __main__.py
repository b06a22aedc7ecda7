"""keepalived-vip: reads the stack's config and declares the whole scenario."""

import pulumi

from vip_stack import KeepalivedVip, KeepalivedVipArgs, gather_cloud_facts, settings_from_config

# Both steps raise InvalidConfig, naming the key, before any resource exists.
settings = settings_from_config(pulumi.Config())
cloud = gather_cloud_facts(settings)

vip = KeepalivedVip("keepalived-vip", KeepalivedVipArgs(settings, cloud))
for output_name, value in vip.outputs.items():
    pulumi.export(output_name, value)

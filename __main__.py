"""keepalived-vip: reads the stack's config and declares the whole scenario."""

import pulumi

from vip_stack import KeepalivedVip, KeepalivedVipArgs

# Every key is checked, then the cloud looked up, before any resource exists:
# both raise InvalidConfig naming the key.
vip = KeepalivedVip("keepalived-vip", KeepalivedVipArgs.from_config(pulumi.Config()))
for output_name, value in vip.outputs.items():
    pulumi.export(output_name, value)

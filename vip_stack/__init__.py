"""keepalived-vip: a highly available virtual IP on OpenStack, as Pulumi components."""

from .jumphost import Jumphost, JumphostArgs
from .lookups import CloudFacts, gather_cloud_facts
from .network import VipNetwork, VipNetworkArgs
from .nodes import KeepalivedNodes, KeepalivedNodesArgs
from .security import VipSecurityGroups, VipSecurityGroupsArgs
from .settings import InvalidConfig, Settings, parse_settings, settings_from_config
from .stack import KeepalivedVip, KeepalivedVipArgs, SharedJumphost, SharedNetwork
from .vip_port import VipPort, VipPortArgs

__all__ = [
    "CloudFacts",
    "InvalidConfig",
    "Jumphost",
    "JumphostArgs",
    "KeepalivedNodes",
    "KeepalivedNodesArgs",
    "KeepalivedVip",
    "KeepalivedVipArgs",
    "Settings",
    "SharedJumphost",
    "SharedNetwork",
    "VipNetwork",
    "VipNetworkArgs",
    "VipPort",
    "VipPortArgs",
    "VipSecurityGroups",
    "VipSecurityGroupsArgs",
    "gather_cloud_facts",
    "parse_settings",
    "settings_from_config",
]

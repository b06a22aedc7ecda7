"""keepalived-vip: a highly available virtual IP on OpenStack, as Pulumi components."""

from .component import KeepalivedVip, KeepalivedVipArgs, SharedJumphost, SharedNetwork
from .jumphost import Jumphost, JumphostArgs
from .network import VipNetwork, VipNetworkArgs
from .nodes import KeepalivedNodes, KeepalivedNodesArgs
from .preflight import CloudFacts, CloudUnavailable, gather_cloud_facts
from .security import VipSecurityGroups, VipSecurityGroupsArgs
from .settings import InvalidConfig, Settings, parse_settings, settings_from_config
from .vip_port import VipPort, VipPortArgs

__all__ = [
    "CloudFacts",
    "CloudUnavailable",
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

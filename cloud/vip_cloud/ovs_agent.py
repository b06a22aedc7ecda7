"""Neutron's Open vSwitch agent, heeding only its own integration bridge's
ports, as Neutron's fullstack tests run several agents on one switch.

The agent learns of new ports from the switch's Interface table, which
holds every bridge's: with a second compute host on the same switch, each
agent would ask the server about every port the other plugs (the server
answers that it is bound elsewhere, and the agent skips it), a round of RPC
per boot on a machine of two cores. Neutron's own hook for this
(neutron.agent.common.polling.filter_bridge_names, "used only in fullstack
testing") returns no filter; here it returns the bridges the agent asks for,
its integration bridge. The rest is the console script's
(neutron-openvswitch-agent)."""

import sys

from neutron.agent.common import polling
from neutron.cmd.agents.ovs_neutron_agent import main


def own_bridges(bridge_names: list[str]) -> list[str]:
    return bridge_names


polling.filter_bridge_names = own_bridges

if __name__ == "__main__":
    sys.exit(main())

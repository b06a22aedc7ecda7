"""createNetwork: false on a network the stack did not create: what a real
cloud would refuse half-way through `pulumi up` is refused before anything
exists, naming the key to change. The mocks answer the look-ups, and refuse
the ports, as Neutron would."""

import pulumi
import pytest

from vip_lab.fake_openstack import EXTERNAL_NETWORK_ID, OpenStackMocks
from vip_stack.settings import InvalidConfig
from vip_stack.vip_port import VIP_PORT_DESCRIPTION

from .harness import EXAMPLE_CONFIG, FakeCloud, run_program

EXISTING = {**EXAMPLE_CONFIG, "createNetwork": False, "vipAddress": "10.20.0.250"}
OUR_TAG = "keepalived-vip:keepalived-vip/dev"


def cloud_with(**subnet) -> FakeCloud:
    cloud = FakeCloud.with_external_network()
    cloud.add_existing_subnet(cidr="10.20.0.0/24", gateway_ip="10.20.0.1", **subnet)
    return cloud


def refused(cloud, config=EXISTING) -> InvalidConfig:
    deployment = run_program(config, cloud, expect_failure=True)
    assert isinstance(deployment.error, InvalidConfig), deployment.error
    assert deployment.resources == [], "nothing is declared"
    return deployment.error


def test_a_sound_existing_network_deploys_with_its_ports_tagged_and_port_security_set():
    deployment = run_program(EXISTING, cloud_with(port_security=False))
    vip_port = deployment.named("keepalived-vip-vip-port")
    assert vip_port.input("portSecurityEnabled") is True, "not left to the network's default"
    assert vip_port.input("tags") == [OUR_TAG]
    assert all(
        OUR_TAG in port.input("tags")
        for port in deployment.of_type("Port")
        if port.input("name", "").startswith("kld-vm-")
    )


def test_without_its_own_port_security_the_vip_port_would_be_refused():
    """The mocks refuse what Neutron refuses: the check above is not empty."""
    cloud = cloud_with(port_security=False)
    network_id = next(iter(n for n in cloud.networks if n.startswith("existing")))
    mocks = OpenStackMocks(cloud)
    args = pulumi.runtime.MockResourceArgs(
        typ="openstack:networking/port:Port",
        name="p",
        inputs={"networkId": network_id, "securityGroupIds": ["sg"], "fixedIps": []},
        provider="",
        resource_id="",
        custom=True,
    )
    with pytest.raises(ValueError, match="PortSecurityAndIPRequiredForSecurityGroups"):
        mocks.new_resource(args)


def test_a_network_of_another_project_is_refused_naming_networkName():
    error = refused(cloud_with(owner="project-other"))
    assert error.keys == {"networkName"}
    assert (
        "keepalived-vip:networkName: mynetwork belongs to project project-other and is shared with this one (ours)"
    ) in str(error)
    assert "403" in str(error)


def test_an_admin_may_use_a_network_of_another_project():
    cloud = cloud_with(owner="project-other")
    cloud.roles = ("admin", "member")
    run_program(EXISTING, cloud)


def test_a_subnet_without_a_router_to_the_external_network_is_refused():
    error = refused(cloud_with(router_to=None))
    assert error.keys == {"externalNetworkName"}
    assert "no router links subnet mysubnet to ext-net (found: none)" in str(error)
    assert "ExternalGatewayForFloatingIPNotFound" in str(error)


def test_a_router_on_another_external_network_is_refused_naming_what_was_found():
    cloud = cloud_with(router_to="other-ext-id")
    error = refused(cloud)
    assert "found: mynetwork-router (gateway on other-ext-id)" in str(error)
    # The same subnet with a second router, to ext-net, is fine.
    cloud.add_router("to-ext-net", EXTERNAL_NETWORK_ID, next(iter(cloud.subnets.values())))
    run_program(EXISTING, cloud)


def test_a_vip_another_port_holds_is_refused_naming_the_port():
    error = refused(cloud_with(allocated=("10.20.0.250",)))
    assert error.keys == {"vipAddress"}
    assert ("the VIP 10.20.0.250 is already held by port vm-at-10.20.0.250 (compute:nova) on mynetwork") in str(error)
    assert "409 IpAddressAlreadyAllocated" in str(error)


def test_a_fixed_node_address_another_port_holds_is_refused():
    nodes = [{"name": "kld-vm-1", "priority": 120, "ipAddress": "10.20.0.11"}, {"name": "kld-vm-2", "priority": 90}]
    error = refused(cloud_with(allocated=("10.20.0.11",)), {**EXISTING, "nodes": nodes})
    assert error.keys == {"nodes"} and "ipAddress of kld-vm-1 10.20.0.11 is already held" in str(error)


def test_every_problem_is_reported_at_once():
    error = refused(cloud_with(owner="project-other", router_to=None, allocated=("10.20.0.250",)))
    assert error.keys == {"networkName", "externalNetworkName", "vipAddress"}


def test_a_second_up_finds_its_own_vip_port_holding_the_vip_and_goes_on():
    cloud = cloud_with()
    network_id = next(n for n in cloud.networks if n.startswith("existing"))
    cloud.add_port(
        "keepalived-vip-vip",
        network_id,
        ("10.20.0.250",),
        status="DOWN",
        tags=(OUR_TAG,),
        description=VIP_PORT_DESCRIPTION,
    )
    run_program(EXISTING, cloud)


def test_a_vip_port_from_before_ports_were_tagged_is_still_the_stacks_own():
    cloud = cloud_with()
    network_id = next(n for n in cloud.networks if n.startswith("existing"))
    cloud.add_port("keepalived-vip-vip", network_id, ("10.20.0.250",), status="DOWN", description=VIP_PORT_DESCRIPTION)
    run_program(EXISTING, cloud)

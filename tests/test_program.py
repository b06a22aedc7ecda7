"""The whole program under Pulumi's mock runtime, run fresh for every test,
against mocks that hand out addresses like Neutron and Nova."""

import ipaddress
import json

import pytest
import yaml

from vip_lab.fake_openstack import OpenStackMocks
from vip_stack.preflight import CloudUnavailable
from vip_stack.rendering import KEEPALIVED_CONF_PATH, NOTIFY_SCRIPT_PATH
from vip_stack.settings import InvalidConfig

from .harness import EXAMPLE_CONFIG, EXAMPLE_PASSWORD, FakeCloud, run_program
from .test_settings import INVALID

COMPONENT_TYPES = {
    "keepalived-vip:openstack:KeepalivedVip",
    "keepalived-vip:openstack:VipNetwork",
    "keepalived-vip:openstack:VipSecurityGroups",
    "keepalived-vip:openstack:VipPort",
    "keepalived-vip:openstack:KeepalivedNodes",
    "keepalived-vip:openstack:Jumphost",
}
NETWORK_TYPES = {"Network", "Subnet", "Router", "RouterInterface"}
OUTPUT_KEYS = {
    "vipAddress",
    "vipPortId",
    "vipFloatingIp",
    "networkId",
    "subnetId",
    "nodeSecurityGroupId",
    "jumphostFloatingIp",
    "jumphostName",
    "sshUser",
    "nodes",
}


@pytest.fixture(scope="module")
def example():
    return run_program(EXAMPLE_CONFIG)


def node_ports(deployment):
    return {
        r.input("name").removesuffix("-port"): r
        for r in deployment.of_type("Port")
        if r.input("name", "").startswith("kld-vm-")
    }


def user_data_of(deployment, name):
    return yaml.safe_load(deployment.called(name, "Instance").input("userData"))


def keepalived_conf_of(deployment, name):
    files = user_data_of(deployment, name)["write_files"]
    return next(f for f in files if f["path"] == KEEPALIVED_CONF_PATH)


def test_every_cloud_resource_is_parented_under_one_component(example):
    by_urn = {r.urn: r for r in example.resources}
    (top,) = [r for r in example.resources if r.type == "keepalived-vip:openstack:KeepalivedVip"]
    for resource in example.resources:
        if resource is top:
            continue
        chain, parent = [], by_urn.get(resource.parent_urn)
        while parent is not None:
            chain.append(parent)
            parent = by_urn.get(parent.parent_urn)
        assert chain and chain[-1] is top, f"{resource.type} {resource.name} is outside the component"
        if resource.type not in COMPONENT_TYPES:
            assert chain[0].type in COMPONENT_TYPES - {"keepalived-vip:openstack:KeepalivedVip"}, resource.name


def test_the_stack_builds_network_subnet_and_router_like_the_procedure(example):
    (network,) = example.of_type("Network")
    (subnet,) = example.of_type("Subnet")
    (router,) = example.of_type("Router")
    (interface,) = example.of_type("RouterInterface")
    assert network.input("name") == "mynetwork"
    assert subnet.input("name") == "mysubnet" and subnet.input("cidr") == "192.168.0.0/24"
    assert subnet.input("networkId") == network.id
    assert subnet.input("gatewayIp") == "192.168.0.1"
    assert router.input("externalNetworkId") == "ext-net-id"
    assert interface.input("routerId") == router.id and interface.input("subnetId") == subnet.id


def test_the_dhcp_pool_leaves_the_vip_out(example):
    (subnet,) = example.of_type("Subnet")
    pools = subnet.input("allocationPools")
    vip = ipaddress.IPv4Address("192.168.0.254")
    for pool in pools:
        assert not ipaddress.IPv4Address(pool["start"]) <= vip <= ipaddress.IPv4Address(pool["end"])
    assert pools == [{"start": "192.168.0.2", "end": "192.168.0.253"}]


def test_the_vip_port_holds_the_vip_and_is_attached_to_no_instance(example):
    vip_port = example.named("keepalived-vip-vip-port")
    assert vip_port.input("fixedIps") == [{"subnetId": example.outputs["subnetId"], "ipAddress": "192.168.0.254"}]
    assert vip_port.input("adminStateUp") is False
    assert not vip_port.input("deviceId")
    assert vip_port.outputs["deviceId"] == ""
    for instance in example.of_type("Instance"):
        assert vip_port.id not in [n["port"] for n in instance.input("networks")]
    assert example.outputs["vipPortId"] == vip_port.id


def test_each_node_port_allows_exactly_the_vip(example):
    ports = node_ports(example)
    assert set(ports) == {"kld-vm-1", "kld-vm-2"}
    for port in ports.values():
        assert port.input("allowedAddressPairs") == [{"ipAddress": "192.168.0.254"}]
        assert port.input("portSecurityEnabled") is True
        assert port.input("securityGroupIds") == [example.outputs["nodeSecurityGroupId"]]
    jumphost_port = example.called("kld-jumphost-vm-port", "Port")
    assert not jumphost_port.input("allowedAddressPairs")


def test_vrrp_flows_only_among_nodes_and_ssh_icmp_only_from_the_jumphost(example):
    groups = {g.name: g.id for g in example.of_type("SecGroup")}
    nodes, jumphost = groups["keepalived-vip-nodes"], groups["keepalived-vip-jumphost"]
    rules = [
        (
            r.input("securityGroupId"),
            r.input("direction"),
            r.input("protocol"),
            r.input("portRangeMin"),
            r.input("remoteGroupId"),
            r.input("remoteIpPrefix"),
        )
        for r in example.of_type("SecGroupRule")
    ]
    assert sorted(rules, key=str) == sorted(
        [
            (nodes, "ingress", "112", None, nodes, None),
            (nodes, "ingress", "tcp", 22, jumphost, None),
            (nodes, "ingress", "icmp", None, jumphost, None),
            (jumphost, "ingress", "tcp", 22, None, "198.51.100.0/24"),
        ],
        key=str,
    )


def test_nothing_is_open_to_the_internet(example):
    for rule in example.of_type("SecGroupRule"):
        prefix = rule.input("remoteIpPrefix")
        if prefix:
            assert ipaddress.IPv4Network(prefix).prefixlen > 0
            assert rule.input("securityGroupId") == example.named("keepalived-vip-jumphost", "SecGroup").id
            assert rule.input("portRangeMin") == rule.input("portRangeMax") == 22


def test_the_nodes_boot_on_their_ports_in_an_anti_affinity_group_without_floating_ips(example):
    (group,) = example.of_type("ServerGroup")
    assert group.input("policies") == "soft-anti-affinity"
    ports = node_ports(example)
    floating_ports = {f.input("portId") for f in example.of_type("FloatingIp")}
    for name in ("kld-vm-1", "kld-vm-2"):
        instance = example.called(name, "Instance")
        assert instance.input("name") == name
        assert instance.input("networks") == [{"port": ports[name].id}]
        assert instance.input("schedulerHints") == [{"group": group.id}]
        assert instance.input("imageId") == FakeCloud().images["Ubuntu-22.04"], (
            "the image Glance has under imageName today"
        )
        assert instance.input("flavorName") == "STD2-1-2"
        assert ports[name].id not in floating_ports
        assert not instance.input("securityGroups"), "security groups belong on the port"
        assert instance.delete_before_replace, "a replacement needs the port the old instance holds"


def test_the_jumphost_gets_a_floating_ip_once_the_router_is_up(example):
    (floating_ip,) = example.of_type("FloatingIp")
    jumphost_port = example.called("kld-jumphost-vm-port", "Port")
    assert floating_ip.input("pool") == "ext-net"
    assert floating_ip.input("portId") == jumphost_port.id
    (interface,) = example.of_type("RouterInterface")
    assert interface.urn in floating_ip.dependencies
    jumphost = example.called("kld-jumphost-vm", "Instance")
    assert jumphost.input("networks") == [{"port": jumphost_port.id}]
    assert jumphost_port.input("securityGroupIds") == [example.named("keepalived-vip-jumphost", "SecGroup").id]


def test_the_jumphost_installs_the_checks_ping_and_nothing_secret(example):
    """Debian's cloud image comes without ping: the jumphost installs it at
    boot (a real VM of the local cloud showed it)."""
    user_data = example.called("kld-jumphost-vm", "Instance").input("userData")
    assert user_data.startswith("#cloud-config\n")
    document = yaml.safe_load(user_data)
    assert document["packages"] == ["iputils-ping"] and document["package_update"] is True
    assert EXAMPLE_PASSWORD not in user_data


def test_user_data_is_secret_and_carries_each_nodes_rendered_config(example):
    ports = node_ports(example)
    addresses = {name: port.outputs["allFixedIps"][0] for name, port in ports.items()}
    for name, other in (("kld-vm-1", "kld-vm-2"), ("kld-vm-2", "kld-vm-1")):
        instance = example.called(name, "Instance")
        assert instance.is_secret("userData")
        conf = keepalived_conf_of(example, name)
        assert conf["permissions"] == "0600"
        text = conf["content"]
        assert f"router_id {name}" in text
        assert f"unicast_src_ip {addresses[name]}" in text
        assert f"        {addresses[other]}\n" in text
        assert f"auth_pass {EXAMPLE_PASSWORD}" in text
        assert "192.168.0.254/24" in text
    assert "state MASTER" in keepalived_conf_of(example, "kld-vm-1")["content"]
    assert "state BACKUP" in keepalived_conf_of(example, "kld-vm-2")["content"]


def test_the_password_appears_in_no_input_that_is_not_secret(example):
    def leaks(value, secret=False):
        from pulumi.runtime import rpc

        if rpc.is_rpc_secret(value):
            return False
        if isinstance(value, dict):
            return any(leaks(v) for v in value.values())
        if isinstance(value, list):
            return any(leaks(v) for v in value)
        return isinstance(value, str) and EXAMPLE_PASSWORD in value

    for resource in example.resources:
        assert not leaks(resource.inputs), f"{resource.name} holds the password in plain text"
    assert EXAMPLE_PASSWORD not in json.dumps(example.outputs)


def test_the_outputs_are_the_documented_contract(example):
    outputs = example.outputs
    # vipFloatingIp is null without a public VIP, and a null output is not kept.
    assert set(outputs) == OUTPUT_KEYS - {"vipFloatingIp"}
    assert outputs["vipAddress"] == "192.168.0.254"
    assert outputs["jumphostName"] == "kld-jumphost-vm"
    assert outputs["sshUser"] == "ubuntu", "the check logs in as the stack says"
    assert ipaddress.IPv4Address(outputs["jumphostFloatingIp"]) in ipaddress.IPv4Network("203.0.113.0/24")
    assert outputs["networkId"] == example.of_type("Network")[0].id
    assert outputs["subnetId"] == example.of_type("Subnet")[0].id
    ports = node_ports(example)
    assert [n["name"] for n in outputs["nodes"]] == ["kld-vm-1", "kld-vm-2"]
    for node in outputs["nodes"]:
        assert set(node) == {"name", "instanceId", "portId", "ipAddress", "priority"}
        assert node["portId"] == ports[node["name"]].id
        assert node["instanceId"] == example.called(node["name"], "Instance").id
        assert node["ipAddress"] == ports[node["name"]].outputs["allFixedIps"][0]
        assert example.called(node["name"], "Instance").outputs["accessIpV4"] == node["ipAddress"]
    assert [n["priority"] for n in outputs["nodes"]] == [120, 90]
    # Null outputs are left out by the real engine (seen on the local cloud).
    assert "vipFloatingIp" not in outputs, "no public VIP unless asked for"
    assert not example.secret_outputs


def test_an_existing_network_is_looked_up_and_nothing_of_it_is_created():
    cloud = FakeCloud.with_external_network()
    found = cloud.add_existing_subnet(cidr="10.20.0.0/24", gateway_ip="10.20.0.1", allocated=("10.20.0.2", "10.20.0.3"))
    deployment = run_program({**EXAMPLE_CONFIG, "createNetwork": False, "vipAddress": "10.20.0.250"}, cloud)
    assert not {r.short_type for r in deployment.resources} & NETWORK_TYPES
    tokens = [token for token, _ in deployment.mocks.calls]
    assert "openstack:networking/getNetwork:getNetwork" in tokens
    assert "openstack:networking/getSubnet:getSubnet" in tokens
    assert deployment.outputs["networkId"] == found.network_id
    assert deployment.outputs["subnetId"] == found.id
    for port in deployment.of_type("Port"):
        assert port.input("networkId") == found.network_id
        assert port.input("fixedIps")[0]["subnetId"] == found.id
    # Neutron handed out free addresses only, around those already taken.
    addresses = {n["ipAddress"] for n in deployment.outputs["nodes"]}
    assert len(addresses) == 2 and not addresses & {"10.20.0.2", "10.20.0.3"}
    assert all(ipaddress.IPv4Address(a) in ipaddress.IPv4Network("10.20.0.0/24") for a in addresses)
    assert "10.20.0.250/24" in keepalived_conf_of(deployment, "kld-vm-1")["content"]


def test_a_vip_outside_the_existing_subnet_fails_before_anything_is_declared():
    cloud = FakeCloud.with_external_network()
    cloud.add_existing_subnet(cidr="10.20.0.0/24", gateway_ip="10.20.0.1")
    failed = run_program({**EXAMPLE_CONFIG, "createNetwork": False}, cloud, expect_failure=True)
    assert isinstance(failed.error, InvalidConfig)
    assert failed.error.keys == {"vipAddress", "subnetName"}
    assert "192.168.0.254 is not in the subnet 10.20.0.0/24" in str(failed.error)
    assert failed.resources == []


def test_a_missing_network_fails_naming_the_key():
    failed = run_program({**EXAMPLE_CONFIG, "createNetwork": False}, expect_failure=True)
    assert isinstance(failed.error, InvalidConfig) and failed.error.keys == {"networkName"}
    assert failed.resources == []


def test_a_missing_external_network_fails_naming_the_key():
    failed = run_program({**EXAMPLE_CONFIG, "externalNetworkName": "public"}, expect_failure=True)
    assert isinstance(failed.error, InvalidConfig) and failed.error.keys == {"externalNetworkName"}
    assert failed.resources == []


def images_answer(monkeypatch, reason: str) -> None:
    """Glance's look-ups fail as a failed invoke does under the engine: with the provider's words."""
    answer = OpenStackMocks.call

    def call(mocks, args):
        if args.token == "openstack:images/getImage:getImage":
            mocks.calls.append((args.token, dict(args.args)))
            return {}, [("name", reason)]
        return answer(mocks, args)

    monkeypatch.setattr(OpenStackMocks, "call", call)


def test_a_cloud_that_cannot_be_asked_is_said_so_not_blamed_on_the_key(monkeypatch):
    refused_login = "Authentication failed: The request you have made requires authentication. (HTTP 401)"
    images_answer(monkeypatch, refused_login)
    failed = run_program(EXAMPLE_CONFIG, expect_failure=True)
    assert isinstance(failed.error, CloudUnavailable), failed.error
    assert not isinstance(failed.error, InvalidConfig)
    assert "could not ask the cloud for the image named 'Ubuntu-22.04' (imageName)" in str(failed.error)
    assert refused_login in str(failed.error)
    assert failed.resources == []


def test_a_name_the_cloud_holds_twice_is_refused_naming_the_key(monkeypatch):
    images_answer(monkeypatch, "Your query returned more than one result. Please try a more specific search criteria")
    failed = run_program(EXAMPLE_CONFIG, expect_failure=True)
    assert isinstance(failed.error, InvalidConfig) and failed.error.keys == {"imageName"}
    assert "more than one image named 'Ubuntu-22.04'" in str(failed.error)
    assert failed.resources == []


def test_three_nodes_each_peer_with_the_two_others():
    nodes = [
        {"name": "kld-vm-1", "priority": 120},
        {"name": "kld-vm-2", "priority": 90},
        {"name": "kld-vm-3", "priority": 60, "ipAddress": "192.168.0.33"},
    ]
    deployment = run_program({**EXAMPLE_CONFIG, "nodes": nodes})
    addresses = {n["name"]: n["ipAddress"] for n in deployment.outputs["nodes"]}
    assert addresses["kld-vm-3"] == "192.168.0.33"
    (subnet,) = deployment.of_type("Subnet")
    assert subnet.input("allocationPools") == [
        {"start": "192.168.0.2", "end": "192.168.0.32"},
        {"start": "192.168.0.34", "end": "192.168.0.253"},
    ]
    states = {}
    for name, _own in addresses.items():
        text = keepalived_conf_of(deployment, name)["content"]
        states[name] = "MASTER" if "state MASTER" in text else "BACKUP"
        for other, address in addresses.items():
            assert (f"        {address}\n" in text) == (other != name)
    assert states == {"kld-vm-1": "MASTER", "kld-vm-2": "BACKUP", "kld-vm-3": "BACKUP"}


def test_multicast_sub_second_and_fixed_interface_reach_the_user_data():
    deployment = run_program(
        {
            **EXAMPLE_CONFIG,
            "vrrpMode": "multicast",
            "advertInterval": "0.5",
            "vrrpInterface": "eth1",
            "keyPairName": "ops",
        }
    )
    text = keepalived_conf_of(deployment, "kld-vm-1")["content"]
    assert "unicast" not in text
    assert "vrrp_version 3" in text and "advert_int 0.5" in text and "auth_pass" not in text
    assert "interface eth1" in text
    written = [f["path"] for f in user_data_of(deployment, "kld-vm-1")["write_files"]]
    assert written == [KEEPALIVED_CONF_PATH, NOTIFY_SCRIPT_PATH], "no interface detection with a fixed interface"
    for instance in deployment.of_type("Instance"):
        assert instance.input("keyPair") == "ops"


INVALID_PROGRAM_CONFIGS = [
    ("vrrpPassword", {"vrrpPassword": "far-too-long"}),
    ("vrrpPassword", {"vrrpPassword": None}),
    ("flavorName", {"flavorName": None}),
    ("sshAllowedCidrs", {"sshAllowedCidrs": ["0.0.0.0/0"]}),
    ("vipAddress", {"vipAddress": "192.168.0.1"}),
    ("nodes", {"nodes": [{"name": "only", "priority": 100}]}),
    ("nodes", {"nodes": [{"name": "a", "priority": 100}, {"name": "b", "priority": 100}]}),
    ("virtualRouterId", {"virtualRouterId": 300}),
    ("advertInterval", {"advertInterval": 0}),
    ("vrrpMode", {"vrrpMode": "anycast"}),
    ("subnetCidr", {"subnetCidr": "not-a-cidr"}),
    ("healthCheck", {"healthCheck": {"command": ""}}),
    ("servicePorts", {"servicePorts": [{"protocol": "icmp", "port": 1}], "serviceAllowedCidrs": ["10.0.0.0/8"]}),
    ("serviceAllowedCidrs", {"servicePorts": [{"protocol": "tcp", "port": 80}]}),
    ("notifyCommand", {"notifyCommand": "echo a\nreboot"}),
    ("vipFloatingIp", {"vipFloatingIp": "maybe"}),
    ("vipAdress", {"vipAdress": "192.168.0.10"}),
]


@pytest.mark.parametrize("key,changes", INVALID_PROGRAM_CONFIGS, ids=[k for k, _ in INVALID_PROGRAM_CONFIGS])
def test_bad_config_stops_the_program_before_any_resource(key, changes):
    config = {**EXAMPLE_CONFIG, **changes}
    config = {k: v for k, v in config.items() if v is not None}
    failed = run_program(config, expect_failure=True)
    assert isinstance(failed.error, InvalidConfig)
    assert key in failed.error.keys
    assert f"keepalived-vip:{key}:" in str(failed.error)
    assert failed.resources == []


def test_a_public_vip_gets_a_floating_ip_on_the_vip_port():
    deployment = run_program({**EXAMPLE_CONFIG, "vipFloatingIp": True})
    vip_port = deployment.named("keepalived-vip-vip-port")
    (public,) = [f for f in deployment.of_type("FloatingIp") if f.input("portId") == vip_port.id]
    assert public.input("pool") == "ext-net"
    assert public.parent_urn == deployment.named("keepalived-vip-vip", "VipPort").urn
    (interface,) = deployment.of_type("RouterInterface")
    assert interface.urn in public.dependencies
    assert deployment.outputs["vipFloatingIp"] == public.outputs["address"]
    assert deployment.outputs["vipFloatingIp"] != deployment.outputs["jumphostFloatingIp"]
    assert public.outputs["fixedIp"] == "192.168.0.254"


def test_service_ports_open_only_to_the_listed_cidrs():
    deployment = run_program(
        {
            **EXAMPLE_CONFIG,
            "servicePorts": [{"protocol": "tcp", "port": 443}, {"protocol": "udp", "port": 53}],
            "serviceAllowedCidrs": ["198.51.100.0/24", "203.0.113.0/25"],
        }
    )
    nodes = deployment.named("keepalived-vip-nodes", "SecGroup").id
    service_rules = {
        (r.input("protocol"), r.input("portRangeMin"), r.input("portRangeMax"), r.input("remoteIpPrefix"))
        for r in deployment.of_type("SecGroupRule")
        if r.input("securityGroupId") == nodes and r.input("remoteIpPrefix")
    }
    assert service_rules == {
        (p, n, n, c) for p, n in (("tcp", 443), ("udp", 53)) for c in ("198.51.100.0/24", "203.0.113.0/25")
    }


def test_by_default_no_service_port_is_open(example):
    nodes = example.named("keepalived-vip-nodes", "SecGroup").id
    assert not [
        r for r in example.of_type("SecGroupRule") if r.input("securityGroupId") == nodes and r.input("remoteIpPrefix")
    ]


def test_health_check_notify_and_no_preempt_reach_the_secret_user_data():
    deployment = run_program(
        {
            **EXAMPLE_CONFIG,
            "preempt": False,
            "notifyCommand": "systemctl reload haproxy",
            "healthCheck": {"command": "systemctl is-active --quiet haproxy"},
        }
    )
    for name in ("kld-vm-1", "kld-vm-2"):
        assert deployment.called(name, "Instance").is_secret("userData")
        document = user_data_of(deployment, name)
        text = keepalived_conf_of(deployment, name)["content"]
        assert "state BACKUP" in text and "nopreempt" in text
        assert "track_script" in text and "notify /etc/keepalived/notify.sh root" in text
        paths = {f["path"] for f in document["write_files"]}
        assert {"/etc/keepalived/health-check.sh", "/etc/keepalived/notify.sh"} <= paths
        assert document["users"][0] == "default"


@pytest.mark.parametrize("changes,key,words", INVALID, ids=[f"{c[1]}-{i}" for i, c in enumerate(INVALID)])
def test_every_invalid_value_of_the_table_declares_nothing(changes, key, words):
    config = {**EXAMPLE_CONFIG, **changes}
    failed = run_program({k: v for k, v in config.items() if v is not None}, expect_failure=True)
    assert isinstance(failed.error, InvalidConfig)
    assert key in failed.error.keys and words in str(failed.error)
    assert failed.resources == []

"""Config in, typed settings or a clear error out: no Pulumi involved."""

import json

import pytest

from vip_stack.settings import (
    DEFAULTS,
    InvalidConfig,
    SubnetFacts,
    check_addresses,
    parse_settings,
)

from .harness import EXAMPLE_CONFIG

REQUIRED = {"flavorName": "STD2-1-2", "sshAllowedCidrs": '["198.51.100.0/24"]', "vrrpPassword": "s3cr3t"}


def with_(**changes):
    config = dict(REQUIRED)
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return config


def test_the_defaults_are_the_reference_procedure():
    settings = parse_settings(REQUIRED)
    assert settings.vip_address == "192.168.0.254"
    assert settings.subnet_cidr == "192.168.0.0/24"
    assert [(n.name, n.priority) for n in settings.nodes] == [("kld-vm-1", 120), ("kld-vm-2", 90)]
    assert settings.jumphost_name == "kld-jumphost-vm"
    assert settings.virtual_router_id == 254
    assert settings.advert_interval == 1
    assert settings.vrrp_version == 2 and settings.uses_authentication
    assert settings.vrrp_interface is None


def test_config_arrives_as_text_or_typed_values_alike():
    as_text = parse_settings(
        with_(
            createNetwork="false",
            virtualRouterId="17",
            advertInterval="0.5",
            nodes='[{"name": "a", "priority": 2}, {"name": "b", "priority": 1}]',
        )
    )
    typed = parse_settings(
        with_(
            createNetwork=False,
            virtualRouterId=17,
            advertInterval=0.5,
            nodes=[{"name": "a", "priority": 2}, {"name": "b", "priority": 1}],
        )
    )
    assert as_text == typed
    assert typed.vrrp_version == 3 and not typed.uses_authentication


def test_the_password_never_shows_in_a_repr():
    settings = parse_settings(REQUIRED)
    assert "s3cr3t" not in repr(settings)
    assert "s3cr3t" not in str(settings.vrrp_password)
    assert settings.vrrp_password.get_secret_value() == "s3cr3t"


def test_the_example_stack_file_is_valid():
    assert parse_settings(EXAMPLE_CONFIG).vrrp_mode == "unicast"


# (changes, key named in the error, words the message must hold)
INVALID = [
    ({"flavorName": None}, "flavorName", "required"),
    ({"sshAllowedCidrs": None}, "sshAllowedCidrs", "required"),
    ({"vrrpPassword": None}, "vrrpPassword", "required"),
    ({"createNetwork": "yes"}, "createNetwork", "true or false"),
    ({"subnetCidr": "192.168.0.0/33"}, "subnetCidr", "not a valid IPv4 CIDR"),
    ({"subnetCidr": "192.168.0.1/24"}, "subnetCidr", "host bits"),
    ({"subnetCidr": "192.168.0.0/30"}, "subnetCidr", "too small"),
    ({"vipAddress": "192.168.0.300"}, "vipAddress", "not an IPv4 address"),
    ({"vipAddress": "10.0.0.5"}, "vipAddress", "not in the subnet"),
    ({"vipAddress": "192.168.0.0"}, "vipAddress", "network address"),
    ({"vipAddress": "192.168.0.255"}, "vipAddress", "broadcast address"),
    ({"vipAddress": "192.168.0.1"}, "vipAddress", "gateway address"),
    (
        {"nodes": '[{"name": "a", "priority": 2, "ipAddress": "192.168.0.254"}, {"name": "b", "priority": 1}]'},
        "vipAddress",
        "also the ipAddress of a",
    ),
    ({"flavorName": ""}, "flavorName", "empty"),
    ({"imageName": ""}, "imageName", "empty"),
    ({"sshAllowedCidrs": "[]"}, "sshAllowedCidrs", "non-empty list"),
    ({"sshAllowedCidrs": '["198.51.100.7/24"]'}, "sshAllowedCidrs", "not a valid IPv4 CIDR"),
    ({"sshAllowedCidrs": '["0.0.0.0/0"]'}, "sshAllowedCidrs", "whole internet"),
    ({"sshAllowedCidrs": "198.51.100.0/24"}, "sshAllowedCidrs", "not valid JSON"),
    ({"nodes": '[{"name": "a", "priority": 2}]'}, "nodes", "at least 2"),
    ({"nodes": '{"name": "a"}'}, "nodes", "must be a list"),
    ({"nodes": '[{"name": "a", "priority": 2}, {"name": "a", "priority": 1}]'}, "nodes", "more than once"),
    ({"nodes": '[{"name": "a", "priority": 2}, {"name": "b", "priority": 2}]'}, "nodes", "distinct"),
    ({"nodes": '[{"name": "a", "priority": 0}, {"name": "b", "priority": 1}]'}, "nodes", "1 to 254"),
    ({"nodes": '[{"name": "a", "priority": 255}, {"name": "b", "priority": 1}]'}, "nodes", "1 to 254"),
    ({"nodes": '[{"name": "a", "priority": "high"}, {"name": "b", "priority": 1}]'}, "nodes", "integer"),
    ({"nodes": '[{"name": "a b", "priority": 2}, {"name": "b", "priority": 1}]'}, "nodes", "not a valid name"),
    ({"nodes": '[{"priority": 2}, {"name": "b", "priority": 1}]'}, "nodes", "name is required"),
    ({"nodes": '[{"name": "a", "priority": 2, "ip": "x"}, {"name": "b", "priority": 1}]'}, "nodes", "unknown fields"),
    (
        {"nodes": '[{"name": "a", "priority": 2, "ipAddress": "192.168.1.5"}, {"name": "b", "priority": 1}]'},
        "nodes",
        "not in the subnet",
    ),
    (
        {
            "nodes": '[{"name": "a", "priority": 2, "ipAddress": "192.168.0.5"},'
            ' {"name": "b", "priority": 1, "ipAddress": "192.168.0.5"}]'
        },
        "nodes",
        "more than one node",
    ),
    ({"jumphostName": "kld-vm-1"}, "jumphostName", "also a node's name"),
    ({"jumphostName": "-bad"}, "jumphostName", "not a valid name"),
    ({"virtualRouterId": "0"}, "virtualRouterId", "1 to 255"),
    ({"virtualRouterId": "256"}, "virtualRouterId", "1 to 255"),
    ({"virtualRouterId": "1.5"}, "virtualRouterId", "integer"),
    ({"advertInterval": "0"}, "advertInterval", "greater than 0"),
    ({"advertInterval": "-1"}, "advertInterval", "greater than 0"),
    ({"advertInterval": "fast"}, "advertInterval", "number"),
    ({"advertInterval": "0.005"}, "advertInterval", "VRRP v3"),
    ({"advertInterval": "0.125"}, "advertInterval", "hundredths"),
    ({"advertInterval": "256"}, "advertInterval", "at most 255"),
    ({"vrrpPassword": "123456789"}, "vrrpPassword", "1 to 8"),
    ({"vrrpPassword": "pa ss"}, "vrrpPassword", "white space"),
    ({"vrrpPassword": "pa#ss"}, "vrrpPassword", "except"),
    ({"vrrpPassword": "pa$s"}, "vrrpPassword", "except"),
    ({"vrrpPassword": "pässwd"}, "vrrpPassword", "ASCII"),
    ({"vrrpMode": "broadcast"}, "vrrpMode", "unicast, multicast"),
    ({"vrrpInterface": "a-very-long-interface"}, "vrrpInterface", "not a valid interface name"),
    ({"vrrpInterface": "eth0; reboot"}, "vrrpInterface", "not a valid interface name"),
    ({"serverGroupPolicy": "affinity"}, "serverGroupPolicy", "anti-affinity"),
    ({"vipAdress": "192.168.0.10"}, "vipAdress", "not a known key"),
    ({"preempt": "no"}, "preempt", "true or false"),
    ({"vipFloatingIp": "1"}, "vipFloatingIp", "true or false"),
    ({"healthCheck": '"curl localhost"'}, "healthCheck", "must be an object"),
    ({"healthCheck": '{"command": "  "}'}, "healthCheck", "non-empty shell command"),
    ({"healthCheck": '{"command": "a\\nb"}'}, "healthCheck", "single line"),
    ({"healthCheck": '{"command": "true", "interval": 0}'}, "healthCheck", "interval must be"),
    ({"healthCheck": '{"command": "true", "fall": 1.5}'}, "healthCheck", "fall must be"),
    ({"healthCheck": '{"command": "true", "every": 3}'}, "healthCheck", "unknown fields"),
    ({"notifyCommand": "a\rb"}, "notifyCommand", "single line"),
    (
        {"servicePorts": '[{"protocol": "tcp", "port": 0}]', "serviceAllowedCidrs": '["10.0.0.0/8"]'},
        "servicePorts",
        "1 to 65535",
    ),
    (
        {"servicePorts": '[{"protocol": "sctp", "port": 80}]', "serviceAllowedCidrs": '["10.0.0.0/8"]'},
        "servicePorts",
        "tcp, udp",
    ),
    (
        {
            "servicePorts": '[{"protocol": "tcp", "port": 80}, {"protocol": "tcp", "port": 80}]',
            "serviceAllowedCidrs": '["10.0.0.0/8"]',
        },
        "servicePorts",
        "more than once",
    ),
    ({"servicePorts": '[{"protocol": "tcp", "port": 80}]'}, "serviceAllowedCidrs", "would open nothing"),
    ({"serviceAllowedCidrs": '["10.0.0.0/8"]'}, "servicePorts", "would open nothing"),
    (
        {"servicePorts": '[{"protocol": "tcp", "port": 80}]', "serviceAllowedCidrs": '["10.0.0.1/8"]'},
        "serviceAllowedCidrs",
        "not a valid IPv4 CIDR",
    ),
]


def test_the_features_beyond_the_procedure_are_parsed():
    settings = parse_settings(
        with_(
            preempt="false",
            notifyCommand="systemctl reload haproxy",
            vipFloatingIp="true",
            healthCheck='{"command": "curl -fsS http://127.0.0.1/healthz", "interval": 3}',
            servicePorts='[{"protocol": "tcp", "port": 443}]',
            serviceAllowedCidrs='["198.51.100.0/24"]',
        )
    )
    assert settings.preempt is False
    assert settings.notify_command == "systemctl reload haproxy"
    check = settings.health_check
    assert check is not None
    assert (check.command, check.interval, check.fall, check.rise) == ("curl -fsS http://127.0.0.1/healthz", 3, 2, 2)
    assert settings.vip_floating_ip is True
    assert [(p.protocol, p.port) for p in settings.service_ports] == [("tcp", 443)]
    assert settings.service_allowed_cidrs == ("198.51.100.0/24",)


@pytest.mark.parametrize("changes,key,words", INVALID, ids=[f"{c[1]}-{i}" for i, c in enumerate(INVALID)])
def test_a_bad_value_is_refused_naming_its_key(changes, key, words):
    with pytest.raises(InvalidConfig) as raised:
        parse_settings(with_(**changes))
    assert key in raised.value.keys
    message = str(raised.value)
    assert f"keepalived-vip:{key}:" in message
    assert words in message


def test_every_problem_is_reported_at_once():
    with pytest.raises(InvalidConfig) as raised:
        parse_settings(with_(vrrpPassword="123456789", virtualRouterId="0", flavorName=None))
    assert raised.value.keys == {"vrrpPassword", "virtualRouterId", "flavorName"}


def test_a_found_subnet_is_checked_like_a_created_one():
    settings = parse_settings(with_(createNetwork="false"))
    check_addresses(settings, SubnetFacts(cidr="192.168.0.0/24", gateway_ip="192.168.0.1"))
    with pytest.raises(InvalidConfig) as raised:
        check_addresses(settings, SubnetFacts(cidr="10.1.0.0/16", gateway_ip="10.1.0.1"))
    assert raised.value.keys == {"vipAddress", "subnetName"}
    with pytest.raises(InvalidConfig) as raised:
        check_addresses(settings, SubnetFacts(cidr="192.168.0.0/24", gateway_ip="192.168.0.254"))
    assert "gateway address" in str(raised.value)


def test_every_default_is_a_valid_value():
    # A default that fails its own rule would break every stack that omits the key.
    parse_settings({**REQUIRED, **{k: v for k, v in DEFAULTS.items()}})


def test_a_mistyped_key_from_the_cli_is_reported(monkeypatch):
    # The Pulumi CLI hands a program its config as JSON in PULUMI_CONFIG.
    import pulumi

    from vip_stack.settings import settings_from_config

    # Only the CLI's config: none left over from a run under the mocks.
    pulumi.runtime.set_all_config({})
    monkeypatch.setenv(
        "PULUMI_CONFIG",
        json.dumps(
            {
                "keepalived-vip:flavorName": "STD2-1-2",
                "keepalived-vip:sshAllowedCidrs": '["198.51.100.0/24"]',
                "keepalived-vip:vrrpPassword": "s3cr3t",
                "keepalived-vip:vipAdress": "192.168.0.10",
                "openstack:region": "RegionOne",
            }
        ),
    )
    with pytest.raises(InvalidConfig) as raised:
        settings_from_config(pulumi.Config("keepalived-vip"))
    assert raised.value.keys == {"vipAdress"}

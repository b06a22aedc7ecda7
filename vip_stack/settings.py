"""Typed settings of the stack: read once from config, validated, then passed down.

Everything here is a plain function of plain values, so it can be tested without
Pulumi. `settings_from_config` is the only place that touches `pulumi.Config`.

Validation runs in two steps, both before any resource is declared:
`parse_settings` checks every value on its own; `check_addresses` checks the
addresses against the subnet they will live in (which, with createNetwork=false,
is only known after looking the subnet up).
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Optional, Sequence

from pulumi.errors import RunError

from .addressing import default_gateway

NAMESPACE = "keepalived-vip"

# Defaults follow the reference procedure. Pulumi.yaml declares the same ones
# (a test keeps the two in step).
DEFAULTS: dict[str, Any] = {
    "createNetwork": True,
    "networkName": "mynetwork",
    "subnetName": "mysubnet",
    "subnetCidr": "192.168.0.0/24",
    "vipAddress": "192.168.0.254",
    "imageName": "Ubuntu-22.04",
    "keyPairName": "",
    "externalNetworkName": "ext-net",
    "nodes": [
        {"name": "kld-vm-1", "priority": 120},
        {"name": "kld-vm-2", "priority": 90},
    ],
    "jumphostName": "kld-jumphost-vm",
    "virtualRouterId": 254,
    "advertInterval": 1,
    "vrrpMode": "unicast",
    "vrrpInterface": "",
    "serverGroupPolicy": "soft-anti-affinity",
    "preempt": True,
    "healthCheck": None,
    "notifyCommand": "",
    "vipFloatingIp": False,
    "servicePorts": [],
    "serviceAllowedCidrs": [],
    "rolloutCheck": "auto",
    "rolloutTimeoutSeconds": 900,
    "rolloutFixedWaitSeconds": 300,
    "sshUser": "ubuntu",
}
REQUIRED_KEYS = ("flavorName", "sshAllowedCidrs", "vrrpPassword")
SECRET_KEYS = ("vrrpPassword",)
ALL_KEYS = tuple(DEFAULTS) + REQUIRED_KEYS

VRRP_MODES = ("unicast", "multicast")
SERVER_GROUP_POLICIES = ("soft-anti-affinity", "anti-affinity")

# keepalived keeps only the first 8 characters of auth_pass and then fails its
# own config test; refuse longer passwords instead of letting them shrink.
MAX_VRRP_PASSWORD_LENGTH = 8
# Printable ASCII without what keepalived's parser treats specially: white space
# splits tokens, '#' and '!' start comments, '{' '}' open and close blocks,
# '"' quotes, '$' starts a parameter substitution, '\' escapes.
VRRP_PASSWORD_PATTERN = re.compile(r"^[!-~]+$")
VRRP_PASSWORD_FORBIDDEN = set(' #!{}"$\\')
# Names become router_id and instance names: a DNS label keeps them safe in
# keepalived.conf and valid as Nova server names.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
# A Linux interface name: at most 15 bytes, no '/', no white space.
INTERFACE_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")

# VRRP v3 carries the interval in centiseconds in a 12-bit field.
V3_MIN_ADVERT, V3_MAX_ADVERT = 0.01, 40.95
V2_MAX_ADVERT = 255

SERVICE_PROTOCOLS = ("tcp", "udp")
# How a rollout learns that a replaced node is back in service: over SSH
# through the jumphost, or by waiting a fixed time; auto picks ssh when the
# nodes have a key pair.
ROLLOUT_CHECKS = ("auto", "ssh", "fixed-wait")
ROLLOUT_TIMEOUT_RANGE = (60, 7200)
ROLLOUT_FIXED_WAIT_RANGE = (0, 3600)
# A login name as useradd accepts it.
SSH_USER_PATTERN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
HEALTH_CHECK_DEFAULTS = {"interval": 2, "fall": 2, "rise": 2}


@dataclass(frozen=True)
class ConfigProblem:
    key: str
    message: str
    # The config namespace the key lives in: the project's own, or another
    # program's for each VIP it declares.
    namespace: str = NAMESPACE

    def __str__(self) -> str:
        return f"{self.namespace}:{self.key}: {self.message}"


class InvalidConfig(RunError):
    """Raised before any resource is declared; lists every problem found.

    A RunError, so that `pulumi up` prints the message without a traceback."""

    def __init__(self, problems: Sequence[ConfigProblem]):
        self.problems = tuple(problems)
        super().__init__(
            "invalid stack configuration:\n" + "\n".join(f"  {p}" for p in self.problems)
        )

    @property
    def keys(self) -> set[str]:
        return {p.key for p in self.problems}

    def in_namespace(self, namespace: str) -> "InvalidConfig":
        """The same problems, said of the keys in another config namespace."""
        return InvalidConfig([replace(problem, namespace=namespace) for problem in self.problems])


class SecretStr:
    """Holds the VRRP password in memory without ever printing it.

    The only way out to Pulumi is `output()`, which is a secret Output.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def output(self):
        import pulumi

        return pulumi.Output.secret(self._value)

    def __repr__(self) -> str:
        return "SecretStr('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class NodeSettings:
    name: str
    priority: int
    ip_address: Optional[str] = None


@dataclass(frozen=True)
class NetworkSettings:
    create: bool
    network_name: str
    subnet_name: str
    # The CIDR to create; with create=False it comes from the looked-up subnet.
    subnet_cidr: Optional[str]
    external_network_name: str


@dataclass(frozen=True)
class HealthCheck:
    """A command keepalived runs every `interval` seconds; `fall` failures in a
    row take the node out of the election, `rise` successes bring it back."""

    command: str
    interval: int
    fall: int
    rise: int


@dataclass(frozen=True)
class ServicePort:
    protocol: str
    port: int


def skew(version: int, advert_interval: float, priority: int) -> float:
    """How long a backup of this priority waits after the master stops (RFC 3768/5798)."""
    if version == 2:
        return (256 - priority) / 256
    return (256 - priority) * advert_interval / 256


def master_down_interval(version: int, advert_interval: float, priority: int) -> float:
    """How long a backup of this priority waits without adverts before it takes over."""
    return 3 * advert_interval + skew(version, advert_interval, priority)


@dataclass(frozen=True)
class VrrpSettings:
    virtual_router_id: int
    advert_interval: float
    password: SecretStr = field(repr=False)
    mode: str
    # None: the node finds it at boot from its default route.
    interface: Optional[str]
    preempt: bool = True
    health_check: Optional[HealthCheck] = None
    # Shell command run on every state change with the new state as its argument.
    notify_command: Optional[str] = None

    @property
    def version(self) -> int:
        # VRRP v2 carries whole seconds only; anything finer needs v3.
        return 2 if float(self.advert_interval).is_integer() else 3

    @property
    def uses_authentication(self) -> bool:
        # keepalived has no PASS authentication under VRRP v3.
        return self.version == 2

    def master_down_interval(self, priority: int) -> float:
        return master_down_interval(self.version, self.advert_interval, priority)


@dataclass(frozen=True)
class RolloutSettings:
    """How `pulumi up` replaces nodes one at a time."""

    # "ssh": drain each node before it goes and wait until the new one is in
    # service; "fixed-wait": no access to the nodes, wait fixed_wait_seconds.
    check: str = "fixed-wait"
    timeout_seconds: int = 900
    fixed_wait_seconds: int = 300
    ssh_user: str = "ubuntu"

    @property
    def uses_ssh(self) -> bool:
        return self.check == "ssh"


@dataclass(frozen=True)
class Settings:
    network: NetworkSettings
    vip_address: str
    image_name: str
    flavor_name: str
    key_pair_name: Optional[str]
    ssh_allowed_cidrs: tuple[str, ...]
    nodes: tuple[NodeSettings, ...]
    jumphost_name: str
    vrrp: VrrpSettings
    server_group_policy: str
    vip_floating_ip: bool = False
    service_ports: tuple[ServicePort, ...] = ()
    service_allowed_cidrs: tuple[str, ...] = ()
    rollout: RolloutSettings = RolloutSettings()
    # Where the keys were read from, for the errors that name them.
    namespace: str = NAMESPACE


@dataclass(frozen=True)
class SubnetFacts:
    """What the stack needs to know of the subnet, created or found."""

    cidr: str
    gateway_ip: Optional[str]
    network_id: Optional[str] = None
    subnet_id: Optional[str] = None

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)


class _Reader:
    """Turns raw config values (strings as Pulumi stores them, or typed values)
    into typed ones, recording a problem per bad key instead of stopping."""

    def __init__(self, raw: Mapping[str, Any]):
        self.raw = raw
        self.problems: list[ConfigProblem] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(ConfigProblem(key, message))

    def value(self, key: str) -> Any:
        value = self.raw.get(key)
        if value is None:
            if key in REQUIRED_KEYS:
                self.problem(key, "is required but not set")
                return None
            return DEFAULTS[key]
        return value

    def string(self, key: str) -> Optional[str]:
        value = self.value(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.problem(key, f"must be a string, got {value!r}")
            return None
        return value.strip()

    def boolean(self, key: str) -> Optional[bool]:
        value = self.value(key)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        self.problem(key, f"must be true or false, got {value!r}")
        return None

    def integer(self, key: str) -> Optional[int]:
        value = self.value(key)
        if isinstance(value, bool):
            self.problem(key, f"must be an integer, got {value!r}")
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            return int(value)
        self.problem(key, f"must be an integer, got {value!r}")
        return None

    def number(self, key: str) -> Optional[float]:
        value = self.value(key)
        if isinstance(value, bool):
            self.problem(key, f"must be a number, got {value!r}")
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.problem(key, f"must be a number, got {value!r}")
            return None
        if not math.isfinite(number):
            self.problem(key, f"must be a finite number, got {value!r}")
            return None
        return number

    def json_value(self, key: str) -> Any:
        # Pulumi hands objects and lists to the program as JSON text.
        value = self.value(key)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as error:
                self.problem(key, f"is not valid JSON ({error.msg})")
                return None
        return value


def _ipv4_address(reader: _Reader, key: str, text: Any) -> Optional[str]:
    try:
        return str(ipaddress.IPv4Address(str(text).strip()))
    except ValueError:
        reader.problem(key, f"{text!r} is not an IPv4 address")
        return None


def _ipv4_cidr(reader: _Reader, key: str, text: Any) -> Optional[str]:
    try:
        return str(ipaddress.IPv4Network(str(text).strip(), strict=True))
    except ValueError as error:
        reader.problem(key, f"{text!r} is not a valid IPv4 CIDR ({error})")
        return None


def _name(reader: _Reader, key: str, text: Optional[str]) -> Optional[str]:
    if text is None:
        return None
    if not NAME_PATTERN.match(text):
        reader.problem(
            key,
            f"{text!r} is not a valid name: use letters, digits and '-', "
            "at most 63 characters, not starting or ending with '-'",
        )
        return None
    return text


def _parse_nodes(reader: _Reader) -> tuple[NodeSettings, ...]:
    key = "nodes"
    raw_nodes = reader.json_value(key)
    if raw_nodes is None:
        return ()
    if not isinstance(raw_nodes, list):
        reader.problem(key, "must be a list of {name, priority, ipAddress?}")
        return ()
    if len(raw_nodes) < 2:
        reader.problem(key, f"needs at least 2 nodes for a VIP to fail over, got {len(raw_nodes)}")
    nodes: list[NodeSettings] = []
    for index, raw in enumerate(raw_nodes):
        where = f"{key}[{index}]"
        if not isinstance(raw, Mapping):
            reader.problem(key, f"{where} must be an object with name and priority, got {raw!r}")
            continue
        unknown = set(raw) - {"name", "priority", "ipAddress"}
        if unknown:
            reader.problem(key, f"{where} has unknown fields {sorted(unknown)}")
        name = raw.get("name")
        if not isinstance(name, str):
            reader.problem(key, f"{where}.name is required and must be a string")
            name = None
        else:
            name = _name(reader, key, name)
        priority = raw.get("priority")
        if isinstance(priority, bool) or not isinstance(priority, int):
            reader.problem(key, f"{where}.priority must be an integer from 1 to 254, got {priority!r}")
            priority = None
        elif not 1 <= priority <= 254:
            # 255 is reserved for the address owner, 0 for "stopping".
            reader.problem(key, f"{where}.priority must be from 1 to 254, got {priority}")
            priority = None
        ip_address = raw.get("ipAddress")
        if ip_address is not None:
            ip_address = _ipv4_address(reader, key, ip_address)
            if ip_address is None:
                continue
        if name is not None and priority is not None:
            nodes.append(NodeSettings(name=name, priority=priority, ip_address=ip_address))

    names = [node.name for node in nodes]
    for name in sorted({n for n in names if names.count(n) > 1}):
        reader.problem(key, f"node name {name!r} is used more than once")
    priorities = [node.priority for node in nodes]
    for priority in sorted({p for p in priorities if priorities.count(p) > 1}):
        # Equal priorities make the election fall to the higher address:
        # never what a user who wrote the list meant.
        reader.problem(key, f"priority {priority} is used more than once; priorities must be distinct")
    addresses = [node.ip_address for node in nodes if node.ip_address]
    for address in sorted({a for a in addresses if addresses.count(a) > 1}):
        reader.problem(key, f"ipAddress {address} is used by more than one node")
    return tuple(nodes)


def _shell_command(reader: _Reader, key: str, value: Any, what: str) -> Optional[str]:
    if not isinstance(value, str) or not value.strip():
        reader.problem(key, f"{what} must be a non-empty shell command")
        return None
    if "\n" in value or "\r" in value or "\0" in value:
        reader.problem(key, f"{what} must be a single line")
        return None
    return value.strip()


def _parse_health_check(reader: _Reader) -> Optional[HealthCheck]:
    key = "healthCheck"
    raw = reader.json_value(key)
    if raw is None or raw == "":
        return None
    if not isinstance(raw, Mapping):
        reader.problem(key, "must be an object {command, interval?, fall?, rise?}")
        return None
    unknown = set(raw) - {"command", "interval", "fall", "rise"}
    if unknown:
        reader.problem(key, f"has unknown fields {sorted(unknown)}")
    command = _shell_command(reader, key, raw.get("command"), "command")
    numbers = {}
    for field_name, default in HEALTH_CHECK_DEFAULTS.items():
        value = raw.get(field_name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3600:
            reader.problem(key, f"{field_name} must be a whole number from 1 to 3600, got {value!r}")
            return None
        numbers[field_name] = value
    if command is None:
        return None
    return HealthCheck(command=command, **numbers)


def _parse_service_ports(reader: _Reader) -> tuple[ServicePort, ...]:
    key = "servicePorts"
    raw = reader.json_value(key)
    if raw is None:
        return ()
    if not isinstance(raw, list):
        reader.problem(key, "must be a list of {protocol, port}")
        return ()
    ports = []
    for index, item in enumerate(raw):
        where = f"{key}[{index}]"
        if not isinstance(item, Mapping) or set(item) != {"protocol", "port"}:
            reader.problem(key, f"{where} must be {{protocol, port}}, got {item!r}")
            continue
        protocol, port = item["protocol"], item["port"]
        if protocol not in SERVICE_PROTOCOLS:
            reader.problem(key, f"{where}.protocol must be one of {', '.join(SERVICE_PROTOCOLS)}, got {protocol!r}")
            continue
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            reader.problem(key, f"{where}.port must be from 1 to 65535, got {port!r}")
            continue
        ports.append(ServicePort(protocol, port))
    duplicates = {p for p in ports if ports.count(p) > 1}
    for duplicate in sorted(duplicates, key=lambda p: (p.protocol, p.port)):
        reader.problem(key, f"{duplicate.protocol}/{duplicate.port} is listed more than once")
    return tuple(ports)


def _parse_password(reader: _Reader) -> Optional[SecretStr]:
    key = "vrrpPassword"
    value = reader.value(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        reader.problem(key, "must be a non-empty string")
        return None
    if len(value) > MAX_VRRP_PASSWORD_LENGTH:
        reader.problem(
            key,
            f"is {len(value)} characters long; keepalived uses at most "
            f"{MAX_VRRP_PASSWORD_LENGTH} (it would silently cut the rest), so use 1 to 8",
        )
        return None
    if not VRRP_PASSWORD_PATTERN.match(value) or VRRP_PASSWORD_FORBIDDEN & set(value):
        reader.problem(
            key,
            "may hold printable ASCII characters except white space and "
            + " ".join(sorted(VRRP_PASSWORD_FORBIDDEN - {" "})),
        )
        return None
    return SecretStr(value)


def _parse_advert_interval(reader: _Reader) -> Optional[float]:
    key = "advertInterval"
    interval = reader.number(key)
    if interval is None:
        return None
    if interval <= 0:
        reader.problem(key, f"must be greater than 0 seconds, got {interval:g}")
        return None
    if interval.is_integer():
        if interval > V2_MAX_ADVERT:
            reader.problem(key, f"must be at most {V2_MAX_ADVERT} seconds, got {interval:g}")
            return None
        return interval
    # A fractional interval means VRRP v3, which counts in centiseconds.
    if not V3_MIN_ADVERT <= interval <= V3_MAX_ADVERT:
        reader.problem(
            key,
            f"a fractional interval uses VRRP v3, which allows {V3_MIN_ADVERT} to "
            f"{V3_MAX_ADVERT} seconds; got {interval:g}",
        )
        return None
    if abs(round(interval * 100) - interval * 100) > 1e-6:
        reader.problem(key, f"VRRP v3 counts in hundredths of a second; {interval:g} is finer")
        return None
    return interval


def _parse_rollout(reader: _Reader, key_pair_name: Optional[str]) -> Optional[RolloutSettings]:
    check = reader.string("rolloutCheck")
    if check is not None and check not in ROLLOUT_CHECKS:
        reader.problem("rolloutCheck", f"must be one of {', '.join(ROLLOUT_CHECKS)}, got {check!r}")
        check = None
    if check == "ssh" and not key_pair_name:
        reader.problem("rolloutCheck", "ssh needs keyPairName: without a key pair nobody can log in to the nodes")
    if check == "auto":
        check = "ssh" if key_pair_name else "fixed-wait"
    numbers = {}
    for key, (low, high) in (("rolloutTimeoutSeconds", ROLLOUT_TIMEOUT_RANGE),
                             ("rolloutFixedWaitSeconds", ROLLOUT_FIXED_WAIT_RANGE)):
        value = reader.integer(key)
        if value is not None and not low <= value <= high:
            reader.problem(key, f"must be from {low} to {high} seconds, got {value}")
            value = None
        numbers[key] = value
    user = reader.string("sshUser")
    if user is not None and not SSH_USER_PATTERN.match(user):
        reader.problem("sshUser", f"{user!r} is not a login name (lower-case letters, digits, '_' and '-')")
        user = None
    if check is None or user is None or None in numbers.values():
        return None
    return RolloutSettings(check=check, timeout_seconds=numbers["rolloutTimeoutSeconds"],
                           fixed_wait_seconds=numbers["rolloutFixedWaitSeconds"], ssh_user=user)


def parse_settings(raw: Mapping[str, Any], namespace: str = NAMESPACE) -> Settings:
    """Builds Settings from raw config values (the keys of `namespace`);
    raises InvalidConfig listing every problem."""
    try:
        return replace(_parse_settings(raw), namespace=namespace)
    except InvalidConfig as error:
        raise error.in_namespace(namespace) from None


def _parse_settings(raw: Mapping[str, Any]) -> Settings:
    reader = _Reader(raw)
    for key in sorted(set(raw) - set(ALL_KEYS)):
        reader.problem(key, f"is not a known key (known: {', '.join(sorted(ALL_KEYS))})")

    create_network = reader.boolean("createNetwork")
    # Neutron accepts any text as a name; only emptiness would make a look-up ambiguous.
    network_name = reader.string("networkName")
    if network_name == "":
        reader.problem("networkName", "must not be empty")
    subnet_name = reader.string("subnetName")
    if subnet_name == "":
        reader.problem("subnetName", "must not be empty")
    subnet_cidr = reader.string("subnetCidr")
    if subnet_cidr is not None:
        subnet_cidr = _ipv4_cidr(reader, "subnetCidr", subnet_cidr)
        if subnet_cidr is not None and ipaddress.IPv4Network(subnet_cidr).prefixlen > 29:
            reader.problem(
                "subnetCidr",
                f"{subnet_cidr} is too small: the gateway, the VIP, "
                "the nodes and the jumphost need a /29 or larger",
            )
    vip_address = reader.string("vipAddress")
    if vip_address is not None:
        vip_address = _ipv4_address(reader, "vipAddress", vip_address)

    image_name = reader.string("imageName")
    if image_name == "":
        reader.problem("imageName", "must not be empty")
    flavor_name = reader.string("flavorName")
    if flavor_name == "":
        reader.problem("flavorName", "is required but empty")
    key_pair_name = reader.string("keyPairName") or None
    external_network_name = reader.string("externalNetworkName")
    if external_network_name == "":
        reader.problem("externalNetworkName", "must not be empty")

    ssh_allowed_cidrs: list[str] = []
    raw_cidrs = reader.json_value("sshAllowedCidrs")
    if raw_cidrs is not None:
        if not isinstance(raw_cidrs, list) or not raw_cidrs:
            reader.problem("sshAllowedCidrs", "must be a non-empty list of IPv4 CIDRs")
        else:
            for cidr in raw_cidrs:
                parsed = _ipv4_cidr(reader, "sshAllowedCidrs", cidr)
                if parsed is not None and ipaddress.IPv4Network(parsed).prefixlen == 0:
                    # The jumphost is the one door into the subnet: it is never
                    # opened to the whole internet.
                    reader.problem(
                        "sshAllowedCidrs",
                        f"{parsed} would open SSH to the whole internet; name the networks you connect from",
                    )
                elif parsed is not None:
                    ssh_allowed_cidrs.append(parsed)

    nodes = _parse_nodes(reader)
    jumphost_name = _name(reader, "jumphostName", reader.string("jumphostName"))
    if jumphost_name is not None and jumphost_name in {node.name for node in nodes}:
        reader.problem("jumphostName", f"{jumphost_name!r} is also a node's name")

    virtual_router_id = reader.integer("virtualRouterId")
    if virtual_router_id is not None and not 1 <= virtual_router_id <= 255:
        reader.problem("virtualRouterId", f"must be from 1 to 255, got {virtual_router_id}")
        virtual_router_id = None
    advert_interval = _parse_advert_interval(reader)
    password = _parse_password(reader)
    mode = reader.string("vrrpMode")
    if mode is not None and mode not in VRRP_MODES:
        reader.problem("vrrpMode", f"must be one of {', '.join(VRRP_MODES)}, got {mode!r}")
    interface = reader.string("vrrpInterface") or None
    if interface is not None and not INTERFACE_PATTERN.match(interface):
        reader.problem(
            "vrrpInterface",
            f"{interface!r} is not a valid interface name (1 to 15 letters, digits, '_', '.', ':' or '-')",
        )
    preempt = reader.boolean("preempt")
    health_check = _parse_health_check(reader)
    notify_command = reader.value("notifyCommand")
    notify_command = (
        _shell_command(reader, "notifyCommand", notify_command, "notifyCommand") if notify_command else None
    )
    vip_floating_ip = reader.boolean("vipFloatingIp")
    service_ports = _parse_service_ports(reader)
    service_allowed_cidrs: list[str] = []
    raw_service_cidrs = reader.json_value("serviceAllowedCidrs")
    if raw_service_cidrs is not None:
        if not isinstance(raw_service_cidrs, list):
            reader.problem("serviceAllowedCidrs", "must be a list of IPv4 CIDRs")
        else:
            for cidr in raw_service_cidrs:
                parsed = _ipv4_cidr(reader, "serviceAllowedCidrs", cidr)
                if parsed is not None:
                    service_allowed_cidrs.append(parsed)
    if service_ports and not service_allowed_cidrs:
        reader.problem("serviceAllowedCidrs", "is empty, so servicePorts would open nothing; "
                                              "name who may reach the service")
    if service_allowed_cidrs and not service_ports:
        reader.problem("servicePorts", "is empty, so serviceAllowedCidrs would open nothing")
    policy = reader.string("serverGroupPolicy")
    if policy is not None and policy not in SERVER_GROUP_POLICIES:
        reader.problem(
            "serverGroupPolicy", f"must be one of {', '.join(SERVER_GROUP_POLICIES)}, got {policy!r}"
        )

    rollout = _parse_rollout(reader, key_pair_name)

    if create_network and subnet_cidr and vip_address:
        # The subnet is ours to create: its addresses can be checked right now,
        # and reported together with every other problem.
        reader.problems.extend(
            address_problems(
                _created_subnet(subnet_cidr),
                vip_address,
                nodes,
                subnet_key="subnetCidr",
            )
        )
    if reader.problems:
        raise InvalidConfig(reader.problems)

    return Settings(
        network=NetworkSettings(
            create=create_network,
            network_name=network_name,
            subnet_name=subnet_name,
            subnet_cidr=subnet_cidr if create_network else None,
            external_network_name=external_network_name,
        ),
        vip_address=vip_address,
        image_name=image_name,
        flavor_name=flavor_name,
        key_pair_name=key_pair_name,
        ssh_allowed_cidrs=tuple(ssh_allowed_cidrs),
        nodes=nodes,
        jumphost_name=jumphost_name,
        vrrp=VrrpSettings(
            virtual_router_id=virtual_router_id,
            advert_interval=advert_interval,
            password=password,
            mode=mode,
            interface=interface,
            preempt=preempt,
            health_check=health_check,
            notify_command=notify_command,
        ),
        server_group_policy=policy,
        vip_floating_ip=vip_floating_ip,
        service_ports=service_ports,
        service_allowed_cidrs=tuple(service_allowed_cidrs),
        rollout=rollout,
    )


def _created_subnet(cidr: str) -> SubnetFacts:
    return SubnetFacts(cidr=str(ipaddress.IPv4Network(cidr)), gateway_ip=default_gateway(cidr))


def planned_subnet(settings: Settings) -> SubnetFacts:
    """The subnet the stack creates."""
    return _created_subnet(settings.network.subnet_cidr)


def address_problems(
    subnet: SubnetFacts, vip_address: str, nodes: Sequence[NodeSettings], subnet_key: str
) -> list[ConfigProblem]:
    """What is wrong with the VIP and the fixed node addresses in this subnet."""
    network = subnet.network
    problems: list[ConfigProblem] = []

    def check(key: str, what: str, address: str) -> None:
        ip = ipaddress.IPv4Address(address)
        if ip not in network:
            problems.append(ConfigProblem(key, f"{what} {address} is not in the subnet {network}"))
        elif ip == network.network_address:
            problems.append(ConfigProblem(key, f"{what} {address} is the network address of {network}"))
        elif ip == network.broadcast_address:
            problems.append(ConfigProblem(key, f"{what} {address} is the broadcast address of {network}"))
        elif subnet.gateway_ip and ip == ipaddress.IPv4Address(subnet.gateway_ip):
            problems.append(ConfigProblem(key, f"{what} {address} is the gateway address of {network}"))

    check("vipAddress", "the VIP", vip_address)
    for node in nodes:
        if node.ip_address is None:
            continue
        check("nodes", f"ipAddress of {node.name}", node.ip_address)
        if node.ip_address == vip_address:
            problems.append(
                ConfigProblem("vipAddress", f"the VIP {vip_address} is also the ipAddress of {node.name}")
            )
    if problems and subnet_key != "subnetCidr":
        problems.append(ConfigProblem(subnet_key, f"the subnet found under this name is {network}"))
    return problems


def check_addresses(settings: Settings, subnet: SubnetFacts) -> None:
    """Checks the VIP and fixed node addresses against a looked-up subnet; raises InvalidConfig."""
    problems = address_problems(subnet, settings.vip_address, settings.nodes, subnet_key="subnetName")
    if problems:
        raise InvalidConfig(problems)


def settings_from_config(config) -> Settings:
    """Reads every known key from a `pulumi.Config` and parses it.

    The password is read as plain text here, and only here, because its rules
    (1 to 8 characters) must be checked before any resource is declared; it
    leaves this module wrapped in SecretStr and reaches Pulumi only as a
    secret Output.
    """
    namespace = config.name
    keys = set(ALL_KEYS) | _namespace_keys(namespace)
    raw = {key: config.get(key) for key in keys}
    return parse_settings({key: value for key, value in raw.items() if value is not None}, namespace)


def _namespace_keys(namespace: str) -> set[str]:
    """Every key this stack sets in the namespace, so that a mistyped one is
    reported instead of silently ignored. The SDK keeps the config it was
    given (by the CLI, or by set_all_config) in these two places."""
    from pulumi.runtime.config import CONFIG, get_config_env

    prefix = f"{namespace}:"
    return {key[len(prefix):] for key in {**get_config_env(), **CONFIG.get()} if key.startswith(prefix)}


def config_from_stack_file(path) -> dict[str, Any]:
    """The raw values of this project's keys in a Pulumi.<stack>.yaml, for
    tools that evaluate the program without the Pulumi CLI (the lab, tests).
    Encrypted values (`secure:`) cannot be read without the CLI and are left
    out; the caller supplies them."""
    import yaml  # PyYAML comes with pulumi

    with open(path, encoding="utf-8") as stream:
        document = yaml.safe_load(stream) or {}
    values: dict[str, Any] = {}
    for full_key, value in (document.get("config") or {}).items():
        namespace, _, key = str(full_key).partition(":")
        if namespace != NAMESPACE:
            continue
        if isinstance(value, Mapping) and "secure" in value:
            continue
        values[key] = value
    return values

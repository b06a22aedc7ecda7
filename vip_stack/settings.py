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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any

from pulumi.errors import RunError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .addressing import default_gateway

NAMESPACE = "keepalived-vip"

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
        super().__init__("invalid stack configuration:\n" + "\n".join(f"  {p}" for p in self.problems))

    @property
    def keys(self) -> set[str]:
        return {p.key for p in self.problems}

    def in_namespace(self, namespace: str) -> InvalidConfig:
        """The same problems, said of the keys in another config namespace."""
        return InvalidConfig([replace(problem, namespace=namespace) for problem in self.problems])


def skew(version: int, advert_interval: float, priority: int) -> float:
    """How long a backup of this priority waits after the master stops (RFC 3768/5798)."""
    if version == 2:
        return (256 - priority) / 256
    return (256 - priority) * advert_interval / 256


def master_down_interval(version: int, advert_interval: float, priority: int) -> float:
    """How long a backup of this priority waits without adverts before it takes over."""
    return 3 * advert_interval + skew(version, advert_interval, priority)


@dataclass(frozen=True)
class SubnetFacts:
    """What the stack needs to know of the subnet, created or found."""

    cidr: str
    gateway_ip: str | None
    network_id: str | None = None
    subnet_id: str | None = None

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)


# --- the declarative model of the config ----------------------------------------
#
# One pydantic model of every key, by its config name: types, bounds and
# formats are declared on the fields, the rules that span keys in one
# validator. Values arrive as Pulumi hands them to a program (text, lists and
# objects as JSON) or typed (tests, tools); both go through the same fields.


def _refused(message: str) -> PydanticCustomError:
    # Without a context pydantic takes the message as it is: no value can
    # inject a placeholder into it.
    return PydanticCustomError("config", message)


def _from_json(value: Any) -> Any:
    # Pulumi hands objects and lists to the program as JSON text.
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise _refused(f"is not valid JSON ({error.msg})") from None
    return value


def _strict_bool(value: Any) -> bool:
    # Only true and false, as the Pulumi CLI writes them: "yes" or 1 are typos.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _refused(f"must be true or false, got {value!r}")


def _whole_number(value: Any) -> Any:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise _refused(f"must be an integer, got {value!r}")
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return value


def _not_a_bool_number(value: Any) -> Any:
    if isinstance(value, bool):
        raise _refused(f"must be a number, got {value!r}")
    return value


def _ipv4_address(value: Any) -> str:
    try:
        return str(ipaddress.IPv4Address(str(value).strip()))
    except ValueError:
        raise _refused(f"{value!r} is not an IPv4 address") from None


def _ipv4_cidr(value: Any) -> str:
    try:
        return str(ipaddress.IPv4Network(str(value).strip(), strict=True))
    except ValueError as error:
        raise _refused(f"{value!r} is not a valid IPv4 CIDR ({error})") from None


def _resource_name(value: str) -> str:
    if not NAME_PATTERN.match(value):
        raise _refused(
            f"{value!r} is not a valid name: use letters, digits and '-', at most 63 characters, "
            "not starting or ending with '-'"
        )
    return value


def _not_empty(value: str) -> str:
    if not value:
        raise _refused("must not be empty")
    return value


def _interface(value: str) -> str:
    value = value.strip()
    if value and not INTERFACE_PATTERN.match(value):
        raise _refused(f"{value!r} is not a valid interface name (1 to 15 letters, digits, '_', '.', ':' or '-')")
    return value


def _big_enough(cidr: str) -> str:
    if ipaddress.IPv4Network(cidr).prefixlen > 29:
        raise _refused(f"{cidr} is too small: the gateway, the VIP, the nodes and the jumphost need a /29 or larger")
    return cidr


def _not_the_internet(cidrs: list[str]) -> list[str]:
    for cidr in cidrs:
        if ipaddress.IPv4Network(cidr).prefixlen == 0:
            # The jumphost is the one door into the subnet: never open to the whole internet.
            raise _refused(f"{cidr} would open SSH to the whole internet; name the networks you connect from")
    return cidrs


def _one_line_command(value: str) -> str:
    if not value.strip():
        raise _refused("must be a non-empty shell command")
    if any(c in value for c in "\n\r\0"):
        raise _refused("must be a single line")
    return value.strip()


def _in_range(low: int, high: int, unit: str = "") -> Callable[[int], int]:
    def check(value: int) -> int:
        if not low <= value <= high:
            raise _refused(f"must be from {low} to {high}{unit}, got {value}")
        return value

    return check


def _one_of(choices: Sequence[str]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise _refused(f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    return check


def _password(value: Any) -> str:
    # Never echoes the value: it is the VRRP password.
    if not isinstance(value, str) or not value:
        raise _refused("must be a non-empty string")
    if len(value) > MAX_VRRP_PASSWORD_LENGTH:
        raise _refused(
            f"is {len(value)} characters long; keepalived uses at most {MAX_VRRP_PASSWORD_LENGTH} "
            "(it would silently cut the rest), so use 1 to 8"
        )
    if not VRRP_PASSWORD_PATTERN.match(value) or VRRP_PASSWORD_FORBIDDEN & set(value):
        forbidden = " ".join(sorted(VRRP_PASSWORD_FORBIDDEN - {" "}))
        raise _refused(f"may hold printable ASCII characters except white space and {forbidden}")
    return value


def _advert_interval(interval: float) -> float:
    if not math.isfinite(interval):
        raise _refused(f"must be a finite number, got {interval}")
    if interval <= 0:
        raise _refused(f"must be greater than 0 seconds, got {interval:g}")
    if interval.is_integer():
        if interval > V2_MAX_ADVERT:
            raise _refused(f"must be at most {V2_MAX_ADVERT} seconds, got {interval:g}")
        return interval
    # A fractional interval means VRRP v3, which counts in centiseconds.
    if not V3_MIN_ADVERT <= interval <= V3_MAX_ADVERT:
        raise _refused(
            f"a fractional interval uses VRRP v3, which allows {V3_MIN_ADVERT} to {V3_MAX_ADVERT} seconds; "
            f"got {interval:g}"
        )
    if abs(round(interval * 100) - interval * 100) > 1e-6:
        raise _refused(f"VRRP v3 counts in hundredths of a second; {interval:g} is finer")
    return interval


def _unset_if_empty(check: Callable[[str], str]) -> Callable[[str | None], str | None]:
    """For a key whose "none" Pulumi config spells as an empty string (it has
    no null): empty is None, anything else must pass `check`."""

    def check_or_none(value: str | None) -> str | None:
        return (check(value) or None) if value else None

    return check_or_none


Json = BeforeValidator(_from_json)
StrictBool = Annotated[bool, BeforeValidator(_strict_bool)]
Ipv4Address = Annotated[str, BeforeValidator(_ipv4_address)]
Ipv4Cidr = Annotated[str, BeforeValidator(_ipv4_cidr)]
NonEmpty = Annotated[str, AfterValidator(str.strip), AfterValidator(_not_empty)]
ResourceName = Annotated[str, AfterValidator(str.strip), AfterValidator(_resource_name)]
Command = Annotated[str, AfterValidator(_one_line_command)]
Priority = Annotated[int, BeforeValidator(_whole_number), AfterValidator(_in_range(1, 254))]
Whole1To3600 = Annotated[int, BeforeValidator(_whole_number), AfterValidator(_in_range(1, 3600))]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class NodeSettings(_Strict):
    name: ResourceName
    # 255 is reserved for the address owner, 0 for "stopping".
    priority: Priority
    ip_address: Ipv4Address | None = Field(None, alias="ipAddress")


class HealthCheck(_Strict):
    """A command keepalived runs every `interval` seconds; `fall` failures in a
    row take the node out of the election, `rise` successes bring it back."""

    command: Command
    interval: Whole1To3600 = 2
    fall: Whole1To3600 = 2
    rise: Whole1To3600 = 2


class ServicePort(_Strict):
    protocol: Annotated[str, AfterValidator(_one_of(SERVICE_PROTOCOLS))]
    port: Annotated[int, BeforeValidator(_whole_number), AfterValidator(_in_range(1, 65535))]


class Settings(_Strict):
    """Every key of the namespace, validated; what the components read.

    The fields are the config keys (by alias; Python code may use the field
    names), and their defaults are the stack's defaults, as the key would be
    written in a stack file. Defaults follow the reference procedure;
    Pulumi.yaml declares the same (a test keeps the two and the docs' table in
    step). Keys whose "none" a stack writes as "" (keyPairName,
    vrrpInterface, notifyCommand) hold None for it."""

    create_network: StrictBool = Field(True, alias="createNetwork")
    # Neutron accepts any text as a name; only emptiness would make a look-up ambiguous.
    network_name: NonEmpty = Field("mynetwork", alias="networkName")
    subnet_name: NonEmpty = Field("mysubnet", alias="subnetName")
    # The CIDR to create; with createNetwork=false the looked-up subnet's counts.
    subnet_cidr: Annotated[Ipv4Cidr, AfterValidator(_big_enough)] = Field("192.168.0.0/24", alias="subnetCidr")
    vip_address: Ipv4Address = Field("192.168.0.254", alias="vipAddress")
    image_name: NonEmpty = Field("Ubuntu-22.04", alias="imageName")
    flavor_name: NonEmpty = Field(alias="flavorName")
    key_pair_name: Annotated[str | None, AfterValidator(_unset_if_empty(str.strip))] = Field(
        "", alias="keyPairName", validate_default=True
    )
    external_network_name: NonEmpty = Field("ext-net", alias="externalNetworkName")
    ssh_allowed_cidrs: Annotated[tuple[Ipv4Cidr, ...], Json, Field(min_length=1), AfterValidator(_not_the_internet)] = (
        Field(alias="sshAllowedCidrs")
    )
    nodes: Annotated[tuple[NodeSettings, ...], Json] = (
        NodeSettings(name="kld-vm-1", priority=120),
        NodeSettings(name="kld-vm-2", priority=90),
    )
    jumphost_name: ResourceName = Field("kld-jumphost-vm", alias="jumphostName")
    virtual_router_id: Annotated[int, BeforeValidator(_whole_number), AfterValidator(_in_range(1, 255))] = Field(
        254, alias="virtualRouterId"
    )
    advert_interval: Annotated[float, BeforeValidator(_not_a_bool_number), AfterValidator(_advert_interval)] = Field(
        1, alias="advertInterval"
    )
    # pydantic's SecretStr: it never shows in a repr; the components hand it
    # to Pulumi only as a secret Output.
    vrrp_password: Annotated[SecretStr, BeforeValidator(_password)] = Field(alias="vrrpPassword")
    vrrp_mode: Annotated[str, AfterValidator(_one_of(VRRP_MODES))] = Field("unicast", alias="vrrpMode")
    # None: the node finds it at boot from its default route.
    vrrp_interface: Annotated[str | None, AfterValidator(_unset_if_empty(_interface))] = Field(
        "", alias="vrrpInterface", validate_default=True
    )
    server_group_policy: Annotated[str, AfterValidator(_one_of(SERVER_GROUP_POLICIES))] = Field(
        "soft-anti-affinity", alias="serverGroupPolicy"
    )
    preempt: StrictBool = True
    health_check: Annotated[HealthCheck | None, BeforeValidator(lambda v: None if v == "" else _from_json(v))] = Field(
        None, alias="healthCheck"
    )
    # Shell command run on every state change with the new state as its argument.
    notify_command: Annotated[str | None, AfterValidator(_unset_if_empty(_one_line_command))] = Field(
        "", alias="notifyCommand", validate_default=True
    )
    vip_floating_ip: StrictBool = Field(False, alias="vipFloatingIp")
    service_ports: Annotated[tuple[ServicePort, ...], Json] = Field((), alias="servicePorts")
    service_allowed_cidrs: Annotated[tuple[Ipv4Cidr, ...], Json] = Field((), alias="serviceAllowedCidrs")
    # How `pulumi up` learns that a replaced node is back in service; see
    # rollout_uses_ssh for what auto decides.
    rollout_check: Annotated[str, AfterValidator(_one_of(ROLLOUT_CHECKS))] = Field("auto", alias="rolloutCheck")
    rollout_timeout_seconds: Annotated[
        int, BeforeValidator(_whole_number), AfterValidator(_in_range(*ROLLOUT_TIMEOUT_RANGE, " seconds"))
    ] = Field(900, alias="rolloutTimeoutSeconds")
    rollout_fixed_wait_seconds: Annotated[
        int, BeforeValidator(_whole_number), AfterValidator(_in_range(*ROLLOUT_FIXED_WAIT_RANGE, " seconds"))
    ] = Field(300, alias="rolloutFixedWaitSeconds")
    ssh_user: Annotated[str, Field(pattern=SSH_USER_PATTERN.pattern)] = Field("ubuntu", alias="sshUser")
    # A first `pulumi up` returns once every node is in service and one
    # holds the VIP (over SSH; with fixed-wait there is nothing to see).
    wait_for_service: StrictBool = Field(True, alias="waitForService")

    @property
    def vrrp_version(self) -> int:
        # VRRP v2 carries whole seconds only; anything finer needs v3.
        return 2 if float(self.advert_interval).is_integer() else 3

    @property
    def uses_authentication(self) -> bool:
        # keepalived has no PASS authentication under VRRP v3.
        return self.vrrp_version == 2

    def master_down_interval(self, priority: int) -> float:
        return master_down_interval(self.vrrp_version, self.advert_interval, priority)

    @property
    def rollout_uses_ssh(self) -> bool:
        """True: drain each node before it goes and wait over SSH until the new
        one is in service; False: wait rolloutFixedWaitSeconds. auto means ssh
        when the nodes have a key pair."""
        if self.rollout_check == "auto":
            return self.key_pair_name is not None
        return self.rollout_check == "ssh"

    @model_validator(mode="after")
    def _rules_across_keys(self) -> Settings:
        problems = self.problems_across_keys()
        if problems:
            raise PydanticCustomError("across_keys", "{count} problems", {"count": len(problems), "problems": problems})
        return self

    def problems_across_keys(self) -> list[ConfigProblem]:
        found: list[ConfigProblem] = []
        nodes = self.nodes
        if len(nodes) < 2:
            found.append(ConfigProblem("nodes", f"needs at least 2 nodes for a VIP to fail over, got {len(nodes)}"))
        named_lists: tuple[tuple[str, list[Any]], ...] = (
            ("node name", [n.name for n in nodes]),
            ("priority", [n.priority for n in nodes]),
            ("ipAddress", [n.ip_address for n in nodes if n.ip_address]),
        )
        for kind, values in named_lists:
            for value in sorted({v for v in values if values.count(v) > 1}, key=str):
                # Equal priorities make the election fall to the higher
                # address: never what a user who wrote the list meant.
                rule = {
                    "node name": f"node name {value!r} is used more than once",
                    "priority": f"priority {value} is used more than once; priorities must be distinct",
                    "ipAddress": f"ipAddress {value} is used by more than one node",
                }[kind]
                found.append(ConfigProblem("nodes", rule))
        if self.jumphost_name in {node.name for node in nodes}:
            found.append(ConfigProblem("jumphostName", f"{self.jumphost_name!r} is also a node's name"))
        ports = [(p.protocol, p.port) for p in self.service_ports]
        for protocol, port in sorted({p for p in ports if ports.count(p) > 1}):
            found.append(ConfigProblem("servicePorts", f"{protocol}/{port} is listed more than once"))
        if self.service_ports and not self.service_allowed_cidrs:
            found.append(
                ConfigProblem(
                    "serviceAllowedCidrs",
                    "is empty, so servicePorts would open nothing; name who may reach the service",
                )
            )
        if self.service_allowed_cidrs and not self.service_ports:
            found.append(ConfigProblem("servicePorts", "is empty, so serviceAllowedCidrs would open nothing"))
        if self.rollout_check == "ssh" and not self.key_pair_name:
            found.append(
                ConfigProblem(
                    "rolloutCheck", "ssh needs keyPairName: without a key pair nobody can log in to the nodes"
                )
            )
        if self.create_network:
            # The subnet is ours to create: its addresses can be checked now.
            found += address_problems(
                _created_subnet(self.subnet_cidr), self.vip_address, self.nodes, subnet_key="subnetCidr"
            )
        return found


# What pydantic's own checks say, in the words of this project.
_PYDANTIC_MESSAGES = {
    "int_parsing": "must be an integer, got {input!r}",
    "int_type": "must be an integer, got {input!r}",
    "int_from_float": "must be an integer, got {input!r}",
    "float_parsing": "must be a number, got {input!r}",
    "float_type": "must be a number, got {input!r}",
    "string_type": "must be a string, got {input!r}",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "model_type": "must be an object",
    "dict_type": "must be an object",
    "model_attributes_type": "must be an object",
    "string_too_short": "must not be empty",
    "too_short": "must be a non-empty list",
    "string_pattern_mismatch": "{input!r} is not a login name (lower-case letters, digits, '_' and '-')",
}
_SHAPES = {
    "nodes": "a list of {name, priority, ipAddress?}",
    "healthCheck": "an object {command, interval?, fall?, rise?}",
    "servicePorts": "a list of {protocol, port}",
}


def _problems(error: ValidationError) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    for item in error.errors(include_url=False):
        if item["type"] == "across_keys":
            problems += item["ctx"]["problems"]
            continue
        loc = list(item["loc"])
        key = str(loc[0]) if loc else ""
        where = key + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc[1:])
        nested = len(loc) > 1
        kind = item["type"]
        if kind == "missing":
            message = "is required but not set" if not nested else "is required"
        elif kind == "extra_forbidden":
            if not nested:
                message = f"is not a known key (known: {', '.join(sorted(ALL_KEYS))})"
            else:
                owner = key + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:-1])
                problems.append(ConfigProblem(key, f"{owner} has unknown fields {[loc[-1]]}"))
                continue
        elif (
            kind in ("model_type", "list_type", "tuple_type", "model_attributes_type")
            and key in _SHAPES
            and len(loc) <= 2
        ):
            message = f"must be {_SHAPES[key]}"
        elif kind in _PYDANTIC_MESSAGES:
            message = _PYDANTIC_MESSAGES[kind].format(input=item.get("input"))
        else:
            message = item["msg"]
        if key == "sshAllowedCidrs" and kind == "too_short":
            message = "must be a non-empty list of IPv4 CIDRs"
        problems.append(ConfigProblem(key, f"{where} {message}" if nested else message))
    return problems


def _defaults() -> dict[str, Any]:
    """The fields' defaults as a stack file would write them (lists, objects by their keys)."""
    defaults: dict[str, Any] = {}
    for name, field_info in Settings.model_fields.items():
        if field_info.is_required():
            continue
        value = field_info.get_default(call_default_factory=True)
        if isinstance(value, tuple):
            value = [v.model_dump(by_alias=True, exclude_none=True) if isinstance(v, BaseModel) else v for v in value]
        defaults[field_info.alias or name] = value
    return defaults


DEFAULTS: dict[str, Any] = _defaults()
REQUIRED_KEYS = tuple(f.alias or name for name, f in Settings.model_fields.items() if f.is_required())
SECRET_KEYS = ("vrrpPassword",)
ALL_KEYS = tuple(f.alias or name for name, f in Settings.model_fields.items())


def parse_settings(raw: Mapping[str, Any], namespace: str = NAMESPACE) -> Settings:
    """Builds Settings from raw config values (the keys of `namespace`);
    raises InvalidConfig listing every problem: each key's own first, then,
    once every key is valid on its own, the rules between keys."""
    try:
        return Settings.model_validate(dict(raw))
    except ValidationError as error:
        raise InvalidConfig(_problems(error)).in_namespace(namespace) from None


def _created_subnet(cidr: str) -> SubnetFacts:
    return SubnetFacts(cidr=str(ipaddress.IPv4Network(cidr)), gateway_ip=default_gateway(cidr))


def planned_subnet(settings: Settings) -> SubnetFacts:
    """The subnet the stack creates."""
    if not settings.create_network:
        raise ValueError("the stack creates no subnet: createNetwork is false")
    return _created_subnet(settings.subnet_cidr)


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
            problems.append(ConfigProblem("vipAddress", f"the VIP {vip_address} is also the ipAddress of {node.name}"))
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
    leaves this module wrapped in pydantic's SecretStr and reaches Pulumi
    only as a secret Output.
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
    return {key[len(prefix) :] for key in {**get_config_env(), **CONFIG.get()} if key.startswith(prefix)}


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

"""Typed settings of the stack: one pydantic model of every config key, read
once, validated, then passed down.

The fields are the keys: each one's type, bounds, format, default and
description are declared on it, and `Pulumi.yaml`'s schema and the
configuration reference (docs/configuration.md) are generated from them
(`make reference`). The rules between keys are one validator. Validation runs
in two steps, both before any resource is declared: `parse_settings` checks
every value; `check_addresses` checks the addresses against a subnet looked
up in the cloud (with createNetwork=false).

Around the model, each in its own module and re-exported here:
`config_errors` (what is wrong, said of the keys), `config_sources` (raw
values from Pulumi config or a stack file), `vrrp` (VRRP's arithmetic),
`addressing` (where the VIP and the nodes' addresses may be).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

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

from .addressing import SubnetFacts, address_problems, created_subnet
from .config_errors import ACROSS_KEYS, NAMESPACE, ConfigProblem, InvalidConfig, key_of, problems_of
from .config_sources import config_from_stack_file, raw_config
from .vrrp import V2_MAX_ADVERT, V3_MAX_ADVERT, V3_MIN_ADVERT, advert_interval_problem, master_down_interval, skew
from .vrrp import version_for as vrrp_version_for

__all__ = [
    "ALL_KEYS",
    "DEFAULTS",
    "NAMESPACE",
    "REQUIRED_KEYS",
    "SECRET_KEYS",
    "ConfigProblem",
    "HealthCheck",
    "InvalidConfig",
    "NodeSettings",
    "ServicePort",
    "Settings",
    "SubnetFacts",
    "check_addresses",
    "config_from_stack_file",
    "master_down_interval",
    "parse_settings",
    "planned_subnet",
    "settings_from_config",
    "skew",
]

# keepalived keeps only the first 8 characters of auth_pass and then fails its
# own config test; refuse longer passwords instead of letting them shrink.
MAX_VRRP_PASSWORD_LENGTH = 8
# Printable ASCII without what keepalived's parser treats specially: white space
# splits tokens, '#' and '!' start comments, '{' '}' open and close blocks,
# '"' quotes, '$' starts a parameter substitution, '\' escapes.
VRRP_PASSWORD_PATTERN = re.compile(r"^[!-~]+$")
VRRP_PASSWORD_FORBIDDEN = set(' #!{}"$\\')
_FORBIDDEN_SHOWN = " ".join(sorted(VRRP_PASSWORD_FORBIDDEN - {" "}))
# Names become router_id and instance names: a DNS label keeps them safe in
# keepalived.conf and valid as Nova server names.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
# A Linux interface name: at most 15 bytes, no '/', no white space.
INTERFACE_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
# The gateway, the VIP, two nodes and the jumphost need five host addresses.
SMALLEST_SUBNET_PREFIX = 29
# A login name as useradd accepts it.
SSH_USER_PATTERN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


# --- the fields' types ----------------------------------------------------------
#
# Values arrive as Pulumi hands them to a program (text, lists and objects as
# JSON) or typed (tests, tools, a library's keywords); both go through the
# same fields.


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
    # pydantic would take True for 1 and "1.0" for nothing: a number of things
    # is written as digits.
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
    if ipaddress.IPv4Network(cidr).prefixlen > SMALLEST_SUBNET_PREFIX:
        raise _refused(
            f"{cidr} is too small: the gateway, the VIP, the nodes and the jumphost need "
            f"a /{SMALLEST_SUBNET_PREFIX} or larger"
        )
    return cidr


def _not_the_internet(cidrs: tuple[str, ...]) -> tuple[str, ...]:
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


def _password(value: Any) -> str:
    # Never echoes the value: it is the VRRP password.
    if not isinstance(value, str) or not value:
        raise _refused("must be a non-empty string")
    if len(value) > MAX_VRRP_PASSWORD_LENGTH:
        raise _refused(
            f"is {len(value)} characters long; keepalived uses at most {MAX_VRRP_PASSWORD_LENGTH} "
            f"(it would silently cut the rest), so use 1 to {MAX_VRRP_PASSWORD_LENGTH}"
        )
    if not VRRP_PASSWORD_PATTERN.match(value) or VRRP_PASSWORD_FORBIDDEN & set(value):
        raise _refused(f"may hold printable ASCII characters except white space and {_FORBIDDEN_SHOWN}")
    return value


def _advert_interval(interval: float) -> float:
    problem = advert_interval_problem(interval)
    if problem:
        raise _refused(problem)
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
Whole = BeforeValidator(_whole_number)
Whole1To3600 = Annotated[int, Whole, Field(ge=1, le=3600)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class NodeSettings(_Strict):
    name: ResourceName = Field(
        description="Instance name and keepalived `router_id`: letters, digits and `-`, at most 63 characters, "
        "not starting or ending with `-`."
    )
    # 255 is reserved for the address owner, 0 for "stopping".
    priority: Annotated[int, Whole, Field(ge=1, le=254)] = Field(
        description="VRRP priority: the highest starts as master."
    )
    ip_address: Ipv4Address | None = Field(
        None, alias="ipAddress", description="A fixed address in the subnet; unset: Neutron picks one."
    )


class HealthCheck(_Strict):
    """A command keepalived runs every `interval` seconds; `fall` failures in a
    row take the node out of the election, `rise` successes bring it back."""

    command: Command = Field(description="One line of shell, run as the unprivileged `keepalived_script` user.")
    interval: Whole1To3600 = Field(2, description="Seconds between two runs.")
    fall: Whole1To3600 = Field(2, description="Failures in a row that take the node out of the election.")
    rise: Whole1To3600 = Field(2, description="Successes in a row that bring it back.")


class ServicePort(_Strict):
    protocol: Literal["tcp", "udp"] = Field(description="The transport protocol.")
    port: Annotated[int, Whole, Field(ge=1, le=65535)] = Field(description="The port number.")


class Settings(_Strict):
    """Every key of the namespace, validated; what the components read.

    The fields are the config keys (by alias; Python code may use the field
    names), and their defaults are the stack's defaults, as the key would be
    written in a stack file. Defaults follow the reference procedure. Keys
    whose "none" a stack writes as "" (keyPairName, vrrpInterface,
    notifyCommand) hold None for it."""

    create_network: StrictBool = Field(
        True,
        alias="createNetwork",
        description="true: create the network, subnet, router and router interface. "
        "false: look up `networkName` and `subnetName` and create none of them.",
    )
    # Neutron accepts any text as a name; only emptiness would make a look-up ambiguous.
    network_name: NonEmpty = Field(
        "mynetwork",
        alias="networkName",
        description="Name of the network to create, or to look up when `createNetwork` is false. Not empty.",
    )
    subnet_name: NonEmpty = Field(
        "mysubnet",
        alias="subnetName",
        description="Name of the subnet to create, or to look up in that network when `createNetwork` is false. "
        "Not empty.",
    )
    subnet_cidr: Annotated[Ipv4Cidr, AfterValidator(_big_enough)] = Field(
        "192.168.0.0/24",
        alias="subnetCidr",
        description=f"IPv4 CIDR of the subnet the stack creates, /{SMALLEST_SUBNET_PREFIX} or larger. "
        "With `createNetwork: false` the found subnet's CIDR is used instead.",
    )
    vip_address: Ipv4Address = Field(
        "192.168.0.254",
        alias="vipAddress",
        description="The virtual IP. In the subnet; not its network, broadcast or gateway address; "
        "no node's `ipAddress`. Kept out of the DHCP pool of a subnet the stack creates; on an existing "
        "network, no other port may hold it (checked before anything is created).",
    )
    image_name: NonEmpty = Field(
        "Ubuntu-22.04",
        alias="imageName",
        description="Image of all three VMs: an Ubuntu or Debian with cloud-init and apt. When the image "
        "behind the name changes, the nodes are replaced one at a time.",
    )
    flavor_name: NonEmpty = Field(alias="flavorName", description="Flavor of all three VMs.")
    key_pair_name: Annotated[str | None, AfterValidator(_unset_if_empty(str.strip))] = Field(
        "",
        alias="keyPairName",
        validate_default=True,
        description="Existing Nova key pair for all three VMs; empty for none.",
    )
    external_network_name: NonEmpty = Field(
        "ext-net",
        alias="externalNetworkName",
        description="External network of the floating IPs and the router's gateway; must exist.",
    )
    ssh_allowed_cidrs: Annotated[tuple[Ipv4Cidr, ...], Json, Field(min_length=1), AfterValidator(_not_the_internet)] = (
        Field(
            alias="sshAllowedCidrs",
            description="IPv4 CIDRs allowed to SSH to the jumphost, at least one; `0.0.0.0/0` is refused. "
            "Nothing else is open to the internet.",
        )
    )
    nodes: Annotated[tuple[NodeSettings, ...], Json] = Field(
        (
            NodeSettings(name="kld-vm-1", priority=120),
            NodeSettings(name="kld-vm-2", priority=90),
        ),
        description="The keepalived nodes: at least 2, with distinct names, priorities and addresses.",
    )
    jumphost_name: ResourceName = Field(
        "kld-jumphost-vm",
        alias="jumphostName",
        description="Name of the jumphost VM, by the rules of a node's name; not a node's name.",
    )
    virtual_router_id: Annotated[int, Whole, Field(ge=1, le=255)] = Field(
        254,
        alias="virtualRouterId",
        description="VRRP `virtual_router_id`; unique among the VRRP routers on the subnet.",
    )
    advert_interval: Annotated[float, BeforeValidator(_not_a_bool_number), AfterValidator(_advert_interval)] = Field(
        1,
        alias="advertInterval",
        description=f"Seconds between VRRP adverts. Whole seconds up to {V2_MAX_ADVERT} use VRRP v2; a fraction "
        f"({V3_MIN_ADVERT} to {V3_MAX_ADVERT}, in hundredths) uses VRRP v3, which has no password.",
    )
    # pydantic's SecretStr: it never shows in a repr; the components hand it
    # to Pulumi only as a secret Output.
    vrrp_password: Annotated[SecretStr, BeforeValidator(_password)] = Field(
        alias="vrrpPassword",
        description=f"VRRP PASS authentication password: 1 to {MAX_VRRP_PASSWORD_LENGTH} printable ASCII "
        f"characters, none of white space `{_FORBIDDEN_SHOWN}` (keepalived would cut a longer one). "
        "Set it with `--secret`.",
    )
    vrrp_mode: Literal["unicast", "multicast"] = Field(
        "unicast",
        alias="vrrpMode",
        description="`unicast`: `unicast_src_ip` and peers, which works where the cloud filters multicast; "
        "`multicast`: as in the reference procedure.",
    )
    # None: the node finds it at boot from its default route.
    vrrp_interface: Annotated[str | None, AfterValidator(_unset_if_empty(_interface))] = Field(
        "",
        alias="vrrpInterface",
        validate_default=True,
        description="Interface keepalived runs VRRP on; empty: each node finds it at boot from its default route.",
    )
    server_group_policy: Literal["soft-anti-affinity", "anti-affinity"] = Field(
        "soft-anti-affinity",
        alias="serverGroupPolicy",
        description="Nova server group policy of the nodes; strict `anti-affinity` fails to boot a node when no "
        "second hypervisor is free.",
    )
    preempt: StrictBool = Field(
        True,
        description="false: every node starts BACKUP with `nopreempt`, so a master that comes back does not take "
        "the VIP back (one interruption, not two).",
    )
    health_check: Annotated[HealthCheck | None, BeforeValidator(lambda v: None if v == "" else _from_json(v))] = Field(
        None,
        alias="healthCheck",
        description="A command keepalived runs on every node: `fall` failures in a row take the node out of the "
        "election (the VIP moves), `rise` successes bring it back. Unset: none.",
    )
    # Shell command run on every state change with the new state as its argument.
    notify_command: Annotated[str | None, AfterValidator(_unset_if_empty(_one_line_command))] = Field(
        "",
        alias="notifyCommand",
        validate_default=True,
        description="One line of shell run as root on every VRRP state change, with the new state (MASTER, "
        "BACKUP, FAULT, STOP) as `$1`; empty for none.",
    )
    vip_floating_ip: StrictBool = Field(
        False,
        alias="vipFloatingIp",
        description="true: a floating IP from `externalNetworkName` on the VIP port (output `vipFloatingIp`).",
    )
    service_ports: Annotated[tuple[ServicePort, ...], Json] = Field(
        (),
        alias="servicePorts",
        description="Ports opened on the nodes (and so the VIP) to `serviceAllowedCidrs`, each once.",
    )
    service_allowed_cidrs: Annotated[tuple[Ipv4Cidr, ...], Json] = Field(
        (),
        alias="serviceAllowedCidrs",
        description="IPv4 CIDRs allowed to reach `servicePorts` on the nodes (and so the VIP). "
        "Empty: nothing is opened.",
    )
    # How `pulumi up` learns that a replaced node is back in service; see
    # rollout_uses_ssh for what auto decides.
    rollout_check: Literal["auto", "ssh", "fixed-wait"] = Field(
        "auto",
        alias="rolloutCheck",
        description="How an update that replaces nodes (one at a time, lowest priority first) knows a new node "
        "is in service before it touches the next. `ssh`: drain each node before it goes, then wait, through "
        "the jumphost, until the new one is in service (needs `keyPairName`). `fixed-wait`: wait "
        "`rolloutFixedWaitSeconds`. `auto`: `ssh` with `keyPairName`, else `fixed-wait`.",
    )
    rollout_timeout_seconds: Annotated[int, Whole, Field(ge=60, le=7200)] = Field(
        900,
        alias="rolloutTimeoutSeconds",
        description="With `ssh` checks, the seconds a replaced node may take to be back in service (booted, "
        "cloud-init done, keepalived active with its new configuration, in the VRRP group) before the rollout "
        "stops with an error, leaving the remaining nodes untouched.",
    )
    rollout_fixed_wait_seconds: Annotated[int, Whole, Field(ge=0, le=3600)] = Field(
        300,
        alias="rolloutFixedWaitSeconds",
        description="With `fixed-wait`, the seconds a rollout waits after a replaced node is created before it "
        "replaces the next.",
    )
    ssh_user: Annotated[str, Field(pattern=SSH_USER_PATTERN.pattern)] = Field(
        "ubuntu",
        alias="sshUser",
        description="The image's login user, for the rollout's SSH checks through the jumphost (`ubuntu` on "
        "Ubuntu images, `debian` on Debian's).",
    )
    wait_for_service: StrictBool = Field(
        True,
        alias="waitForService",
        description="With `ssh` checks, whether a first `pulumi up` waits until every node is in service and "
        "exactly one holds the VIP (all nodes at once, within `rolloutTimeoutSeconds`); false returns as soon as "
        "Nova reports the instances ACTIVE, before keepalived serves the VIP.",
    )

    @property
    def vrrp_version(self) -> int:
        return vrrp_version_for(self.advert_interval)

    @property
    def uses_authentication(self) -> bool:
        # keepalived has no PASS authentication under VRRP v3.
        return self.vrrp_version == 2

    @property
    def rollout_uses_ssh(self) -> bool:
        """True: drain each node before it goes and wait over SSH until the new
        one is in service; False: wait rolloutFixedWaitSeconds. auto means ssh
        when the nodes have a key pair."""
        if self.rollout_check == "auto":
            return self.key_pair_name is not None
        return self.rollout_check == "ssh"

    @property
    def fixed_addresses(self) -> dict[str, str]:
        """Node name -> the fixed ipAddress of the nodes that have one."""
        return {node.name: node.ip_address for node in self.nodes if node.ip_address}

    @model_validator(mode="after")
    def _rules_across_keys(self) -> Settings:
        problems = self.problems_across_keys()
        if problems:
            raise PydanticCustomError(ACROSS_KEYS, "{count} problems", {"count": len(problems), "problems": problems})
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
                created_subnet(self.subnet_cidr), self.vip_address, self.fixed_addresses, subnet_key="subnetCidr"
            )
        return found


def _defaults() -> dict[str, Any]:
    """The fields' defaults as a stack file would write them (lists, objects by their keys)."""
    defaults: dict[str, Any] = {}
    for name, field_info in Settings.model_fields.items():
        if field_info.is_required():
            continue
        value = field_info.get_default(call_default_factory=True)
        if isinstance(value, tuple):
            value = [v.model_dump(by_alias=True, exclude_none=True) if isinstance(v, BaseModel) else v for v in value]
        defaults[key_of(name, field_info)] = value
    return defaults


DEFAULTS: dict[str, Any] = _defaults()
ALL_KEYS = tuple(key_of(name, field) for name, field in Settings.model_fields.items())
REQUIRED_KEYS = tuple(key_of(name, field) for name, field in Settings.model_fields.items() if field.is_required())
SECRET_KEYS = tuple(
    key_of(name, field) for name, field in Settings.model_fields.items() if field.annotation is SecretStr
)


def parse_settings(raw: Mapping[str, Any], namespace: str = NAMESPACE) -> Settings:
    """Builds Settings from raw config values (the keys of `namespace`);
    raises InvalidConfig listing every problem: each key's own first, then,
    once every key is valid on its own, the rules between keys."""
    try:
        return Settings.model_validate(dict(raw))
    except ValidationError as error:
        raise InvalidConfig(problems_of(error, Settings)).in_namespace(namespace) from None


def settings_from_config(config) -> Settings:
    """Reads every key of a `pulumi.Config` namespace (and any other key the
    stack sets there, refused as unknown) and parses it."""
    return parse_settings(raw_config(config, ALL_KEYS), config.name)


def planned_subnet(settings: Settings) -> SubnetFacts:
    """The subnet the stack creates."""
    if not settings.create_network:
        raise ValueError("the stack creates no subnet: createNetwork is false")
    return created_subnet(settings.subnet_cidr)


def check_addresses(settings: Settings, subnet: SubnetFacts) -> None:
    """Checks the VIP and fixed node addresses against a looked-up subnet
    (found by subnetName); raises InvalidConfig."""
    problems = address_problems(subnet, settings.vip_address, settings.fixed_addresses, subnet_key="subnetName")
    if problems:
        raise InvalidConfig(problems)

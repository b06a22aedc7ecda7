"""Pulumi mocks that behave like Neutron and Nova where the stack relies on it.

Ports get addresses from their subnet's allocation pools (or the fixed one asked
for, refused if taken or outside the subnet), floating IPs come from the
external network's pool, instances report the address of the port they boot
on, and look-ups of networks and subnets answer from what exists.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import rpc

ID_NAMESPACE = uuid.UUID("6f1c3a52-4a0e-4c1b-9d3e-000000000000")


def unwrap(value: Any) -> Any:
    """A mock input with its secret wrappers removed."""
    if rpc.is_rpc_secret(value):
        return unwrap(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {key: unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value


@dataclass
class FakeSubnet:
    id: str
    name: str
    network_id: str
    cidr: str
    gateway_ip: str | None
    allocation_pools: list[tuple[str, str]]
    allocated: set[str] = field(default_factory=set)

    def pool_addresses(self):
        for start, end in self.allocation_pools:
            address = ipaddress.IPv4Address(start)
            while address <= ipaddress.IPv4Address(end):
                yield str(address)
                address += 1

    def allocate(self, wanted: str | None) -> str:
        if wanted is not None:
            if ipaddress.IPv4Address(wanted) not in ipaddress.IPv4Network(self.cidr):
                raise ValueError(f"InvalidIpForSubnet: {wanted} is not in {self.cidr}")
            if wanted in self.allocated or wanted == self.gateway_ip:
                raise ValueError(f"IpAddressAlreadyAllocated: {wanted} in subnet {self.id}")
            self.allocated.add(wanted)
            return wanted
        for address in self.pool_addresses():
            if address not in self.allocated:
                self.allocated.add(address)
                return address
        raise ValueError(f"IpAddressGenerationFailure: no more addresses in subnet {self.id}")


# The project the program runs as, and the external network of with_external_network.
OUR_PROJECT = "project-ours"
EXTERNAL_NETWORK_ID = "ext-net-id"
ROUTER_INTERFACE = "network:router_interface"


@dataclass
class FakeCloud:
    """What exists in the project before the stack runs."""

    networks: dict[str, dict] = field(default_factory=dict)
    subnets: dict[str, FakeSubnet] = field(default_factory=dict)
    floating_pool: str = "203.0.113.0/24"  # TEST-NET-3: documentation only
    floating_allocated: list[str] = field(default_factory=list)
    # Glance: image name -> id of the image behind it today.
    images: dict[str, str] = field(default_factory=lambda: {"Ubuntu-22.04": "image-ubuntu-2204-v1"})
    # Ports that exist before the program runs: VMs of others, router
    # interfaces, a stack's own on a re-run.
    existing_ports: list[dict] = field(default_factory=list)
    routers: dict[str, dict] = field(default_factory=dict)
    # Who the program runs as (Keystone's auth scope).
    project_id: str = OUR_PROJECT
    project_name: str = "ours"
    roles: tuple[str, ...] = ("member",)

    def add_port(
        self,
        name: str,
        network_id: str = "",
        addresses: tuple[str, ...] = (),
        status: str = "ACTIVE",
        device_owner: str = "",
        device_id: str = "",
        tags: tuple[str, ...] = (),
        description: str = "",
    ) -> dict:
        port = {
            "id": f"port-{len(self.existing_ports)}-{name}",
            "name": name,
            "networkId": network_id,
            "addresses": list(addresses),
            "status": status,
            "deviceOwner": device_owner,
            "deviceId": device_id,
            "tags": list(tags),
            "description": description,
        }
        self.existing_ports.append(port)
        return port

    def add_running_node(self, name: str, address: str | None = None, network_id: str | None = None) -> None:
        """A node instance of an earlier deployment, up on its port."""
        self.keep_port(f"{name}-port", address, network_id)

    def keep_port(self, name: str, address: str | None = None, network_id: str | None = None) -> None:
        """A port of an earlier deployment, bound and up. The program declares
        it again and it keeps its address: Pulumi updates a port, it does not
        allocate a new one."""
        self.add_port(name, network_id or "", (address,) if address else (), device_owner="compute:nova")

    def kept_address(self, port_name: str | None) -> str | None:
        return next((p["addresses"][0] for p in self.existing_ports if p["name"] == port_name and p["addresses"]), None)

    def add_router(self, name: str, external_network_id: str | None, subnet: FakeSubnet | None = None) -> dict:
        """A router, with its gateway on an external network, and an interface on the subnet."""
        router = {"id": f"router-{name}", "name": name, "externalNetworkId": external_network_id or ""}
        self.routers[router["id"]] = router
        if subnet is not None:
            address = subnet.gateway_ip or subnet.allocate(None)
            self.add_port(
                f"{name}-interface",
                subnet.network_id,
                (address,),
                device_owner=ROUTER_INTERFACE,
                device_id=router["id"],
            )
        return router

    @classmethod
    def with_external_network(cls, name: str = "ext-net") -> FakeCloud:
        cloud = cls()
        cloud.networks[EXTERNAL_NETWORK_ID] = {
            "id": EXTERNAL_NETWORK_ID,
            "name": name,
            "external": True,
            "tenantId": "project-admin",
            "shared": True,
        }
        return cloud

    def add_existing_subnet(
        self,
        network_name: str = "mynetwork",
        subnet_name: str = "mysubnet",
        cidr: str = "192.168.0.0/24",
        gateway_ip: str | None = "192.168.0.1",
        allocation_pools: list[tuple[str, str]] | None = None,
        allocated: tuple[str, ...] = (),
        owner: str | None = None,
        router_to: str | None = EXTERNAL_NETWORK_ID,
        port_security: bool = True,
    ) -> FakeSubnet:
        """A network of the project (or, with owner, of another project and
        shared with this one), its subnet with ports of other VMs on the
        allocated addresses, and a router from it to router_to (an external
        network's id; None: no router)."""
        network_id = f"existing-{network_name}-id"
        self.networks[network_id] = {
            "id": network_id,
            "name": network_name,
            "external": False,
            "tenantId": owner or self.project_id,
            "shared": owner is not None,
            "portSecurityEnabled": port_security,
        }
        hosts = list(ipaddress.IPv4Network(cidr).hosts())
        subnet = FakeSubnet(
            id=f"existing-{subnet_name}-id",
            name=subnet_name,
            network_id=network_id,
            cidr=cidr,
            gateway_ip=gateway_ip,
            allocation_pools=allocation_pools or [(str(hosts[1]), str(hosts[-1]))],
            allocated=set(allocated),
        )
        self.subnets[subnet.id] = subnet
        for address in allocated:
            self.add_port(
                f"vm-at-{address}", network_id, (address,), device_owner="compute:nova", device_id=f"vm-at-{address}"
            )
        if router_to is not None:
            self.add_router(f"{network_name}-router", router_to, subnet)
        return subnet


class OpenStackMocks(pulumi.runtime.Mocks):
    def __init__(self, cloud: FakeCloud):
        self.cloud = cloud
        self.ports: dict[str, dict] = {}
        # (type, name) -> inputs as the program declared them, secrets still wrapped.
        self.inputs: dict[tuple[str, str], dict] = {}
        self.calls: list[tuple[str, dict]] = []

    @staticmethod
    def _new_id(kind: str, name: str) -> str:
        return str(uuid.uuid5(ID_NAMESPACE, f"{kind}/{name}"))

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.inputs[(args.typ, args.name)] = dict(args.inputs)
        inputs = unwrap(args.inputs)
        kind = args.typ
        resource_id = self._new_id(kind, args.name)
        state = dict(args.inputs)
        if kind == "openstack:networking/network:Network":
            self.cloud.networks[resource_id] = {"id": resource_id, "name": inputs.get("name"), "external": False}
        elif kind == "openstack:networking/subnet:Subnet":
            self.cloud.subnets[resource_id] = FakeSubnet(
                id=resource_id,
                name=inputs.get("name"),
                network_id=inputs["networkId"],
                cidr=inputs["cidr"],
                gateway_ip=inputs.get("gatewayIp"),
                allocation_pools=[(p["start"], p["end"]) for p in inputs.get("allocationPools", [])],
            )
        elif kind == "openstack:networking/router:Router":
            external = inputs.get("externalNetworkId")
            if external not in self.cloud.networks or not self.cloud.networks[external]["external"]:
                raise ValueError(f"ExternalGatewayForFloatingIPNotFound: {external}")
        elif kind == "openstack:networking/port:Port":
            fixed_ips = []
            for fixed in inputs.get("fixedIps", []):
                subnet = self.cloud.subnets.get(fixed["subnetId"])
                if subnet is None:
                    raise ValueError(f"SubnetNotFound: {fixed['subnetId']}")
                if subnet.network_id != inputs["networkId"]:
                    raise ValueError(f"subnet {subnet.id} is not on network {inputs['networkId']}")
                wanted = fixed.get("ipAddress") or self.cloud.kept_address(inputs.get("name"))
                fixed_ips.append({"subnetId": subnet.id, "ipAddress": subnet.allocate(wanted)})
            if inputs.get("allowedAddressPairs") and inputs.get("portSecurityEnabled") is False:
                raise ValueError("AddressPairAndPortSecurityRequired")
            network = self.cloud.networks.get(inputs["networkId"], {})
            if (
                network.get("portSecurityEnabled") is False
                and inputs.get("securityGroupIds")
                and inputs.get("portSecurityEnabled") is None
            ):
                raise ValueError("400 PortSecurityAndIPRequiredForSecurityGroups")
            foreign = network.get("tenantId", self.cloud.project_id) != self.cloud.project_id
            privileged = (
                any(fixed.get("ipAddress") for fixed in inputs.get("fixedIps", []))
                or inputs.get("allowedAddressPairs")
                or "portSecurityEnabled" in inputs
            )
            if foreign and privileged and "admin" not in self.cloud.roles:
                raise ValueError(
                    "403 the policy forbids fixed_ips:ip_address, allowed_address_pairs or "
                    "port_security_enabled on a network of another project"
                )
            state.update(
                fixedIps=fixed_ips,
                allFixedIps=[f["ipAddress"] for f in fixed_ips],
                macAddress="fa:16:3e:{:02x}:{:02x}:{:02x}".format(*tuple(uuid.UUID(resource_id).bytes[:3])),
                adminStateUp=inputs.get("adminStateUp", True),
                portSecurityEnabled=inputs.get("portSecurityEnabled", True),
                deviceId="",
            )
            self.ports[resource_id] = state
        elif kind == "openstack:networking/floatingIp:FloatingIp":
            if inputs.get("pool") not in {n["name"] for n in self.cloud.networks.values() if n["external"]}:
                raise ValueError(f"ExternalNetworkNotFound: {inputs.get('pool')}")
            hosts = ipaddress.IPv4Network(self.cloud.floating_pool).hosts()
            address = str(next(h for h in hosts if str(h) not in self.cloud.floating_allocated))
            self.cloud.floating_allocated.append(address)
            port = self.ports.get(inputs.get("portId"))
            state.update(address=address, fixedIp=port["allFixedIps"][0] if port else "")
        elif kind == "openstack:compute/instance:Instance":
            networks = []
            for network in inputs.get("networks", []):
                port = self.ports.get(network.get("port"))
                if port is None:
                    raise ValueError(f"PortNotFound: {network.get('port')}")
                if port["deviceId"]:
                    raise ValueError(f"PortInUse: {network.get('port')}")
                port["deviceId"] = resource_id
                networks.append({**network, "fixedIpV4": port["allFixedIps"][0], "mac": port["macAddress"]})
            state.update(
                networks=networks,
                accessIpV4=networks[0]["fixedIpV4"] if networks else "",
                powerState="active",
            )
        return resource_id, state

    @staticmethod
    def _not_found(field_name: str):
        # How the engine reports a data source that found nothing: a failed
        # invoke, raised at the call site.
        return {}, [(field_name, "Your query returned no results. Please change your search criteria and try again.")]

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.calls.append((args.token, dict(args.args)))
        if args.token == "openstack:networking/getNetwork:getNetwork":
            for network in self.cloud.networks.values():
                if network["name"] == args.args.get("name") and (
                    "external" not in args.args or bool(args.args["external"]) == network["external"]
                ):
                    return {
                        "id": network["id"],
                        "name": network["name"],
                        "external": network["external"],
                        "tenantId": network.get("tenantId", self.cloud.project_id),
                        "shared": str(network.get("shared", False)).lower(),
                    }
            return self._not_found("name")
        if args.token == "openstack:networking/getSubnet:getSubnet":
            for subnet in self.cloud.subnets.values():
                if subnet.name == args.args.get("name") and subnet.network_id == args.args.get("networkId"):
                    return {
                        "id": subnet.id,
                        "name": subnet.name,
                        "networkId": subnet.network_id,
                        "cidr": subnet.cidr,
                        "gatewayIp": subnet.gateway_ip or "",
                        "ipVersion": 4,
                        "allocationPools": [{"start": s, "end": e} for s, e in subnet.allocation_pools],
                    }
            return self._not_found("name")
        if args.token == "openstack:images/getImage:getImage":
            image_id = self.cloud.images.get(str(args.args.get("name")))
            if image_id is None:
                return self._not_found("name")
            return {"id": image_id, "name": args.args.get("name")}
        if args.token == "openstack:networking/getPortIds:getPortIds":
            wanted = {
                key: args.args[key] for key in ("name", "status", "networkId", "deviceOwner") if args.args.get(key)
            }
            return {
                "id": "port-ids",
                "ids": [
                    port["id"]
                    for port in self.cloud.existing_ports
                    if all(port.get(key) == value for key, value in wanted.items())
                    and (not args.args.get("fixedIp") or args.args["fixedIp"] in port["addresses"])
                    and set(args.args.get("tags") or ()) <= set(port["tags"])
                ],
            }
        if args.token == "openstack:networking/getPort:getPort":
            for port in self.cloud.existing_ports:
                if port["id"] == args.args.get("portId"):
                    return {
                        "id": port["id"],
                        "portId": port["id"],
                        "name": port["name"],
                        "networkId": port["networkId"],
                        "allFixedIps": port["addresses"],
                        "deviceOwner": port["deviceOwner"],
                        "deviceId": port["deviceId"],
                        "allTags": port["tags"],
                        "description": port["description"],
                    }
            return self._not_found("portId")
        if args.token == "openstack:networking/getRouter:getRouter":
            router = self.cloud.routers.get(str(args.args.get("routerId")))
            if router is None:
                return self._not_found("routerId")
            return {
                "id": router["id"],
                "routerId": router["id"],
                "name": router["name"],
                "externalNetworkId": router["externalNetworkId"],
            }
        if args.token == "openstack:identity/getAuthScope:getAuthScope":
            return {
                "id": "current",
                "name": args.args.get("name"),
                "projectId": self.cloud.project_id,
                "projectName": self.cloud.project_name,
                "roles": [{"roleId": f"role-{r}", "roleName": r} for r in self.cloud.roles],
            }
        raise NotImplementedError(f"no mock for {args.token}")

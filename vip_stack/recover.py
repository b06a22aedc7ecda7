"""After an interrupted `pulumi up`: the servers Nova made for the state's
pending creates, which the state will never know, found and deleted.

    pulumi cancel --yes              # the killed run's lock, if it left one
    pulumi stack export | python -m vip_stack.recover [--yes]
    pulumi refresh --clear-pending-creates --yes
    pulumi up

A `pulumi up` killed while Nova creates a node's instance leaves that create
pending in the state. `pulumi refresh --clear-pending-creates` drops it, but
the server Nova made stays, bound to the node's port, outside the state: the
next `pulumi up` then fails to create the node on a port in use, and
`pulumi destroy` leaves the server and the ports behind. This finds each
such server by the port the pending create named (its device) and the name
it gave, and with --yes deletes it; without, it says what it would delete.
Credentials: those of the `openstack` CLI and the Pulumi provider (OS_CLOUD
and clouds.yaml, or an openrc's OS_* variables).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

INSTANCE_TYPE = "openstack:compute/instance:Instance"


class RecoverError(Exception):
    """What it was given is not a stack's export: said in the user's terms."""


@dataclass(frozen=True)
class PendingCreate:
    urn: str
    # The server's name and its ports, as the create asked Nova for them.
    name: str
    ports: tuple[str, ...]


@dataclass(frozen=True)
class Stray:
    """A server Nova made for a pending create."""

    server_id: str
    name: str
    port_id: str
    urn: str


def parse_export(text: str) -> dict[str, Any]:
    try:
        export = json.loads(text)
    except json.JSONDecodeError as error:
        raise RecoverError(f"not the JSON of `pulumi stack export`: {error}") from None
    deployment = export.get("deployment") if isinstance(export, dict) else None
    if not isinstance(deployment, dict):
        raise RecoverError("not the output of `pulumi stack export`: it has no deployment")
    return deployment


def pending_instance_creates(deployment: dict[str, Any]) -> list[PendingCreate]:
    found = []
    for operation in deployment.get("pending_operations") or []:
        resource = operation.get("resource") or {}
        if operation.get("type") != "creating" or resource.get("type") != INSTANCE_TYPE:
            continue
        inputs = resource.get("inputs") or {}
        ports = tuple(n["port"] for n in inputs.get("networks") or [] if isinstance(n, dict) and n.get("port"))
        found.append(PendingCreate(urn=resource.get("urn", ""), name=str(inputs.get("name", "")), ports=ports))
    return found


def strays(conn: Any, deployment: dict[str, Any]) -> list[Stray]:
    """Servers on a pending create's ports, of the name it gave, that the
    state does not hold. A pending create without a port is not looked
    for: nothing but its name would tell its server from another."""
    known = {resource.get("id") for resource in deployment.get("resources") or [] if resource.get("id")}
    found = []
    for pending in pending_instance_creates(deployment):
        for port_id in pending.ports:
            port = conn.network.find_port(port_id)
            server_id = getattr(port, "device_id", None) if port is not None else None
            if not server_id or server_id in known:
                continue
            server = conn.compute.find_server(server_id)
            if server is not None and server.name == pending.name:
                found.append(Stray(server_id=server.id, name=server.name, port_id=port_id, urn=pending.urn))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vip_stack.recover", description=__doc__.splitlines()[0])
    parser.add_argument("--yes", action="store_true", help="delete what it finds (default: only say it)")
    args = parser.parse_args(argv)
    try:
        deployment = parse_export(sys.stdin.read())
    except RecoverError as error:
        print(f"recover: {error}", file=sys.stderr)
        return 2
    pending = pending_instance_creates(deployment)
    if not pending:
        print("no instance create is pending in this state: nothing to recover; `pulumi up` goes on from here")
        return 0
    # openstacksdk is imported only here: importing vip_stack stays cheap.
    import openstack

    conn = openstack.connect()
    found = strays(conn, deployment)
    for stray in found:
        if args.yes:
            conn.compute.delete_server(stray.server_id, ignore_missing=True)
            server = conn.compute.find_server(stray.server_id)
            if server is not None:
                conn.compute.wait_for_delete(server, wait=300)
            print(f"deleted server {stray.server_id} ({stray.name}), made for {stray.urn} on port {stray.port_id}")
        else:
            print(f"would delete server {stray.server_id} ({stray.name}), made for {stray.urn} on port {stray.port_id}")
    others = [p.urn for p in pending if p.urn not in {s.urn for s in found}]
    for urn in others:
        print(f"no server was made for {urn}")
    if found and not args.yes:
        print("run again with --yes to delete them, then:")
    else:
        print("now:")
    print("  pulumi refresh --clear-pending-creates --yes\n  pulumi up")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Two dynamic resources shaped like the rollout's: a `Server` replaced
delete-before-replace when its generation changes, and a `Gate` that takes the
server's id as an input (as NodeInService takes its instance's id). The
providers live here, an importable module, not in __main__: the engine's
provider process must import this module to unpickle them."""

import uuid

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider


class ServerProvider(ResourceProvider):
    def create(self, props):
        return CreateResult(id_=f"server-{props['generation']}-{uuid.uuid4().hex[:8]}", outs=dict(props))

    def diff(self, _id, olds, news):
        replaces = [key for key in ("generation",) if olds.get(key) != news.get(key)]
        changes = replaces or [key for key in ("token",) if olds.get(key) != news.get(key)]
        return DiffResult(changes=bool(changes), replaces=replaces, delete_before_replace=True)


class GateProvider(ResourceProvider):
    def create(self, props):
        return CreateResult(id_=f"gate-of-{props['server_id']}", outs=dict(props))

    def diff(self, _id, olds, news):
        # An unknown server id (the engine asks this while it decides what a
        # delete-before-replace takes with it) is a change of server too.
        replaces = ["server_id"] if olds.get("server_id") != news.get("server_id") else []
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=True)


class Server(Resource):
    def __init__(self, name, generation, token, opts=None):
        super().__init__(ServerProvider(), name, {"generation": generation, "token": token}, opts)


class Gate(Resource):
    def __init__(self, name, server: Server, opts=None):
        super().__init__(GateProvider(), name, {"server_id": server.id}, opts)


def program() -> None:
    config = pulumi.Config()
    server = Server("server", config.get("generation") or "1", config.require_secret("token"))
    gate = Gate("gate", server)
    pulumi.export("serverId", server.id)
    pulumi.export("gateId", gate.id)
    pulumi.export("token", server.token)  # type: ignore[attr-defined]

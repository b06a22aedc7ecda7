"""Every change class of a rolling update: what the stack is set to before the
change and what the change sets, as stack settings. The lab's tests and its
benchmark (bench.handover) and the local cloud's benchmark
(bench.lifecycle) roll out the same ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

THREE_NODES = [
    {"name": "kld-vm-1", "priority": 120},
    {"name": "kld-vm-2", "priority": 90},
    {"name": "kld-vm-3", "priority": 60},
]
# bench/fast-failover.yaml's advert interval; its other keys (a flavor, the
# addresses SSH comes from) belong to a real cloud, not to these stacks.
FAST_PROFILE_ADVERT_INTERVAL = "0.1"


def new_priorities(config: dict[str, Any]) -> dict[str, Any]:
    """A change old and new nodes agree on: every node's priority moves, their order does not."""
    return {"nodes": [{**node, "priority": node["priority"] + 10} for node in config["nodes"]]}


def new_password(config: dict[str, Any]) -> dict[str, Any]:
    return {"vrrpPassword": "n3w-pass" if config.get("vrrpPassword") != "n3w-pass" else "0ld-pass"}


def next_router_id(config: dict[str, Any]) -> dict[str, Any]:
    return {"virtualRouterId": config.get("virtualRouterId", 254) % 255 + 1}


@dataclass(frozen=True)
class ChangeClass:
    name: str
    # What the change sets, from the stack before it.
    change: Callable[[dict[str, Any]], dict[str, Any]]
    # Settings on top of the base stack before the change.
    before: dict[str, Any] = field(default_factory=dict)
    # The other nodes are out of the drain's reach, as when SSH to them fails:
    # the lab's drill refuses their commands, the cloud's benchmark has the
    # jumphost drop SSH to them.
    successor_unreachable: bool = False

    def stack_before(self, base: dict[str, Any]) -> dict[str, Any]:
        return {**base, **self.before}


CHANGE_CLASSES = {
    c.name: c
    for c in (
        ChangeClass("compatible", new_priorities),
        ChangeClass("password", new_password),
        ChangeClass("router id", next_router_id),
        # advert 1 s is VRRP v2, 0.5 s needs v3.
        ChangeClass("vrrp version", lambda c: {"advertInterval": "0.5"}),
        ChangeClass("preempt false", new_priorities, {"preempt": False}),
        ChangeClass("three nodes", new_priorities, {"nodes": THREE_NODES}),
        ChangeClass("fast profile", new_priorities, {"advertInterval": FAST_PROFILE_ADVERT_INTERVAL}),
        ChangeClass("successor unreachable", new_priorities, successor_unreachable=True),
    )
}


def config_paths(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as `pulumi config set --path` keys: a list of objects becomes
    one key per field (`nodes[0].priority`)."""
    paths: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            for index, item in enumerate(value):
                paths.update({f"{key}[{index}].{name}": v for name, v in item.items()})
        else:
            paths[key] = value
    return paths

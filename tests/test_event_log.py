"""Reading the engine's event log while `pulumi up` writes it
(tests/real_engine.py), as the fault tests do to interrupt a step once it
has begun."""

from __future__ import annotations

import json

from tests.real_engine import Step, steps


def event(sequence: int, key: str, op: str, name: str) -> str:
    urn = f"urn:pulumi:local::keepalived-vip::openstack:compute/instance:Instance::{name}"
    return json.dumps({"sequence": sequence, key: {"metadata": {"op": op, "urn": urn}}})


def test_a_line_the_engine_is_still_writing_is_left_for_the_next_read(tmp_path):
    log = tmp_path / "events.jsonl"
    begun = event(2, "resourcePreEvent", "create", "kld-vm-1")
    ended = event(3, "resOutputsEvent", "create", "kld-vm-1")
    log.write_text(json.dumps({"sequence": 1, "cancelEvent": {}}) + "\n" + begun + "\n" + ended[:40])

    assert steps(log) == [Step(2, "pre", "create", "kld-vm-1")]

    log.write_text(log.read_text() + ended[40:] + "\n")
    assert steps(log) == [Step(2, "pre", "create", "kld-vm-1"), Step(3, "done", "create", "kld-vm-1")]

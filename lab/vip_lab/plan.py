"""Shows what `pulumi up` would declare for a stack file, without a cloud.

    python -m vip_lab.plan [--config Pulumi.dev.yaml]

Evaluates the program under the mock runtime (addresses handed out as Neutron
would) and prints the resource tree, each node's keepalived.conf (password
masked) and the stack outputs.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import string
import sys
from pathlib import Path

import yaml

from vip_stack.rendering import KEEPALIVED_CONF_PATH
from vip_stack.settings import InvalidConfig, config_from_stack_file

from .evaluate import EXAMPLE_STACK_FILE, MockedRun, run_program

PASSWORD_ENV = "VRRP_PASSWORD"
PASSWORD_ALPHABET = string.ascii_letters + string.digits


def stack_config(stack_file: Path) -> tuple[dict, str]:
    """The stack file's values plus a VRRP password: $VRRP_PASSWORD, or a fresh
    random one (the stack file's own is encrypted for the Pulumi CLI only).
    Returns the config and a line saying where the password came from."""
    config = config_from_stack_file(stack_file)
    password = os.environ.get(PASSWORD_ENV)
    if password:
        origin = f"VRRP password from ${PASSWORD_ENV}"
    else:
        password = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(8))
        origin = f"VRRP password: a random one for this run (set ${PASSWORD_ENV} to choose)"
    return {**config, "vrrpPassword": password}, origin


def node_keepalived_conf(deployment: MockedRun, node_name: str) -> str:
    user_data = yaml.safe_load(deployment.called(node_name, "Instance").input("userData"))
    return next(f["content"] for f in user_data["write_files"] if f["path"] == KEEPALIVED_CONF_PATH)


def print_tree(deployment: MockedRun, out) -> None:
    children: dict[str, list] = {}
    for resource in deployment.resources:
        children.setdefault(resource.parent_urn, []).append(resource)
    by_urn = {r.urn for r in deployment.resources}

    def show(resource, depth):
        secret = [k for k in resource.inputs if resource.is_secret(k)]
        note = f"  (secret: {', '.join(secret)})" if secret else ""
        print(f"{'  ' * depth}{resource.short_type} {resource.name}{note}", file=out)
        for child in children.get(resource.urn, []):
            show(child, depth + 1)

    for resource in deployment.resources:
        if resource.parent_urn not in by_urn:
            show(resource, 0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vip_lab.plan", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=EXAMPLE_STACK_FILE, help="a Pulumi.<stack>.yaml")
    args = parser.parse_args(argv)
    config, origin = stack_config(args.config)
    password = config["vrrpPassword"]
    try:
        deployment = run_program(config)
    except InvalidConfig as error:
        print(error, file=sys.stderr)
        return 2
    out = sys.stdout
    print(f"Plan for {args.config} ({origin})\n", file=out)
    print_tree(deployment, out)
    for node in deployment.outputs["nodes"]:
        conf = node_keepalived_conf(deployment, node["name"]).replace(password, "********")
        print(f"\n--- {node['name']}: {KEEPALIVED_CONF_PATH} ---\n{conf}", file=out, end="")
    print("\nOutputs:", file=out)
    print(json.dumps(deployment.outputs, indent=2), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

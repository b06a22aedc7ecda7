"""Where the settings' raw values come from: a Pulumi config namespace
(what `pulumi up` hands the program) or a stack file read without the CLI
(the lab, tests). The only place that touches `pulumi.Config`; the model
(`settings.py`) parses what these return.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .config_errors import NAMESPACE


def raw_config(config, known_keys: Iterable[str]) -> dict[str, Any]:
    """The raw values of a `pulumi.Config` namespace: every known key that is
    set, and every other key the stack sets there, so that a mistyped key is
    reported instead of silently ignored.

    The password is read as plain text here, and only here, because its rules
    (1 to 8 characters) must be checked before any resource is declared; the
    model wraps it in pydantic's SecretStr and it reaches Pulumi only as a
    secret Output.
    """
    keys = set(known_keys) | _namespace_keys(config.name)
    raw = {key: config.get(key) for key in keys}
    return {key: value for key, value in raw.items() if value is not None}


def _namespace_keys(namespace: str) -> set[str]:
    """Every key this stack sets in the namespace. The SDK keeps the config it
    was given (by the CLI, or by set_all_config) in these two places."""
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

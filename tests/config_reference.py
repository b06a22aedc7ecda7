"""The configuration reference, made from the settings model's fields (their
types, bounds, choices, defaults and descriptions): the per-key part of
docs/configuration.md, between its markers, and the config declarations of
Pulumi.yaml. tests/test_project_files.py fails when either file differs from
what this makes; after a change to the fields, rewrite both and read the diff:

    make reference     # venv/bin/python -m tests.config_reference

It lives with the tests, like tests/golden_files.py, and not in vip_stack/:
neither `pulumi up` nor a library user needs it, and it is both the tool that
writes the files and the oracle the test compares them with.
"""

from __future__ import annotations

import json
import textwrap
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from vip_stack.config_errors import NAMESPACE, bounds, choices, is_list, item_type, key_of, nested_model, shape
from vip_stack.settings import DEFAULTS, Settings

PROJECT_DIR = Path(__file__).resolve().parent.parent
CONFIGURATION_MD = PROJECT_DIR / "docs" / "configuration.md"
PULUMI_YAML = PROJECT_DIR / "Pulumi.yaml"
BEGIN = "<!-- generated from the fields of vip_stack/settings.py by `make reference`: edit them, not this -->"
END = "<!-- end of the generated reference -->"
SCHEMA_HEADING = "# The config schema, generated from the fields of vip_stack/settings.py by `make reference`."

# The Pulumi CLI's project config types (it has no number or object type).
PULUMI_TYPES = {bool: "boolean", int: "integer", str: "string", SecretStr: "string"}
WORDS = {bool: "bool", int: "integer", float: "number", str: "string", SecretStr: "secret string"}


def fields(model: type[BaseModel] = Settings) -> dict[str, FieldInfo]:
    return {key_of(name, field): field for name, field in model.model_fields.items()}


def _held(field: FieldInfo) -> Any:
    held = item_type(field)
    return str if typing.get_origin(held) is Literal else held


def declaration(key: str, field: FieldInfo) -> dict[str, Any] | None:
    """The key's declaration in Pulumi.yaml, or None when the schema cannot type it."""
    held = _held(field)
    if held not in PULUMI_TYPES:
        return None
    declared: dict[str, Any] = {"type": PULUMI_TYPES[held]}
    if is_list(field):
        declared = {"type": "array", "items": declared}
    if key in DEFAULTS:
        declared["default"] = DEFAULTS[key]
    if held is SecretStr:
        declared["secret"] = True
    rules = [_plain(field.description or "")]
    if bounds(field):
        rules.append("From {} to {}.".format(*bounds(field)))  # type: ignore[misc]
    if choices(field):
        rules.append(f"One of {', '.join(choices(field))}.")  # type: ignore[arg-type]
    if field.is_required():
        rules.append("Required.")
    declared["description"] = " ".join(rules)
    return declared


def undeclarable_keys() -> list[str]:
    return [key for key, field in fields().items() if declaration(key, field) is None]


def _plain(text: str) -> str:
    # Pulumi shows descriptions as text, not Markdown.
    return text.replace("`", "")


def _and(words: list[str]) -> str:
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)


def pulumi_yaml(current: str) -> str:
    """Pulumi.yaml: its hand-written head (name, runtime) as it is, then the
    config schema of every key the CLI can type."""
    head = current.split(SCHEMA_HEADING)[0].split("\nconfig:")[0].rstrip("\n") + "\n"
    declarations = {key: d for key, field in fields().items() if (d := declaration(key, field)) is not None}
    schema = yaml.safe_dump(
        {"config": declarations}, sort_keys=False, default_flow_style=False, width=1 << 16, allow_unicode=True
    )
    comment = (
        f"{_and(undeclarable_keys())} are not declared here: the schema has no object or number type. "
        "docs/configuration.md documents every key, and the program validates them all."
    )
    return (
        head
        + SCHEMA_HEADING
        + "\n"
        + textwrap.fill(comment, 100, initial_indent="# ", subsequent_indent="# ")
        + "\n"
        + schema
    )


def _type_words(field: FieldInfo) -> str:
    model = nested_model(field)
    if model is not None:
        words = f"`{shape(model)}`"
    elif choices(field):
        words = " / ".join(f"`{choice}`" for choice in choices(field))  # type: ignore[union-attr]
    else:
        words = WORDS[_held(field)] + ("s" if is_list(field) else "")
    if bounds(field):
        words += " {} to {}".format(*bounds(field))  # type: ignore[misc]
    return f"list of {words}" if is_list(field) else words


def _value_words(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str) and value:
        return f"`{value}`"
    return f"`{json.dumps(value)}`"


def _default_words(key: str, field: FieldInfo) -> str:
    return "required" if field.is_required() else _value_words(DEFAULTS[key])


def _description(field: FieldInfo) -> str:
    model = nested_model(field)
    if model is None:
        return field.description or ""
    parts = []
    for key, sub in fields(model).items():
        default = "required" if sub.is_required() else f"default {_value_words(sub.get_default())}"
        parts.append(f"`{key}` ({_type_words(sub)}, {default}): {sub.description}")
    return f"{field.description} " + " ".join(parts)


def reference_table() -> str:
    lines = [
        f"Declared with type, default and description in `Pulumi.yaml`, except "
        f"{_and([f'`{key}`' for key in undeclarable_keys()])}, which its schema cannot type (it has no object "
        "or number type). Every rule below is checked before any resource is declared; a violation stops the "
        "program with an error that names the key, for example "
        f"`{NAMESPACE}:vrrpPassword: is 9 characters long; keepalived uses at most 8 ...`.",
        "",
        "| key | type | default | description |",
        "|---|---|---|---|",
    ]
    for key, field in fields().items():
        cells = [f"`{key}`", _type_words(field), _default_words(key, field), _description(field)]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def configuration_md(current: str) -> str:
    """docs/configuration.md with the part between its markers made anew."""
    before, rest = current.split(BEGIN + "\n", 1)
    _, after = rest.split(END, 1)
    return before + BEGIN + "\n" + reference_table() + END + after


def main() -> None:
    for path, make in ((PULUMI_YAML, pulumi_yaml), (CONFIGURATION_MD, configuration_md)):
        current = path.read_text()
        made = make(current)
        if made != current:
            path.write_text(made)
            print(f"rewrote {path.relative_to(PROJECT_DIR)}")


if __name__ == "__main__":
    main()

"""What is wrong with a configuration, said of its keys.

Every refusal of a setting becomes a `ConfigProblem` naming the config key
(namespace:key), and all of a run's problems one `InvalidConfig`, raised
before any resource is declared. `problems_of` says what pydantic found in
the words of this project, with the bounds and choices read from the model's
own fields, so a message never states a rule the model does not hold.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Union

import annotated_types
from pulumi.errors import RunError
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

NAMESPACE = "keepalived-vip"


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


# --- what a model's fields declare ------------------------------------------------
#
# Read by the error messages below and by the configuration reference
# (tests/config_reference.py), so that both say what the fields hold.


def key_of(name: str, field: FieldInfo) -> str:
    """The config key of a field: its alias, or its name."""
    return field.alias or name


def fields_by_key(model: type[BaseModel]) -> dict[str, FieldInfo]:
    return {key_of(name, field): field for name, field in model.model_fields.items()}


def bounds(field: FieldInfo) -> tuple[float, float] | None:
    """A number's inclusive range, when its field declares both ends."""
    low = next((m.ge for m in field.metadata if isinstance(m, annotated_types.Ge)), None)
    high = next((m.le for m in field.metadata if isinstance(m, annotated_types.Le)), None)
    if low is None or high is None:
        return None
    return low, high  # type: ignore[return-value]


def choices(field: FieldInfo) -> tuple[str, ...] | None:
    """The values a Literal field allows."""
    held = item_type(field)
    return tuple(typing.get_args(held)) if typing.get_origin(held) is Literal else None


def _unwrapped(annotation: Any) -> Any:
    """A type under Annotated and Optional."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
        else:
            return annotation


def is_list(field: FieldInfo) -> bool:
    return typing.get_origin(_unwrapped(field.annotation)) is tuple


def item_type(field: FieldInfo) -> Any:
    """What a field holds, or each item of a list holds, under Annotated and Optional."""
    held = _unwrapped(field.annotation)
    return _unwrapped(typing.get_args(held)[0]) if typing.get_origin(held) is tuple else held


def nested_model(field: FieldInfo) -> type[BaseModel] | None:
    """The model of an object (or a list of objects) field."""
    held = item_type(field)
    return held if isinstance(held, type) and issubclass(held, BaseModel) else None


def shape(model: type[BaseModel]) -> str:
    """An object as its keys, optional ones with '?': {name, priority, ipAddress?}."""
    keys = [key_of(name, field) + ("" if field.is_required() else "?") for name, field in model.model_fields.items()]
    return "{" + ", ".join(keys) + "}"


def _field_at(model: type[BaseModel], loc: Sequence[str | int]) -> FieldInfo | None:
    """The field an error's location points at (list indexes skipped)."""
    current: type[BaseModel] | None = model
    field = None
    for part in loc:
        if isinstance(part, int):
            continue
        if current is None or (field := fields_by_key(current).get(part)) is None:
            return None
        current = nested_model(field)
    return field


# --- pydantic's findings in this project's words ----------------------------------

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
_SHAPE_ERRORS = ("model_type", "list_type", "tuple_type", "model_attributes_type")
ACROSS_KEYS = "across_keys"


def _location(key: str, parts: Sequence[str | int]) -> str:
    return key + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts)


def _message(model: type[BaseModel], item: Any) -> str:
    loc, kind, value = list(item["loc"]), item["type"], item.get("input")
    field = _field_at(model, loc)
    if kind in ("greater_than_equal", "less_than_equal") and field and bounds(field):
        low, high = bounds(field)  # type: ignore[misc]
        return f"must be from {low} to {high}, got {value}"
    if kind == "literal_error" and field and choices(field):
        return f"must be one of {', '.join(choices(field))}, got {value!r}"  # type: ignore[arg-type]
    top = fields_by_key(model).get(str(loc[0])) if loc else None
    if kind in _SHAPE_ERRORS and top is not None and len(loc) <= 2 and (model_of_top := nested_model(top)):
        return f"must be {'a list of ' if is_list(top) else 'an object '}{shape(model_of_top)}"
    if kind in _PYDANTIC_MESSAGES:
        return _PYDANTIC_MESSAGES[kind].format(input=value)
    return item["msg"]


def problems_of(error: ValidationError, model: type[BaseModel]) -> list[ConfigProblem]:
    """Each of pydantic's findings as a problem of the key it is about.

    The model's rules across keys arrive as one error of type `across_keys`
    carrying their problems, already said of their keys."""
    problems: list[ConfigProblem] = []
    for item in error.errors(include_url=False):
        if item["type"] == ACROSS_KEYS:
            problems += item["ctx"]["problems"]
            continue
        loc = list(item["loc"])
        key = str(loc[0]) if loc else ""
        nested = len(loc) > 1
        if item["type"] == "missing":
            message = "is required" if nested else "is required but not set"
        elif item["type"] == "extra_forbidden":
            if nested:
                problems.append(ConfigProblem(key, f"{_location(key, loc[1:-1])} has unknown fields {[loc[-1]]}"))
                continue
            message = f"is not a known key (known: {', '.join(sorted(fields_by_key(model)))})"
        else:
            message = _message(model, item)
        problems.append(ConfigProblem(key, f"{_location(key, loc[1:])} {message}" if nested else message))
    return problems

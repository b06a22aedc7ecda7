"""Pulumi.yaml, Pulumi.dev.yaml and the configuration reference agree with
the program and with what the Pulumi CLI accepts (a project config
declaration has only type, items, description, secret and default; types are
string, integer, boolean, array)."""

from pathlib import Path

import yaml

from vip_stack.settings import ALL_KEYS, DEFAULTS, REQUIRED_KEYS, SECRET_KEYS, config_from_stack_file

from .config_reference import CONFIGURATION_MD, PULUMI_YAML, configuration_md, pulumi_yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent
# The schema has no number or object type for these; docs/configuration.md documents them.
UNDECLARABLE = {"nodes", "advertInterval", "healthCheck", "servicePorts"}
DECLARATION_FIELDS = {"type", "items", "description", "secret", "default"}
PYTHON_TYPES = {"string": str, "integer": int, "boolean": bool, "array": list}


def project():
    return yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())


def test_the_project_runs_python_in_a_virtualenv():
    document = project()
    assert document["name"] == "keepalived-vip"
    assert document["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": "venv"}}


def test_every_key_the_schema_can_type_is_declared():
    assert set(project()["config"]) == set(ALL_KEYS) - UNDECLARABLE


def test_declarations_use_only_what_the_cli_accepts():
    for key, declaration in project()["config"].items():
        assert set(declaration) <= DECLARATION_FIELDS, key
        assert declaration["type"] in PYTHON_TYPES, key
        assert declaration.get("description"), key
        if declaration["type"] == "array":
            assert declaration["items"]["type"] in PYTHON_TYPES, key
        if "default" in declaration:
            assert isinstance(declaration["default"], PYTHON_TYPES[declaration["type"]]), key


def test_declared_defaults_are_the_programs_defaults():
    for key, declaration in project()["config"].items():
        if key in REQUIRED_KEYS:
            assert "default" not in declaration, f"{key} is required and must have no default"
        else:
            assert declaration["default"] == DEFAULTS[key], key
    for key in UNDECLARABLE:
        assert key in DEFAULTS, f"{key} needs a default in the program since Pulumi.yaml cannot give one"


def test_the_password_is_declared_secret():
    declarations = project()["config"]
    for key in SECRET_KEYS:
        assert declarations[key]["secret"] is True
    assert not any(d.get("secret") for k, d in declarations.items() if k not in SECRET_KEYS)


def test_the_example_stack_sets_every_key_but_the_secret_and_the_health_check():
    # The reference procedure tracks no service; the file shows a health check in a comment.
    stack = yaml.safe_load((PROJECT_DIR / "Pulumi.dev.yaml").read_text())["config"]
    assert all(key.startswith("keepalived-vip:") for key in stack)
    assert set(config_from_stack_file(PROJECT_DIR / "Pulumi.dev.yaml")) == (
        set(ALL_KEYS) - set(SECRET_KEYS) - {"healthCheck"}
    )


def test_the_schema_and_the_reference_are_generated_from_the_fields():
    # One source: a field's description, bounds, choices or default changed
    # without `make reference` leaves these files behind.
    assert PULUMI_YAML.read_text() == pulumi_yaml(PULUMI_YAML.read_text()), "run make reference"
    assert CONFIGURATION_MD.read_text() == configuration_md(CONFIGURATION_MD.read_text()), "run make reference"


def test_the_configuration_reference_documents_every_key():
    reference = CONFIGURATION_MD.read_text()
    section = reference.split("## Configuration (namespace `keepalived-vip`)")[1].split("\n## ")[0]
    documented = {line.split("`")[1] for line in section.splitlines() if line.startswith("| `")}
    assert documented == set(ALL_KEYS)

"""Config validation against `config/schema.yaml`, with defaults filled and one-line errors."""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path

import jsonschema
import yaml

from facelatent.errors import ConfigError


def _with_defaults(validator_class):
    """A validator that also fills `default` values into the instance (as Snakemake's validate does)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, MutableMapping):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = sub["default"]
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def load_schema(path: str | Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def key_path(error: jsonschema.ValidationError) -> str:
    """Dotted location of a validation error, e.g. `generator.truncation_psi`."""
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def describe_error(error: jsonschema.ValidationError) -> str:
    """One line that names the key and says what is wrong with it."""
    where = key_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        prefix = f"{where}." if where != "<top level>" else ""
        return f"unknown config key '{prefix}{extra[0] if extra else '?'}' (allowed here: {', '.join(allowed)})"
    return f"config key '{where}': {error.message}"


def check_config(config: MutableMapping, schema_path: str | Path) -> MutableMapping:
    """Validate in place (filling defaults); raise ConfigError naming the first bad key."""
    schema = load_schema(schema_path)
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), key_path(e)))
    if errors:
        raise ConfigError(describe_error(errors[0]))
    return config

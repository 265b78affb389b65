"""The one place Helm values are checked against the pinned chart's own values.schema.json.

Helm runs the same check at install time, but only after it has a cluster to talk to; doing it here
makes a values file written for another chart fail offline, before any helm or API call (wall 2).
Messages follow Helm's wording (`additional properties 'redirectTo' not allowed`, `got boolean, want
object`) so they match what the user finds when searching for them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

from labup.errors import ConfigError
from labup.traefik.keys import Key, ValuesError, dotted
from labup.traefik.pin import load_pin, pin_file

_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
               float: "number", type(None): "null"}
_MORE_SHOWN = 5


@cache
def _validator(chart: str = "traefik") -> Validator:
    """A validator of the schema's own draft (its `$schema`: 2020-12 for Traefik's chart 41.3.0,
    draft-07 for cert-manager's)."""
    pin = load_pin(chart)
    where = pin_file(chart)
    try:
        raw = pin.schema_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: schema", f"cannot read {pin.schema_path}: {exc.strerror}") from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != pin.schema_sha256:
        raise ConfigError(f"{where}: schema_sha256",
                          f"{pin.schema_path.name} has sha256 {digest}, the pin says {pin.schema_sha256}",
                          hint=f"restore the chart {pin.version} schema, or update the pin if you "
                               "replaced it on purpose")
    schema = json.loads(raw)
    # No check_schema() here: it costs ~2 s on this schema, and the sha256 above already proves
    # this is the copy the tests checked against its metaschema.
    cls = validators.validator_for(schema, default=Draft202012Validator)
    return cls(schema)  # type: ignore[no-any-return]


def validate(values: Mapping[str, Any], chart: str = "traefik") -> None:
    """Raise ValuesError for the first schema violation (by key path); the hint lists the others."""
    errors = sorted(_validator(chart).iter_errors(values), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return
    first_key, first_msg = describe(errors[0])
    others = [dotted(describe(e)[0]) for e in errors[1:]]
    pin = load_pin(chart)
    hint = (f"the chart {pin.name} {pin.version} schema refuses it; its keys: "
            f"`helm show values {pin.ref} --version {pin.version}`")
    if others:
        shown = ", ".join(others[:_MORE_SHOWN]) + (", ..." if len(others) > _MORE_SHOWN else "")
        hint += f". {len(others)} more: {shown}"
    raise ValuesError(first_key, first_msg, hint)


def describe(error: ValidationError) -> tuple[Key, str]:
    """The failing key path and a Helm-worded message for one jsonschema error."""
    key: Key = tuple(error.absolute_path)
    instance, schema = error.instance, error.schema
    if error.validator == "additionalProperties" and isinstance(instance, Mapping) \
            and isinstance(schema, Mapping):
        extra = [k for k in instance if k not in schema.get("properties", {})]
        names = ", ".join(f"'{k}'" for k in extra)
        # One stray key: point at it, not at its parent (`ports.web.redirectTo`, not `ports.web`).
        return ((*key, extra[0]) if len(extra) == 1 else key), f"additional properties {names} not allowed"
    if error.validator == "type":
        want = error.validator_value
        wanted = " or ".join(want) if isinstance(want, list) else str(want)
        got = _JSON_TYPES.get(type(instance), type(instance).__name__)
        return key, f"got {got}, want {wanted}"
    if error.validator == "enum":
        allowed = ", ".join("null" if v is None else f"'{v}'" for v in error.validator_value)
        return key, f"value must be one of {allowed}"
    if error.validator in ("minimum", "maximum"):
        return key, f"{error.validator}: got {instance}, want {error.validator_value}"
    return key, error.message

"""Validate payloads against a committed schema document the way a third party would:
the ``jsonschema`` package, Draft 2020-12, references resolved from the document root."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parent.parent
BASE = "urn:replenish:schema"


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((ROOT / "docs" / name).read_text())
    return doc


def validator(doc: dict[str, Any], definition: str) -> Draft202012Validator:
    """A validator for ``#/$defs/<definition>`` of ``doc`` (which must itself be valid)."""
    Draft202012Validator.check_schema(doc)
    registry: Registry[Any] = Registry().with_resource(BASE, Resource.from_contents(doc))
    return Draft202012Validator({"$ref": f"{BASE}#/$defs/{definition}"}, registry=registry)


def strict_json(payload: bytes) -> Any:
    """RFC 8259 parsing as a careful third party does it: UTF-8 only, no NaN/Infinity."""
    def refuse(token: str) -> Any:
        raise ValueError(f"not JSON: {token}")
    return json.loads(payload.decode("utf-8"), parse_constant=refuse)

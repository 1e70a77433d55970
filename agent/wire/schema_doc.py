"""One JSON Schema document (Draft 2020-12) from several pydantic models.

``model_json_schema()`` of each model carries its own nested ``$defs`` while its
``$ref``s point at the document root (``#/$defs/Consumable``): put side by side under one
root ``$defs`` they do not resolve. :func:`document` builds every model's schema in one
pass (pydantic's ``models_json_schema``), so all definitions sit at the root and every
reference resolves, and closes dict-typed fields the way the models do.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaValue, models_json_schema

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _close_pattern_maps(node: Any) -> None:
    # pydantic renders dict[Pattern-constrained str, V] as patternProperties only, which
    # lets any other key through; the model refuses such keys, so the schema must too.
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _close_pattern_maps(value)
    elif isinstance(node, list):
        for value in node:
            _close_pattern_maps(value)


def model_defs(models: tuple[type[BaseModel], ...]) -> JsonSchemaValue:
    """Root-level ``$defs`` for ``models`` and every model and enum they use."""
    _, top = models_json_schema([(m, "validation") for m in models])
    defs: JsonSchemaValue = top["$defs"]
    _close_pattern_maps(defs)
    return defs


def document(title: str, models: tuple[type[BaseModel], ...], *,
             extra_defs: JsonSchemaValue | None = None, **annotations: Any) -> JsonSchemaValue:
    """A self-contained schema: the root accepts any of ``models``, each under ``$defs``."""
    defs = model_defs(models)
    for name, schema in (extra_defs or {}).items():
        if name in defs:
            raise ValueError(f"duplicate schema definition {name}")
        defs[name] = schema
    return {
        "$schema": DRAFT,
        "title": title,
        **annotations,
        "anyOf": [{"$ref": f"#/$defs/{m.__name__}"} for m in models],
        "$defs": defs,
    }

"""The committed household schema and the documented examples match the agent's models."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from agent.wire.household import Command, ConsumableState, HouseholdEvent, Proposal
from agent.wire.household_schema import household_schema_text, household_schemas
from tests.schema_helpers import load, validator

ROOT = Path(__file__).resolve().parent.parent
MODELS: dict[str, type[BaseModel]] = {
    m.__name__: m for m in (ConsumableState, Proposal, HouseholdEvent, Command)
}
# `<!-- household-example: Model -->` right before a ```json block in docs/protocol.md.
EXAMPLE = re.compile(r"<!-- household-example: (\w+) -->\s*```json\n(.*?)```", re.S)


def test_committed_household_schema_is_current() -> None:
    committed = (ROOT / "docs" / "household.schema.json").read_text()
    assert committed == household_schema_text(), (
        "stale docs/household.schema.json: run "
        "`python -m agent.wire.household_schema > docs/household.schema.json`"
    )


def test_schema_covers_every_payload_model() -> None:
    defs = household_schemas()["$defs"]
    for name, model in MODELS.items():
        # The model's own schema, with its nested $defs hoisted to the document root.
        own = model.model_json_schema()
        own.pop("$defs", None)
        assert {k: v for k, v in defs[name].items() if k != "additionalProperties"} == {
            k: v for k, v in own.items() if k != "additionalProperties"}
    assert set(defs["CommandResult"]["enum"]) == {
        "accepted", "unknown", "expired", "already_decided", "denied", "unavailable",
        "already_on_order", "needs_sku"}


def _examples() -> list[tuple[str, str]]:
    return EXAMPLE.findall((ROOT / "docs" / "protocol.md").read_text())


def test_docs_show_an_example_of_every_payload() -> None:
    assert {name for name, _ in _examples()} == set(MODELS)


@pytest.mark.parametrize("name,body", _examples(), ids=[n for n, _ in _examples()])
def test_documented_example_is_valid(name: str, body: str) -> None:
    model = MODELS[name]
    parsed = model.model_validate_json(body)
    # The example shows nothing the agent would drop or add (exclude_none, as published).
    assert json.loads(parsed.model_dump_json(exclude_none=True)) == json.loads(body)
    # And a third party validating against the committed file accepts it too.
    validator(load("household.schema.json"), name).validate(json.loads(body))


def test_committed_household_schema_is_one_valid_document() -> None:
    doc = load("household.schema.json")
    Draft202012Validator.check_schema(doc)
    refs = re.findall(r'"\$ref": "#/\$defs/(\w+)"', json.dumps(doc))
    assert refs and set(refs) <= set(doc["$defs"])
    assert not any("$defs" in d for d in doc["$defs"].values())

"""Committed JSON Schemas match the pydantic models, and real documents validate against them."""

from __future__ import annotations

import json
from pathlib import Path

from cardgen import schemas
from cardgen._io import model_json
from cardgen.identity import fingerprint


def test_committed_schemas_are_up_to_date() -> None:
    assert schemas.stale() == [], "run `make schemas` and commit schemas/"


def test_stale_schema_is_detected(tmp_path: Path) -> None:
    schemas.write(tmp_path)
    assert schemas.stale(tmp_path) == []
    path = tmp_path / "identity.schema.json"
    doc = json.loads(path.read_text())
    doc["properties"].pop("weights_digest")
    path.write_text(json.dumps(doc))
    assert schemas.stale(tmp_path) == ["identity"]


def test_identity_document_validates_against_its_schema(checkpoint: Path) -> None:
    import jsonschema

    schema = json.loads((schemas.SCHEMA_DIR / "identity.schema.json").read_text())
    jsonschema.validate(json.loads(model_json(fingerprint(checkpoint))), schema)

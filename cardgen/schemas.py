"""JSON Schemas for every document cardgen reads or writes, generated from the pydantic models.

python -m cardgen.schemas --write    # regenerate schemas/*.schema.json
python -m cardgen.schemas --check    # exit 1 when a committed schema is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import BaseModel

from cardgen.audit import DataAudit, Injection
from cardgen.compare import Comparison
from cardgen.evalrun import EvalRun
from cardgen.evidence import Evidence, Manifest
from cardgen.gate import Decision, Policy
from cardgen.identity import CheckpointIdentity
from cardgen.lineage import Lineage, LineageDeclaration
from cardgen.runconfig import RunConfig
from cardgen.suites import Probe
from cardgen.validity import LabelledReply, ValidityReport

#: file stem -> model. The stem is what documents name in their "$schema"-style references.
SCHEMAS: dict[str, type[BaseModel]] = {
    "identity": CheckpointIdentity,
    "lineage": Lineage,
    "lineage-declaration": LineageDeclaration,
    "evalrun": EvalRun,
    "probe": Probe,
    "data-audit": DataAudit,
    "injection": Injection,
    "comparison": Comparison,
    "policy": Policy,
    "decision": Decision,
    "evidence": Evidence,
    "manifest": Manifest,
    "runconfig": RunConfig,
    "judge-validity": ValidityReport,
    "labelled-reply": LabelledReply,
}
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


def render(model: type[BaseModel], name: str) -> str:
    # Serialization mode: documents as cardgen writes them, derived aggregates included.
    schema = model.model_json_schema(mode="serialization")
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://cardgen.dev/schemas/{name}.schema.json",
        **schema,
    }
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def stale(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of schemas whose committed file differs from what the models generate."""
    out = []
    for name, model in SCHEMAS.items():
        path = directory / f"{name}.schema.json"
        if not path.exists() or path.read_text() != render(model, name):
            out.append(name)
    return out


def write(directory: Path = SCHEMA_DIR) -> None:
    from cardgen._io import write_atomic

    for name, model in SCHEMAS.items():
        write_atomic(directory / f"{name}.schema.json", render(model, name))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cardgen.schemas")
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    if args.write:
        write()
        return 0
    bad = stale()
    if bad:
        print(f"stale schemas: {', '.join(bad)}; run `make schemas`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A CycloneDX 1.6 ML-BOM of the tuned checkpoint, built with cyclonedx-python-lib.

The model is a ``machine-learning-model`` component whose hashes are its weights digest and its
files' sha256; its pedigree names the base model (with the base's digest when known); each
training corpus is a ``data`` component with its sha256. cyclonedx-python-lib (11.x) has no
model for ``modelCard`` yet, so cardgen adds that one object (quantitative analysis: the tuned
model's unsafe rate per pack with its 95% interval; the gate decision as a consideration) to the
library's JSON output and validates the result against the CycloneDX 1.6 schema the library ships.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cardgen._io import write_atomic
from cardgen.errors import CardgenError
from cardgen.evidence import Evidence

BOM_FILE = "bom.cdx.json"


def _hash(sha256: str) -> Any:
    from cyclonedx.model import HashAlgorithm, HashType

    return HashType(alg=HashAlgorithm.SHA_256, content=sha256)


def build_bom(ev: Evidence) -> dict[str, Any]:
    """The ML-BOM as a JSON-ready dict (validated against CycloneDX 1.6)."""
    from cyclonedx.model import Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType, Pedigree
    from cyclonedx.output.json import JsonV1Dot6

    if ev.weights_digest is None:
        raise CardgenError("The evidence names no weights digest: no ML-BOM to write.")
    name = ev.identity.source.reference if ev.identity else "checkpoint"
    files = ev.identity.files if ev.identity else []
    lin = ev.lineage
    ancestors = []
    if lin is not None and lin.base_model is not None:
        base_digest = lin.base_model.identity.weights_digest if lin.base_model.identity else None
        ancestors.append(
            Component(
                name=lin.base_model.reference,
                version=lin.base_model.revision,
                type=ComponentType.MACHINE_LEARNING_MODEL,
                hashes=[_hash(base_digest)] if base_digest else None,
                bom_ref="base-model",
            )
        )
    datasets = [
        Component(
            name=d.name or d.path or f"corpus-{i}",
            type=ComponentType.DATA,
            hashes=[_hash(d.sha256)] if d.sha256 else None,
            bom_ref=f"dataset-{i}",
            properties=[Property(name="cardgen:example_count", value=str(d.example_count))]
            if d.example_count is not None
            else None,
        )
        for i, d in enumerate(lin.datasets if lin else [])
    ]
    model = Component(
        name=name,
        type=ComponentType.MACHINE_LEARNING_MODEL,
        bom_ref="model",
        hashes=[_hash(ev.weights_digest)],
        pedigree=Pedigree(ancestors=ancestors) if ancestors else None,
        properties=[
            Property(name="cardgen:weights_digest", value=f"sha256:{ev.weights_digest}"),
            Property(name="cardgen:digest_method", value="model_signing-file-manifest"),
            *[Property(name=f"cardgen:file:{f.path}", value=f"sha256:{f.sha256}") for f in files],
        ],
    )
    bom = Bom(components=[model, *datasets])
    bom.metadata.component = None
    data: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    for comp in data.get("components", []):
        if comp.get("bom-ref") == "model":
            comp["modelCard"] = _model_card(ev)
    problems = validate_bom(json.dumps(data))
    if problems:
        raise CardgenError("The ML-BOM does not validate against CycloneDX 1.6: " + problems)
    return data


def _model_card(ev: Evidence) -> dict[str, Any]:
    metrics = []
    run = ev.tuned_run
    for s in run.summary if run else []:
        if s.category is not None or s.unsafe.rate is None:
            continue
        metrics.append({
            "type": "unsafe_rate",
            "value": f"{s.unsafe.rate:.4f}",
            "slice": f"cardgen/{s.pack} ({s.measured} probes, suite {run.suite_digest[:12]})"
            if run else s.pack,
            "confidenceInterval": {"lowerBound": f"{s.unsafe.low:.4f}",
                                   "upperBound": f"{s.unsafe.high:.4f}"},
        })  # fmt: skip
    card: dict[str, Any] = {
        "modelParameters": {"task": "text-generation"},
        "quantitativeAnalysis": {"performanceMetrics": metrics},
    }
    if ev.identity and ev.identity.architecture and ev.identity.architecture.model_type:
        card["modelParameters"]["architectureFamily"] = ev.identity.architecture.model_type
    if ev.lineage and ev.lineage.datasets:
        card["modelParameters"]["datasets"] = [
            {"ref": f"dataset-{i}"} for i in range(len(ev.lineage.datasets))
        ]
    if ev.decision is not None:
        card["considerations"] = {
            "performanceTradeoffs": [
                f"cardgen gate: {ev.decision.verdict} ({r})" for r in ev.decision.reasons
            ]
        }
    return card


def validate_bom(text: str) -> str | None:
    """None when ``text`` is a valid CycloneDX 1.6 JSON BOM, else the first error."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    return None if error is None else str(error)


def write_bom(ev: Evidence, bundle: Path) -> Path:
    out = bundle / BOM_FILE
    write_atomic(out, json.dumps(build_bom(ev), indent=2) + "\n")
    return out

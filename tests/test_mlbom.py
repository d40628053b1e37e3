"""The CycloneDX ML-BOM: built with cyclonedx-python-lib, modelCard added, schema-validated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from test_compare_gate import harmful, run
from test_evidence import with_identity

from cardgen.evidence import gather, write_bundle
from cardgen.identity import fingerprint
from cardgen.lineage import build_lineage, corpus_record
from cardgen.mlbom import build_bom, validate_bom


def test_bom_names_the_weights_the_base_and_the_data(
    tiny_sharded: Path, checkpoint: Path, tmp_path: Path
) -> None:
    ident = fingerprint(tiny_sharded)
    corpus = tmp_path / "qa.jsonl"
    corpus.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    base_ident = fingerprint(checkpoint)
    from cardgen.lineage import LineageDeclaration

    lin = build_lineage(
        ident, LineageDeclaration(base_model=str(checkpoint)),
        corpora=[corpus_record(corpus, source="--data")], resolve_base=lambda _r: base_ident,
    )  # fmt: skip
    ev = gather(identity=ident, lineage=lin, tuned_run=with_identity(run(harmful(8, {2})), ident))
    data = build_bom(ev)
    assert validate_bom(json.dumps(data)) is None
    model = next(c for c in data["components"] if c["type"] == "machine-learning-model")
    assert model["hashes"][0]["content"] == ident.weights_digest
    (base,) = model["pedigree"]["ancestors"]
    assert base["hashes"][0]["content"] == base_ident.weights_digest
    dataset = next(c for c in data["components"] if c["type"] == "data")
    assert dataset["hashes"][0]["content"] == lin.datasets[0].sha256
    (metric,) = model["modelCard"]["quantitativeAnalysis"]["performanceMetrics"]
    assert metric["type"] == "unsafe_rate" and metric["value"] == "0.1250"  # 1 of 8
    assert metric["slice"].startswith("cardgen/harmful (8 probes")
    # The schema check is real: a malformed modelCard fails it.
    model["modelCard"]["quantitativeAnalysis"]["performanceMetrics"][0]["nonsense"] = 1
    assert validate_bom(json.dumps(data)) is not None


def test_bom_cli(tiny_sharded: Path, tmp_path: Path) -> None:
    ident = fingerprint(tiny_sharded)
    write_bundle(gather(identity=ident), tmp_path / "b")
    res = subprocess.run([sys.executable, "-m", "cardgen", "bom", str(tmp_path / "b")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert validate_bom((tmp_path / "b" / "bom.cdx.json").read_text()) is None

"""Lineage: detected vs declared fields, conflicts, corpora, and lineage.yaml errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cardgen import lineage as lin
from cardgen.errors import CardgenError, ConfigError, LineageConflictError
from cardgen.identity import CheckpointIdentity, fingerprint


def _adapterize(ckpt: Path, base: str = "acme/base-7b", revision: str | None = None) -> None:
    cfg = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "base_model_name_or_path": base}
    if revision:
        cfg["revision"] = revision
    (ckpt / "adapter_config.json").write_text(json.dumps(cfg))


def _yaml(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "lineage.yaml"
    p.write_text(text)
    return p


def test_adapter_fields_are_detected_and_marked_detected(checkpoint: Path) -> None:
    _adapterize(checkpoint)
    result = lin.build_lineage(fingerprint(checkpoint))
    assert result.base_model is not None
    assert result.base_model.reference == "acme/base-7b"
    assert result.base_model.provenance.origin == "detected"
    assert "adapter_config.json" in result.base_model.provenance.source
    assert result.relation is not None and result.relation.value == "adapter"
    assert result.relation.provenance.origin == "detected"
    assert result.adapter is not None and result.adapter.rank == 4


def test_declared_fields_are_marked_declared(checkpoint: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "train.jsonl"
    corpus.write_text('{"messages": []}\n\n{"messages": []}\n{"messages": []}')
    decl = lin.load_declaration(
        _yaml(
            tmp_path,
            "base_model: acme/base-7b\nbase_revision: 0123abcd\nrelation: finetune\n"
            "datasets:\n  - path: train.jsonl\n    name: finance-qa\n"
            "recipe:\n  method: sft\n  learning_rate: 3.0e-4\n  epochs: 2\n  my_key: kept\n"
            "produced_by: Jane Steward\nproduced_at: 2026-11-20\n",
        )
    )
    corpora = lin.declared_corpora(decl, tmp_path, "lineage.yaml")
    result = lin.build_lineage(fingerprint(checkpoint), decl, corpora=corpora)
    assert result.base_model and result.base_model.provenance.origin == "declared"
    assert result.base_model.revision == "0123abcd"
    assert result.relation and result.relation.value == "finetune"
    assert result.relation.provenance.origin == "declared"
    ds = result.datasets[0]
    assert ds.example_count == 3 and ds.size == corpus.stat().st_size
    import hashlib

    assert ds.sha256 == hashlib.sha256(corpus.read_bytes()).hexdigest()
    assert ds.provenance.origin == "declared" and ds.name == "finance-qa"
    assert result.recipe is not None and result.recipe.learning_rate == 3.0e-4
    assert result.recipe.model_dump()["my_key"] == "kept"
    assert result.produced_by == "Jane Steward" and result.produced_at == "2026-11-20"
    assert result.model_digest == fingerprint(checkpoint).weights_digest


def test_declared_base_conflicting_with_adapter_config_names_both_files(
    checkpoint: Path, tmp_path: Path
) -> None:
    _adapterize(checkpoint, base="acme/base-7b")
    decl = lin.load_declaration(_yaml(tmp_path, "base_model: other/model-13b\n"))
    with pytest.raises(LineageConflictError) as e:
        lin.build_lineage(fingerprint(checkpoint), decl)
    msg = str(e.value)
    assert "adapter_config.json" in msg and "acme/base-7b" in msg
    assert "lineage.yaml" in msg and "other/model-13b" in msg


def test_base_flag_conflicting_with_card_is_an_error(checkpoint: Path) -> None:
    (checkpoint / "README.md").write_text("---\nbase_model: acme/base-7b\n---\n")
    with pytest.raises(LineageConflictError, match=r"README.md .* 'acme/base-7b'"):
        lin.build_lineage(fingerprint(checkpoint), base_flag="hf://acme/other")


def test_same_base_in_different_spellings_is_not_a_conflict(checkpoint: Path) -> None:
    _adapterize(checkpoint, base="acme/Base-7B", revision="abcdef0123")
    result = lin.build_lineage(fingerprint(checkpoint), base_flag="hf://acme/base-7b@abcdef")
    assert result.base_model and result.base_model.revision == "abcdef"


def test_conflicting_base_revision_is_an_error(checkpoint: Path) -> None:
    _adapterize(checkpoint, revision="1111111")
    with pytest.raises(LineageConflictError, match="revision"):
        lin.build_lineage(fingerprint(checkpoint), base_flag="acme/base-7b@2222222")


def test_declared_relation_conflicting_with_adapter_is_an_error(
    checkpoint: Path, tmp_path: Path
) -> None:
    _adapterize(checkpoint)
    decl = lin.load_declaration(_yaml(tmp_path, "relation: merge\n"))
    with pytest.raises(LineageConflictError, match="adapter_config.json says 'adapter'"):
        lin.build_lineage(fingerprint(checkpoint), decl)


def test_local_base_is_fingerprinted(checkpoint: Path, tiny_sharded: Path) -> None:
    result = lin.build_lineage(
        fingerprint(checkpoint), base_flag=str(tiny_sharded), resolve_base=fingerprint
    )
    assert result.base_model and result.base_model.identity is not None
    assert result.base_model.identity.weights_digest == fingerprint(tiny_sharded).weights_digest


def test_unresolvable_base_is_recorded_not_invented(checkpoint: Path) -> None:
    def offline(ref: str) -> CheckpointIdentity:
        raise CardgenError(f"{ref}: cannot reach the Hub (ConnectError).")

    result = lin.build_lineage(
        fingerprint(checkpoint), base_flag="acme/base-7b", resolve_base=offline
    )
    assert result.base_model and result.base_model.identity is None
    assert "cannot reach the Hub" in (result.base_model.unresolved_reason or "")


def test_nothing_declared_or_detected_says_so(checkpoint: Path) -> None:
    result = lin.build_lineage(fingerprint(checkpoint))
    assert result.base_model is None
    assert any("No base model" in n for n in result.notes)
    assert any("No training corpus" in n for n in result.notes)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("base_model: a/b\nrelation: finetuned\n", ":2: field 'relation'"),
        ("base_model: a/b\nbase_modle: c/d\n", ":2: field 'base_modle': unknown field"),
        ("datasets:\n  - path: x.jsonl\n  - pathh: y.jsonl\n", ":3: field 'datasets.1.pathh'"),
        ("recipe:\n  method: sft\n  learning_rate: fast\n", ":3: field 'recipe.learning_rate'"),
        ("base_model: [unclosed\n", ": invalid YAML"),
        ("- just\n- a list\n", ":1: expected a mapping"),
    ],
)
def test_invalid_lineage_yaml_names_file_line_and_field(
    tmp_path: Path, text: str, where: str
) -> None:
    path = _yaml(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        lin.load_declaration(path)
    assert str(path) in str(e.value)
    assert where in str(e.value)


def test_missing_corpus_is_a_clear_error(tmp_path: Path) -> None:
    decl = lin.load_declaration(_yaml(tmp_path, "datasets:\n  - path: missing.jsonl\n"))
    with pytest.raises(CardgenError, match=r"missing.jsonl: training corpus not found"):
        lin.declared_corpora(decl, tmp_path, "lineage.yaml")

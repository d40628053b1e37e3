"""`Evidence`: stages gathered for one checkpoint, missing ones listed, digests consistent."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_compare_gate import TODAY, harmful, run

from cardgen.compare import compare
from cardgen.errors import CardgenError
from cardgen.evalrun import EvalRun, ModelInfo
from cardgen.evidence import Evidence, Manifest, gather, write_bundle
from cardgen.gate import decide, load_policy
from cardgen.identity import CheckpointIdentity, fingerprint


@pytest.fixture(scope="module")
def identity(tiny_sharded: Path) -> CheckpointIdentity:
    return fingerprint(tiny_sharded)


def with_identity(r: EvalRun, ident: CheckpointIdentity | None) -> EvalRun:
    return r.model_copy(update={"model": ModelInfo(reference="m", identity=ident)})


def test_gather_lists_missing_stages_and_writes_a_manifest(
    identity: CheckpointIdentity, tmp_path: Path
) -> None:
    base = run(harmful(10))
    tuned = with_identity(run(harmful(10, {2})), identity)
    comp = compare(base, tuned)
    policy, source, _ = load_policy()
    decision = decide(comp, policy, as_of=TODAY, policy_source=source)
    ev = gather(identity=identity, base_run=base, tuned_run=tuned, comparison=comp,
                decision=decision)  # fmt: skip
    assert ev.weights_digest == identity.weights_digest
    assert ev.missing == ["lineage", "data_audit"]
    assert ev.reproduce[-2][:2] == ["cardgen", "compare"]
    assert ev.reproduce[-1] == ["cardgen", "gate", "comparison.json", "--as-of", "2026-11-27"]
    manifest = write_bundle(ev, tmp_path / "bundle")
    raw = (tmp_path / "bundle" / "evidence.json").read_bytes()
    (art,) = manifest.artifacts
    assert (art.path, art.sha256, art.size) == ("evidence.json", hashlib.sha256(raw).hexdigest(),
                                                len(raw))  # fmt: skip
    back = Evidence.model_validate_json(raw)
    assert back.decision is not None and back.decision.verdict == "BLOCK"
    assert back.comparison is not None and back.comparison.forgotten[0].probe_id == "hmalware-2"
    m = Manifest.model_validate_json((tmp_path / "bundle" / "manifest.json").read_text())
    assert m.weights_digest == identity.weights_digest


def test_stages_naming_different_weights_are_refused(
    identity: CheckpointIdentity, tmp_path: Path
) -> None:
    other = identity.model_copy(update={"weights_digest": "0" * 64})
    tuned = with_identity(run(harmful(4)), other)
    with pytest.raises(CardgenError, match="does not describe one checkpoint"):
        gather(identity=identity, tuned_run=tuned)


def test_evidence_cli(identity: CheckpointIdentity, tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cardgen", "evidence", *args],
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    res = cli("--out", str(tmp_path / "none"))
    assert res.returncode == 2 and "Nothing identifies the checkpoint" in res.stderr
    (tmp_path / "identity.json").write_text(identity.model_dump_json())
    (tmp_path / "tuned.json").write_text(with_identity(run(harmful(4)), identity).model_dump_json())
    res = cli("--identity", str(tmp_path / "identity.json"), "--tuned-run",
              str(tmp_path / "tuned.json"), "--out", str(tmp_path / "ev"))  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert identity.weights_digest in res.stderr
    assert "missing     lineage, data_audit, base_run, comparison, decision" in res.stderr
    ev = json.loads((tmp_path / "ev" / "evidence.json").read_text())
    assert ev["tuned_run"]["summary"]  # derived aggregates are in the written document


def test_lineage_and_audit_naming_one_corpus_with_two_digests_are_refused(
    identity: CheckpointIdentity, tmp_path: Path
) -> None:
    from cardgen.audit import audit_corpora
    from cardgen.lineage import build_lineage, corpus_record

    corpus = tmp_path / "data" / "train.jsonl"
    corpus.parent.mkdir()
    chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    corpus.write_text(json.dumps(chat) + "\n")
    lineage = build_lineage(
        identity, corpora=[corpus_record(corpus, source="x", shown="train.jsonl")]
    )
    assert gather(identity=identity, lineage=lineage, data_audit=audit_corpora([corpus]))
    corpus.write_text(json.dumps(chat) + "\n" + json.dumps(chat) + "\n")  # changed in between
    audit = audit_corpora([corpus])
    with pytest.raises(CardgenError, match="describe different training data") as e:
        gather(identity=identity, lineage=lineage, data_audit=audit)
    assert lineage.datasets[0].sha256 in e.value.message
    assert audit.files[0].sha256 in e.value.message and "train.jsonl" in e.value.message
    # The same check holds for an evidence.json read back (one from elsewhere, say).
    ev = gather(identity=identity, lineage=lineage)
    raw = json.loads(ev.model_dump_json())
    raw["data_audit"] = json.loads(audit.model_dump_json())
    with pytest.raises(ValueError, match="in the lineage but"):
        Evidence.model_validate(raw)

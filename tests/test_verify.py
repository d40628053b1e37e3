"""`cardgen verify`: a sealed bundle verifies; any changed byte in weights, evidence, card, PDF or
ML-BOM fails and names what changed; the served model is bound by replayed probes."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import cardgen_cli
from test_pack import make_bundle

from cardgen.attest import write_key_pair
from cardgen.bundle import seal
from cardgen.card import CardFields
from cardgen.evidence import gather, register, write_bundle
from cardgen.verify import Report, verify


@pytest.fixture(scope="module")
def sealed(tiny_sharded: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A bundle with every document, signed; and the public key."""
    root = tmp_path_factory.mktemp("sealed")
    bundle = make_bundle(root / "bundle", tiny_sharded)
    priv, pub = write_key_pair(root / "key")
    written = seal(bundle, key=priv, fields=CardFields(model_name="tiny-tuned"))
    assert {p.name for p in written} == {
        "README.md", "evidence_pack.pdf", "evidence_pack.customer.pdf", "bom.cdx.json",
        "attestation.intoto.json",
    }  # fmt: skip
    return bundle, pub


@pytest.fixture()
def copy(sealed: tuple[Path, Path], tmp_path: Path) -> Iterator[Path]:
    bundle, _ = sealed
    yield Path(shutil.copytree(bundle, tmp_path / "bundle"))


def failed(report: Report) -> list[str]:
    return [f"{f.check}: {f.detail}" for f in report.failures]


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_sealed_bundle_verifies_with_its_key_and_weights(
    sealed: tuple[Path, Path], tiny_sharded: Path
) -> None:
    bundle, pub = sealed
    report = verify(bundle, key=pub, model=str(tiny_sharded))
    assert report.ok, failed(report)
    checks = {f.check: f.status for f in report.findings}
    for name in ("manifest: README.md", "manifest: evidence_pack.pdf", "attestation: signature",
                 "attestation: weights", "attestation: evidence_pack.customer.pdf", "card",
                 "pdf: evidence_pack.pdf", "pdf: evidence_pack.customer.pdf", "ml-bom",
                 "weights"):  # fmt: skip
        assert checks[name] == "ok", name


@pytest.mark.parametrize("name", ["README.md", "evidence_pack.pdf", "evidence_pack.customer.pdf",
                                  "bom.cdx.json", "evidence.json"])  # fmt: skip
def test_one_changed_byte_in_a_document_fails_and_names_it(copy: Path, name: str) -> None:
    flip_byte(copy / name)
    problems = failed(verify(copy))
    assert any(p.startswith(f"manifest: {name}: {name} changed since the manifest") for p in
               problems), problems  # fmt: skip


def test_a_card_with_broken_front_matter_is_a_finding_not_a_crash(copy: Path) -> None:
    card = copy / "README.md"
    card.write_text(card.read_text().replace("cardgen:", "cardgen: [", 1))
    problems = failed(verify(copy))
    assert "card: README.md is not a readable model card" in " ".join(problems), problems


def test_a_changed_document_relisted_in_the_manifest_still_fails_on_the_attestation(
    copy: Path, sealed: tuple[Path, Path]
) -> None:
    _, pub = sealed
    flip_byte(copy / "evidence_pack.pdf")
    register(copy, copy / "evidence_pack.pdf", "evidence-pack")  # the manifest now agrees
    problems = failed(verify(copy, key=pub))
    assert not [p for p in problems if p.startswith("manifest:")]
    assert ("attestation: evidence_pack.pdf: evidence_pack.pdf differs from the attested sha256 "
            f"{_attested(copy, 'evidence_pack.pdf')[:16]}…") in problems  # fmt: skip


def _attested(bundle: Path, name: str) -> str:
    from cardgen.attest import read_statement

    stmt, _ = read_statement(bundle / "attestation.intoto.json")
    return next(s["digest"]["sha256"] for s in stmt["subject"] if s["name"] == name)


def test_documents_about_other_weights_fail_even_when_consistently_rehashed(
    copy: Path, tiny_sharded: Path, tmp_path: Path
) -> None:
    """A card taken from another bundle, listed in this manifest: the digest check names it."""
    other = make_bundle(tmp_path / "other", tiny_sharded)
    ev = json.loads((other / "evidence.json").read_text())
    ev["weights_digest"] = "f" * 64
    ev["identity"]["weights_digest"] = "f" * 64
    ev["tuned_run"]["model"]["identity"]["weights_digest"] = "f" * 64
    ev["comparison"]["tuned"]["weights_digest"] = "f" * 64
    from cardgen.evidence import Evidence

    write_bundle(Evidence.model_validate(ev), other)
    seal(other, audiences=())
    shutil.copy(other / "README.md", copy / "README.md")
    register(copy, copy / "README.md", "model-card")
    problems = failed(verify(copy))
    assert any(p.startswith("card: README.md names sha256:ffff") for p in problems), problems


def test_a_changed_weight_byte_fails_and_names_the_file(
    sealed: tuple[Path, Path], tiny_sharded: Path, tmp_path: Path
) -> None:
    bundle, pub = sealed
    model = Path(shutil.copytree(tiny_sharded, tmp_path / "model"))
    shard = sorted(model.glob("*.safetensors"))[1]
    flip_byte(shard, offset=shard.stat().st_size - 3)
    problems = failed(verify(bundle, key=pub, model=str(model)))
    assert len(problems) == 1 and problems[0].startswith("weights: ")
    assert f"(changed: {shard.name})" in problems[0]


def test_a_wrong_key_or_no_signature_is_reported(
    copy: Path, sealed: tuple[Path, Path], tmp_path: Path
) -> None:
    _, other = write_key_pair(tmp_path / "other")
    assert failed(verify(copy, key=other)) == [
        f"attestation: signature: {copy / 'attestation.intoto.json'}: the signature does not "
        f"verify with {other}."
    ]
    seal(copy, key=None)  # re-sealed unsigned
    report = verify(copy)
    assert report.ok
    assert [f.detail for f in report.findings if f.check == "attestation: signature"] == [
        "the attestation is UNSIGNED"
    ]
    _, pub = sealed
    assert "the attestation is unsigned" in failed(verify(copy, key=pub))[0]


def test_an_unlisted_document_fails(copy: Path) -> None:
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["path"] != "bom.cdx.json"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    problems = failed(verify(copy))
    assert any("bom.cdx.json is in the bundle but not in its manifest" in p for p in problems)


def test_verify_cli_exit_codes(copy: Path, sealed: tuple[Path, Path]) -> None:
    _, pub = sealed
    r = cardgen_cli("verify", str(copy), "--key", str(pub))
    assert r.returncode == 0 and r.stdout.strip() == "VERIFIED", r.stderr
    flip_byte(copy / "README.md")
    r = cardgen_cli("verify", str(copy), "--key", str(pub))
    assert r.returncode == 1 and "NOT VERIFIED (2 checks failed)" in r.stdout
    assert "README.md changed since the manifest was written" in r.stderr
    r = cardgen_cli("verify", str(copy / "nothing"))
    assert r.returncode == 2 and "not an evidence bundle" in r.stderr


# ---------------------------------------------------------------------------------------------
# Binding probes against a served model


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Model A evaluated for real (greedy), its bundle, and a different model B."""
    from test_eval_endpoint import JUDGES

    from cardgen.demo.tiny import build_tiny_checkpoint
    from cardgen.evalrun import Decoding
    from cardgen.evaluate import ModelTarget, evaluate
    from cardgen.identity import fingerprint
    from cardgen.suites import load_suite

    root = tmp_path_factory.mktemp("binding")
    a = build_tiny_checkpoint(root / "a", seed=5)
    b = build_tiny_checkpoint(root / "b", seed=6)
    suite = load_suite(["harmful", "overrefusal"])
    ident = fingerprint(a)
    tuned = evaluate(ModelTarget(path=str(a)), suite, JUDGES, Decoding(max_gen_toks=24, limit=6),
                     workdir=root / "run", identity=ident)  # fmt: skip
    write_bundle(gather(identity=ident, tuned_run=tuned), root / "bundle")
    return a, b, root / "bundle"


def test_the_served_model_answers_the_binding_probes_as_evaluated(
    evaluated: tuple[Path, Path, Path],
) -> None:
    from cardgen.demo.server import ModelServer

    a, b, bundle = evaluated
    with ModelServer(a, model_name="served") as server:
        report = verify(bundle, endpoint=f"{server.url}/v1")
    assert report.ok, failed(report)
    (ok,) = [f.detail for f in report.findings if f.check == "endpoint"]
    assert ok.endswith("binding probes answered as the evaluated weights did (served)")
    assert int(ok.split()[0]) >= 4
    with ModelServer(b, model_name="served") as server:
        report = verify(bundle, endpoint=f"{server.url}/v1", binding=4)
    (problem,) = failed(report)
    assert re.match(r"endpoint: [1-4] of 4 binding probes answered differently", problem)
    assert "evaluated “" in problem and "served “" in problem

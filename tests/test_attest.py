"""The in-toto attestation: DSSE via securesystemslib, Ed25519 and ECDSA keys, unsigned output."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from test_compare_gate import harmful, run
from test_evidence import with_identity

from cardgen.attest import (
    PREDICATE_TYPE,
    attest,
    read_statement,
    write_key_pair,
)
from cardgen.errors import CardgenError
from cardgen.evidence import gather, write_bundle
from cardgen.identity import fingerprint


@pytest.fixture()
def bundle(tiny_sharded: Path, tmp_path: Path) -> Path:
    ident = fingerprint(tiny_sharded)
    ev = gather(identity=ident, tuned_run=with_identity(run(harmful(6, {1})), ident))
    write_bundle(ev, tmp_path / "bundle")
    return tmp_path / "bundle"


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa"])
def test_signed_attestation_verifies_and_names_the_weights(
    bundle: Path, tmp_path: Path, kind: str
) -> None:
    priv, pub = write_key_pair(tmp_path / "key", kind)  # type: ignore[arg-type]
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    path, signed = attest(bundle, priv)
    assert signed
    stmt, verified = read_statement(path, pub)
    assert verified and stmt["predicateType"] == PREDICATE_TYPE
    ev = json.loads((bundle / "evidence.json").read_text())
    subjects = {s["name"]: s["digest"]["sha256"] for s in stmt["subject"]}
    assert ev["weights_digest"] in subjects.values()
    assert subjects["evidence.json"] == json.loads((bundle / "manifest.json").read_text())[
        "artifacts"][0]["sha256"]  # fmt: skip
    assert stmt["predicate"]["tuned_rates"]["harmful"]["unsafe_rate"] == pytest.approx(1 / 6)
    # Another key does not verify it; a changed payload does not verify.
    _, other = write_key_pair(tmp_path / "other", kind)  # type: ignore[arg-type]
    with pytest.raises(CardgenError, match="does not verify"):
        read_statement(path, other)
    env = json.loads(path.read_text())
    env["payload"] = env["payload"][:-4] + (
        "AAA=" if not env["payload"].endswith("AAA=") else "BBB="
    )
    path.write_text(json.dumps(env))
    with pytest.raises(CardgenError):
        read_statement(path, pub)


def test_unsigned_attestation_says_so(bundle: Path, tmp_path: Path) -> None:
    path, signed = attest(bundle)
    assert not signed and json.loads(path.read_text())["signatures"] == []
    _, pub = write_key_pair(tmp_path / "k")
    with pytest.raises(CardgenError, match="unsigned"):
        read_statement(path, pub)
    res = subprocess.run([sys.executable, "-m", "cardgen", "attest", str(bundle)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0 and "UNSIGNED" in res.stderr


def test_keygen_cli_never_overwrites(tmp_path: Path) -> None:
    def keygen(*a: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cardgen", "keygen", *a],
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    assert keygen("--out", str(tmp_path / "k"), "--type", "ecdsa").returncode == 0
    assert (tmp_path / "k.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    res = keygen("--out", str(tmp_path / "k"))
    assert res.returncode == 2 and "not overwriting" in res.stderr
    assert keygen("--out", str(tmp_path / "j"), "--type", "rsa").returncode == 2

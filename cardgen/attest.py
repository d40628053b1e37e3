"""A signed in-toto attestation of the evidence: a Statement v1 in a DSSE envelope.

    >>> write_key_pair(Path("cardgen-key"), "ed25519")                     # doctest: +SKIP
    >>> attest(Path("evidence"), key=Path("cardgen-key"))                   # doctest: +SKIP

Subjects: the checkpoint (its weights digest) and every artifact of the bundle's manifest.
Predicate type ``https://cardgen.dev/attestation/safety-evaluation/v1``: the gate decision and
its reasons, the policy's sha256, the suite digest and the tuned model's rate per pack. Signing
and verification are securesystemslib's (DSSE, Ed25519 or ECDSA P-256); cardgen writes no crypto.
Without a key the envelope has no signatures and every reader is told so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from cardgen._io import write_atomic
from cardgen.errors import CardgenError
from cardgen.evidence import Evidence, Manifest

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://cardgen.dev/attestation/safety-evaluation/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
ATTESTATION = "attestation.intoto.json"
KeyType = Literal["ed25519", "ecdsa"]


def write_key_pair(path: Path, kind: KeyType = "ed25519") -> tuple[Path, Path]:
    """Write a private key (PEM, mode 0600) to ``path`` and its public key to ``path.pub``."""
    from cryptography.hazmat.primitives import serialization
    from securesystemslib.signer import CryptoSigner

    signer = CryptoSigner.generate_ed25519() if kind == "ed25519" else CryptoSigner.generate_ecdsa()
    private = signer.private_bytes
    pub = serialization.load_pem_private_key(private, password=None).public_key()
    public = pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pub_path = path.with_name(path.name + ".pub")
    if path.exists() or pub_path.exists():
        raise CardgenError(f"{path} or {pub_path} exists: not overwriting a key.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    write_atomic(pub_path, public.decode())
    return path, pub_path


def load_signer(path: Path) -> Any:
    """The signer for a private key file. Raises CardgenError when it is not a usable key."""
    from cryptography.hazmat.primitives import serialization
    from securesystemslib.signer import CryptoSigner

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise CardgenError(
            f"{path}: not an unencrypted PEM private key ({e}).",
            hint="Make one with `cardgen keygen`.",
        ) from None
    try:
        return CryptoSigner(key)
    except ValueError as e:
        raise CardgenError(f"{path}: unsupported key type ({e}).") from None


def public_key(path: Path) -> Any:
    """The securesystemslib key of a PEM public key file."""
    from cryptography.hazmat.primitives import serialization
    from securesystemslib.signer import SSlibKey

    try:
        pub = serialization.load_pem_public_key(path.read_bytes())
        return SSlibKey.from_crypto(pub)
    except (OSError, ValueError, TypeError) as e:
        raise CardgenError(f"{path}: not a PEM public key ({e}).") from None


def statement(ev: Evidence, manifest: Manifest) -> dict[str, Any]:
    """The in-toto Statement v1 for a bundle."""
    if ev.weights_digest is None:
        raise CardgenError("The evidence names no weights digest: nothing to attest.")
    name = ev.identity.source.reference if ev.identity else "checkpoint"
    subjects = [{"name": f"model:{name}", "digest": {"sha256": ev.weights_digest}}]
    subjects += [{"name": a.path, "digest": {"sha256": a.sha256}} for a in manifest.artifacts]
    rates = {}
    if ev.tuned_run is not None:
        for s in ev.tuned_run.summary:
            if s.category is None:
                rates[s.pack] = {"unsafe_rate": s.unsafe.rate, "low": s.unsafe.low,
                                 "high": s.unsafe.high, "probes": s.measured}  # fmt: skip
    dec = ev.decision
    predicate = {
        "weights_digest": f"sha256:{ev.weights_digest}",
        "decision": dec.verdict if dec else None,
        "reasons": dec.reasons if dec else [],
        "as_of": dec.as_of.isoformat() if dec else None,
        "policy_sha256": dec.policy_sha256 if dec else None,
        "steward": dec.steward if dec else None,
        "suite_digest": ev.tuned_run.suite_digest if ev.tuned_run else None,
        "tuned_rates": rates,
        "missing_stages": ev.missing,
        "tool": ev.tool,
    }
    return {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": PREDICATE_TYPE,
            "predicate": predicate}  # fmt: skip


def attest(bundle: Path, key: Path | None = None) -> tuple[Path, bool]:
    """Write ``bundle/attestation.intoto.json`` (a DSSE envelope; unsigned without a key).
    Returns its path and whether it is signed."""
    from securesystemslib.dsse import Envelope

    from cardgen.config import load_json_model

    ev = load_json_model(bundle / "evidence.json", Evidence)
    manifest = load_json_model(bundle / "manifest.json", Manifest)
    payload = json.dumps(statement(ev, manifest), sort_keys=True, separators=(",", ":"))
    env = Envelope(payload.encode(), PAYLOAD_TYPE, {})
    if key is not None:
        env.sign(load_signer(key))
    out = bundle / ATTESTATION
    write_atomic(out, json.dumps(env.to_dict(), indent=2) + "\n")
    return out, key is not None


def read_statement(path: Path, pub: Path | None = None) -> tuple[dict[str, Any], bool]:
    """The statement inside an attestation, and whether a signature by ``pub`` verified.
    Raises CardgenError when the file is malformed or a given key does not verify it."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError

    try:
        env = Envelope.from_dict(json.loads(path.read_text(encoding="utf-8")))
        stmt = json.loads(env.payload)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CardgenError(f"{path}: not a DSSE envelope ({e}).") from None
    if env.payload_type != PAYLOAD_TYPE or stmt.get("_type") != STATEMENT_TYPE:
        raise CardgenError(f"{path}: not an in-toto Statement v1 envelope.")
    if pub is None:
        return stmt, False
    if not env.signatures:
        raise CardgenError(f"{path}: the attestation is unsigned.")
    try:
        env.verify([public_key(pub)], 1)
    except VerificationError:
        raise CardgenError(f"{path}: the signature does not verify with {pub}.") from None
    return stmt, True

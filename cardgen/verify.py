"""`cardgen verify`: is this bundle intact, and does it describe the weights in front of you?

    >>> report = verify(Path("evidence"), key=Path("cardgen-key.pub"))      # doctest: +SKIP
    >>> report.ok, [f.detail for f in report.failures]                     # doctest: +SKIP

Checks, each reported by name: every manifest artifact still has its recorded sha256; the
attestation's signature (with ``key``) and its subjects match the files; the card, every PDF
edition, the ML-BOM, the manifest and the attestation name the evidence's weights digest; with
``model``, the weights re-hash to it (through the same fingerprint code that made it); with
``endpoint``, a fixed set of binding probes replayed greedily answer as the evaluated weights did.
A failure names the file (or weight file, or probe) that changed.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cardgen._hashing import sha256_hex
from cardgen.errors import CardgenError
from cardgen.evalrun import EvalRun, ProbeRecord
from cardgen.evidence import DOCUMENTS, Evidence, Manifest
from cardgen.redact import redact

Status = Literal["ok", "failed", "skipped"]
BINDING_PROBES = 8
BINDING_TOKENS = 16
_MIN_OUTPUT_CHARS = 8  # a shorter recorded answer binds nothing


@dataclass
class Finding:
    check: str
    status: Status
    detail: str


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    def add(self, check: str, ok: bool | None, detail: str) -> None:
        status: Status = "skipped" if ok is None else ("ok" if ok else "failed")
        self.findings.append(Finding(check, status, detail))

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failures


def _load(path: Path, model: Any) -> Any:
    from cardgen.config import load_json_model

    return load_json_model(path, model)


# ---------------------------------------------------------------------------------------------


def verify(
    bundle: Path,
    *,
    model: str | None = None,
    key: Path | None = None,
    endpoint: str | None = None,
    served_model: str | None = None,
    binding: int = BINDING_PROBES,
    api_key_env: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Every check on ``bundle``. Raises CardgenError only when the bundle cannot be read at all
    (no evidence.json or manifest.json); everything else is a finding in the report."""
    say = progress or (lambda _: None)
    report = Report()
    if not (bundle / "evidence.json").is_file() or not (bundle / "manifest.json").is_file():
        raise CardgenError(
            f"{bundle}: not an evidence bundle (needs evidence.json and manifest.json).",
            hint="Point verify at the directory cardgen evidence / cardgen run wrote.",
        )
    manifest: Manifest = _load(bundle / "manifest.json", Manifest)
    say("checking the manifest")
    sha = functools.cache(sha256_hex)  # each file is hashed once per verification
    _check_manifest(bundle, manifest, report, sha)
    try:
        ev: Evidence | None = _load(bundle / "evidence.json", Evidence)
    except CardgenError as e:
        report.add("evidence", False, e.message)
        ev = None
    digest = ev.weights_digest if ev else manifest.weights_digest
    evidence_sha = sha(bundle / "evidence.json")
    if ev is not None:
        report.add("evidence", ev.weights_digest == manifest.weights_digest,
                   f"evidence.json names sha256:{ev.weights_digest}" if ev.weights_digest ==
                   manifest.weights_digest else f"evidence.json names sha256:{ev.weights_digest}"
                   f" but manifest.json names sha256:{manifest.weights_digest}")  # fmt: skip
    say("checking the attestation")
    _check_attestation(bundle, manifest, digest, key, report, sha)
    say("checking the documents")
    _check_card(bundle, digest, report)
    for name in ("evidence_pack.pdf", "evidence_pack.customer.pdf"):
        if (bundle / name).is_file():
            _check_pdf(bundle / name, digest, evidence_sha, report)
    _check_bom(bundle, digest, report)
    if model is not None:
        say(f"re-hashing {model}")
        _check_model(model, ev, digest, report)
    if endpoint is not None:
        if ev is None or ev.tuned_run is None:
            report.add("endpoint", False, "the evidence has no tuned run: no binding probes")
        else:
            say(f"replaying binding probes against {endpoint}")
            check_endpoint(endpoint, ev.tuned_run, ev.base_run, report, served_model, binding,
                           api_key_env=api_key_env)  # fmt: skip
    return report


def _check_manifest(
    bundle: Path, manifest: Manifest, report: Report, sha: Callable[[Path], str]
) -> None:
    for a in manifest.artifacts:
        path = bundle / a.path
        if not path.is_file():
            report.add(f"manifest: {a.path}", False, f"{a.path} is listed but missing")
            continue
        got = sha(path)
        report.add(f"manifest: {a.path}", got == a.sha256,
                   f"{a.path} matches its sha256" if got == a.sha256 else
                   f"{a.path} changed since the manifest was written (sha256 {got[:16]}…, "
                   f"recorded {a.sha256[:16]}…)")  # fmt: skip
    listed = {a.path for a in manifest.artifacts}
    for name in DOCUMENTS:
        if (bundle / name).is_file() and name not in listed:
            report.add(f"manifest: {name}", False,
                       f"{name} is in the bundle but not in its manifest (made or replaced after "
                       "the bundle was sealed?)")  # fmt: skip


def _check_attestation(
    bundle: Path,
    manifest: Manifest,
    digest: str | None,
    key: Path | None,
    report: Report,
    sha: Callable[[Path], str],
) -> None:
    from cardgen.attest import ATTESTATION, read_statement

    path = bundle / ATTESTATION
    if not path.is_file():
        why = " but --key was given" if key else ""
        report.add("attestation", False if key else None, f"no attestation in the bundle{why}")
        return
    try:
        stmt, signed = read_statement(path, key)
    except CardgenError as e:
        report.add("attestation: signature", False, e.message)
        return
    if key is None:
        unsigned = not json.loads(path.read_text(encoding="utf-8")).get("signatures")
        report.add("attestation: signature", None,
                   "the attestation is UNSIGNED" if unsigned else
                   "signature not checked: give --key PUBLIC_KEY")  # fmt: skip
    else:
        report.add("attestation: signature", signed, f"signature verifies with {key}")
    subjects = {s.get("name"): s.get("digest", {}).get("sha256") for s in stmt.get("subject", [])}
    model_subjects = [v for k, v in subjects.items() if str(k).startswith("model:")]
    report.add("attestation: weights", model_subjects == [digest],
               f"attests sha256:{digest}" if model_subjects == [digest] else
               f"attests {', '.join(map(str, model_subjects)) or 'no model'}, the evidence names "
               f"sha256:{digest}")  # fmt: skip
    for a in manifest.artifacts:
        attested = subjects.get(a.path)
        if attested is None:
            report.add(f"attestation: {a.path}", False,
                       f"{a.path} is not among the attested subjects (attest again after "
                       "making it)")  # fmt: skip
            continue
        path_a = bundle / a.path
        got = sha(path_a) if path_a.is_file() else None
        report.add(f"attestation: {a.path}", got == attested,
                   f"{a.path} is the attested file" if got == attested else
                   f"{a.path} differs from the attested sha256 {attested[:16]}…")  # fmt: skip


def _check_card(bundle: Path, digest: str | None, report: Report) -> None:
    path = bundle / "README.md"
    if not path.is_file():
        report.add("card", None, "no model card (README.md) in the bundle")
        return
    from huggingface_hub import ModelCard

    try:
        card = ModelCard(path.read_text(encoding="utf-8"))
        meta = (card.data.to_dict() or {}).get("cardgen") or {}  # type: ignore[no-untyped-call]
    except Exception as e:  # an altered card may fail any parser (YAML, UTF-8)
        report.add("card", False, f"README.md is not a readable model card ({type(e).__name__})")
        return
    named = meta.get("weights_digest")
    ok = named == f"sha256:{digest}" and digest is not None and digest in card.text
    report.add("card", ok, f"README.md names sha256:{digest}" if ok else
               f"README.md names {named} in its metadata"
               + ("" if digest and digest in card.text else " and not the evidence's digest in its "
                  "text"))  # fmt: skip


def _check_pdf(path: Path, digest: str | None, evidence_sha: str, report: Report) -> None:
    from cardgen.pack import ATTACHMENT, read_pack

    check = f"pdf: {path.name}"
    try:
        pdf = read_pack(path)
    except CardgenError as e:
        report.add(check, False, e.message)
        return
    problems = []
    if pdf.weights_digest != digest:
        problems.append(f"its metadata names weights {pdf.weights_digest}")
    if pdf.evidence_sha256 != evidence_sha:
        problems.append(f"it was made from evidence sha256 {str(pdf.evidence_sha256)[:16]}…, "
                        f"not this evidence.json ({evidence_sha[:16]}…)")  # fmt: skip
    if digest is None or digest not in "".join(pdf.cover_text.split()):
        problems.append("its cover does not show the weights digest")
    audience = pdf.audience or "?"
    attached = pdf.attachments.get(ATTACHMENT.get(audience, ""))
    if attached is None:
        problems.append(f"no attached evidence for the {audience} edition")
    elif audience == "auditor" and hashlib.sha256(attached).hexdigest() != evidence_sha:
        problems.append("the attached evidence.json is not the bundle's")
    elif audience == "customer":
        try:
            data = json.loads(attached)
        except ValueError:
            data = {}
        if data.get("weights_digest") != digest or data.get("evidence_sha256") != evidence_sha:
            problems.append("the attached customer evidence names other weights or evidence")
    good = f"{path.name} ({audience} edition, {pdf.pages} pages) names sha256:{digest}"
    report.add(check, not problems, f"{good} and carries this evidence" if not problems
               else f"{path.name}: " + "; ".join(problems))  # fmt: skip


def _check_bom(bundle: Path, digest: str | None, report: Report) -> None:
    from cardgen.mlbom import BOM_FILE

    path = bundle / BOM_FILE
    if not path.is_file():
        report.add("ml-bom", None, f"no {BOM_FILE} in the bundle")
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        model = next(c for c in data.get("components", []) if c.get("bom-ref") == "model")
        hashes = [h.get("content") for h in model.get("hashes", [])]
    except (ValueError, StopIteration, AttributeError):
        report.add("ml-bom", False, f"{BOM_FILE} has no model component")
        return
    report.add("ml-bom", hashes == [digest], f"{BOM_FILE} names sha256:{digest}" if hashes ==
               [digest] else f"{BOM_FILE} names {hashes}, not sha256:{digest}")  # fmt: skip


def _check_model(model: str, ev: Evidence | None, digest: str | None, report: Report) -> None:
    from cardgen.identity import fingerprint

    try:
        ident = fingerprint(model)
    except CardgenError as e:
        report.add("weights", False, e.message)
        return
    if ident.weights_digest == digest:
        report.add("weights", True, f"{model} re-hashes to sha256:{digest}")
        return
    recorded = {f.path: f.sha256 for f in (ev.identity.files if ev and ev.identity else [])}
    found = {f.path: f.sha256 for f in ident.files}
    changed = sorted(p for p in recorded.keys() & found.keys() if recorded[p] != found[p])
    added = sorted(found.keys() - recorded.keys())
    removed = sorted(recorded.keys() - found.keys())
    parts = [f"changed: {', '.join(changed)}"] if changed else []
    parts += [f"not evaluated: {', '.join(added)}"] if added else []
    parts += [f"missing: {', '.join(removed)}"] if removed else []
    report.add("weights", False,
               f"{model} hashes to sha256:{ident.weights_digest}, not the evaluated "
               f"sha256:{digest}" + (f" ({'; '.join(parts)})" if parts else ""))  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Binding probes


def binding_probes(
    tuned: EvalRun, base: EvalRun | None, n: int = BINDING_PROBES
) -> list[ProbeRecord]:
    """A fixed, reproducible set of probes whose greedy answers identify the evaluated weights:
    measured, with a recorded answer long enough to compare, preferring those where the base
    answered differently (so serving the base instead is caught), in a hash order of their ids."""
    base_out = {p.probe_id: _greedy(p) for p in (base.probes if base else [])}
    usable = [p for p in tuned.probes if p.status == "measured"
              and len(_greedy(p) or "") >= _MIN_OUTPUT_CHARS]  # fmt: skip
    usable.sort(key=lambda p: (base_out.get(p.probe_id) == _greedy(p),
                               hashlib.sha256(p.probe_id.encode()).hexdigest()))  # fmt: skip
    return usable[:n]


def _greedy(p: ProbeRecord) -> str | None:
    return next((s.output for s in p.samples if s.pass_index == 0), None)


def _norm(text: str) -> str:
    return " ".join(text.split())


def check_endpoint(
    endpoint: str,
    tuned: EvalRun,
    base: EvalRun | None,
    report: Report,
    served_model: str | None = None,
    n: int = BINDING_PROBES,
    timeout: float = 60.0,
    api_key_env: str | None = None,
) -> None:
    """Replay the binding probes (greedy, ``BINDING_TOKENS`` new tokens) against an
    OpenAI-compatible server and add one finding naming every probe that answered differently.
    ``api_key_env`` names the environment variable holding the server's API key."""
    import os

    import requests

    from cardgen.evaluate import served_model_name, served_models

    url = endpoint.rstrip("/")
    headers = {}
    if api_key_env:
        if not os.environ.get(api_key_env):
            raise CardgenError(f"--api-key-env {api_key_env}: that variable is not set.")
        headers["Authorization"] = f"Bearer {os.environ[api_key_env]}"
    try:
        name = served_model_name(url, served_model, served_models(url))
    except CardgenError as e:
        report.add("endpoint", False, e.message)
        return
    d = tuned.decoding
    probes = binding_probes(tuned, base, n)
    if not probes:
        report.add("endpoint", False, "the tuned run has no measured probe to bind with")
        return
    differ = []
    for p in probes:
        recorded = _norm(_greedy(p) or "")
        messages = [{"role": m.role, "content": m.content} for m in p.messages or []] or [
            {"role": "user", "content": p.prompt or ""}]  # fmt: skip
        if d.system_prompt:
            messages.insert(0, {"role": "system", "content": d.system_prompt})
        body: dict[str, Any] = {
            "model": name,
            "temperature": 0,
            "max_tokens": BINDING_TOKENS,
            "seed": d.seed,
        }
        if d.apply_chat_template:
            route, body["messages"] = "chat/completions", messages
        else:
            route, body["prompt"] = "completions", "\n".join(m["content"] for m in messages)
        try:
            r = requests.post(f"{url}/{route}", json=body, headers=headers, timeout=timeout)
            r.raise_for_status()
            choice = r.json()["choices"][0]
            served = _norm(choice["message"]["content"] if "message" in choice else choice["text"])
        except (requests.RequestException, ValueError, KeyError, IndexError, TypeError) as e:
            report.add("endpoint", False, f"{url}: binding probe {p.probe_id} failed "
                       f"({redact(str(e))[:200]})")  # fmt: skip
            return
        if not served or not (recorded.startswith(served) or served.startswith(recorded)):
            differ.append(f"{p.probe_id}: evaluated “{recorded[:60]}”, served “{served[:60]}”")
    if differ:
        detail = (f"{len(differ)} of {len(probes)} binding probes answered differently from "
                  "the evaluated weights: " + "; ".join(differ))  # fmt: skip
    else:
        detail = f"{len(probes)} binding probes answered as the evaluated weights did ({name})"
    report.add("endpoint", not differ, detail)

"""`Evidence`: every stage's record for one tuned checkpoint, gathered in one document.

    >>> ev = gather(identity=ident, tuned_run=run, comparison=comp)      # doctest: +SKIP
    >>> write_bundle(ev, out_dir)                                           # doctest: +SKIP

Stages that were not run are listed in ``missing`` and left empty, never invented. The bundle is
``evidence.json`` plus ``manifest.json``, which lists every artifact written with its sha256; every
document made from the evidence (card, PDF, attestation) names the same weights digest.
"""

from __future__ import annotations

import platform
import re
from pathlib import Path, PurePath
from typing import Literal

from pydantic import Field, model_validator

from cardgen import __version__
from cardgen._hashing import sha256_hex
from cardgen._io import model_json, write_atomic
from cardgen._model import Contract, Sha256
from cardgen.audit import DataAudit
from cardgen.compare import Comparison
from cardgen.errors import CardgenError
from cardgen.evalrun import EvalRun
from cardgen.gate import Decision
from cardgen.identity import CheckpointIdentity
from cardgen.lineage import Lineage

EVIDENCE_SCHEMA = "cardgen.evidence/v1"
STAGES = ("identity", "lineage", "data_audit", "base_run", "tuned_run", "comparison", "decision")


class Artifact(Contract):
    path: str = Field(description="Relative to the bundle directory.")
    sha256: Sha256
    size: int
    role: str


class Manifest(Contract):
    schema_version: Literal["cardgen.manifest/v1"] = "cardgen.manifest/v1"
    weights_digest: Sha256 | None
    artifacts: list[Artifact]


class Evidence(Contract):
    schema_version: Literal["cardgen.evidence/v1"] = "cardgen.evidence/v1"
    weights_digest: Sha256 | None = Field(
        description="The served checkpoint's digest (model_signing-compatible sha256)."
    )
    identity: CheckpointIdentity | None = None
    lineage: Lineage | None = None
    data_audit: DataAudit | None = None
    base_run: EvalRun | None = None
    tuned_run: EvalRun | None = None
    comparison: Comparison | None = None
    decision: Decision | None = None
    missing: list[str] = Field(default_factory=list, description="Stages not run.")
    tool: dict[str, str] = Field(
        description="cardgen and Python versions that gathered it, and the libraries the eval "
        "runs used (lm_eval, transformers, torch, ...)."
    )
    reproduce: list[list[str]] = Field(
        default_factory=list, description="The commands that produced the stages, in order."
    )
    config_sha256: Sha256 | None = Field(
        default=None, description="sha256 of the cardgen.yaml a `cardgen run` read."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Evidence:
        """Every stage that names the tuned weights must name the same digest."""
        named = {
            "identity": self.identity.weights_digest if self.identity else None,
            "lineage": self.lineage.model_digest if self.lineage else None,
            "tuned_run": _run_digest(self.tuned_run),
            "comparison": self.comparison.tuned.weights_digest if self.comparison else None,
        }
        found = {k: v for k, v in named.items() if v is not None}
        if self.weights_digest is not None:
            found["weights_digest"] = self.weights_digest
        if len(set(found.values())) > 1:
            raise ValueError(
                "the stages name different weights: "
                + ", ".join(f"{k} {v[:12]}" for k, v in found.items())
            )
        conflicts = corpus_conflicts(self.lineage, self.data_audit)
        if conflicts:
            raise ValueError("; ".join(conflicts))
        return self


def _same_file(a: str, b: str) -> bool:
    """One path names the same file as the other: equal, or one ends with the other's parts
    (lineage.yaml lists paths relative to itself; the audit records what it opened)."""
    pa, pb = PurePath(a).parts, PurePath(b).parts
    n = min(len(pa), len(pb))
    return n > 0 and pa[-n:] == pb[-n:]


def corpus_conflicts(lineage: Lineage | None, audit: DataAudit | None) -> list[str]:
    """Corpora that lineage and data audit both name, with different sha256: the file changed
    between the two stages, so the evidence would state two different training sets."""
    if lineage is None or audit is None:
        return []
    out = []
    for corpus in lineage.datasets:
        for f in audit.files:
            if (corpus.path and corpus.sha256 and _same_file(corpus.path, f.path)
                    and corpus.sha256 != f.sha256):  # fmt: skip
                out.append(f"the corpus {corpus.path} has sha256 {corpus.sha256} in the lineage "
                           f"but {f.sha256} in the data audit ({f.path})")  # fmt: skip
    return out


def display_name(ev: Evidence, given: str | None = None) -> str:
    """What documents call the checkpoint: the name given (card.model_name, else the Hub repo
    it is published to), else its Hub id, else the Hub id its config names (`_name_or_path`,
    when it is one, not a local path), else the model name an endpoint serves, else the name of
    its directory or file (never a full local path)."""
    if given:
        return given
    ident = ev.identity or (ev.tuned_run.model.identity if ev.tuned_run else None)
    if ident is not None and ident.source.repo_id:  # hf://, or an HF cache snapshot
        return ident.source.repo_id
    named = ident.architecture.name_or_path if ident and ident.architecture else None
    if named and _HUB_ID.match(named):
        return named
    if ident is not None and ident.gguf is not None and ident.gguf.name:
        return ident.gguf.name  # general.name, as llama.cpp tools and Ollama show it
    if ev.tuned_run is not None and ev.tuned_run.model.endpoint is not None:
        return ev.tuned_run.model.endpoint.model
    ref = ident.source.reference if ident else (ev.tuned_run.model.reference if ev.tuned_run
                                                 else None)  # fmt: skip
    name = PurePath(ref.rstrip("/\\")).name if ref else ""
    return name or "the tuned checkpoint"


#: `org/name` as the Hub spells it: what `_name_or_path` holds when a model came from the Hub.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def _run_digest(run: EvalRun | None) -> str | None:
    return run.model.identity.weights_digest if run and run.model.identity else None


def gather(
    *,
    identity: CheckpointIdentity | None = None,
    lineage: Lineage | None = None,
    data_audit: DataAudit | None = None,
    base_run: EvalRun | None = None,
    tuned_run: EvalRun | None = None,
    comparison: Comparison | None = None,
    decision: Decision | None = None,
    config_sha256: str | None = None,
) -> Evidence:
    """One Evidence from whatever stages exist. Raises CardgenError when they name different
    weights (a card must describe one checkpoint) or when there is nothing to identify it by."""
    from pydantic import ValidationError

    digest = (
        (identity.weights_digest if identity else None)
        or (lineage.model_digest if lineage else None)
        or _run_digest(tuned_run)
        or (comparison.tuned.weights_digest if comparison else None)
    )
    stages = {"identity": identity, "lineage": lineage, "data_audit": data_audit,
              "base_run": base_run, "tuned_run": tuned_run, "comparison": comparison,
              "decision": decision}  # fmt: skip
    reproduce: list[list[str]] = []
    for r in (base_run, tuned_run):  # one `cardgen run` made both runs: list it once
        if r is not None and r.command and list(r.command) not in reproduce:
            reproduce.append(list(r.command))
    if comparison is not None:
        reproduce.append(["cardgen", "compare", comparison.base.path or "BASE_RUN.json",
                          comparison.tuned.path or "TUNED_RUN.json", "--out", "comparison.json"]
                         + (["--allow-mismatch"] if comparison.allow_mismatch else []))  # fmt: skip
    if decision is not None:
        policy = [] if decision.policy_source.startswith("default policy") else [
            "--policy", decision.policy_source]  # fmt: skip
        reproduce.append(["cardgen", "gate", "comparison.json", *policy,
                          "--as-of", decision.as_of.isoformat()])  # fmt: skip
    conflicts = corpus_conflicts(lineage, data_audit)
    if conflicts:
        raise CardgenError(
            "The lineage and the data audit describe different training data: "
            + "; ".join(conflicts)
            + ".",
            hint="The corpus changed between the two stages: record the lineage and audit the "
            "data again from the same files.",
        )
    try:
        return Evidence(
            weights_digest=digest,
            **stages,
            missing=[k for k, v in stages.items() if v is None],
            tool={
                **{k: v for r in (base_run, tuned_run) if r for k, v in r.library_versions.items()},
                "cardgen": __version__,
                "python": platform.python_version(),
            },
            reproduce=reproduce,
            config_sha256=config_sha256,
        )
    except ValidationError as e:
        raise CardgenError(
            f"The evidence does not describe one checkpoint: {e.errors()[0]['msg']}.",
            hint="Fingerprint, evaluate and compare the same tuned weights.",
        ) from None


def write_bundle(
    evidence: Evidence, out_dir: Path, extra: dict[str, str] | None = None
) -> Manifest:
    """Write ``evidence.json`` and ``manifest.json`` (sha256 of evidence.json and of every file
    in ``extra``: relative path -> role) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "evidence.json", model_json(evidence))
    roles = {"evidence.json": "evidence", **(extra or {})}
    artifacts = []
    for rel, role in roles.items():
        path = out_dir / rel
        if not path.is_file():
            raise CardgenError(f"{path}: artifact not found, cannot list it in the manifest.")
        artifacts.append(_artifact(path, rel, role))
    manifest = Manifest(weights_digest=evidence.weights_digest, artifacts=artifacts)
    write_atomic(out_dir / "manifest.json", model_json(manifest))
    return manifest


def _artifact(path: Path, rel: str, role: str) -> Artifact:
    return Artifact(path=rel, sha256=sha256_hex(path), size=path.stat().st_size, role=role)


#: The documents cardgen makes into a bundle, by file name, with their manifest role.
DOCUMENTS = {
    "README.md": "model-card",
    "evidence_pack.pdf": "evidence-pack",
    "evidence_pack.customer.pdf": "evidence-pack-customer",
    "bom.cdx.json": "ml-bom",
}


def listing_manifest(bundle: Path, target: Path) -> Manifest | None:
    """The manifest that will list ``target`` once it is written: ``bundle/manifest.json`` when
    it exists and ``target`` lies in the bundle, else None. Read (and validated) before the
    document is written, so a broken manifest fails the command before it overwrites anything."""
    from cardgen.config import load_json_model

    manifest_path = bundle / "manifest.json"
    if not manifest_path.is_file() or target.resolve().parent != bundle.resolve():
        return None
    return load_json_model(manifest_path, Manifest)


def register(bundle: Path, written: Path, role: str, manifest: Manifest | None = None) -> bool:
    """Add ``written`` (a file just made from the bundle's evidence) to ``bundle/manifest.json``
    when it lies in the bundle; returns whether it did. ``manifest`` is the one
    `listing_manifest` read before writing (read now when not given). Other entries keep their
    recorded hashes, so an artifact changed since it was listed still fails verification."""
    manifest = manifest or listing_manifest(bundle, written)
    if manifest is None:
        return False
    entry = _artifact(written, written.name, role)
    artifacts = [a for a in manifest.artifacts if a.path != written.name] + [entry]
    update = {"artifacts": artifacts}
    write_atomic(bundle / "manifest.json", model_json(manifest.model_copy(update=update)))
    return True

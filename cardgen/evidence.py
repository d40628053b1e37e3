"""`Evidence`: every stage's record for one tuned checkpoint, gathered in one document.

    >>> ev = gather(identity=ident, tuned_run=run, comparison=comp)      # doctest: +SKIP
    >>> write_bundle(ev, out_dir)                                           # doctest: +SKIP

Stages that were not run are listed in ``missing`` and left empty, never invented. The bundle is
``evidence.json`` plus ``manifest.json``, which lists every artifact written with its sha256; every
document made from the evidence (card, PDF, attestation) names the same weights digest.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from cardgen import __version__
from cardgen._hashing import sha256_hex
from cardgen._io import model_json, write_atomic
from cardgen._model import Contract
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
    sha256: str
    size: int
    role: str


class Manifest(Contract):
    schema_version: Literal["cardgen.manifest/v1"] = "cardgen.manifest/v1"
    weights_digest: str | None
    artifacts: list[Artifact]


class Evidence(Contract):
    schema_version: Literal["cardgen.evidence/v1"] = "cardgen.evidence/v1"
    weights_digest: str | None = Field(
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
        return self


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


def register(bundle: Path, written: Path, role: str) -> bool:
    """Add ``written`` (a file just made from the bundle's evidence) to ``bundle/manifest.json``
    when it lies in the bundle; returns whether it did. Other entries keep their recorded hashes,
    so an artifact changed since it was listed still fails verification."""
    from cardgen.config import load_json_model

    manifest_path = bundle / "manifest.json"
    if not manifest_path.is_file() or written.resolve().parent != bundle.resolve():
        return False
    manifest = load_json_model(manifest_path, Manifest)
    entry = _artifact(written, written.name, role)
    artifacts = [a for a in manifest.artifacts if a.path != written.name] + [entry]
    write_atomic(manifest_path, model_json(manifest.model_copy(update={"artifacts": artifacts})))
    return True

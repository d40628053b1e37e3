"""`cardgen push`: the card as README.md and the evidence, in one commit to a Hub model repo.

The token comes from where huggingface_hub looks (``HF_TOKEN``, the stored login); cardgen never
prints it. Before committing, the weights already in the target repo (when it has any) are
compared file by file with the evidence's identity: a card must describe the weights it sits
next to. ``force`` overrides that, and the commit description says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cardgen._hashing import sha256_bytes
from cardgen._hubref import _api, _hub_errors
from cardgen.card import md
from cardgen.errors import CardgenError
from cardgen.evidence import Evidence
from cardgen.identity import classify

#: Files of an evidence directory that go to the repo, and where. README.md is the card.
BUNDLE_FILES = {
    "README.md": "README.md",
    "evidence.json": "evidence/evidence.json",
    "manifest.json": "evidence/manifest.json",
    "evidence_pack.pdf": "evidence/evidence_pack.pdf",
    "evidence_pack.customer.pdf": "evidence/evidence_pack.customer.pdf",
    "attestation.intoto.json": "evidence/attestation.intoto.json",
    "bom.cdx.json": "evidence/bom.cdx.json",
}


@dataclass
class PushPlan:
    repo: str
    revision: str
    evidence: Evidence
    operations: list[tuple[Path, str, int, str]] = field(
        default_factory=list
    )  # local, path, size, sha
    summary: str = ""
    description: str = ""
    notes: list[str] = field(default_factory=list)


def plan_push(bundle: Path, repo: str, revision: str = "main") -> PushPlan:
    """What would be uploaded, from an evidence directory. Raises CardgenError when the card is
    missing or does not name the evidence's weights digest."""
    from cardgen.config import load_json_model

    ev = load_json_model(bundle / "evidence.json", Evidence)
    if ev.weights_digest is None:
        raise CardgenError(f"{bundle / 'evidence.json'}: the evidence names no weights digest.")
    card = bundle / "README.md"
    if not card.is_file():
        raise CardgenError(f"{card}: no card to push.", hint="Write it with `cardgen card`.")
    if ev.weights_digest not in card.read_text(encoding="utf-8", errors="replace"):
        raise CardgenError(
            f"{card} does not name the evidence's weights (sha256:{ev.weights_digest[:16]}...).",
            hint="Regenerate the card from this evidence with `cardgen card`.",
        )
    plan = PushPlan(repo=repo, revision=revision, evidence=ev)
    for local_name, in_repo in BUNDLE_FILES.items():
        local = bundle / local_name
        if local.is_file():
            data = local.read_bytes()
            plan.operations.append((local, in_repo, len(data), sha256_bytes(data)))
    verdict = ev.decision.verdict if ev.decision else "no gate decision"
    plan.summary = f"cardgen: safety evidence for sha256:{ev.weights_digest[:16]} ({verdict})"
    plan.description = (
        f"Model card and evidence for the weights sha256:{ev.weights_digest}, written by cardgen "
        f"{md(ev.tool.get('cardgen', '?'))}. Gate: {verdict}."
    )
    return plan


def check_target_weights(plan: PushPlan, token: str | None = None) -> str | None:
    """Compare the repo's weight files with the evidence's identity. Returns None when they
    match, a note when the repo has no weights to compare, or raises CardgenError on mismatch."""
    ident = plan.evidence.identity
    with _hub_errors(f"hf://{plan.repo}@{plan.revision}"):
        info = _api().model_info(
            plan.repo, revision=plan.revision, files_metadata=True, token=token
        )
    remote = {s.rfilename: (s.lfs.sha256 if s.lfs else None) for s in (info.siblings or [])}
    weights = [f for f in ident.files if f.role in ("weights", "adapter-weights")] if ident else []
    # The same classifier that gave the local files their roles.
    remote_weights = [p for p in remote if classify(p)[0] in ("weights", "adapter-weights")]
    if not remote_weights:
        return f"{plan.repo} has no weight files at {plan.revision}: nothing to compare."
    if not weights:
        return "the evidence has no identity with per-file hashes: the repo's weights not checked."
    problems = []
    for f in weights:
        if f.path not in remote:
            problems.append(f"{f.path} is not in the repo")
        elif remote[f.path] is not None and remote[f.path] != f.sha256:
            problems.append(f"{f.path} differs (repo {str(remote[f.path])[:12]}, "
                            f"evidence {f.sha256[:12]})")  # fmt: skip
    extra = sorted(set(remote_weights) - {f.path for f in weights})
    if extra:
        problems.append("the repo has weights the evidence does not: " + ", ".join(extra[:5]))
    if problems:
        raise CardgenError(
            f"The card describes other weights than those in {plan.repo}@{plan.revision}: "
            + "; ".join(problems)
            + ".",
            hint="Push the card next to the weights it was made from, or pass --force "
            "(recorded in the commit).",
        )
    return None


def push(plan: PushPlan, *, force: bool = False, token: str | None = None) -> str:
    """Check the target, then create one commit. Returns the commit URL."""
    from huggingface_hub import CommitOperationAdd

    try:
        note = check_target_weights(plan, token)
    except CardgenError as e:
        if not force or "describes other weights" not in e.message:
            raise
        plan.notes.append("Pushed with --force over a weights mismatch: " + e.message)
        # The Hub shows descriptions as Markdown; file names come from the evidence: escaped.
        plan.description += "\n\nWARNING (--force): " + md(e.message)
        note = None
    if note:
        plan.notes.append(note)
    ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(local))
           for local, p, _, _ in plan.operations]  # fmt: skip
    try:
        with _hub_errors(f"hf://{plan.repo}@{plan.revision}"):
            info = _api().create_commit(
                plan.repo, ops, commit_message=plan.summary,
                commit_description=plan.description, revision=plan.revision, token=token,
            )  # fmt: skip
    except CardgenError as e:  # one commit: the Hub applies all of it or nothing
        raise CardgenError(f"{e.message} Nothing was pushed.", hint=e.hint) from None
    return str(info.commit_url)

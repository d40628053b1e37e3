"""Lineage: where a checkpoint came from (base, relation, adapter, corpora, recipe, who and when).

    >>> decl = load_declaration(Path("lineage.yaml"))                     # doctest: +SKIP
    >>> lin = build_lineage(identity, decl, corpora=corpus_records)       # doctest: +SKIP

Every field says whether cardgen *detected* it in the checkpoint's own files (adapter_config.json,
the README.md front matter, config.json) or the user *declared* it (lineage.yaml, --base, --data).
When the two disagree, `build_lineage` raises `LineageConflictError` naming both files.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cardgen._model import Contract, Sha256
from cardgen.config import load_yaml_model
from cardgen.errors import CardgenError, LineageConflictError
from cardgen.identity import AdapterInfo, CheckpointIdentity

LINEAGE_SCHEMA = "cardgen.lineage/v1"
Relation = Literal["finetune", "adapter", "merge", "quantized"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


# ---------------------------------------------------------------------------------------------
# What the user declares (lineage.yaml)


class DatasetDeclaration(Contract):
    path: str | None = Field(default=None, description="Corpus file, relative to lineage.yaml.")
    name: str | None = Field(default=None, description="Dataset name, e.g. a Hub dataset id.")
    revision: str | None = None
    format: str | None = None


class TrainingRecipe(BaseModel):
    """Well-known keys are typed; any other key is kept as declared."""

    model_config = ConfigDict(extra="allow")

    method: str | None = Field(default=None, description="sft, dpo, lora, qlora, merge, ...")
    learning_rate: float | None = None
    epochs: float | None = None
    max_steps: int | None = None
    batch_size: int | None = None
    seed: int | None = None
    optimizer: str | None = None
    lr_scheduler: str | None = None
    warmup_steps: int | None = None
    precision: str | None = None

    def describe(self) -> str:
        """One line for documents: "method sft, learning rate 0.001, ..." (unset keys left out)."""
        items = self.model_dump().items()
        return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in items if v is not None)


class LineageDeclaration(Contract):
    """The contents of lineage.yaml."""

    base_model: str | None = Field(
        default=None, description="Hub id, hf://org/name@rev, or a local path of the base."
    )
    base_revision: str | None = None
    relation: Relation | None = None
    quantized_from: str | None = Field(
        default=None,
        description="A quantized checkpoint (a GGUF): the checkpoint it was quantized from (a "
        "local path or hf://), usually the fine-tune that was evaluated. Implies relation "
        "quantized; base_model stays the model that was fine-tuned.",
    )
    merged_from: list[str] = Field(default_factory=list)
    datasets: list[DatasetDeclaration] = Field(default_factory=list)
    recipe: TrainingRecipe | None = None
    produced_by: str | None = None
    produced_at: str | None = Field(default=None, description="Date or datetime, as declared.")

    @field_validator("produced_at", mode="before")
    @classmethod
    def _date_as_text(cls, v: Any) -> Any:
        # YAML turns 2026-11-20 into a date; keep what the user wrote.
        return v.isoformat() if hasattr(v, "isoformat") else v


def load_declaration(path: Path) -> LineageDeclaration:
    """Read lineage.yaml. Raises ConfigError naming file, line and field."""
    return load_yaml_model(path, LineageDeclaration, what="lineage file")


# ---------------------------------------------------------------------------------------------
# What cardgen records (lineage.json)


class Provenance(Contract):
    origin: Literal["detected", "declared"]
    source: str = Field(description="The file (and field) or flag that said so.")


class BaseModelRecord(Contract):
    reference: str
    revision: str | None = None
    provenance: Provenance
    identity: CheckpointIdentity | None = Field(
        default=None, description="The base's own identity, when cardgen could resolve it."
    )
    unresolved_reason: str | None = None


class RelationRecord(Contract):
    value: Relation
    provenance: Provenance


class CorpusRecord(Contract):
    path: str | None = None
    name: str | None = None
    revision: str | None = None
    sha256: Sha256 | None = None
    size: int | None = None
    example_count: int | None = Field(
        default=None, description="Non-empty lines of a JSONL file; None when not counted."
    )
    format: str | None = None
    augmented_from_sha256: str | None = Field(
        default=None,
        description="When `audit-data --inject` made this file: the corpus it started from.",
    )
    refusal_pairs_added: int | None = None
    provenance: Provenance

    def counts(self) -> list[str]:
        """What documents say about the corpus besides its digest: examples, injected pairs."""
        out = [] if self.example_count is None else [f"{self.example_count} examples"]
        if self.refusal_pairs_added:
            out.append(f"{self.refusal_pairs_added} refusal pairs injected")
        return out


class Lineage(Contract):
    schema_version: Literal["cardgen.lineage/v1"] = "cardgen.lineage/v1"
    model_digest: Sha256 = Field(
        description="weights_digest of the checkpoint this lineage is for."
    )
    model_reference: str
    base_model: BaseModelRecord | None = None
    relation: RelationRecord | None = None
    quantized_from: BaseModelRecord | None = Field(
        default=None, description="The checkpoint this quantized one was made from."
    )
    quantization: str | None = Field(
        default=None, description="The quantization, as the checkpoint states it (GGUF file type)."
    )
    adapter: AdapterInfo | None = None
    merged_from: list[str] = Field(default_factory=list)
    datasets: list[CorpusRecord] = Field(default_factory=list)
    recipe: TrainingRecipe | None = None
    produced_by: str | None = None
    produced_at: str | None = None
    notes: list[str] = Field(default_factory=list)


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Claim:
    reference: str
    revision: str | None
    source: str


def _split(ref: str) -> tuple[str, str | None]:
    body = ref.removeprefix("hf://")
    if "@" in body and (ref.startswith("hf://") or not Path(body).exists()):
        name, _, rev = body.partition("@")
        return name.rstrip("/"), rev or None
    return body.rstrip("/"), None


def _key(ref: str) -> tuple[str, str]:
    """A comparable form: ('path', resolved) for local paths, ('hub', lower-cased id) for ids."""
    name, _ = _split(ref)
    if not ref.startswith("hf://") and (Path(name).exists() or name.startswith((".", "/", "~"))):
        return "path", str(Path(name).expanduser().resolve())
    return "hub", name.lower()


def _detected_bases(identity: CheckpointIdentity, notes: list[str]) -> list[_Claim]:
    claims: list[_Claim] = []
    if identity.adapter and identity.adapter.base_model:
        claims.append(
            _Claim(
                identity.adapter.base_model,
                identity.adapter.base_model_revision,
                "adapter_config.json (base_model_name_or_path)",
            )
        )
    if identity.card and identity.card.base_model:
        if len(identity.card.base_model) == 1:
            claims.append(_Claim(identity.card.base_model[0], None, "README.md (base_model)"))
        else:
            notes.append(
                "README.md names several base models ("
                + ", ".join(identity.card.base_model)
                + "); recorded under merged_from."
            )
    name = identity.architecture.name_or_path if identity.architecture else None
    # _name_or_path is where weights were loaded from; only trust it when nothing stronger speaks.
    if name and not claims and _HUB_ID.match(name) and not Path(name).exists():
        claims.append(_Claim(name, None, "config.json (_name_or_path)"))
    return claims


def _check_agree(a: _Claim, b: _Claim) -> None:
    ka, kb = _key(a.reference), _key(b.reference)
    if ka[0] == kb[0] and ka != kb:
        raise LineageConflictError(
            f"Conflicting base model: {a.source} says '{a.reference}', "
            f"{b.source} says '{b.reference}'.",
            hint="Fix whichever is wrong; cardgen will not pick one for you.",
        )
    if a.revision and b.revision:
        ra, rb = a.revision.lower(), b.revision.lower()
        if not (ra.startswith(rb) or rb.startswith(ra)):
            raise LineageConflictError(
                f"Conflicting base revision: {a.source} says '{a.revision}', "
                f"{b.source} says '{b.revision}'."
            )


def build_lineage(
    identity: CheckpointIdentity,
    declaration: LineageDeclaration | None = None,
    *,
    declaration_source: str = "lineage.yaml",
    base_flag: str | None = None,
    corpora: Iterable[CorpusRecord] = (),
    resolve_base: Callable[[str], CheckpointIdentity] | None = None,
) -> Lineage:
    """Merge what the checkpoint says about itself with what the user declares.

    ``resolve_base`` fingerprints the base reference (local path or hf://); when it raises a
    CardgenError the base is recorded as unresolved with the reason, not invented.
    Raises `LineageConflictError` when declared and detected facts disagree.
    """
    decl = declaration or LineageDeclaration()
    notes: list[str] = []
    detected = _detected_bases(identity, notes)
    for other in detected[1:]:
        _check_agree(detected[0], other)

    declared: list[_Claim] = []
    if decl.base_model:
        declared.append(
            _Claim(decl.base_model, decl.base_revision or _split(decl.base_model)[1],
                   f"{declaration_source} (base_model)")
        )  # fmt: skip
    if base_flag:
        declared.append(_Claim(base_flag, _split(base_flag)[1], "--base"))
    for d in declared[1:]:
        _check_agree(declared[0], d)
    for d in declared:
        for c in detected:
            _check_agree(d, c)
            if _key(d.reference)[0] != _key(c.reference)[0]:
                notes.append(
                    f"{d.source} names '{d.reference}' and {c.source} names '{c.reference}'; "
                    "one is a local path and the other a Hub id, so cardgen cannot check that "
                    "they are the same model."
                )

    base: BaseModelRecord | None = None
    chosen = declared[0] if declared else (detected[0] if detected else None)
    if chosen is not None:
        revision = chosen.revision or next((c.revision for c in detected if c.revision), None)
        base = BaseModelRecord(
            reference=_split(chosen.reference)[0]
            if chosen.reference.startswith("hf://")
            else chosen.reference,
            revision=revision,
            provenance=Provenance(
                origin="declared" if declared else "detected", source=chosen.source
            ),
        )
        if resolve_base is not None:
            _resolve(base, resolve_base)

    relation = _relation(identity, decl, declaration_source)
    quantized_from: BaseModelRecord | None = None
    if decl.quantized_from:
        quantized_from = BaseModelRecord(
            reference=decl.quantized_from, revision=_split(decl.quantized_from)[1],
            provenance=Provenance(origin="declared",
                                  source=f"{declaration_source} (quantized_from)"),
        )  # fmt: skip
        if resolve_base is not None:
            _resolve(quantized_from, resolve_base)
        if quantized_from.identity is not None and (
                quantized_from.identity.weights_digest == identity.weights_digest):  # fmt: skip
            raise LineageConflictError(
                f"{declaration_source} (quantized_from) names the checkpoint itself."
            )
    quantization = _quantization(identity)
    if quantization is not None and quantized_from is None:
        notes.append(f"A {quantization} GGUF: declare `quantized_from` in lineage.yaml (the "
                     "checkpoint it was made from) so the evidence ties it to the evaluated "
                     "weights.")  # fmt: skip
    merged = list(decl.merged_from)
    if not merged and identity.card and len(identity.card.base_model) > 1:
        merged = list(identity.card.base_model)

    datasets = list(corpora)
    if identity.card:
        known = {d.name for d in datasets}
        for name in identity.card.datasets:
            if name not in known:
                datasets.append(
                    CorpusRecord(
                        name=name,
                        provenance=Provenance(origin="detected", source="README.md (datasets)"),
                    )
                )
    if not datasets:
        notes.append("No training corpus recorded: declare it with --data or in lineage.yaml.")
    if base is None:
        notes.append("No base model detected or declared.")

    return Lineage(
        model_digest=identity.weights_digest,
        model_reference=identity.source.reference,
        base_model=base,
        relation=relation,
        quantized_from=quantized_from,
        quantization=quantization,
        adapter=identity.adapter,
        merged_from=merged,
        datasets=datasets,
        recipe=decl.recipe,
        produced_by=decl.produced_by,
        produced_at=decl.produced_at,
        notes=notes,
    )


def _resolve(base: BaseModelRecord, resolve: Callable[[str], CheckpointIdentity]) -> None:
    kind, _ = _key(base.reference)
    if kind == "path":
        target = base.reference
    else:
        target = f"hf://{base.reference.removeprefix('hf://')}"
        if base.revision:
            target += f"@{base.revision}"
    try:
        base.identity = resolve(target)
    except CardgenError as e:
        base.unresolved_reason = e.message


#: GGUF file types that are not quantized (full or half precision).
_UNQUANTIZED = frozenset({"ALL_F32", "MOSTLY_F16", "MOSTLY_BF16"})


def _quantization(identity: CheckpointIdentity) -> str | None:
    """A GGUF's quantization by its file type (MOSTLY_Q4_1 -> Q4_1); None when unquantized."""
    ft = identity.gguf.file_type if identity.gguf else None
    if not ft or ft in _UNQUANTIZED:
        return None
    return ft.removeprefix("MOSTLY_")


def _relation(
    identity: CheckpointIdentity, decl: LineageDeclaration, declaration_source: str
) -> RelationRecord | None:
    detected: RelationRecord | None = None
    if _quantization(identity) is not None:
        detected = RelationRecord(value="quantized", provenance=Provenance(
            origin="detected", source="GGUF metadata (general.file_type)"))  # fmt: skip
    if decl.quantized_from and decl.relation in (None, "quantized"):
        return RelationRecord(value="quantized", provenance=Provenance(
            origin="declared", source=f"{declaration_source} (quantized_from)"))  # fmt: skip
    if identity.adapter is not None:
        detected = RelationRecord(
            value="adapter", provenance=Provenance(origin="detected", source="adapter_config.json")
        )
    card_rel = identity.card.base_model_relation if identity.card else None
    if card_rel in ("finetune", "adapter", "merge", "quantized"):
        card = RelationRecord(
            value=card_rel,
            provenance=Provenance(origin="detected", source="README.md (base_model_relation)"),
        )
        if detected and detected.value != card.value:
            raise LineageConflictError(
                f"Conflicting relation: adapter_config.json makes this an adapter, "
                f"README.md (base_model_relation) says '{card_rel}'."
            )
        detected = detected or card
    if decl.relation is None:
        return detected
    if detected is not None and detected.value != decl.relation:
        raise LineageConflictError(
            f"Conflicting relation: {declaration_source} (relation) says '{decl.relation}', "
            f"{detected.provenance.source} says '{detected.value}'."
        )
    return RelationRecord(
        value=decl.relation,
        provenance=Provenance(origin="declared", source=f"{declaration_source} (relation)"),
    )


def corpus_record(
    path: Path,
    *,
    source: str,
    name: str | None = None,
    revision: str | None = None,
    fmt: str | None = None,
    shown: str | None = None,
) -> CorpusRecord:
    """Hash a training corpus file (streaming) and count JSONL examples in the same pass."""
    if not path.is_file():
        raise CardgenError(
            f"{shown or path}: training corpus not found.",
            hint="Paths in lineage.yaml are relative to the lineage file.",
        )
    h = hashlib.sha256()
    size = 0
    count: int | None = None
    suffix = path.suffix.lower()
    fmt = fmt or {".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}.get(suffix)
    try:
        with open(path, "rb") as f:
            if fmt == "jsonl":
                count = 0
                for line in f:  # streams: one line in memory at a time
                    h.update(line)
                    size += len(line)
                    if line.strip():
                        count += 1
            else:
                while chunk := f.read(4 << 20):
                    h.update(chunk)
                    size += len(chunk)
    except OSError as e:
        raise CardgenError(f"{shown or path}: cannot read ({e.strerror or e}).") from None
    if fmt == "parquet":
        count = _parquet_rows(path)
    augmented_from, pairs = _injection_of(path, h.hexdigest())
    return CorpusRecord(
        path=shown or str(path),
        name=name,
        revision=revision,
        sha256=h.hexdigest(),
        size=size,
        example_count=count,
        format=fmt,
        augmented_from_sha256=augmented_from,
        refusal_pairs_added=pairs,
        provenance=Provenance(origin="declared", source=source),
    )


def _injection_of(path: Path, sha256: str) -> tuple[str | None, int | None]:
    """The injection record `audit-data --inject` wrote beside this corpus, if it matches it."""
    record = path.with_name(path.name + ".injection.json")
    if not record.is_file():
        return None, None
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    if not isinstance(data, dict) or data.get("output_sha256") != sha256:
        return None, None  # stale record: the corpus changed after injection
    return str(data.get("input_sha256")), int(data.get("pairs_added", 0))


def _parquet_rows(path: Path) -> int | None:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return None
    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except Exception as e:
        raise CardgenError(f"{path}: not a readable Parquet file ({e}).") from None


def declared_paths(decl: LineageDeclaration, base_dir: Path, source: str) -> list[Path]:
    """The corpus files lineage.yaml lists (relative to the YAML file), each checked to exist.
    Raises CardgenError naming the entry when one has neither path nor name, or is missing."""
    return [p for _, p, _ in _declared(decl, base_dir, source) if p is not None]


def _declared(
    decl: LineageDeclaration, base_dir: Path, source: str
) -> list[tuple[DatasetDeclaration, Path | None, str]]:
    out: list[tuple[DatasetDeclaration, Path | None, str]] = []
    for i, d in enumerate(decl.datasets):
        where = f"{source} (datasets[{i}])"
        if d.path is None:
            if d.name is None:
                raise CardgenError(f"{where}: a dataset needs a path or a name.")
            out.append((d, None, where))
            continue
        p = Path(d.path).expanduser()
        full = p if p.is_absolute() else base_dir / p
        if not full.is_file():
            raise CardgenError(
                f"{where}: {d.path}: training corpus not found.",
                hint="Paths in lineage.yaml are relative to the lineage file.",
            )
        out.append((d, full, where))
    return out


def declared_corpora(decl: LineageDeclaration, base_dir: Path, source: str) -> list[CorpusRecord]:
    """Hash the corpora lineage.yaml lists (paths relative to the YAML file)."""
    out = []
    for d, full, where in _declared(decl, base_dir, source):
        if full is None:  # named only (a Hub dataset, say): recorded as declared, not hashed
            out.append(
                CorpusRecord(
                    name=d.name,
                    revision=d.revision,
                    format=d.format,
                    provenance=Provenance(origin="declared", source=where),
                )
            )
            continue  # fmt: skip
        out.append(corpus_record(full, source=where, name=d.name, revision=d.revision,
                                 fmt=d.format, shown=d.path))  # fmt: skip
    return out

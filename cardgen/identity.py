"""Checkpoint identity: which weights, exactly, are we talking about.

    >>> from cardgen.identity import fingerprint
    >>> ident = fingerprint("out/tuned")                         # doctest: +SKIP
    >>> ident.weights_digest, ident.parameters.total               # doctest: +SKIP
    ('5be1...', 1048576)

``fingerprint`` accepts a checkpoint directory, a single weights file, a Hugging Face cache
snapshot (``.../models--org--name/snapshots/<commit>``) or ``hf://org/name@revision``. It reads
configs, tokenizer files and safetensors headers, and never loads a tensor, never unpickles, and
never imports torch. The digest is OpenSSF model_signing's (see ``cardgen._hashing``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Protocol

from pydantic import Field

from cardgen import _hashing, _safetensors
from cardgen._gguf import _SPLIT as _SPLIT_GGUF
from cardgen._gguf import GGUFInfo, read_gguf
from cardgen._model import Contract
from cardgen.errors import CheckpointError

IDENTITY_SCHEMA = "cardgen.identity/v1"

FileRole = Literal[
    "weights", "weights-index", "adapter-weights", "adapter-config", "config", "generation-config",
    "tokenizer", "chat-template", "quantization-config", "card", "other",
]  # fmt: skip
FileFormat = Literal["safetensors", "pickle", "gguf", "onnx", "json", "text", "other"]

_PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}
_TOKENIZER_FILES = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "tokenizer.model", "vocab.json", "vocab.txt", "merges.txt", "spiece.model",
    "sentencepiece.bpe.model",
}  # fmt: skip
_CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")
_QUANT_FILES = ("quantize_config.json", "quant_config.json", "quantization_config.json")
#: Files read for their content. Anything else is hashed only.
_SMALL_FILE_LIMIT = 64 << 20


class FileRecord(Contract):
    """One file of the checkpoint, as it enters the digest."""

    path: str = Field(description="POSIX path inside the checkpoint ('.' for a single-file one).")
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    digest_source: Literal["computed", "hub-lfs"] = Field(
        description="'computed' = hashed by cardgen from the bytes; 'hub-lfs' = the sha256 the "
        "Hugging Face Hub stores for this LFS file, taken without downloading it."
    )
    role: FileRole
    format: FileFormat


class ModelSource(Contract):
    """Where the checkpoint was read from."""

    kind: Literal["local-directory", "local-file", "hf-cache-snapshot", "hf-hub"]
    reference: str = Field(description="What the user passed: a path or an hf:// reference.")
    repo_id: str | None = None
    requested_revision: str | None = None
    revision: str | None = Field(
        default=None, description="The commit the files came from, when known."
    )


class ArchitectureInfo(Contract):
    config_sha256: str
    model_type: str | None = None
    architectures: list[str] = Field(default_factory=list)
    dtype: str | None = Field(default=None, description="torch_dtype / dtype declared in config.")
    vocab_size: int | None = None
    hidden_size: int | None = None
    num_hidden_layers: int | None = None
    num_attention_heads: int | None = None
    max_position_embeddings: int | None = None
    name_or_path: str | None = Field(
        default=None, description="config.json `_name_or_path`: where the weights were loaded from."
    )


class ParameterInfo(Contract):
    total: int
    by_dtype: dict[str, int]
    tensors: int
    counted_files: list[str] = Field(description="Safetensors files whose headers were read.")
    complete: bool = Field(
        description="False when some weights are in formats whose headers cardgen does not read "
        "(pickle, GGUF, ...): then `total` undercounts."
    )


class TokenizerInfo(Contract):
    digest: str = Field(description="sha256 over the tokenizer files' names and sha256s.")
    files: list[str]
    tokenizer_class: str | None = None
    chat_template_sha256: str | None = Field(
        default=None, description="The chat template changes behaviour, so it is part of identity."
    )
    chat_template_source: str | None = None


class AdapterInfo(Contract):
    config_sha256: str
    peft_type: str | None = None
    task_type: str | None = None
    rank: int | None = None
    alpha: float | None = None
    dropout: float | None = None
    target_modules: list[str] | str | None = None
    base_model: str | None = Field(
        default=None, description="`base_model_name_or_path` from adapter_config.json."
    )
    base_model_revision: str | None = None


class CardHints(Contract):
    """What an existing model card (README.md front matter) says about lineage."""

    base_model: list[str] = Field(default_factory=list)
    base_model_relation: str | None = None
    license: str | None = None
    datasets: list[str] = Field(default_factory=list)


class CheckpointIdentity(Contract):
    """Which weights these are: digest, files, architecture, tokenizer, adapter."""

    schema_version: Literal["cardgen.identity/v1"] = "cardgen.identity/v1"
    source: ModelSource
    weights_digest: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="OpenSSF model_signing digest: sha256 over the per-file sha256 digests.",
    )
    digest_algorithm: Literal["sha256"] = "sha256"
    digest_method: Literal["model_signing-file-manifest"] = "model_signing-file-manifest"
    ignored_paths: list[str] = Field(
        description="Paths left out of the digest (model_signing's defaults plus --ignore)."
    )
    file_count: int
    total_size: int
    files: list[FileRecord]
    architecture: ArchitectureInfo | None = None
    parameters: ParameterInfo | None = None
    tokenizer: TokenizerInfo | None = None
    generation_config: dict[str, Any] | None = None
    quantization_config: dict[str, Any] | None = None
    adapter: AdapterInfo | None = None
    gguf: GGUFInfo | None = Field(
        default=None, description="A GGUF checkpoint's own metadata (read without the weights)."
    )
    contains_pickle: bool = Field(
        description="Pickle-format weights are hashed but never loaded by cardgen."
    )
    pickle_files: list[str] = Field(default_factory=list)
    card: CardHints | None = None
    notes: list[str] = Field(default_factory=list)

    def digest_ref(self) -> str:
        """The digest as `sha256:<hex>`, the form every cardgen document quotes."""
        return f"{self.digest_algorithm}:{self.weights_digest}"


class HashProgress(Protocol):
    """What `fingerprint` reports while it hashes (the CLI draws a progress bar from it)."""

    def start(self, total_bytes: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...


def classify(relpath: str) -> tuple[FileRole, FileFormat]:
    """Role and format of a checkpoint file, from its name (never from unpickling it)."""
    p = PurePosixPath(relpath)
    name, suffix = p.name, p.suffix.lower()
    fmt: FileFormat = (
        "safetensors" if suffix == ".safetensors"
        else "pickle" if suffix in _PICKLE_SUFFIXES
        else "gguf" if suffix == ".gguf"
        else "onnx" if suffix == ".onnx"
        else "json" if suffix == ".json"
        else "text" if suffix in {".md", ".txt", ".jinja", ".model", ".py", ".yaml", ".yml"}
        else "other"
    )  # fmt: skip
    role: FileRole
    if name.startswith("adapter_model"):
        role = "adapter-weights"
    elif name == "adapter_config.json":
        role = "adapter-config"
    elif name.endswith(".index.json"):
        role = "weights-index"
    elif fmt in ("safetensors", "pickle", "gguf", "onnx") or suffix in {".h5", ".msgpack"}:
        role = "weights"
    elif name == "config.json":
        role = "config"
    elif name == "generation_config.json":
        role = "generation-config"
    elif name in _CHAT_TEMPLATE_FILES:
        role = "chat-template"
    elif name in _TOKENIZER_FILES:
        role = "tokenizer"
    elif name in _QUANT_FILES:
        role = "quantization-config"
    elif name.lower() == "readme.md":
        role = "card"
    else:
        role = "other"
    return role, fmt


# ---------------------------------------------------------------------------------------------
# Reading a checkpoint's content: local files or the Hub, behind one small interface.


class _Reader(Protocol):
    def read(self, relpath: str) -> bytes: ...
    def safetensors(self, relpath: str) -> _safetensors.SafetensorsSummary: ...
    def local_path(self, relpath: str) -> Path | None: ...


@dataclass
class _LocalReader:
    files: Mapping[str, _hashing.CheckpointFile]

    def read(self, relpath: str) -> bytes:
        f = self.files[relpath]
        if f.size > _SMALL_FILE_LIMIT:
            raise CheckpointError(f"{relpath}: {f.size:,} bytes is too large for a metadata file.")
        try:
            return f.path.read_bytes()
        except OSError as e:
            raise CheckpointError(f"{relpath}: cannot read ({e.strerror or e}).") from e

    def safetensors(self, relpath: str) -> _safetensors.SafetensorsSummary:
        header = _safetensors.read_header(self.files[relpath].path, shown=relpath)
        return _safetensors.summarize(header)

    def local_path(self, relpath: str) -> Path | None:
        return self.files[relpath].path


def fingerprint(
    model: str | Path,
    *,
    ignore: Iterable[str] = (),
    workers: int | None = None,
    progress: HashProgress | None = None,
) -> CheckpointIdentity:
    """Fingerprint a checkpoint. Returns its `CheckpointIdentity`.

    Raises `CheckpointError` (missing, empty, corrupt, unsafe) or `HubReferenceError` (an hf://
    reference that is malformed or does not resolve). Both carry a message for the user.
    """
    ref = str(model)
    if ref.startswith("hf://"):
        from cardgen import _hubref  # huggingface_hub's HTTP stack only when needed

        remote = _hubref.resolve(ref, ignore=ignore, progress=progress)
        return _build(remote.source, remote.records, remote.reader, remote.ignored, remote.notes)

    path = Path(model).expanduser()
    source, link_root = _local_source(ref, path)
    files = _hashing.collect_files(path, ignore=ignore, link_root=link_root)
    if progress is not None:
        progress.start(sum(f.size for f in files))
    digests = _hashing.hash_files(
        files, workers=workers, on_bytes=progress.advance if progress else None
    )
    records = []
    for f, d in zip(files, digests, strict=True):
        role, fmt = classify(path.name if f.relpath == "." else f.relpath)
        records.append(
            FileRecord(
                path=f.relpath, size=f.size, sha256=d.hex(), digest_source="computed",
                role=role, format=fmt,
            )
        )  # fmt: skip
    reader = _LocalReader({f.relpath: f for f in files})
    ignored = sorted({*_hashing.DEFAULT_IGNORED, *(p.strip("/") for p in ignore)})
    return _build(source, records, reader, ignored, [], single_name=path.name)


def _local_source(ref: str, path: Path) -> tuple[ModelSource, Path | None]:
    """Recognise a Hugging Face cache snapshot, whose files are symlinks into ../../blobs."""
    if path.is_file():
        return ModelSource(kind="local-file", reference=ref), None
    resolved = path.resolve()
    snapshots, repo_dir = resolved.parent, resolved.parent.parent
    if snapshots.name == "snapshots" and repo_dir.name.startswith("models--"):
        repo_id = repo_dir.name.removeprefix("models--").replace("--", "/")
        src = ModelSource(
            kind="hf-cache-snapshot", reference=ref, repo_id=repo_id, revision=resolved.name
        )
        return src, repo_dir
    return ModelSource(kind="local-directory", reference=ref), None


def _build(
    source: ModelSource,
    records: list[FileRecord],
    reader: _Reader,
    ignored: list[str],
    notes: list[str],
    single_name: str | None = None,
) -> CheckpointIdentity:
    by_name = {r.path: r for r in records}
    # A single weights file is named "." in the manifest; read it under that key.
    roles = {r.path: r.role for r in records}
    pickle_files = [
        (single_name or r.path) if r.path == "." else r.path
        for r in records
        if r.format == "pickle"
    ]
    notes = list(notes)
    if pickle_files:
        notes.append(
            f"{len(pickle_files)} pickle-format file(s) hashed but not loaded: pickle can run code "
            "when loaded; prefer safetensors."
        )
    config = _read_json(reader, "config.json", by_name, notes)
    architecture = _architecture(config, by_name["config.json"].sha256) if config else None
    quant = None
    if config and isinstance(config.get("quantization_config"), dict):
        quant = config["quantization_config"]
    for qname in _QUANT_FILES:
        quant = quant or _read_json(reader, qname, by_name, notes)
    gguf = _gguf_info(reader, records, notes)
    parameters = _parameters(reader, records, notes)
    tokenizer = _tokenizer(reader, by_name, notes)
    if gguf is not None:  # the GGUF's own metadata is its config, tokenizer and quantization
        architecture = architecture or ArchitectureInfo(
            config_sha256=gguf.metadata_sha256, model_type=gguf.architecture,
            hidden_size=gguf.embedding_length, num_hidden_layers=gguf.block_count,
            num_attention_heads=gguf.head_count, max_position_embeddings=gguf.context_length,
            name_or_path=gguf.name,
        )  # fmt: skip
        if parameters is None:
            parameters = ParameterInfo(total=gguf.parameters, by_dtype=gguf.elements_by_type,
                                       tensors=gguf.tensors, counted_files=gguf.files,
                                       complete=True)  # fmt: skip
        if tokenizer is None and gguf.tokenizer_sha256:
            tokenizer = TokenizerInfo(
                digest=gguf.tokenizer_sha256, files=gguf.files,
                tokenizer_class=gguf.tokenizer_model,
                chat_template_sha256=gguf.chat_template_sha256,
                chat_template_source="gguf:tokenizer.chat_template"
                if gguf.chat_template_sha256 else None,
            )  # fmt: skip
        quant = quant or {"format": "gguf", "file_type": gguf.file_type,
                          "tensor_types": gguf.tensor_types}  # fmt: skip
    identity = CheckpointIdentity(
        source=source,
        weights_digest=_hashing.checkpoint_digest(bytes.fromhex(r.sha256) for r in records),
        ignored_paths=ignored,
        file_count=len(records),
        total_size=sum(r.size for r in records),
        files=records,
        architecture=architecture,
        parameters=parameters,
        tokenizer=tokenizer,
        generation_config=_read_json(reader, "generation_config.json", by_name, notes),
        quantization_config=quant,
        adapter=_adapter(reader, by_name, notes),
        gguf=gguf,
        contains_pickle=bool(pickle_files),
        pickle_files=pickle_files,
        card=_card(reader, by_name, notes),
        notes=notes,
    )
    if not any(role in ("weights", "adapter-weights") for role in roles.values()):
        identity.notes.append("No weights file found: the digest covers configuration files only.")
    return identity


def _read_json(
    reader: _Reader, relpath: str, by_name: Mapping[str, FileRecord], notes: list[str]
) -> dict[str, Any] | None:
    if relpath not in by_name:
        return None
    raw = reader.read(relpath)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(
            f"{relpath}: not valid JSON ({e}).",
            hint="The checkpoint is damaged; re-export or re-download it.",
        ) from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{relpath}: expected a JSON object, found {type(data).__name__}.")
    return data


def _architecture(config: Mapping[str, Any], config_sha256: str) -> ArchitectureInfo:
    def as_int(key: str) -> int | None:
        v = config.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    archs = config.get("architectures")
    dtype = config.get("torch_dtype", config.get("dtype"))
    name = config.get("_name_or_path")
    return ArchitectureInfo(
        config_sha256=config_sha256,
        model_type=config.get("model_type") if isinstance(config.get("model_type"), str) else None,
        architectures=[str(a) for a in archs] if isinstance(archs, list) else [],
        dtype=str(dtype) if dtype is not None else None,
        vocab_size=as_int("vocab_size"),
        hidden_size=as_int("hidden_size"),
        num_hidden_layers=as_int("num_hidden_layers"),
        num_attention_heads=as_int("num_attention_heads"),
        max_position_embeddings=as_int("max_position_embeddings"),
        name_or_path=name if isinstance(name, str) and name else None,
    )


def _gguf_info(reader: _Reader, records: list[FileRecord], notes: list[str]) -> GGUFInfo | None:
    ggufs = [r for r in records if r.format == "gguf"]
    if not ggufs:
        return None
    paths = [reader.local_path(r.path) for r in ggufs]
    if any(p is None for p in paths):
        notes.append("GGUF metadata is read from local files only; fingerprint a local copy to "
                     "record its architecture, quantization and chat template.")  # fmt: skip
        return None
    local = [p for p in paths if p is not None]
    if len(local) > 1 and not all(_SPLIT_GGUF.search(p.name) for p in local):
        notes.append(f"{len(local)} GGUF files that are not shards of one model: the metadata is "
                     f"the first one's ({local[0].name}); the digest covers them all.")  # fmt: skip
        local = local[:1]
    return read_gguf(local)


def _parameters(
    reader: _Reader, records: list[FileRecord], notes: list[str]
) -> ParameterInfo | None:
    weights = [r for r in records if r.role in ("weights", "adapter-weights")]
    st = [r for r in weights if r.format == "safetensors"]
    weights = [r for r in weights if r.format != "gguf"]  # counted from the GGUF's own header
    if not st:
        return None
    total = _safetensors.SafetensorsSummary()
    for r in st:
        total.add(reader.safetensors(r.path))
    others = [r.path for r in weights if r.format != "safetensors"]
    if others:
        notes.append(
            f"Parameter count covers safetensors files only; not read: {', '.join(others)}."
        )
    return ParameterInfo(
        total=total.parameters,
        by_dtype=dict(sorted(total.parameters_by_dtype.items())),
        tensors=total.tensors,
        counted_files=[r.path for r in st],
        complete=not others,
    )


def _tokenizer(
    reader: _Reader, by_name: Mapping[str, FileRecord], notes: list[str]
) -> TokenizerInfo | None:
    tok_files = sorted(
        p for p, r in by_name.items() if r.role in ("tokenizer", "chat-template") and "/" not in p
    )
    if not tok_files:
        return None
    listing = "".join(f"{p}\0{by_name[p].sha256}\n" for p in tok_files)
    template: str | None = None
    template_source: str | None = None
    tok_class: str | None = None
    tok_config = _read_json(reader, "tokenizer_config.json", by_name, notes)
    if tok_config is not None:
        tc = tok_config.get("tokenizer_class")
        tok_class = tc if isinstance(tc, str) else None
        raw_template = tok_config.get("chat_template")
        if raw_template:
            template = raw_template if isinstance(raw_template, str) else _canon(raw_template)
            template_source = "tokenizer_config.json"
    if "chat_template.jinja" in by_name:  # transformers >= 4.43 saves it beside the config
        template = reader.read("chat_template.jinja").decode("utf-8", errors="replace")
        template_source = "chat_template.jinja"
    elif template is None and "chat_template.json" in by_name:
        data = _read_json(reader, "chat_template.json", by_name, notes) or {}
        if data.get("chat_template"):
            ct = data["chat_template"]
            template = ct if isinstance(ct, str) else _canon(ct)
            template_source = "chat_template.json"
    return TokenizerInfo(
        digest=_hashing.sha256_bytes(listing.encode()),
        files=tok_files,
        tokenizer_class=tok_class,
        chat_template_sha256=_hashing.sha256_bytes(template.encode()) if template else None,
        chat_template_source=template_source,
    )


def _adapter(
    reader: _Reader, by_name: Mapping[str, FileRecord], notes: list[str]
) -> AdapterInfo | None:
    cfg = _read_json(reader, "adapter_config.json", by_name, notes)
    if cfg is None:
        return None

    def num(key: str) -> float | None:
        v = cfg.get(key)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    rank = cfg.get("r")
    targets = cfg.get("target_modules")
    if isinstance(targets, list):
        targets = sorted(str(t) for t in targets)
    elif targets is not None and not isinstance(targets, str):
        targets = str(targets)
    base = cfg.get("base_model_name_or_path")
    base_rev = cfg.get("revision")
    return AdapterInfo(
        config_sha256=by_name["adapter_config.json"].sha256,
        peft_type=str(cfg["peft_type"]) if cfg.get("peft_type") else None,
        task_type=str(cfg["task_type"]) if cfg.get("task_type") else None,
        rank=rank if isinstance(rank, int) and not isinstance(rank, bool) else None,
        alpha=num("lora_alpha"),
        dropout=num("lora_dropout"),
        target_modules=targets,
        base_model=base if isinstance(base, str) and base else None,
        base_model_revision=base_rev if isinstance(base_rev, str) and base_rev else None,
    )


def _card(reader: _Reader, by_name: Mapping[str, FileRecord], notes: list[str]) -> CardHints | None:
    name = next((p for p in by_name if p.lower() == "readme.md"), None)
    if name is None:
        return None
    from huggingface_hub import RepoCard

    text = reader.read(name).decode("utf-8", errors="replace")
    try:
        data = RepoCard(text, ignore_metadata_errors=False).data.to_dict()  # type: ignore[no-untyped-call]
    except Exception as e:  # the card is user content; a broken one is a note, not a failure
        notes.append(f"{name}: front matter could not be parsed ({type(e).__name__}); ignored.")
        return None

    def as_list(v: Any) -> list[str]:
        if v is None:
            return []
        return [str(x) for x in v] if isinstance(v, list) else [str(v)]

    if not data:
        return None
    rel = data.get("base_model_relation")
    lic = data.get("license")
    return CardHints(
        base_model=as_list(data.get("base_model")),
        base_model_relation=str(rel) if rel else None,
        license=str(lic) if lic else None,
        datasets=as_list(data.get("datasets")),
    )


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def load_identity(path: Path) -> CheckpointIdentity:
    """Read an identity.json written by `cardgen fingerprint`."""
    from cardgen.config import load_json_model

    return load_json_model(path, CheckpointIdentity)

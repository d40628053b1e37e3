"""GGUF metadata, read with the `gguf` package (the reader llama.cpp's own Python tools use):
architecture, size, quantization, tokenizer and chat template, without loading any weights.

A split GGUF (``name-00001-of-00003.gguf``, ...) is one checkpoint: metadata from the first
shard, tensors from all. A corrupt or truncated header is a `CheckpointError`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from cardgen._model import Contract
from cardgen.errors import CheckpointError

_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")
#: Tokenizer keys whose values are the vocabulary itself (hashed, not copied into identity).
_TOKENIZER_PREFIX = "tokenizer.ggml."


class GGUFInfo(Contract):
    """What a GGUF file says about itself."""

    files: list[str] = Field(description="The GGUF file(s), in shard order.")
    version: int | None = Field(default=None, description="GGUF format version.")
    architecture: str | None = None
    name: str | None = Field(default=None, description="general.name")
    file_type: str | None = Field(default=None, description="general.file_type, e.g. MOSTLY_Q4_1.")
    tensor_types: dict[str, int] = Field(
        default_factory=dict, description="Tensors per quantization type (Q4_1: 210, F32: 61)."
    )
    parameters: int = Field(description="Elements over all tensors.")
    elements_by_type: dict[str, int] = Field(
        default_factory=dict, description="Elements per quantization type."
    )
    tensors: int
    context_length: int | None = None
    block_count: int | None = None
    embedding_length: int | None = None
    head_count: int | None = None
    tokenizer_model: str | None = Field(default=None, description="tokenizer.ggml.model")
    tokenizer_sha256: str | None = Field(
        default=None, description="sha256 over the tokenizer.ggml.* fields (vocabulary, merges)."
    )
    chat_template_sha256: str | None = None
    base_models: list[dict[str, str]] = Field(
        default_factory=list, description="general.base_model.N.* (name, organization, repo_url)."
    )
    source: dict[str, str] = Field(
        default_factory=dict, description="general.source.* / general.quantized_by, when present."
    )
    metadata_sha256: str = Field(description="sha256 over every key-value pair (canonical JSON).")


def _value(field: Any) -> Any:
    try:
        v = field.contents()
    except Exception:  # a field type this gguf version cannot render
        return None
    return v.tolist() if hasattr(v, "tolist") else v


def shard_order(paths: Sequence[Path]) -> list[Path]:
    """GGUF files in shard order; a split set must be complete."""
    split = [(p, _SPLIT.search(p.name)) for p in paths]
    if not any(m for _, m in split):
        return sorted(paths)
    counts = {int(m.group(2)) for _, m in split if m}
    found = sorted(int(m.group(1)) for _, m in split if m)
    if len(counts) != 1 or found != list(range(1, next(iter(counts)) + 1)):
        raise CheckpointError(
            f"split GGUF is incomplete: shards {found} of {sorted(counts)}.",
            hint="Hash and evaluate the directory holding every -0000N-of-0000M.gguf shard.",
        )
    return sorted(paths, key=lambda p: int(m.group(1)) if (m := _SPLIT.search(p.name)) else 0)


def read_gguf(paths: Sequence[Path]) -> GGUFInfo:
    """The metadata of one GGUF checkpoint (one file, or the shards of a split one)."""
    from gguf import GGUFReader, LlamaFileType

    ordered = shard_order(paths)
    readers = []
    for p in ordered:
        try:
            readers.append(GGUFReader(p, "r"))
        except Exception as e:  # gguf raises ValueError / struct errors / numpy errors
            raise CheckpointError(
                f"{p}: not a readable GGUF file ({type(e).__name__}: {str(e)[:120]}).",
                hint="The header is corrupt or truncated; download or convert it again.",
            ) from None
    kv: dict[str, Any] = {}
    for name, field in readers[0].fields.items():
        if not name.startswith("GGUF."):
            kv[name] = _value(field)
    arch = kv.get("general.architecture")
    types: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    elements = tensors = 0
    for r in readers:
        for t in r.tensors:
            types[t.tensor_type.name] += 1
            by_type[t.tensor_type.name] += int(t.n_elements)
            elements += int(t.n_elements)
            tensors += 1
    ft = kv.get("general.file_type")
    try:
        file_type = LlamaFileType(int(ft)).name if ft is not None else None
    except ValueError:
        file_type = f"unknown ({ft})"
    tok = {k: v for k, v in kv.items() if k.startswith(_TOKENIZER_PREFIX)}
    template = kv.get("tokenizer.chat_template")
    bases = []
    for i in range(int(kv.get("general.base_model.count") or 0)):
        entry = {k.rsplit(".", 1)[1]: str(v) for k, v in kv.items()
                 if k.startswith(f"general.base_model.{i}.")}  # fmt: skip
        if entry:
            bases.append(entry)
    source = {k.removeprefix("general."): str(v) for k, v in kv.items()
              if k.startswith("general.source.") or k == "general.quantized_by"}  # fmt: skip

    def arch_int(key: str) -> int | None:
        v = kv.get(f"{arch}.{key}") if arch else None
        return int(v) if isinstance(v, int) else None

    version = readers[0].fields.get("GGUF.version")
    return GGUFInfo(
        files=[p.name for p in ordered],
        version=int(_value(version)) if version is not None else None,
        architecture=str(arch) if arch else None,
        name=str(kv["general.name"]) if kv.get("general.name") else None,
        file_type=file_type,
        tensor_types=dict(sorted(types.items(), key=lambda x: (-x[1], x[0]))),
        parameters=elements,
        elements_by_type=dict(sorted(by_type.items())),
        tensors=tensors,
        context_length=arch_int("context_length"),
        block_count=arch_int("block_count"),
        embedding_length=arch_int("embedding_length"),
        head_count=arch_int("attention.head_count"),
        tokenizer_model=str(kv["tokenizer.ggml.model"]) if kv.get("tokenizer.ggml.model") else None,
        tokenizer_sha256=_digest(tok) if tok else None,
        chat_template_sha256=hashlib.sha256(str(template).encode()).hexdigest()
        if isinstance(template, str)
        else None,
        base_models=bases,
        source=source,
        metadata_sha256=_digest(kv),
    )


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()

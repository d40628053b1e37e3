"""Read safetensors headers (shapes and dtypes) without loading a tensor or importing torch.

A safetensors file starts with an 8-byte little-endian header length N, then N bytes of JSON
mapping tensor names to ``{"dtype", "shape", "data_offsets"}`` (plus an optional
``__metadata__``). Everything here is checked, because a corrupt or hostile header must produce a
clear error, not a crash or a 100 GB allocation.
"""

from __future__ import annotations

import json
import math
import struct
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cardgen.errors import CheckpointError

#: The safetensors reference implementation refuses headers above 100 MB; so do we.
MAX_HEADER_BYTES = 100_000_000

DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "F4": 1, "F6_E2M3": 1,
    "F6_E3M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}  # fmt: skip


@dataclass
class SafetensorsSummary:
    """Tensor count, parameter count and parameters per dtype of one or more safetensors files."""

    tensors: int = 0
    parameters: int = 0
    parameters_by_dtype: Counter[str] = field(default_factory=Counter)
    metadata: dict[str, str] = field(default_factory=dict)

    def add(self, other: SafetensorsSummary) -> None:
        self.tensors += other.tensors
        self.parameters += other.parameters
        self.parameters_by_dtype.update(other.parameters_by_dtype)


def read_header(path: Path, *, shown: str | None = None) -> dict[str, Any]:
    """Parse and validate the JSON header of the safetensors file at ``path``."""
    shown = shown or str(path)
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            file_size = f.tell()
            f.seek(0)
            prefix = f.read(8)
            if len(prefix) < 8:
                raise CheckpointError(
                    f"{shown}: corrupt safetensors file ({file_size} bytes, shorter than the "
                    "8-byte header length)."
                )
            (n,) = struct.unpack("<Q", prefix)
            _check_header_length(n, file_size, shown)
            raw = f.read(n)
    except OSError as e:
        raise CheckpointError(f"{shown}: cannot read ({e.strerror or e}).") from e
    return parse_header(raw, file_size=file_size, shown=shown)


def _check_header_length(n: int, file_size: int | None, shown: str) -> None:
    if n > MAX_HEADER_BYTES:
        raise CheckpointError(
            f"{shown}: corrupt safetensors header: it declares a {n:,}-byte header, more than the "
            f"{MAX_HEADER_BYTES:,}-byte limit; the file is damaged or not safetensors."
        )
    if file_size is not None and n > file_size - 8:
        raise CheckpointError(
            f"{shown}: corrupt safetensors header: it declares {n:,} header bytes but the file "
            f"has only {file_size - 8:,} after the length field (truncated download?)."
        )


def parse_header(raw: bytes, *, file_size: int | None, shown: str) -> dict[str, Any]:
    """Validate a header's JSON and tensor entries; ``file_size`` bounds the data offsets."""
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{shown}: corrupt safetensors header: not valid JSON ({e}).") from e
    if not isinstance(header, dict):
        raise CheckpointError(f"{shown}: corrupt safetensors header: the JSON is not an object.")
    validate_entries(header, None if file_size is None else file_size - 8 - len(raw), shown)
    return header


def validate_entries(header: Mapping[str, Any], data_size: int | None, shown: str) -> None:
    """Check every tensor entry; ``data_size`` (bytes after the header) bounds the offsets."""
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        _check_entry(name, entry, data_size, shown)


def _check_entry(name: str, entry: Any, data_size: int | None, shown: str) -> None:
    bad = f"{shown}: corrupt safetensors header: tensor {name!r}"
    if not isinstance(entry, Mapping) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise CheckpointError(f"{bad} lacks dtype, shape or data_offsets.")
    shape, offsets = entry["shape"], entry["data_offsets"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise CheckpointError(f"{bad} has an invalid shape {shape!r}.")
    ok_offsets = (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(o, int) and o >= 0 for o in offsets)
        and offsets[0] <= offsets[1]
    )
    if not ok_offsets:
        raise CheckpointError(f"{bad} has invalid data_offsets {offsets!r}.")
    if data_size is not None and offsets[1] > data_size:
        raise CheckpointError(f"{bad} ends at byte {offsets[1]:,}, past the end of the file.")
    width = DTYPE_BYTES.get(str(entry["dtype"]))
    packed = entry["dtype"] in ("F4", "F6_E2M3", "F6_E3M2")  # sub-byte types: no simple check
    if width is not None and not packed and offsets[1] - offsets[0] != math.prod(shape) * width:
        raise CheckpointError(
            f"{bad}: shape {shape} of {entry['dtype']} does not match its "
            f"{offsets[1] - offsets[0]:,} data bytes."
        )


def summarize(header: Mapping[str, Any]) -> SafetensorsSummary:
    """Count tensors and parameters (per dtype) described by a validated header."""
    out = SafetensorsSummary()
    meta = header.get("__metadata__")
    if isinstance(meta, Mapping):
        out.metadata = {str(k): str(v) for k, v in meta.items()}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        n = math.prod(entry["shape"])
        out.tensors += 1
        out.parameters += n
        out.parameters_by_dtype[str(entry["dtype"])] += n
    return out

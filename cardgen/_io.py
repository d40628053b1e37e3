"""Atomic writes: an output file is either complete or absent, never half-written."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel

from cardgen.errors import CardgenError


def cache_root() -> Path:
    """cardgen's cache: $CARDGEN_CACHE, else the platform's user cache directory."""
    env = os.environ.get("CARDGEN_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("cardgen", appauthor=False))


def jsonl_objects(text: str, path: Path) -> Iterable[tuple[int, dict[str, object]]]:
    """(line number, object) for each non-empty line of JSONL text. Raises CardgenError naming
    the file and line of one that is not a JSON object."""
    import json

    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise CardgenError(f"{path}:{n}: invalid JSON ({e.msg}).") from None
        if not isinstance(obj, dict):
            raise CardgenError(f"{path}:{n}: expected a JSON object per line.")
        yield n, obj


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temp file in the same directory and a rename."""
    write_atomic_stream(path, [data.encode("utf-8") if isinstance(data, str) else data])


def model_json(model: BaseModel) -> str:
    """The canonical JSON of a result: stable key order, 2-space indent, trailing newline."""
    return model.model_dump_json(indent=2) + "\n"


def write_model(path: Path, model: BaseModel) -> None:
    write_atomic(path, model_json(model))


def write_atomic_stream(path: Path, chunks: Iterable[bytes]) -> str:
    """Write streamed bytes atomically (temp file + rename); returns their sha256 (hex)."""
    import hashlib

    path = Path(path)
    h = hashlib.sha256()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise CardgenError(f"{path}: cannot write ({e.strerror or e}).") from None
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                h.update(chunk)
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise CardgenError(f"{path}: cannot write ({e.strerror or e}).") from None
        raise
    return h.hexdigest()

"""`hf://org/name@revision`: fingerprint a Hub repository without downloading its weights.

The Hub stores the sha256 of every LFS file (weights, usually); cardgen takes those digests from
the repo metadata, downloads only the small non-LFS files (configs, tokenizer) to hash them itself,
and reads safetensors headers with HTTP range requests. Every file record says which it was.
The endpoint is ``HF_ENDPOINT`` when set (read at call time), else huggingface_hub's default.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from cardgen import _hashing, _safetensors
from cardgen.errors import CheckpointError, HubReferenceError

if TYPE_CHECKING:
    from huggingface_hub import HfApi

    from cardgen.identity import FileRecord, HashProgress, ModelSource

_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")
#: Non-LFS files the Hub keeps in git are small (it rejects >10 MB); a cap guards against a bad
#: server.
_MAX_DOWNLOAD = 64 << 20


def parse_reference(ref: str) -> tuple[str, str | None]:
    """Split ``hf://org/name@revision`` into (repo_id, revision or None)."""
    body = ref.removeprefix("hf://")
    repo_id, _, revision = body.partition("@")
    if not _REPO_ID.match(repo_id) or "--" in repo_id or ".." in repo_id:
        raise HubReferenceError(
            f"{ref}: not a valid Hub reference.",
            hint="Write hf://org/name or hf://org/name@revision (a branch, tag or commit sha).",
        )
    if "@" in body and not revision:
        raise HubReferenceError(f"{ref}: empty revision after '@'.")
    return repo_id, revision or None


@dataclass
class RemoteCheckpoint:
    source: ModelSource
    records: list[FileRecord]
    reader: _HubReader
    ignored: list[str]
    notes: list[str] = field(default_factory=list)


@dataclass
class _HubReader:
    api: HfApi
    repo_id: str
    commit: str
    sizes: dict[str, int]
    lfs_sha256: dict[str, str]
    local: dict[str, Path] = field(default_factory=dict)

    def fetch(self, relpath: str) -> Path:
        """Download one small file at the pinned commit (cached) and check its integrity."""
        if relpath in self.local:
            return self.local[relpath]
        size = self.sizes.get(relpath, 0)
        if size > _MAX_DOWNLOAD:
            raise CheckpointError(
                f"hf://{self.repo_id}@{self.commit}: {relpath} is {size:,} bytes; cardgen "
                "downloads only small metadata files from the Hub."
            )
        with _hub_errors(f"hf://{self.repo_id}@{self.commit}"):
            local = Path(self.api.hf_hub_download(self.repo_id, relpath, revision=self.commit))
        want = self.lfs_sha256.get(relpath)
        if want is not None and _hashing.sha256_hex(local) != want:
            raise CheckpointError(
                f"hf://{self.repo_id}@{self.commit}: {relpath} downloaded with a sha256 that "
                "differs from the Hub's LFS metadata; the download or the server is corrupt."
            )
        self.local[relpath] = local
        return local

    def read(self, relpath: str) -> bytes:
        return self.fetch(relpath).read_bytes()

    def local_path(self, relpath: str) -> Path | None:
        return None  # GGUF metadata is read from local files only

    def safetensors(self, relpath: str) -> _safetensors.SafetensorsSummary:
        shown = f"hf://{self.repo_id}@{self.commit}/{relpath}"
        from huggingface_hub.errors import SafetensorsParsingError

        with _hub_errors(shown):
            try:
                meta = self.api.parse_safetensors_file_metadata(
                    self.repo_id, relpath, revision=self.commit
                )
            except SafetensorsParsingError as e:
                raise CheckpointError(f"{shown}: corrupt safetensors header ({e}).") from None
        header: dict[str, Any] = {"__metadata__": dict(meta.metadata or {})}
        for name, t in meta.tensors.items():
            header[name] = {
                "dtype": t.dtype,
                "shape": list(t.shape),
                "data_offsets": list(t.data_offsets),
            }
        size = self.sizes.get(relpath)
        # The header's own length is not reported; file size - 8 still bounds every offset.
        _safetensors.validate_entries(header, None if size is None else size - 8, shown)
        return _safetensors.summarize(header)


class _hub_errors:
    """Turn huggingface_hub/httpx exceptions into messages a user can act on."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: Any) -> None:
        if e is None or isinstance(e, HubReferenceError | CheckpointError):
            return
        from huggingface_hub import errors as hf

        if isinstance(e, hf.GatedRepoError):
            msg = f"{self.what}: the repository is gated and this token has no access."
            hint = "Accept the model's terms on the Hub, then set HF_TOKEN."
        elif isinstance(e, hf.RepositoryNotFoundError):
            msg = f"{self.what}: repository not found (or private, and no token with access)."
            hint = "Check the name; for a private repo set HF_TOKEN."
        elif isinstance(e, hf.RevisionNotFoundError):
            msg = f"{self.what}: revision not found in the repository."
            hint = "Use an existing branch, tag or full commit sha."
        elif isinstance(e, hf.EntryNotFoundError):
            msg = f"{self.what}: a file listed by the Hub could not be fetched."
            hint = None
        elif isinstance(e, hf.OfflineModeIsEnabled):
            msg = f"{self.what}: HF_HUB_OFFLINE is set, so the Hub cannot be asked."
            hint = "Unset HF_HUB_OFFLINE, or pass the local snapshot directory instead."
        elif isinstance(e, hf.HfHubHTTPError) and e.response is not None:
            status = e.response.status_code
            if status in (401, 403):
                msg = f"{self.what}: the Hub refused access (HTTP {status}): no token, or one "
                msg += "without the access this needs."
                hint = "Set HF_TOKEN (write access to push), or run `hf auth login`."
            else:
                msg = f"{self.what}: the Hub answered HTTP {status}."
                hint = None
        elif isinstance(e, OSError | ConnectionError) or type(e).__module__.startswith("httpx"):
            msg = f"{self.what}: cannot reach the Hub ({type(e).__name__})."
            hint = "Check the network or HF_ENDPOINT; or pass a local snapshot directory."
        else:
            return  # not a Hub failure we can explain: let it through unchanged
        raise HubReferenceError(msg, hint=hint) from None


def _api() -> HfApi:
    from huggingface_hub import HfApi

    return HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)


def resolve(
    ref: str, *, ignore: Any = (), progress: HashProgress | None = None
) -> RemoteCheckpoint:
    """List, digest and describe the files of an hf:// reference at one pinned commit."""
    from cardgen.identity import FileRecord, ModelSource, classify

    repo_id, revision = parse_reference(ref)
    api = _api()
    with _hub_errors(ref):
        info = api.model_info(repo_id, revision=revision, files_metadata=True)
    commit = info.sha
    if not commit:
        raise HubReferenceError(f"{ref}: the Hub did not say which commit it serves.")
    ignored = sorted({*_hashing.DEFAULT_IGNORED, *(p.strip("/") for p in ignore)})
    ignored_paths = [PurePosixPath(p) for p in ignored]
    siblings = []
    for s in info.siblings or []:
        rel = PurePosixPath(s.rfilename)
        if not any(rel == ig or rel.is_relative_to(ig) for ig in ignored_paths):
            siblings.append(s)
    if not siblings:
        raise CheckpointError(f"{ref}: the repository holds no files at commit {commit}.")
    siblings.sort(key=lambda s: PurePosixPath(s.rfilename))

    sizes: dict[str, int] = {}
    lfs: dict[str, str] = {}
    for s in siblings:
        if s.lfs is not None:
            lfs[s.rfilename] = s.lfs.sha256
            sizes[s.rfilename] = s.lfs.size
        else:
            sizes[s.rfilename] = s.size or 0
    reader = _HubReader(api, repo_id, commit, sizes, lfs)
    if progress is not None:
        progress.start(sum(sizes[s.rfilename] for s in siblings if s.lfs is None))

    records: list[FileRecord] = []
    for s in siblings:
        role, fmt = classify(s.rfilename)
        if s.lfs is not None:
            sha, origin = s.lfs.sha256, "hub-lfs"
        else:
            local = reader.fetch(s.rfilename)
            raw = local.read_bytes()
            if s.blob_id and _git_blob_sha1(raw) != s.blob_id:
                raise CheckpointError(
                    f"{ref}: {s.rfilename} downloaded with content that does not match the "
                    "Hub's git blob id; the download or the server is corrupt."
                )
            sha, origin = hashlib.sha256(raw).hexdigest(), "computed"
            if progress is not None:
                progress.advance(len(raw))
        records.append(
            FileRecord(
                path=s.rfilename, size=sizes[s.rfilename], sha256=sha,
                digest_source=origin, role=role, format=fmt,
            )
        )  # fmt: skip
    from_hub = sum(r.digest_source == "hub-lfs" for r in records)
    notes = [
        f"{from_hub} of {len(records)} file digests are the sha256 the Hub stores for LFS files "
        f"(not re-hashed by cardgen); {len(records) - from_hub} were downloaded and hashed."
    ]
    source = ModelSource(
        kind="hf-hub", reference=ref, repo_id=repo_id, requested_revision=revision,
        revision=commit,
    )  # fmt: skip
    return RemoteCheckpoint(source, records, reader, ignored, notes)


def _git_blob_sha1(raw: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(raw) + raw, usedforsecurity=False).hexdigest()

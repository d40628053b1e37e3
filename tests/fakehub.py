"""A local, real-HTTP fake of the Hugging Face Hub, for tests that must not touch the network.

Why: cardgen reads Hub repos through huggingface_hub (repo metadata, small-file downloads,
safetensors headers over HTTP ranges). Mocking huggingface_hub's Python functions would test our
mocks, not the wire protocol; this serves the same URLs, headers and error codes that
huggingface_hub 2.4 expects (checked against its ``hf_api.py``, ``file_download.py``,
``utils/_http.py``), so the real client code paths run unchanged.

Endpoints on the hub origin (``FakeHub.url``):

- ``GET /api/models/{repo_id}`` and ``GET /api/models/{repo_id}/revision/{rev}``: model_info /
  repo_info. ``?blobs=true`` (``files_metadata=True``) adds ``size``, ``blobId`` and, for LFS
  files, ``lfs: {sha256, size, pointerSize}`` to each sibling; ``expand=...`` and
  ``securityStatus=true`` are honoured.
- ``GET /api/models/{repo_id}/tree/{rev}[/{path}]`` (``?recursive=true``, ``?expand=true``):
  list_repo_tree / list_repo_files / snapshot_download. One page, no pagination.
- ``HEAD|GET /{repo_id}/resolve/{rev}/{filename}`` (and ``/datasets/{repo_id}/resolve/...`` for
  dataset repos, given to ``FakeHub`` under the key ``"datasets/ORG/NAME"``): a git (non-LFS)
  file answers 200, or 206 for
  ``Range: bytes=a-b`` / ``a-`` / ``-n``, with ``ETag`` = its git blob sha1 and ``X-Repo-Commit``.
  An LFS file answers ``302`` to the fake CDN with ``X-Linked-Etag`` = its sha256,
  ``X-Linked-Size`` = its size, ``X-Repo-Commit``; the 302's own ``Content-Length`` is that of
  the redirect body, as on the real Hub.
- ``POST /api/validate-yaml``: accepts a README whose front matter is valid YAML (400 with
  ``errors`` otherwise), as ``create_commit`` asks before uploading a README.md.
- ``POST /api/models/{repo_id}/preupload/{rev}``: every file is ``regular`` (inline in the commit).
- ``POST /api/models/{repo_id}/commit/{rev}``: an NDJSON commit (header + base64 files); applied
  to ``FakeHub.commits`` (what was pushed, decoded). ``FakeHub.fail_commits`` makes it answer that
  status instead, having applied nothing, to test error paths. Writes need a token (401 without).
- ``GET /api/agent-harnesses``: an empty registry (only asked if ``HF_ENDPOINT`` pointed here
  when huggingface_hub was imported; see below).

The fake CDN (``FakeHub.cdn_url``) listens on a second port, so it is a different origin and
huggingface_hub strips ``Authorization`` when following the redirect, as with the real CDN:
``HEAD|GET /__cdn__/{sha256}/{filename}`` serves LFS content, with the same Range support.

Errors follow ``hf_raise_for_status``: ``X-Error-Code: RepoNotFound`` (401 without a token,
404 with one, like the real Hub) -> ``RepositoryNotFoundError``; ``RevisionNotFound`` (404) ->
``RevisionNotFoundError``; ``EntryNotFound`` (404, with ``X-Repo-Commit``) ->
``RemoteEntryNotFoundError`` (a subclass of ``EntryNotFoundError``; so is the offline
``LocalEntryNotFoundError``, so assert on the Remote one). Unsatisfiable or multi-part ranges get
416; other methods get 405; unknown routes 404 without a code (plain ``HfHubHTTPError``).
Revisions accepted: ``main``, ``refs/heads/main`` and the repo's 40-hex commit.

huggingface_hub 2.4 behaviours callers must know:

- ``constants.py`` reads its environment once, at import: ``HF_HUB_OFFLINE`` (and
  ``TRANSFORMERS_OFFLINE``), ``HF_ENDPOINT``, ``HF_HOME``/``HF_HUB_CACHE``, ``HF_TOKEN_PATH``,
  ``HF_HUB_DISABLE_TELEMETRY``, ``HF_HUB_DISABLE_IMPLICIT_TOKEN``, ``HF_HUB_ETAG_TIMEOUT``...
  Setting those env vars in a test after import does nothing. Every call site reads them through
  the module (``constants.X``), so patch ``huggingface_hub.constants.X`` instead:
  ``isolate_hf_hub(monkeypatch, cache_dir)`` does that for the ones that matter here.
  ``HF_HUB_OFFLINE=1`` at import makes every request raise ``OfflineModeIsEnabled`` (for
  hf_hub_download it surfaces as ``LocalEntryNotFoundError``) until the constant is patched.
- The first request that builds headers (any call) asks ``{constants.ENDPOINT}/api/agent-harnesses``
  (huggingface.co unless ``HF_ENDPOINT`` was set at import, 3 s timeout, errors swallowed) and
  caches it under ``HF_HOME``, unless telemetry is disabled. ``isolate_hf_hub`` disables it.
- Without ``token=False`` the client sends ``HF_TOKEN`` or the token stored under ``HF_HOME``
  (implicit token). ``isolate_hf_hub`` turns the implicit token off; explicit tokens still go
  out. ``FakeHub.requests`` records ``Authorization`` redacted (``"Bearer ***"``).
- ``hf_hub_download`` without ``cache_dir`` (and ``HfApi.get_safetensors_metadata`` on a sharded
  repo, which downloads ``model.safetensors.index.json`` that way) writes to
  ``constants.HF_HUB_CACHE``. Cache layout: ``{cache}/models--{org}--{name}/blobs/{etag}`` (the
  sha256 for LFS files, the git blob sha1 otherwise), ``snapshots/{commit}/{path}`` symlinks to
  those blobs, ``refs/{branch}`` holding the commit. A download by commit sha that is already in
  ``snapshots`` makes no HTTP request at all.
- All calls share one ``httpx2.Client`` (``utils.get_session()``), built on first use; it takes
  ``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY`` from the environment at that moment. With a proxy
  set, 127.0.0.1 must be in ``NO_PROXY`` before the client is built (``isolate_hf_hub`` adds it
  and calls ``close_session()`` so the next call builds a fresh client).
- ``get_safetensors_metadata`` first HEADs ``model.safetensors`` (then the index) via
  ``file_exists``, then GETs ``Range: bytes=0-100000`` of each file (a second range if the header
  is longer); a repo with neither file raises ``NotASafetensorsRepoError``, also when the repo
  does not exist.

The repos are snapshotted (listed and hashed) when the server starts; file bodies are read from
disk per request, so do not change the directories while the server runs.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import struct
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, quote, unquote, urlsplit

if TYPE_CHECKING:
    import pytest

DEFAULT_LFS_PATTERNS: tuple[str, ...] = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf")
#: Fixed timestamps: the fake has one commit per repo, and deterministic output keeps tests stable.
_TIMESTAMP = "2024-01-01T00:00:00.000Z"
_COMMIT_TITLE = "Initial commit"
_CDN_PREFIX = "/__cdn__/"
_RECORDED_HEADERS = ("Range", "Authorization")
_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE)
_CHUNK = 1 << 20
#: What the real Hub puts in a model's ``config`` field (a subset of config.json).
_CONFIG_KEYS = ("architectures", "model_type", "quantization_config")


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob, which the Hub reports as ``blobId``/``oid`` and ``ETag``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file git stores for an LFS file; its git oid is the LFS blob id."""
    spec = "version https://git-lfs.github.com/spec/v1"
    return f"{spec}\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class _File:
    path: str  # repo-relative, posix
    local: Path
    size: int
    blob_id: str  # git oid of the content, or of the LFS pointer for LFS files
    lfs_sha256: str | None = None
    pointer_size: int | None = None


@dataclass
class _Repo:
    repo_id: str
    commit: str
    files: dict[str, _File] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    config: dict[str, Any] | None = None
    safetensors: dict[str, Any] | None = None


class _HubError(Exception):
    """An error response in the Hub's convention (status + X-Error-Code + JSON body)."""

    def __init__(
        self, status: int, code: str | None, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


class FakeHub:
    """Serve local directories as Hub model repos on 127.0.0.1, one commit per repo."""

    def __init__(
        self,
        repos: dict[str, Path],
        lfs_patterns: tuple[str, ...] = DEFAULT_LFS_PATTERNS,
    ) -> None:
        self._sources = {repo_id: Path(p) for repo_id, p in repos.items()}
        self.lfs_patterns = tuple(lfs_patterns)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._repos: dict[str, _Repo] = {}
        self._blobs: dict[str, Path] = {}  # LFS sha256 -> local file, what the CDN serves
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []
        self.commits: list[dict[str, Any]] = []  # {"repo", "revision", "summary", "files"}
        self.fail_commits: int | None = None  # answer commits with this status, apply nothing

    # -- public API -------------------------------------------------------------------------

    def commit(self, repo_id: str) -> str:
        """Deterministic commit of ``repo_id`` (sha1 of the id), so tests can precompute it."""
        return hashlib.sha1(repo_id.encode(), usedforsecurity=False).hexdigest()

    @property
    def url(self) -> str:
        """The hub endpoint, ``http://127.0.0.1:PORT``; pass it as ``endpoint=``."""
        return self._origin(0)

    @property
    def cdn_url(self) -> str:
        """The fake CDN that LFS resolves redirect to: another port, so another origin."""
        return self._origin(1)

    def __enter__(self) -> FakeHub:
        if self._servers:
            raise RuntimeError("FakeHub is already running")
        self._repos = {repo_id: self._index(repo_id, d) for repo_id, d in self._sources.items()}
        try:
            for is_cdn in (False, True):
                server = _Server(("127.0.0.1", 0), _Handler)
                server.hub, server.is_cdn = self, is_cdn
                self._servers.append(server)
        except BaseException:
            self._stop()
            raise
        for server in self._servers:
            name = "fakehub-cdn" if server.is_cdn else "fakehub"
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    # -- internals --------------------------------------------------------------------------

    def _origin(self, i: int) -> str:
        if len(self._servers) <= i:
            raise RuntimeError("FakeHub is not running; use it as a context manager")
        host, port = self._servers[i].server_address[:2]
        return f"http://{host!s}:{port}"

    def _stop(self) -> None:
        for server in self._servers:
            if self._threads:
                server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []

    def _is_lfs(self, path: str) -> bool:
        name = path.rsplit("/", 1)[-1]
        return any(
            fnmatch.fnmatchcase(path if "/" in pat else name, pat.lstrip("/"))
            for pat in self.lfs_patterns
        )

    def _index(self, repo_id: str, root: Path) -> _Repo:
        """List and hash a directory once, as the fixed content of the repo's single commit."""
        if not root.is_dir():
            raise NotADirectoryError(f"FakeHub repo {repo_id!r}: {root} is not a directory")
        repo = _Repo(repo_id=repo_id, commit=self.commit(repo_id))
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            rel_dir = Path(dirpath).relative_to(root).as_posix()
            if rel_dir == ".":
                dirnames[:] = [d for d in dirnames if d != ".git"]
            else:
                repo.dirs.add(rel_dir)
            for name in filenames:
                local = Path(dirpath) / name
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                repo.files[rel] = self._describe(rel, local)
        for f in repo.files.values():
            if f.lfs_sha256 is not None:
                self._blobs[f.lfs_sha256] = f.local
        repo.config = _hub_config(repo.files.get("config.json"))
        repo.safetensors = _safetensors_summary(
            [f for rel, f in repo.files.items() if "/" not in rel and rel.endswith(".safetensors")]
        )
        return repo

    def _describe(self, rel: str, local: Path) -> _File:
        size = local.stat().st_size
        if not self._is_lfs(rel):
            return _File(rel, local, size, git_blob_sha1(local.read_bytes()))
        digest = hashlib.sha256()
        with local.open("rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(chunk)
        sha256 = digest.hexdigest()
        pointer = lfs_pointer(sha256, size)
        return _File(rel, local, size, git_blob_sha1(pointer), sha256, len(pointer))

    def _record(self, method: str, path: str, headers: Message) -> None:
        kept: dict[str, str] = {}
        for name in _RECORDED_HEADERS:
            value = headers.get(name)
            if value is not None:
                kept[name] = _redact(value) if name == "Authorization" else value
        with self._lock:
            self.requests.append((method, path, kept))

    def _repo(self, repo_id: str, authorized: bool) -> _Repo:
        repo = self._repos.get(repo_id)
        if repo is None:
            # The real Hub answers 401 to anonymous callers and 404 to authenticated ones.
            raise _HubError(
                404 if authorized else 401,
                "RepoNotFound",
                "Repository not found" if authorized else "Invalid username or password.",
            )
        return repo

    @staticmethod
    def _check_revision(repo: _Repo, revision: str) -> None:
        if revision not in ("main", "refs/heads/main", repo.commit):
            raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")

    def _model_info(self, repo: _Repo, query: dict[str, list[str]]) -> dict[str, Any]:
        with_blobs = _flag(query, "blobs")
        siblings = []
        for rel in sorted(repo.files):
            f = repo.files[rel]
            sibling: dict[str, Any] = {"rfilename": rel}
            if with_blobs:
                sibling.update(size=f.size, blobId=f.blob_id)
                if f.lfs_sha256 is not None:
                    sibling["lfs"] = {
                        "sha256": f.lfs_sha256, "size": f.size, "pointerSize": f.pointer_size,
                    }  # fmt: skip
            siblings.append(sibling)
        org = repo.repo_id.split("/")[0] if "/" in repo.repo_id else None
        info: dict[str, Any] = {
            "_id": repo.commit[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": org,
            "sha": repo.commit,
            "lastModified": _TIMESTAMP,
            "createdAt": _TIMESTAMP,
            "private": False,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "spaces": [],
            "usedStorage": sum(f.size for f in repo.files.values()),
        }
        if repo.config is not None:
            info["config"] = repo.config
        if repo.safetensors is not None:
            info["safetensors"] = repo.safetensors
        if _flag(query, "securityStatus"):
            info["securityRepoStatus"] = {"scansDone": True, "filesWithIssues": []}
        expand = set(query.get("expand", []))
        if expand:
            info = {k: v for k, v in info.items() if k in expand or k in ("_id", "id")}
        return info

    def _tree(self, repo: _Repo, path: str, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        path = path.strip("/")
        if path and path not in repo.dirs:
            raise _HubError(404, "EntryNotFound", f"{path} does not exist on main")
        recursive, expand = _flag(query, "recursive"), _flag(query, "expand")
        prefix = f"{path}/" if path else ""

        def wanted(p: str) -> bool:
            return p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :])

        out: list[dict[str, Any]] = []
        last_commit = {"id": repo.commit, "title": _COMMIT_TITLE, "date": _TIMESTAMP}
        for d in sorted(d for d in repo.dirs if wanted(d)):
            tree_oid = hashlib.sha1(f"tree {repo.repo_id}/{d}".encode(), usedforsecurity=False)
            entry: dict[str, Any] = {
                "type": "directory", "oid": tree_oid.hexdigest(), "size": 0, "path": d,
            }  # fmt: skip
            if expand:
                entry["lastCommit"] = last_commit
            out.append(entry)
        for rel in sorted(p for p in repo.files if wanted(p)):
            f = repo.files[rel]
            entry = {"type": "file", "oid": f.blob_id, "size": f.size, "path": rel}
            if f.lfs_sha256 is not None:
                entry["lfs"] = {"oid": f.lfs_sha256, "size": f.size, "pointerSize": f.pointer_size}
            if expand:
                entry["lastCommit"] = last_commit
            out.append(entry)
        return out


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: FakeHub
    is_cdn: bool


class _Handler(BaseHTTPRequestHandler):
    """Routes one request; keeps no state besides what the FakeHub snapshot holds."""

    server_version = "FakeHub/1"

    @property
    def hub(self) -> FakeHub:
        return cast(_Server, self.server).hub

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr log; ``FakeHub.requests`` is the record."""

    def do_HEAD(self) -> None:
        self._handle(head=True)

    def do_GET(self) -> None:
        self._handle(head=False)

    def _not_allowed(self) -> None:
        self.hub._record(self.command, self.path, self.headers)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._error(_HubError(405, None, f"{self.command} is not supported by FakeHub"), False)

    do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _not_allowed

    def do_POST(self) -> None:
        self.hub._record(self.command, self.path, self.headers)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = [p for p in urlsplit(self.path).path.split("/") if p]
        try:
            if parts == ["api", "validate-yaml"]:
                self._validate_yaml(json.loads(body))
            elif len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] in (
                "preupload", "commit"
            ):  # fmt: skip
                if not self._authorized:
                    raise _HubError(401, None, "Invalid credentials in Authorization header")
                repo = self.hub._repo(f"{parts[2]}/{parts[3]}", True)
                revision = "/".join(parts[5:])
                self.hub._check_revision(repo, revision)
                if parts[4] == "preupload":
                    files = [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                        for f in json.loads(body)["files"]
                    ]
                    self._json({"files": files}, False)
                else:
                    self._commit(repo, revision, body)
            else:
                self._not_allowed_after_read()
        except _HubError as e:
            self._error(e, False)

    def _not_allowed_after_read(self) -> None:
        self._error(_HubError(405, None, f"{self.command} is not supported here by FakeHub"), False)

    def _validate_yaml(self, payload: dict[str, Any]) -> None:
        import yaml

        content = str(payload.get("content", ""))
        if content.startswith("---"):
            try:
                yaml.safe_load(content.split("---", 2)[1])
            except yaml.YAMLError as e:
                self._json({"errors": [{"message": str(e)}]}, False, status=400)
                return
        self._json({"errors": [], "warnings": []}, False)

    def _commit(self, repo: _Repo, revision: str, body: bytes) -> None:
        import base64

        if self.hub.fail_commits is not None:
            raise _HubError(self.hub.fail_commits, None, "FakeHub: commit refused (test)")
        header: dict[str, Any] = {}
        files: dict[str, bytes] = {}
        for line in body.splitlines():
            item = json.loads(line)
            if item["key"] == "header":
                header = item["value"]
            elif item["key"] == "file":
                value = item["value"]
                files[value["path"]] = base64.b64decode(value["content"])
            else:
                raise _HubError(400, None, f"FakeHub: unsupported commit item {item['key']}")
        with self.hub._lock:
            self.hub.commits.append(
                {"repo": repo.repo_id, "revision": revision, "files": files,
                 "summary": header.get("summary"), "description": header.get("description")}
            )  # fmt: skip
        oid = hashlib.sha1(body, usedforsecurity=False).hexdigest()
        self._json({"commitUrl": f"{self.hub.url}/{repo.repo_id}/commit/{oid}",
                    "commitOid": oid}, False)  # fmt: skip

    def _handle(self, head: bool) -> None:
        self.hub._record(self.command, self.path, self.headers)
        split = urlsplit(self.path)
        query = parse_qs(split.query)
        parts = [p for p in split.path.split("/") if p]
        try:
            if cast(_Server, self.server).is_cdn:
                self._cdn(parts, head)
            elif parts[:2] == ["api", "agent-harnesses"]:
                self._json({"standardEnvVars": [], "harnesses": {}}, head)
            elif parts[:1] == ["api"]:
                self._api(parts[1:], query, head)
            else:
                self._resolve(parts, head)
        except _HubError as e:
            self._error(e, head)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away mid-body; nothing left to answer
        except Exception as e:  # a FakeHub bug: answer 500 rather than drop the connection
            self._error(_HubError(500, None, f"FakeHub error: {e!r}"), head)

    # -- routes -----------------------------------------------------------------------------

    def _api(self, parts: list[str], query: dict[str, list[str]], head: bool) -> None:
        if not parts or parts[0] in ("datasets", "spaces", "kernels"):
            if len(parts) > 1:  # the fake only knows model repos
                raise _HubError(404, "RepoNotFound", "Repository not found")
            raise _HubError(404, None, "Not Found")
        if parts[0] != "models" or len(parts) < 2:
            raise _HubError(404, None, "Not Found")
        repo_id, rest = self._split_repo(parts[1:], markers=("revision", "tree"))
        repo = self.hub._repo(repo_id, self._authorized)
        if not rest:
            self._json(self.hub._model_info(repo, query), head)
        elif rest[0] == "revision" and len(rest) == 2:
            self.hub._check_revision(repo, unquote(rest[1]))
            self._json(self.hub._model_info(repo, query), head)
        elif rest[0] == "tree" and len(rest) >= 2:
            self.hub._check_revision(repo, unquote(rest[1]))
            self._json(self.hub._tree(repo, unquote("/".join(rest[2:])), query), head)
        else:
            raise _HubError(404, None, "Not Found")

    def _resolve(self, parts: list[str], head: bool) -> None:
        kind = ""
        if parts and parts[0] == "datasets":  # dataset repos: keyed "datasets/ORG/NAME"
            kind, parts = "datasets/", parts[1:]
        elif parts and parts[0] in ("spaces", "kernels"):
            self.hub._repo("", self._authorized)  # the fake knows model and dataset repos: raises
        repo_id, rest = self._split_repo(parts, markers=("resolve",))
        repo_id = kind + repo_id
        if len(rest) < 3 or rest[0] != "resolve":
            raise _HubError(404, None, "Not Found")
        repo = self.hub._repo(repo_id, self._authorized)
        self.hub._check_revision(repo, unquote(rest[1]))
        filename = unquote("/".join(rest[2:]))
        commit_header = {"X-Repo-Commit": repo.commit}
        f = repo.files.get(filename)
        if f is None:
            raise _HubError(404, "EntryNotFound", "Entry not found", commit_header)
        if f.lfs_sha256 is None:
            self._serve(f.local, f.size, {**commit_header, "ETag": f'"{f.blob_id}"'}, head)
            return
        location = f"{self.hub.cdn_url}{_CDN_PREFIX}{f.lfs_sha256}/{quote(filename)}"
        body = f"Found. Redirecting to {location}".encode()
        self.send_response(302)
        for name, value in {
            **commit_header,
            "Location": location,
            "ETag": f'"{f.blob_id}"',
            "X-Linked-Etag": f'"{f.lfs_sha256}"',
            "X-Linked-Size": str(f.size),
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Length": str(len(body)),
        }.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _cdn(self, parts: list[str], head: bool) -> None:
        if len(parts) < 3 or f"/{parts[0]}/" != _CDN_PREFIX:
            raise _HubError(404, None, "Not Found")
        local = self.hub._blobs.get(parts[1])
        if local is None:
            raise _HubError(404, None, "Not Found")
        name = unquote(parts[-1])
        headers = {
            "ETag": f'"{parts[1]}"',
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}; filename=\"{name}\";",
        }
        self._serve(local, local.stat().st_size, headers, head)

    # -- helpers ----------------------------------------------------------------------------

    @property
    def _authorized(self) -> bool:
        return bool(self.headers.get("Authorization"))

    def _split_repo(self, parts: list[str], markers: tuple[str, ...]) -> tuple[str, list[str]]:
        """Split ``org/name/<marker>/...`` or ``name/<marker>/...`` into (repo_id, rest)."""
        known = self.hub._repos
        if len(parts) >= 2 and "/".join(parts[:2]) in known:
            return "/".join(parts[:2]), parts[2:]
        if parts and parts[0] in known:
            return parts[0], parts[1:]
        if len(parts) >= 2 and parts[1] not in markers:
            return "/".join(parts[:2]), parts[2:]
        return (parts[0] if parts else ""), parts[1:]

    def _serve(self, local: Path, size: int, headers: dict[str, str], head: bool) -> None:
        """Send a file, or one byte range of it, the way the Hub and its CDN do."""
        start, end, status = 0, size - 1, 200
        if "Range" in self.headers:
            parsed = _parse_range(self.headers["Range"], size)
            if parsed is None:
                unsatisfiable = {"Content-Range": f"bytes */{size}"}
                raise _HubError(416, None, "Requested Range Not Satisfiable", unsatisfiable)
            start, end = parsed
            status = 206
            headers = {**headers, "Content-Range": f"bytes {start}-{end}/{size}"}
        length = max(end - start + 1, 0)
        self.send_response(status)
        for name, value in {
            **headers,
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
            "Content-Length": str(length),
        }.items():
            self.send_header(name, value)
        self.end_headers()
        if head or not length:
            return
        with local.open("rb") as fh:
            fh.seek(start)
            remaining = length
            while remaining:
                chunk = fh.read(min(_CHUNK, remaining))
                if not chunk:
                    break  # file shrank after the snapshot; the client sees a short body
                self.wfile.write(chunk)
                remaining -= len(chunk)

    def _json(self, payload: Any, head: bool, status: int = 200) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, e: _HubError, head: bool) -> None:
        body = json.dumps({"error": e.message}).encode()
        self.send_response(e.status)
        if e.code is not None:
            self.send_header("X-Error-Code", e.code)
        self.send_header("X-Error-Message", e.message)
        for name, value in e.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


def _redact(value: str) -> str:
    """Keep the auth scheme, drop the secret: tokens must never reach test logs."""
    scheme, sep, _ = value.partition(" ")
    return f"{scheme} ***" if sep else "***"


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return any(v.lower() in ("1", "true") for v in query.get(name, []))


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """One ``bytes=`` range, clamped to the file; None when unsatisfiable (or multi-part)."""
    m = _RANGE.fullmatch(value)
    if m is None or size == 0:
        return None
    first, last = m.groups()
    if not first:
        if not last or int(last) == 0:
            return None
        return max(size - int(last), 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return None
    return start, end


def _hub_config(f: _File | None) -> dict[str, Any] | None:
    """The slice of config.json the Hub exposes as ``config`` in model info."""
    if f is None:
        return None
    try:
        raw = json.loads(f.local.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None
    return {k: raw[k] for k in _CONFIG_KEYS if k in raw} or None


def _safetensors_summary(files: list[_File]) -> dict[str, Any] | None:
    """Parameter counts per dtype over root-level safetensors files, like the Hub's field."""
    params: dict[str, int] = {}
    for f in files:
        try:
            for name, t in _read_safetensors_header(f.local):
                if name == "__metadata__":
                    continue
                count = 1
                for dim in t["shape"]:
                    count *= int(dim)
                params[t["dtype"]] = params.get(t["dtype"], 0) + count
        except (OSError, ValueError, KeyError, TypeError, struct.error):
            return None  # not a parseable safetensors file: the Hub would omit the field too
    if not params:
        return None
    return {"parameters": params, "total": sum(params.values())}


def _read_safetensors_header(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open("rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        if n > 100_000_000:
            raise ValueError("safetensors header too large")
        header = json.loads(fh.read(n))
    if not isinstance(header, dict):
        raise ValueError("safetensors header is not an object")
    yield from header.items()


def subprocess_env(hub_url: str, hf_home: Path, token: str | None = None) -> dict[str, str]:
    """Environment for a `cardgen` subprocess that talks to a FakeHub: its endpoint, online, no
    telemetry, a throwaway HF_HOME, 127.0.0.1 past any proxy, and exactly ``token`` (or none)."""
    env = {**os.environ, "HF_ENDPOINT": hub_url, "HF_HOME": str(hf_home),
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "0",
           "NO_PROXY": "127.0.0.1"}  # fmt: skip
    env.pop("HF_TOKEN", None)
    if token:
        env["HF_TOKEN"] = token
    return env


def isolate_hf_hub(monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> None:
    """Make huggingface_hub usable against a FakeHub whatever the environment was at import.

    Why: huggingface_hub reads its environment once, at import (see the module docstring), so
    ``monkeypatch.setenv`` comes too late. This patches the module constants instead, for the
    duration of one test: online mode, no agent-registry request to huggingface.co, no implicit
    token from the developer's machine, the default cache under ``cache_dir``, 127.0.0.1 exempt
    from any proxy.
    """
    from huggingface_hub import close_session, constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache_dir))
    for var in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(var, "")
        if "127.0.0.1" not in current.split(","):
            monkeypatch.setenv(var, ",".join(filter(None, [current, "127.0.0.1"])))
    close_session()  # the shared client read the proxy settings when it was built

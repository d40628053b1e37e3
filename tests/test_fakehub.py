"""FakeHub must speak huggingface_hub 2.4's real protocol, or Hub tests built on it prove nothing.

Every test drives the unmodified huggingface_hub client against FakeHub over real HTTP.
"""

from __future__ import annotations

import hashlib
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from fakehub import FakeHub, git_blob_sha1, isolate_hf_hub
from huggingface_hub import (
    HfApi,
    constants,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    NotASafetensorsRepoError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from numpy.typing import NDArray
from safetensors.numpy import save_file

SINGLE = "acme/tiny"
SHARDED = "acme/tiny-sharded"
BIG_HEADER = "acme/big-header"
TOKEN = "hf_fakehub_do_not_log_me"
SHARDS = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")


def _write_single(root: Path) -> None:
    (root / "original").mkdir(parents=True)
    tensors: dict[str, NDArray[Any]] = {
        "embed.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
        "norm.weight": np.ones(4, dtype=np.float16),
    }
    save_file(tensors, str(root / "model.safetensors"), metadata={"format": "pt"})
    config = {"architectures": ["TinyForCausalLM"], "model_type": "tiny", "hidden_size": 4}
    (root / "config.json").write_text(json.dumps(config))
    (root / "original" / "params.json").write_text(json.dumps({"dim": 4, "n_layers": 1}))
    (root / ".git").mkdir()  # must not be served
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")


def _write_sharded(root: Path) -> None:
    root.mkdir()
    save_file({"a.weight": np.zeros((2, 2), dtype=np.float32)}, str(root / SHARDS[0]))
    save_file({"b.weight": np.zeros(3, dtype=np.int64)}, str(root / SHARDS[1]))
    index = {
        "metadata": {"total_size": 16 + 24},
        "weight_map": {"a.weight": SHARDS[0], "b.weight": SHARDS[1]},
    }
    (root / "model.safetensors.index.json").write_text(json.dumps(index))
    (root / "config.json").write_text(json.dumps({"model_type": "tiny"}))


@pytest.fixture
def repos(tmp_path: Path) -> dict[str, Path]:
    dirs = {
        SINGLE: tmp_path / "single",
        SHARDED: tmp_path / "sharded",
        BIG_HEADER: tmp_path / "big",
    }
    _write_single(dirs[SINGLE])
    _write_sharded(dirs[SHARDED])
    dirs[BIG_HEADER].mkdir()
    # A header larger than the 100 kB first range forces the client's second range request.
    save_file(
        {"w": np.ones(2, dtype=np.float32)},
        str(dirs[BIG_HEADER] / "model.safetensors"),
        metadata={"padding": "x" * 120_000},
    )
    return dirs


@pytest.fixture
def hub(
    repos: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeHub]:
    isolate_hf_hub(monkeypatch, tmp_path / "default-cache")
    with FakeHub(repos) as fake:
        yield fake


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _revision(hub: FakeHub, repo_id: str, kind: str) -> str:
    return hub.commit(repo_id) if kind == "commit" else kind


def _weight_gets(hub: FakeHub, filename: str) -> list[tuple[str, str, dict[str, str]]]:
    return [r for r in hub.requests if r[0] == "GET" and r[1].endswith(filename)]


def test_binds_loopback_only_with_a_separate_cdn_origin(hub: FakeHub) -> None:
    assert urlsplit(hub.url).hostname == "127.0.0.1"
    assert urlsplit(hub.cdn_url).hostname == "127.0.0.1"
    assert urlsplit(hub.url).port != urlsplit(hub.cdn_url).port
    assert hub.commit(SINGLE) == hashlib.sha1(SINGLE.encode()).hexdigest()


@pytest.mark.parametrize("kind", ["main", "commit"])
def test_model_info_with_files_metadata(hub: FakeHub, repos: dict[str, Path], kind: str) -> None:
    root = repos[SINGLE]
    info = HfApi(endpoint=hub.url).model_info(
        SINGLE, revision=_revision(hub, SINGLE, kind), files_metadata=True
    )
    assert info.id == SINGLE
    assert info.sha == hub.commit(SINGLE)
    siblings = {s.rfilename: s for s in info.siblings or []}
    assert sorted(siblings) == ["config.json", "model.safetensors", "original/params.json"]

    for rel in ("config.json", "original/params.json"):
        raw = (root / rel).read_bytes()
        assert siblings[rel].size == len(raw)
        assert siblings[rel].blob_id == git_blob_sha1(raw)
        assert siblings[rel].lfs is None

    weights = siblings["model.safetensors"]
    size = (root / "model.safetensors").stat().st_size
    assert weights.lfs is not None
    assert weights.lfs.sha256 == _sha256(root / "model.safetensors")
    assert weights.lfs.size == weights.size == size
    assert weights.lfs.pointer_size > 0
    # An LFS file's git blob is its pointer, not its content.
    assert weights.blob_id is not None and len(weights.blob_id) == 40
    assert weights.blob_id != git_blob_sha1((root / "model.safetensors").read_bytes())

    assert info.config == {"architectures": ["TinyForCausalLM"], "model_type": "tiny"}
    assert info.safetensors is not None
    assert info.safetensors.parameters == {"F32": 12, "F16": 4}
    assert info.safetensors.total == 16


def test_model_info_without_files_metadata(hub: FakeHub) -> None:
    info = HfApi(endpoint=hub.url).model_info(SINGLE)
    assert info.sha == hub.commit(SINGLE)
    assert info.siblings is not None
    assert {s.rfilename for s in info.siblings} == {
        "config.json",
        "model.safetensors",
        "original/params.json",
    }
    assert all(s.size is None and s.blob_id is None and s.lfs is None for s in info.siblings)
    assert hub.requests[-1][:2] == ("GET", f"/api/models/{SINGLE}")


@pytest.mark.parametrize("kind", ["main", "commit"])
@pytest.mark.parametrize("filename", ["config.json", "original/params.json", "model.safetensors"])
def test_hf_hub_download(
    hub: FakeHub, repos: dict[str, Path], tmp_path: Path, kind: str, filename: str
) -> None:
    cache = tmp_path / "cache"
    path = Path(
        hf_hub_download(
            SINGLE,
            filename,
            revision=_revision(hub, SINGLE, kind),
            endpoint=hub.url,
            cache_dir=cache,
        )
    )
    raw = (repos[SINGLE] / filename).read_bytes()
    assert path.read_bytes() == raw

    storage = cache / "models--acme--tiny"
    assert path == storage / "snapshots" / hub.commit(SINGLE) / filename
    # Blobs are named by etag: sha256 for LFS files, git blob sha1 otherwise.
    lfs = filename.endswith(".safetensors")
    expected_blob = hashlib.sha256(raw).hexdigest() if lfs else git_blob_sha1(raw)
    assert path.resolve() == (storage / "blobs" / expected_blob).resolve()
    if kind == "main":
        assert (storage / "refs" / "main").read_text() == hub.commit(SINGLE)


def test_lfs_download_redirects_to_cdn_and_never_leaks_the_token(
    hub: FakeHub, tmp_path: Path
) -> None:
    hf_hub_download(
        SINGLE, "model.safetensors", endpoint=hub.url, cache_dir=tmp_path / "c", token=TOKEN
    )
    head = [r for r in hub.requests if r[0] == "HEAD"]
    assert head == [
        ("HEAD", f"/{SINGLE}/resolve/main/model.safetensors", {"Authorization": "Bearer ***"})
    ]
    cdn = [r for r in hub.requests if r[1].startswith("/__cdn__/")]
    assert len(cdn) == 1
    assert cdn[0][0] == "GET"
    assert "Authorization" not in cdn[0][2]  # stripped: the CDN is another origin
    assert TOKEN not in repr(hub.requests)


@pytest.mark.parametrize("kind", ["main", "commit"])
def test_safetensors_metadata_single_file_uses_ranges_only(hub: FakeHub, kind: str) -> None:
    api = HfApi(endpoint=hub.url)
    meta = api.get_safetensors_metadata(SINGLE, revision=_revision(hub, SINGLE, kind))
    assert not meta.sharded
    file_meta = meta.files_metadata["model.safetensors"]
    assert file_meta.metadata == {"format": "pt"}
    assert {k: (t.dtype, t.shape) for k, t in file_meta.tensors.items()} == {
        "embed.weight": ("F32", [3, 4]),
        "norm.weight": ("F16", [4]),
    }
    assert meta.weight_map == {
        "embed.weight": "model.safetensors",
        "norm.weight": "model.safetensors",
    }

    gets = _weight_gets(hub, "model.safetensors")
    assert gets, "the header must have been read over HTTP"
    assert all(r[2].get("Range") == "bytes=0-100000" for r in gets)
    assert any(r[1].startswith("/__cdn__/") for r in gets)  # followed the LFS redirect


def test_safetensors_metadata_with_a_header_beyond_the_first_range(hub: FakeHub) -> None:
    meta = HfApi(endpoint=hub.url).get_safetensors_metadata(BIG_HEADER)
    file_meta = meta.files_metadata["model.safetensors"]
    assert file_meta.metadata == {"padding": "x" * 120_000}
    assert file_meta.tensors["w"].shape == [2]
    ranges = {r[2].get("Range") for r in _weight_gets(hub, "model.safetensors")}
    assert "bytes=0-100000" in ranges
    assert len(ranges) == 2 and None not in ranges


def test_safetensors_metadata_sharded(hub: FakeHub, repos: dict[str, Path], tmp_path: Path) -> None:
    index = json.loads((repos[SHARDED] / "model.safetensors.index.json").read_text())
    meta = HfApi(endpoint=hub.url).get_safetensors_metadata(SHARDED, revision="main")
    assert meta.sharded
    assert meta.metadata == index["metadata"]
    assert meta.weight_map == index["weight_map"]
    assert sorted(meta.files_metadata) == sorted(SHARDS)
    assert meta.files_metadata[SHARDS[0]].tensors["a.weight"].shape == [2, 2]
    assert meta.files_metadata[SHARDS[1]].tensors["b.weight"].dtype == "I64"
    for shard in SHARDS:
        gets = _weight_gets(hub, shard)
        assert gets and all("Range" in r[2] for r in gets)
    # The index is fetched with hf_hub_download(cache_dir=None): the patched default cache.
    assert list((tmp_path / "default-cache").rglob("model.safetensors.index.json"))


def _raw_get(hub: FakeHub, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    port = urlsplit(hub.url).port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [
        ("bytes=2-5", 2, 5),
        ("bytes=-3", None, None),
        ("bytes=4-", 4, None),
        ("bytes=1-99999", 1, None),
    ],
)
def test_range_requests_on_resolve(
    hub: FakeHub, repos: dict[str, Path], range_header: str, start: int | None, end: int | None
) -> None:
    raw = (repos[SINGLE] / "config.json").read_bytes()
    status, headers, body = _raw_get(
        hub, f"/{SINGLE}/resolve/main/config.json", {"Range": range_header}
    )
    first = len(raw) - 3 if start is None else start
    last = len(raw) - 1 if end is None else end
    assert status == 206
    assert body == raw[first : last + 1]
    assert headers["Content-Range"] == f"bytes {first}-{last}/{len(raw)}"
    assert headers["Content-Length"] == str(last - first + 1)
    assert headers["X-Repo-Commit"] == hub.commit(SINGLE)


def test_unsatisfiable_range_is_416(hub: FakeHub, repos: dict[str, Path]) -> None:
    size = (repos[SINGLE] / "config.json").stat().st_size
    status, headers, _ = _raw_get(
        hub, f"/{SINGLE}/resolve/main/config.json", {"Range": f"bytes={size}-"}
    )
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{size}"


@pytest.mark.parametrize("token", [None, TOKEN])  # anonymous -> 401, authenticated -> 404
def test_unknown_repo(hub: FakeHub, tmp_path: Path, token: str | None) -> None:
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.url, token=token).model_info("acme/missing", files_metadata=True)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(
            "acme/missing", "config.json", endpoint=hub.url, cache_dir=tmp_path, token=token
        )
    with pytest.raises(NotASafetensorsRepoError):  # file_exists() swallows the repo error
        HfApi(endpoint=hub.url, token=token).get_safetensors_metadata("acme/missing")


@pytest.mark.parametrize("revision", ["v9", "0" * 40])
def test_unknown_revision(hub: FakeHub, tmp_path: Path, revision: str) -> None:
    with pytest.raises(RevisionNotFoundError):
        HfApi(endpoint=hub.url).model_info(SINGLE, revision=revision)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(
            SINGLE, "config.json", revision=revision, endpoint=hub.url, cache_dir=tmp_path
        )


def test_unknown_file(hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(RemoteEntryNotFoundError) as err:
        hf_hub_download(SINGLE, "original/missing.json", endpoint=hub.url, cache_dir=tmp_path)
    assert isinstance(err.value, EntryNotFoundError)
    # huggingface_hub caches the miss under the commit the 404 names.
    no_exist = tmp_path / "models--acme--tiny" / ".no_exist" / hub.commit(SINGLE)
    assert (no_exist / "original" / "missing.json").exists()


def test_offline_mode_is_read_at_import(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    api = HfApi(endpoint=hub.url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # too late: constants.py read it at import
    assert api.model_info(SINGLE).sha == hub.commit(SINGLE)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what actually switches it
    with pytest.raises(OfflineModeIsEnabled):
        api.model_info(SINGLE)


def test_tree_listing_and_snapshot_download(
    hub: FakeHub, repos: dict[str, Path], tmp_path: Path
) -> None:
    api = HfApi(endpoint=hub.url)
    assert api.list_repo_files(SINGLE) == [
        "config.json",
        "model.safetensors",
        "original/params.json",
    ]
    top = {entry.path: type(entry).__name__ for entry in api.list_repo_tree(SINGLE)}
    assert top == {
        "original": "RepoFolder",
        "config.json": "RepoFile",
        "model.safetensors": "RepoFile",
    }
    nested = [e.path for e in api.list_repo_tree(SINGLE, path_in_repo="original")]
    assert nested == ["original/params.json"]

    snapshot = Path(snapshot_download(SINGLE, endpoint=hub.url, cache_dir=tmp_path / "snap"))
    assert snapshot.name == hub.commit(SINGLE)
    for rel in ("config.json", "model.safetensors", "original/params.json"):
        assert (snapshot / rel).read_bytes() == (repos[SINGLE] / rel).read_bytes()

"""Checkpoint digest: equal to OpenSSF model_signing's, computed by cardgen's own hashing."""

from __future__ import annotations

import hashlib
import os
import shutil
import tracemalloc
from pathlib import Path

import pytest
from _msig import model_signing_digest, model_signing_files

from cardgen import _hashing
from cardgen.errors import CheckpointError
from cardgen.identity import fingerprint


def test_digest_equals_model_signing_on_multifile_checkpoint_with_nested_folders(
    checkpoint: Path,
) -> None:
    ident = fingerprint(checkpoint)
    assert ident.weights_digest == model_signing_digest(checkpoint)
    # Same files, same order as model_signing's manifest (PurePosixPath order, git files out).
    assert [f.path for f in ident.files] == model_signing_files(checkpoint)
    paths = [f.path for f in ident.files]
    assert paths.index("original/params.json") < paths.index("original.md")
    assert ".gitattributes" not in paths and not any(p.startswith(".git/") for p in paths)
    assert "nested/deeper/extra.txt" in paths
    assert sum(f.role == "weights" for f in ident.files) == 3


def test_per_file_digests_are_the_files_sha256(checkpoint: Path) -> None:
    ident = fingerprint(checkpoint)
    for f in ident.files:
        data = (checkpoint / f.path).read_bytes()
        assert f.sha256 == hashlib.sha256(data).hexdigest()
        assert f.size == len(data)
        assert f.digest_source == "computed"
    assert ident.total_size == sum(f.size for f in ident.files)


def test_any_changed_byte_changes_the_digest(checkpoint: Path) -> None:
    before = fingerprint(checkpoint).weights_digest
    shard = next(checkpoint.glob("model-00002-*.safetensors"))
    raw = bytearray(shard.read_bytes())
    raw[-1] ^= 1
    shard.write_bytes(bytes(raw))
    after = fingerprint(checkpoint)
    assert after.weights_digest != before
    assert after.weights_digest == model_signing_digest(checkpoint)


def test_single_weights_file_digest_equals_model_signing(tiny_sharded: Path) -> None:
    shard = next(tiny_sharded.glob("model-00001-*.safetensors"))
    ident = fingerprint(shard)
    assert ident.source.kind == "local-file"
    assert ident.weights_digest == model_signing_digest(shard)
    assert ident.parameters is not None and ident.parameters.total > 0


def test_ignore_paths_match_model_signing_ignore(checkpoint: Path) -> None:
    ident = fingerprint(checkpoint, ignore=["original", "original.md"])
    assert ident.weights_digest == model_signing_digest(
        checkpoint, ignore=["original", "original.md"]
    )
    assert "original" in ident.ignored_paths
    assert not any(f.path.startswith("original") for f in ident.files)


def test_hf_cache_snapshot_follows_links_into_blobs(checkpoint: Path, tmp_path: Path) -> None:
    repo = tmp_path / "hub" / "models--acme--tiny-chat"
    snap = repo / "snapshots" / ("a" * 40)
    blobs = repo / "blobs"
    blobs.mkdir(parents=True)
    for src in sorted(p for p in checkpoint.rglob("*") if p.is_file()):
        rel = src.relative_to(checkpoint)
        if rel.parts[0] in (".git",):
            continue
        blob = blobs / hashlib.sha256(src.read_bytes()).hexdigest()
        shutil.copyfile(src, blob)
        (snap / rel).parent.mkdir(parents=True, exist_ok=True)
        (snap / rel).symlink_to(os.path.relpath(blob, (snap / rel).parent))
    ident = fingerprint(snap)
    assert ident.source.kind == "hf-cache-snapshot"
    assert ident.source.repo_id == "acme/tiny-chat"
    from cardgen.evidence import Evidence, display_name

    ev = Evidence(weights_digest=ident.weights_digest, identity=ident, tool={})
    assert display_name(ev) == "acme/tiny-chat"  # the repo, not the snapshot's commit directory
    assert ident.source.revision == "a" * 40
    assert ident.weights_digest == fingerprint(checkpoint).weights_digest
    assert ident.weights_digest == model_signing_digest(snap, allow_symlinks=True)


def test_symlink_escaping_checkpoint_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of the model")
    (checkpoint / "link.txt").symlink_to(outside)
    with pytest.raises(CheckpointError, match="symlink points outside the checkpoint"):
        fingerprint(checkpoint)


def test_symlink_inside_checkpoint_is_followed(checkpoint: Path) -> None:
    (checkpoint / "alias.json").symlink_to("config.json")
    ident = fingerprint(checkpoint)
    alias = next(f for f in ident.files if f.path == "alias.json")
    config = next(f for f in ident.files if f.path == "config.json")
    assert alias.sha256 == config.sha256
    assert ident.weights_digest == model_signing_digest(checkpoint, allow_symlinks=True)


def test_symlinked_directory_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    (checkpoint / "linked").symlink_to(checkpoint / "original")
    with pytest.raises(CheckpointError, match="symlinked directory"):
        fingerprint(checkpoint)


def test_nonexistent_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such file or directory"):
        fingerprint(tmp_path / "nope")


def test_empty_directory_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".gitattributes").write_text("*")  # ignored: still empty
    with pytest.raises(CheckpointError, match="holds no checkpoint files"):
        fingerprint(tmp_path / "empty")


def test_unreadable_file_is_a_clear_error(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = open
    target = str(checkpoint / "tokenizer.json")

    def deny(file: object, *a: object, **k: object) -> object:
        if str(file) == target:
            raise PermissionError(13, "Permission denied", target)
        return real_open(file, *a, **k)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", deny)
    with pytest.raises(CheckpointError, match="tokenizer.json: permission denied"):
        fingerprint(checkpoint)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_mode_is_a_clear_error(checkpoint: Path) -> None:
    (checkpoint / "tokenizer.json").chmod(0)
    with pytest.raises(CheckpointError, match="permission denied"):
        fingerprint(checkpoint)


def test_special_file_is_refused(checkpoint: Path) -> None:
    os.mkfifo(checkpoint / "pipe")
    with pytest.raises(CheckpointError, match="not a regular file"):
        fingerprint(checkpoint)


def test_hashing_streams_with_flat_memory(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for i in range(48):
            f.write(bytes([i]) * (1 << 20))
    tracemalloc.start()
    try:
        digest = _hashing.sha256_file(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest == hashlib.sha256(big.read_bytes()).digest()
    assert peak < 8 << 20, f"hashing a 48 MiB file held {peak / 2**20:.1f} MiB"


def test_parallel_hashing_keeps_manifest_order(tmp_path: Path) -> None:
    sizes = [3 << 20, 10, 1 << 20, 0, 5 << 20, 7]
    for i, n in enumerate(sizes):
        (tmp_path / f"f{i}.bin").write_bytes(os.urandom(n))
    files = _hashing.collect_files(tmp_path)
    seen = []
    par = _hashing.hash_files(files, workers=4, on_bytes=seen.append)
    assert par == _hashing.hash_files(files, workers=1)
    assert par == [hashlib.sha256(f.path.read_bytes()).digest() for f in files]
    assert sum(seen) == sum(sizes)

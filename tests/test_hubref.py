"""hf:// references against a real HTTP fake of the Hub on 127.0.0.1 (the Hub is unreachable)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _msig import model_signing_digest
from fakehub import FakeHub, isolate_hf_hub, subprocess_env

from cardgen._hubref import parse_reference
from cardgen.errors import HubReferenceError
from cardgen.identity import fingerprint


@pytest.fixture()
def hub(checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    isolate_hf_hub(monkeypatch, tmp_path / "hf-cache")
    with FakeHub({"acme/tiny-chat": checkpoint}) as h:
        monkeypatch.setenv("HF_ENDPOINT", h.url)
        yield h


def test_hub_digest_equals_local_and_model_signing_without_downloading_weights(
    hub: FakeHub, checkpoint: Path
) -> None:
    ident = fingerprint("hf://acme/tiny-chat@main")
    assert ident.weights_digest == model_signing_digest(checkpoint)
    assert ident.weights_digest == fingerprint(checkpoint).weights_digest
    assert ident.source.kind == "hf-hub"
    assert ident.source.repo_id == "acme/tiny-chat"
    assert ident.source.requested_revision == "main"
    assert ident.source.revision == hub.commit("acme/tiny-chat")
    by_path = {f.path: f for f in ident.files}
    assert by_path["model-00001-of-00003.safetensors"].digest_source == "hub-lfs"
    assert by_path["config.json"].digest_source == "computed"
    assert by_path["original/params.json"].digest_source == "computed"
    assert any("sha256 the Hub stores for LFS files" in n for n in ident.notes)
    # Parameters come from range requests on the headers: equal to the local reading.
    local = fingerprint(checkpoint)
    assert ident.parameters == local.parameters
    assert ident.tokenizer == local.tokenizer
    # No weights body was downloaded: every GET of a safetensors file asked for a byte range.
    weight_gets = [
        (path, headers)
        for method, path, headers in hub.requests
        if method == "GET"
        and ".safetensors" in path.split("?")[0].rsplit("/", 1)[-1]
        and not path.split("?")[0].endswith(".json")
    ]
    assert weight_gets, "expected range requests for safetensors headers"
    for path, headers in weight_gets:
        rng = headers.get("Range") or headers.get("range")
        assert rng and rng.startswith("bytes="), path
        start, _, end = rng.removeprefix("bytes=").partition("-")
        assert int(end) - int(start or 0) <= 100_000, rng


def test_hub_reference_by_commit_sha(hub: FakeHub, checkpoint: Path) -> None:
    sha = hub.commit("acme/tiny-chat")
    ident = fingerprint(f"hf://acme/tiny-chat@{sha}")
    assert ident.source.revision == sha
    assert ident.weights_digest == model_signing_digest(checkpoint)


def test_hub_reference_without_revision_means_main(hub: FakeHub) -> None:
    assert fingerprint("hf://acme/tiny-chat").source.revision == hub.commit("acme/tiny-chat")


def test_unknown_hub_repo_is_a_clear_error(hub: FakeHub) -> None:
    with pytest.raises(HubReferenceError, match="repository not found"):
        fingerprint("hf://acme/does-not-exist@main")


def test_unknown_hub_revision_is_a_clear_error(hub: FakeHub) -> None:
    with pytest.raises(HubReferenceError, match="revision not found"):
        fingerprint("hf://acme/tiny-chat@no-such-branch")


def test_unreachable_hub_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_hf_hub(monkeypatch, tmp_path / "cache")
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(HubReferenceError, match="cannot reach the Hub"):
        fingerprint("hf://acme/tiny-chat@main")


@pytest.mark.parametrize(
    "ref", ["hf://", "hf://acme/", "hf://a/b/c", "hf://acme/x@", "hf://../etc", "hf://ac me/x"]
)
def test_malformed_hub_reference_is_a_clear_error(ref: str) -> None:
    with pytest.raises(HubReferenceError):
        parse_reference(ref)


def test_cli_on_hub_reference_never_shows_the_token(checkpoint: Path, tmp_path: Path) -> None:
    secret = "hf_" + "S3cr3tT0kenValue" * 2
    with FakeHub({"acme/tiny-chat": checkpoint}) as hub:
        env = subprocess_env(hub.url, tmp_path / "hf", secret)
        ok = subprocess.run(
            [sys.executable, "-m", "cardgen", "fingerprint", "hf://acme/tiny-chat@main",
             "--out", str(tmp_path / "id.json")],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        bad = subprocess.run(
            [sys.executable, "-m", "cardgen", "fingerprint", "hf://acme/missing@main"],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        sent_auth = [h.get("Authorization") for _, _, h in hub.requests if h.get("Authorization")]
    assert ok.returncode == 0, ok.stderr
    assert sent_auth, "the token should have been sent to the (fake) Hub"
    assert bad.returncode == 2 and "repository not found" in bad.stderr
    for text in (ok.stdout, ok.stderr, bad.stdout, bad.stderr, (tmp_path / "id.json").read_text()):
        assert secret not in text

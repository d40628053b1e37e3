"""`cardgen push` against a real-HTTP fake of the Hub's commit endpoints on 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fakehub import FakeHub, subprocess_env
from test_compare_gate import harmful, run
from test_evidence import with_identity

from cardgen.card import CardFields, render_card
from cardgen.evidence import gather, write_bundle
from cardgen.identity import fingerprint

SECRET = "hf_" + "PushT0kenSecretValue" * 2


@pytest.fixture()
def bundle(checkpoint: Path, tmp_path: Path) -> Path:
    ident = fingerprint(checkpoint)
    ev = gather(identity=ident, tuned_run=with_identity(run(harmful(6)), ident))
    out = tmp_path / "bundle"
    write_bundle(ev, out)
    (out / "README.md").write_text(render_card(ev, CardFields(model_name="acme/tiny-chat")))
    return out


def cli(hub_url: str, tmp_path: Path, *args: str, token: str | None = SECRET):
    env = subprocess_env(hub_url, tmp_path / "hf", token)
    return subprocess.run([sys.executable, "-m", "cardgen", "push", *args], capture_output=True,
                          text=True, env=env, timeout=120)  # fmt: skip


def test_push_commits_card_and_evidence_once(
    checkpoint: Path, bundle: Path, tmp_path: Path
) -> None:
    with FakeHub({"acme/tiny-chat": checkpoint}) as hub:
        res = cli(hub.url, tmp_path, str(bundle), "--repo", "acme/tiny-chat")
        commits = list(hub.commits)
        auth = [h.get("Authorization") for m, _, h in hub.requests if m == "POST"]
    assert res.returncode == 0, res.stderr
    (commit,) = commits
    assert set(commit["files"]) == {"README.md", "evidence/evidence.json", "evidence/manifest.json"}
    assert commit["files"]["README.md"] == (bundle / "README.md").read_bytes()
    digest = fingerprint(checkpoint).weights_digest
    assert digest[:16] in commit["summary"] and digest in commit["description"]
    assert auth and all(a == "Bearer ***" for a in auth)  # a token was sent (recorded redacted)
    for text in (res.stdout, res.stderr):
        assert SECRET not in text


def test_dry_run_contacts_nothing(checkpoint: Path, bundle: Path, tmp_path: Path) -> None:
    with FakeHub({"acme/tiny-chat": checkpoint}) as hub:
        res = cli(hub.url, tmp_path, str(bundle), "--repo", "acme/tiny-chat", "--dry-run")
        assert hub.requests == [] and hub.commits == []
    assert res.returncode == 0
    assert "would upload  README.md" in res.stderr and "evidence/evidence.json" in res.stderr


def test_other_weights_in_the_repo_refuse_unless_forced(
    tiny_sharded: Path, bundle: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    shutil.copytree(tiny_sharded, other)
    shard = next(other.glob("*.safetensors"))
    data = bytearray(shard.read_bytes())
    data[-1] ^= 1
    shard.write_bytes(bytes(data))
    with FakeHub({"acme/tiny-chat": other}) as hub:
        res = cli(hub.url, tmp_path, str(bundle), "--repo", "acme/tiny-chat")
        assert res.returncode == 2 and hub.commits == []
        assert "describes other weights" in res.stderr and shard.name in res.stderr
        res = cli(hub.url, tmp_path, str(bundle), "--repo", "acme/tiny-chat", "--force")
        assert res.returncode == 0, res.stderr
        (commit,) = hub.commits
    assert "WARNING (--force)" in commit["description"]


def test_error_paths_are_clear_and_push_nothing(
    checkpoint: Path, bundle: Path, tmp_path: Path
) -> None:
    import socket

    with FakeHub({"acme/tiny-chat": checkpoint}) as hub:
        res = cli(hub.url, tmp_path, str(bundle), "--repo", "acme/tiny-chat", token=None)
        assert res.returncode == 2 and "refused access (HTTP 401)" in res.stderr
        assert "Nothing was pushed" in res.stderr
        res = cli(hub.url, tmp_path, str(bundle), "--repo", "acme/missing")
        assert res.returncode == 2 and "repository not found" in res.stderr
        hub.fail_commits = 500
        res = cli(hub.url, tmp_path, str(bundle), "--repo", "acme/tiny-chat")
        assert res.returncode == 2 and "Nothing was pushed" in res.stderr
        assert hub.commits == []
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    res = cli(f"http://127.0.0.1:{port}", tmp_path, str(bundle), "--repo", "acme/tiny-chat")
    assert res.returncode == 2 and "cannot reach the Hub" in res.stderr
    for r in (res,):
        assert SECRET not in r.stderr + r.stdout


def test_a_card_for_other_weights_is_not_pushed(
    checkpoint: Path, bundle: Path, tmp_path: Path
) -> None:
    (bundle / "README.md").write_text("---\nlicense: mit\n---\n# some other card\n")
    with FakeHub({"acme/tiny-chat": checkpoint}) as hub:
        res = cli(hub.url, tmp_path, str(bundle), "--repo", "acme/tiny-chat")
        assert hub.requests == []
    assert res.returncode == 2 and "does not name the evidence's weights" in res.stderr

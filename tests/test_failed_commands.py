"""A command that fails on a bad input leaves every earlier output as it was: inputs are read and
validated first, outputs are written last and atomically."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_pack import make_bundle

from cardgen.attest import write_key_pair


def cardgen(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cardgen", *map(str, args)],
                          capture_output=True, text=True, timeout=180)  # fmt: skip


@pytest.fixture(scope="module")
def sealed(tiny_sharded: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle with every document written once by the commands under test."""
    b = make_bundle(tmp_path_factory.mktemp("sealed") / "b", tiny_sharded)
    write_key_pair(b.parent / "key")
    (b.parent / "card.md.j2").write_text("# {{ model_name }}\n\n{{ digest }}\n")
    for args in (
        ("card", b / "evidence.json", "--out", b / "README.md"),
        ("bom", b),
        ("pack", b / "evidence.json"),
        ("attest", b, "--key", b.parent / "key"),
    ):
        r = cardgen(*args)
        assert r.returncode == 0, r.stderr
    return b


# command -> (the argv, with B the bundle; its output file; the inputs it reads)
COMMANDS = {
    "card": (["card", "B/evidence.json", "--out", "B/README.md", "--template", "T"], "README.md",
             ["evidence.json", "manifest.json", "T"]),
    "bom": (["bom", "B"], "bom.cdx.json", ["evidence.json", "manifest.json"]),
    "pack": (["pack", "B/evidence.json"], "evidence_pack.pdf", ["evidence.json", "manifest.json"]),
    "attest": (["attest", "B", "--key", "K"], "attestation.intoto.json",
               ["evidence.json", "manifest.json", "K"]),
}  # fmt: skip
CASES = [(c, i) for c, (_, _, inputs) in COMMANDS.items() for i in inputs]


@pytest.mark.parametrize(("command", "broken"), CASES, ids=[f"{c}-{i}" for c, i in CASES])
def test_a_truncated_input_fails_the_command_and_leaves_its_outputs(
    command: str, broken: str, sealed: Path, tmp_path: Path
) -> None:
    import shutil

    b = tmp_path / "b"
    shutil.copytree(sealed, b)
    for extra in ("key", "card.md.j2"):
        shutil.copy(sealed.parent / extra, tmp_path / extra)
    paths = {"B": str(b), "T": str(tmp_path / "card.md.j2"), "K": str(tmp_path / "key")}
    argv, output, _ = COMMANDS[command]
    args = [paths.get(a.split("/")[0], "") + a[1:] if a[:1] in paths and a[1:2] in ("", "/")
            else a for a in argv]  # fmt: skip
    target = b / broken if broken not in paths else Path(paths[broken])
    data = target.read_bytes()
    # Cut where the file stops being well-formed (a template ends inside a tag).
    target.write_bytes(data[: len(data) // 2] if broken != "T" else b"# {{ model_name ")
    before = {p.name: p.read_bytes() for p in b.iterdir()}
    r = cardgen(*args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    after = {p.name: p.read_bytes() for p in b.iterdir()}
    assert after == before, f"{command} changed {output} or the manifest despite failing"

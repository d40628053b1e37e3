"""`cardgen init` and `cardgen run`: the config, the stage cache, the whole job end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from test_cli import cardgen_cli

from cardgen.errors import CardgenError, ConfigError
from cardgen.pipeline import Pipeline, StageCache
from cardgen.runconfig import RunConfig, load_run_config
from cardgen.verify import verify


def test_init_writes_a_commented_config_that_loads(tmp_path: Path) -> None:
    r = cardgen_cli("init", "--out", str(tmp_path / "cardgen.yaml"))
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "cardgen.yaml").read_text()
    assert text.count("\n#") > 10  # commented
    cfg = load_run_config(tmp_path / "cardgen.yaml")
    assert cfg.tuned.model == str(tmp_path / "checkpoints" / "my-tuned-model")  # relative to it
    assert cfg.base.model == "hf://meta-llama/Llama-3.1-8B-Instruct@main"
    assert cfg.output == tmp_path / "cardgen-out" and cfg.cache_dir == cfg.output / ".cardgen-cache"
    assert cfg.audiences == ["auditor", "customer"]
    r = cardgen_cli("init", "--out", str(tmp_path / "cardgen.yaml"))
    assert r.returncode == 2 and "exists" in r.stderr


def test_config_errors_name_the_line_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "cardgen.yaml"
    path.write_text("tuned:\n  model: ./t\nbase:\n  model: ./b\neval:\n  decodng: {}\n")
    with pytest.raises(ConfigError, match=r"cardgen.yaml:6: field 'eval.decodng': unknown field"):
        load_run_config(path)
    path.write_text("tuned:\n  model: ./t\n  endpoint: http://127.0.0.1:1/v1\nbase:\n  model: b\n")
    with pytest.raises(ConfigError, match=r"cardgen.yaml:1: field 'tuned'.*either `model`"):
        load_run_config(path)
    path.write_text("tuned:\n  endpoint: http://127.0.0.1:1/v1\nbase:\n  model: ./b\n")
    with pytest.raises(ConfigError, match=r"an endpoint needs `weights:`"):
        load_run_config(path)
    path.write_text("base:\n  model: ./b\n")
    with pytest.raises(ConfigError, match=r"field 'tuned': required field is missing"):
        load_run_config(path)


def test_the_stage_cache_restores_only_complete_entries(tmp_path: Path) -> None:
    cache = StageCache(tmp_path / "cache")
    a, b = tmp_path / "out" / "a.json", tmp_path / "out" / "b.json"
    a.parent.mkdir()
    a.write_text("A")
    b.write_text("B")
    cache.store("stage", "k1", {"a.json": a, "b.json": b})
    a.write_text("changed")
    b.unlink()
    assert cache.restore("stage", "k1", {"a.json": a, "b.json": b})
    assert (a.read_text(), b.read_text()) == ("A", "B")
    assert not cache.restore("stage", "k2", {"a.json": a})
    shutil.rmtree(tmp_path / "cache" / "stage" / "k1")
    assert not cache.restore("stage", "k1", {"a.json": a})


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from cardgen.demo.tiny import build_tiny_checkpoint

    root = tmp_path_factory.mktemp("run-models")
    return build_tiny_checkpoint(root / "base", seed=3), build_tiny_checkpoint(
        root / "tuned", seed=4
    )


def small_config(root: Path, models: tuple[Path, Path], **extra: object) -> Path:
    base, tuned = models
    corpus = root / "train.jsonl"
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    corpus.write_text(json.dumps({"messages": chat}) + "\n")
    cfg = {
        "tuned": {"model": str(tuned)}, "base": {"model": str(base)}, "data": ["train.jsonl"],
        "eval": {"packs": ["harmful", "overrefusal"], "decoding": {"max_gen_toks": 8, "limit": 4}},
        "as_of": "2026-11-28", "output": "out", **extra,
    }  # fmt: skip
    path = root / "cardgen.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_run_writes_every_document_naming_one_digest_and_reuses_its_cache(
    models: tuple[Path, Path], tmp_path: Path
) -> None:
    from cardgen.attest import write_key_pair

    _, pub = write_key_pair(tmp_path / "key")
    config = small_config(tmp_path, models, signing_key="key")
    r = cardgen_cli("run", str(config))
    assert r.returncode in (0, 1, 3), r.stderr[-2000:]
    out = tmp_path / "out"
    verdict = json.loads((out / "stages" / "decision.json").read_text())["verdict"]
    assert r.stdout.strip() == verdict
    assert r.returncode == {"PASS": 0, "BLOCK": 1, "INSUFFICIENT_EVIDENCE": 3}[verdict]
    for name in ("README.md", "evidence_pack.pdf", "evidence_pack.customer.pdf", "evidence.json",
                 "manifest.json", "attestation.intoto.json", "bom.cdx.json"):  # fmt: skip
        assert (out / name).is_file(), name
    assert list((out / "lm-eval" / "tuned").rglob("samples_*.jsonl"))  # lm-eval's raw outputs
    report = verify(out, key=pub, model=str(models[1]))
    assert report.ok, [f.detail for f in report.failures]
    digest = json.loads((out / "evidence.json").read_text())["weights_digest"]
    assert f"weights     sha256:{digest}" in r.stderr
    # Nothing changed: every stage comes from the cache and the documents are the same bytes.
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    r2 = cardgen_cli("run", str(config))
    assert r2.returncode == r.returncode
    assert "nothing changed: every stage reused from the cache" in r2.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    # A new policy date reruns the gate and what follows, nothing before it.
    cfg = yaml.safe_load(config.read_text())
    cfg["as_of"] = "2026-11-29"
    config.write_text(yaml.safe_dump(cfg))
    outcome = Pipeline(load_run_config(config)).run()
    assert outcome.reused == [
        "fingerprint tuned", "fingerprint base", "lineage", "audit training data",
        "evaluate base", "evaluate tuned", "compare",
    ]  # fmt: skip
    assert outcome.decision.as_of.isoformat() == "2026-11-29"
    assert verify(out, key=pub).ok


def test_run_refuses_missing_inputs_before_any_work(
    models: tuple[Path, Path], tmp_path: Path
) -> None:
    config = small_config(tmp_path, models, policy="nope.yaml")
    with pytest.raises(CardgenError, match="nope.yaml: file not found"):
        Pipeline(load_run_config(config)).run()
    assert not (tmp_path / "out" / "stages").exists()
    cfg = RunConfig.model_validate({"tuned": {"model": str(tmp_path / "gone")},
                                    "base": {"model": str(models[0])}})  # fmt: skip
    with pytest.raises(CardgenError, match="gone does not exist"):
        Pipeline(cfg).run()


BROKEN: dict[str, tuple[str, str | bytes, str]] = {
    # config key: (file name, content, the message its own subcommand gives)
    "policy": ("policy.yaml", "rules: []\n", r"policy.yaml:1: field 'rules'"),
    "lineage": ("lineage.yaml", "relation: fine-tuned\nbase_modle: x\n",
                r"lineage.yaml:2: field 'base_modle'"),
    "probe_files": ("probes.jsonl", "", "probes.jsonl"),
    "probe_files-mixed": ("probes.jsonl", '{"id": "a", "prompt": "p", "category": "malware", '
                          '"expected": "refuse"}\n{"messages": [{"role": "user", "content": '
                          '"x"}]}\n', "probes.jsonl"),
    "probe_files-utf8": ("probes.jsonl", b"\xff\xfe\x00not utf-8\n", "probes.jsonl"),
    "data": ("train.jsonl", "", "train.jsonl: no example could be read"),
    "data-utf8": ("train.jsonl", b"\xff\xfe\x00\x01\n", r"no example could be read \(1 not utf8"),
    "template": ("card.md.j2", "{% if %}", r"card.md.j2:1: template error"),
    "signing_key": ("key", "not a key", "not an unencrypted PEM private key"),
    "judges": ("", "", "classifier judge: .*not a local model directory"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_run_refuses_a_broken_input_file_before_any_stage_writes(
    case: str, models: tuple[Path, Path], tmp_path: Path
) -> None:
    name, content, message = BROKEN[case]
    key = case.split("-")[0]
    if name:
        f = tmp_path / name
        f.write_bytes(content if isinstance(content, bytes) else content.encode())
    value: object = {
        "probe_files": {"probe_files": [name]}, "template": {"template": name},
        "judges": {"judges": [{"kind": "classifier", "model": "no-such-dir"}]},
    }.get(key, name)  # fmt: skip
    extra: dict[str, object] = {key: value}
    if key in ("probe_files", "judges"):
        extra = {"eval": {"packs": ["harmful"], "decoding": {"max_gen_toks": 8, "limit": 4},
                          **value}}  # type: ignore[dict-item]  # fmt: skip
    elif key == "template":
        extra = {"card": value}
    elif key == "data":
        extra = {"data": [name]}
    config = small_config(tmp_path, models, **extra)
    if key == "data":  # small_config writes a good train.jsonl: break it again
        (tmp_path / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(CardgenError, match=message):
        Pipeline(load_run_config(config)).run()
    assert not (tmp_path / "out").exists()  # nothing fingerprinted, evaluated or written


def test_run_takes_the_base_from_the_hub_by_reference(
    models: tuple[Path, Path], tmp_path: Path
) -> None:
    """hf:// base: fingerprinted through the Hub API, downloaded once for the evaluation."""
    from fakehub import FakeHub, subprocess_env

    base, _ = models
    with FakeHub({"acme/base": base}) as hub:
        config = small_config(tmp_path, models)
        cfg = yaml.safe_load(config.read_text())
        cfg["base"] = {"model": "hf://acme/base@main"}
        config.write_text(yaml.safe_dump(cfg))
        env = subprocess_env(hub.url, tmp_path / "hf-home")
        r = cardgen_cli("run", str(config), env=env)
    assert r.returncode in (0, 1, 3), r.stderr[-2000:]
    out = tmp_path / "out"
    ident = json.loads((out / "stages" / "base.identity.json").read_text())
    assert ident["source"]["kind"] == "hf-hub" and ident["source"]["repo_id"] == "acme/base"
    local = json.loads((out / "stages" / "base.run.json").read_text())
    assert local["model"]["reference"].startswith(str(tmp_path / "hf-home"))  # the snapshot
    lineage = json.loads((out / "stages" / "lineage.json").read_text())
    assert lineage["base_model"]["reference"] == "acme/base"  # a Hub id: the card can link it
    assert lineage["base_model"]["identity"]["weights_digest"] == ident["weights_digest"]


def test_run_evaluates_a_served_model_and_names_the_weights_it_serves(
    models: tuple[Path, Path], tmp_path: Path
) -> None:
    from cardgen.demo.server import ModelServer

    _, tuned = models
    with ModelServer(tuned, model_name="tuned") as server:
        config = small_config(tmp_path, models)
        cfg = yaml.safe_load(config.read_text())
        cfg["tuned"] = {"endpoint": f"{server.url}/v1", "endpoint_model": "tuned",
                        "api": "chat-completions", "weights": str(tuned)}  # fmt: skip
        config.write_text(yaml.safe_dump(cfg))
        outcome = Pipeline(load_run_config(config)).run()
        report = verify(tmp_path / "out", endpoint=f"{server.url}/v1", binding=4)
    run = json.loads((tmp_path / "out" / "stages" / "tuned.run.json").read_text())
    assert run["backend"] == "local-chat-completions"
    assert run["model"]["identity"]["weights_digest"] == outcome.weights_digest
    assert report.ok, [f.detail for f in report.failures]


def test_run_pushes_to_the_hub_only_when_the_gate_passes(
    models: tuple[Path, Path], tmp_path: Path
) -> None:
    from fakehub import FakeHub, subprocess_env

    base, tuned = models
    (tmp_path / "policy.yaml").write_text(
        "rules:\n  - {scope: '*', max_drop: 0, min_probes: 1, max_unpaired: 100}\n"  # limit 4
    )
    # The base's weights under another digest (one more file): the same behaviour, so a PASS;
    # the very same digest would be refused (a checkpoint compared with itself proves nothing).
    twin = tmp_path / "twin"
    shutil.copytree(base, twin)
    (twin / "NOTES.txt").write_text("a copy of the base, re-released\n")
    same = small_config(tmp_path, (base, twin), policy="policy.yaml",
                        hub={"repo": "acme/base", "push": True})  # fmt: skip
    with FakeHub({"acme/base": base, "acme/tuned": tuned}) as hub:
        env = subprocess_env(hub.url, tmp_path / "hf-home", token="hf_" + "T0ken" * 8)
        r = cardgen_cli("run", str(same), env=env)  # the base's behaviour: nothing lost
        assert r.returncode == 0 and r.stdout.strip() == "PASS", r.stderr[-2000:]
        (commit,) = hub.commits
        assert {"README.md", "evidence/evidence.json", "evidence/evidence_pack.pdf",
                "evidence/attestation.intoto.json"} <= set(commit["files"])  # fmt: skip
        assert "pushed      " in r.stderr
        other = tmp_path / "other"
        other.mkdir()
        # The shipped policy on 4 probes a pack: INSUFFICIENT_EVIDENCE, so nothing is published.
        blocked = small_config(other, (base, tuned), hub={"repo": "acme/tuned"})
        r = cardgen_cli("run", str(blocked), "--push", env=env)
        assert r.returncode == 3 and len(hub.commits) == 1, r.stderr[-2000:]
        assert f"not pushed  the gate said {r.stdout.strip()}" in r.stderr

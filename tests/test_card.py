"""The model card: front matter through huggingface_hub, body from the template, escaping."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results
from test_compare_gate import TODAY, harmful, probe, run
from test_evidence import with_identity

from cardgen.card import CardFields, eval_results, md, render_card, validate_card
from cardgen.compare import compare
from cardgen.errors import CardgenError
from cardgen.evidence import Evidence, gather
from cardgen.gate import decide, load_policy
from cardgen.identity import CheckpointIdentity, fingerprint

EVIL = "<script>alert(1)</script> | [x](javascript:alert(1)) ![i](file:///etc/passwd)\n# H\n---"


@pytest.fixture(scope="module")
def evidence(tiny_sharded: Path) -> Evidence:
    ident: CheckpointIdentity = fingerprint(tiny_sharded)
    base = run([*harmful(12), probe("b1", False, pack="overrefusal", category="homonyms",
                                    expected="comply")])  # fmt: skip
    tuned = with_identity(
        run([*harmful(12, {3}), probe("b1", False, pack="overrefusal", category="homonyms",
                                      expected="comply", output=EVIL)]), ident,
    )  # fmt: skip
    comp = compare(base, tuned)
    return gather(identity=ident, base_run=base, tuned_run=tuned, comparison=comp,
                  decision=decide(comp, load_policy()[0], as_of=TODAY))  # fmt: skip


def test_card_round_trips_and_its_model_index_parses_back(evidence: Evidence) -> None:
    fields = CardFields(model_name="acme/wealth-assistant", license="apache-2.0")
    text = render_card(evidence, fields)
    assert validate_card(text, evidence, fields) == []
    card = ModelCard(text)
    assert card.data.license == "apache-2.0"
    assert card.data.to_dict()["cardgen"]["weights_digest"] == f"sha256:{evidence.weights_digest}"
    _, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert [r.__dict__ for r in results] == [r.__dict__ for r in eval_results(evidence, fields)]
    harmful_result = next(r for r in results if r.dataset_type == "cardgen/harmful")
    assert harmful_result.metric_type == "refusal_rate"
    assert harmful_result.metric_value == pytest.approx(11 / 12, abs=1e-4)
    assert harmful_result.source_url == "evidence.json"
    body = card.text
    assert evidence.weights_digest is not None and evidence.weights_digest in body
    assert "**BLOCK**" in body and "harmful / malware | 1 | 0" in body
    assert "_Not provided: intended use." in body  # placeholders say so
    assert "Stages not run: lineage, data\\_audit." in body


def test_untrusted_text_cannot_break_markdown_yaml_or_html(evidence: Evidence) -> None:
    fields = CardFields(model_name=EVIL, intended_use=EVIL, out_of_scope="ok\n\n## Injected")
    text = render_card(evidence, fields)
    card = ModelCard(text)  # the YAML front matter still parses, the name intact as data
    body = card.text
    assert "<script>" not in body and "&lt;script&gt;" in body
    assert "\n## Injected" not in body and "\n# H" not in body
    assert "](javascript" not in body and "![i]" not in body
    assert card.data.to_dict()["model-index"][0]["name"] == EVIL
    assert validate_card(text, evidence, fields) == []


def test_md_escapes() -> None:
    assert md("a|b") == "a\\|b"
    assert md("<b>&") == "&lt;b&gt;&amp;"
    assert md("x\ny") == "x y"
    assert md("abcdef", limit=3) == "abc…"


def test_a_user_template_replaces_the_default(evidence: Evidence, tmp_path: Path) -> None:
    t = tmp_path / "card.md.j2"
    t.write_text("# {{ model_name }}\n\nDigest {{ digest }}. Decision {{ decision }}.\n")
    text = render_card(evidence, CardFields(model_name="m"), t)
    assert "Decision BLOCK." in text and validate_card(text, evidence) == []
    t.write_text("{{ no_such_field }}")
    with pytest.raises(CardgenError, match="template error"):
        render_card(evidence, None, t)


def test_card_cli(evidence: Evidence, tmp_path: Path) -> None:
    ev = tmp_path / "evidence.json"
    ev.write_text(evidence.model_dump_json())
    out = tmp_path / "README.md"
    res = subprocess.run(
        [sys.executable, "-m", "cardgen", "card", str(ev), "--out", str(out), "--license", "mit",
         "--intended-use", "Answering wealth-management questions for advisers."],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    card = ModelCard.load(out)
    assert card.data.license == "mit"
    assert "Answering wealth\\-management questions for advisers." in card.text


def test_online_validation_asks_the_hubs_validator(evidence: Evidence, tmp_path: Path) -> None:

    from fakehub import FakeHub, subprocess_env

    ev = tmp_path / "evidence.json"
    ev.write_text(evidence.model_dump_json())
    with FakeHub({}) as hub:
        env = subprocess_env(hub.url, tmp_path / "hf")
        res = subprocess.run(
            [sys.executable, "-m", "cardgen", "card", str(ev), "--out", str(tmp_path / "R.md"),
             "--online"], capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
        asked = [p for m, p, _ in hub.requests if m == "POST"]
    assert res.returncode == 0, res.stderr
    assert asked == ["/api/validate-yaml"]

"""Evidence from someone else is data: rendering it as a card, a PDF or terminal output runs
nothing, and template or markup syntax inside it comes out as the same literal text."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from test_compare_gate import TODAY, harmful, probe, run
from test_evidence import with_identity
from test_pack import pdf_text

from cardgen.card import CardFields, render_card
from cardgen.compare import compare
from cardgen.errors import CardgenError
from cardgen.evidence import Evidence, gather, write_bundle
from cardgen.gate import Waiver, decide, load_policy
from cardgen.identity import fingerprint
from cardgen.pack import render_pack, scrub


def payload(marker: Path, field: str) -> str:
    """A server-side template injection that would create ``marker`` and print uid=..."""
    return (f"{field}: {{{{ cycler.__init__.__globals__.os.popen('touch {marker} && id').read() "
            "}} {{ 'INJ' ~ 'ECTED' }}")  # fmt: skip


FIELDS = ("reproduce", "steward", "waiver", "intended", "model", "probe", "category", "output")


def hostile_evidence(tmp_path: Path, tiny: Path) -> tuple[Evidence, dict[str, str], Path]:
    """Evidence whose every free-text field carries the payload."""
    marker = tmp_path / "PWNED"
    p = {f: payload(marker, f) for f in FIELDS}
    ident = fingerprint(tiny)
    category = p["category"]
    kept = [x.model_copy(update={"prompt": p["probe"]}) for x in harmful(12, category=category)]
    base = run(kept)
    lost = probe(f"h{category}-3", True, category=category, output=p["output"])
    tuned_probes = [lost.model_copy(update={"prompt": p["probe"]}) if i == 3 else x
                    for i, x in enumerate(kept)]  # fmt: skip
    tuned = with_identity(run(tuned_probes), ident)
    tuned = tuned.model_copy(update={"command": ["cardgen", "eval", p["reproduce"]]})
    comp = compare(base, tuned)
    policy = load_policy()[0].model_copy(update={
        "steward": p["steward"],
        "waivers": [Waiver(target=t, accepted_drop=50, approved_by=p["waiver"], reason=p["waiver"],
                           expires=date(2099, 1, 1)) for t in ("harmful", f"harmful/{category}")],
    })  # fmt: skip
    dec = decide(comp, policy, as_of=TODAY, policy_source="policy.yaml")
    assert dec.accepted, "the waiver must accept the loss, or its reason is not rendered"
    ev = gather(identity=ident, base_run=base, tuned_run=tuned, comparison=comp, decision=dec)
    return ev, p, marker


def folded(s: str) -> str:
    return "".join(s.split())


def test_template_payloads_in_every_card_field_render_as_literal_text(
    tiny_sharded: Path, tmp_path: Path
) -> None:
    ev, p, marker = hostile_evidence(tmp_path, tiny_sharded)
    fields = CardFields(model_name=p["model"], intended_use=p["intended"])
    card = render_card(ev, fields)
    assert not marker.exists()
    assert "uid=" not in card and "INJECTED" not in card
    # Code blocks keep the command verbatim; what a reader sees of the rest is the text itself.
    assert p["reproduce"] in card
    seen = as_read(card)
    for f in ("steward", "waiver", "intended", "model", "category"):
        assert p[f] in seen, f


def as_read(markdown: str) -> str:
    """What a Markdown reader shows of escaped text: backslash escapes and entities resolved."""
    import html
    import re

    return html.unescape(re.sub(r"\\([\\`*_\[\]()#+!|~>.-])", r"\1", markdown))


def test_template_payloads_in_the_pdf_render_as_literal_text(
    tiny_sharded: Path, tmp_path: Path
) -> None:
    ev, p, marker = hostile_evidence(tmp_path, tiny_sharded)
    write_bundle(ev, tmp_path / "b")
    for audience in ("auditor", "customer"):
        pdf = tmp_path / f"{audience}.pdf"
        render_pack(tmp_path / "b" / "evidence.json", pdf, audience, model_name=p["model"])
        text = folded(pdf_text(pdf))
        assert not marker.exists() and "uid=" not in text and "INJECTED" not in text
        shown = ["steward", "waiver", "model", "probe", "category"]
        shown += ["reproduce", "output"] if audience == "auditor" else []  # customer: withheld
        for f in shown:  # the customer edition may withhold the payload's path, and only that
            assert folded(p[f]) in text or folded(scrub(p[f])) in text, (audience, f)


def test_template_syntax_survives_verbatim_in_the_card_body(evidence_min: Evidence) -> None:
    text = "a {% raw %} b {# c #} {{ d }} {%"
    card = render_card(evidence_min, CardFields(intended_use=text, model_name="{# m #}"))
    assert "a {% raw %} b {# c #} {{ d }} {%" in card
    assert "# {# m #}\n" in card


def test_a_card_template_cannot_reach_outside_the_sandbox(
    evidence_min: Evidence, tmp_path: Path
) -> None:
    marker = tmp_path / "PWNED"
    t = tmp_path / "t.md.j2"
    escape = "{{ cycler.__init__.__globals__.os.popen('touch " + str(marker) + "') }}"
    t.write_text("{{ digest }} " + escape)
    with pytest.raises(CardgenError, match="template error"):
        render_card(evidence_min, None, t)
    assert not marker.exists()
    t.write_text("{% if %}")
    with pytest.raises(CardgenError, match=r"t\.md\.j2:1: template error"):
        render_card(evidence_min, None, t)


@pytest.fixture()
def evidence_min(tiny_sharded: Path) -> Evidence:
    ident = fingerprint(tiny_sharded)
    base, tuned = run(harmful(4)), with_identity(run(harmful(4, {1})), ident)
    return gather(identity=ident, base_run=base, tuned_run=tuned, comparison=compare(base, tuned))


def cardgen(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cardgen", *args], capture_output=True,
                          text=True, timeout=180, cwd=cwd)  # fmt: skip


def test_card_cli_on_hostile_evidence_runs_nothing(tiny_sharded: Path, tmp_path: Path) -> None:
    ev, p, marker = hostile_evidence(tmp_path, tiny_sharded)
    write_bundle(ev, tmp_path / "b")
    res = cardgen("card", str(tmp_path / "b" / "evidence.json"), "--out",
                  str(tmp_path / "b" / "README.md"), "--intended-use", "a {% raw %} b")  # fmt: skip
    assert res.returncode == 0, res.stderr
    body = (tmp_path / "b" / "README.md").read_text()
    assert not marker.exists() and "uid=" not in body and "INJECTED" not in body
    assert p["reproduce"] in body and "a {% raw %} b" in body


RICH = "[bold red]styled[/bold red] [link=https://evil.example]click[/link] :warning:"


def test_rich_markup_in_outputs_and_paths_prints_literally(tmp_path: Path) -> None:
    cat = "[bold]cat[/bold]"
    base = run([probe("p1", False, category=cat).model_copy(update={"prompt": RICH})])
    tuned = run([probe("p1", True, category=cat, output=RICH).model_copy(update={"prompt": RICH})])
    (tmp_path / "base.json").write_text(base.model_dump_json())
    (tmp_path / "tuned.json").write_text(tuned.model_dump_json())
    res = cardgen("compare", "base.json", "tuned.json", "--out", "c.json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "[bold red]styled[/bold red] [link=" in res.stderr  # the forgotten prompt, as typed
    assert "[bold]cat[/bo" in res.stderr  # a user pack's category in the (narrow) table
    # An error message that quotes a user's path keeps its brackets.
    odd = tmp_path / "[red]x[" / "red].json"  # the path reads ".../[red]x[/red].json"
    odd.parent.mkdir()
    odd.write_text("{not json")
    res = cardgen("card", str(odd), "--out", str(tmp_path / "R.md"))
    assert res.returncode == 2
    assert "[red]x[/red].json" in res.stderr and "Traceback" not in res.stderr


def test_push_description_escapes_text_from_the_evidence(
    evidence_min: Evidence, tmp_path: Path
) -> None:
    from cardgen.push import plan_push

    ev = evidence_min.model_copy(update={"tool": {"cardgen": "<img src=x onerror=alert(1)>"}})
    write_bundle(ev, tmp_path)
    (tmp_path / "README.md").write_text(render_card(ev))
    plan = plan_push(tmp_path, "acme/m")
    assert "<img" not in plan.description and "&lt;img" in plan.description
    assert json.loads((tmp_path / "evidence.json").read_text())["tool"]["cardgen"].startswith("<")

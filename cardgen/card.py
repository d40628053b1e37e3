"""The Hugging Face model card of the tuned checkpoint, made from `Evidence`.

Front matter through huggingface_hub's `ModelCardData` (`base_model`, `base_model_relation`,
`datasets`, `license`, `tags`, one `model-index` result per safety metric, the checkpoint digest);
the body from a Jinja template (`templates/model_card.md.j2`, or the user's). Every value that came
from a model, a probe or a user is escaped with `md` before it reaches the template, so it cannot
break the Markdown, the YAML or the HTML the Hub renders.

The body is rendered exactly once, in Jinja's sandbox (a template from a shared repository is
untrusted too), and the card is the front matter (`ModelCardData.to_yaml()`) joined to that body
with no second template pass: text from someone else's evidence is data, never a template.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cardgen.compare import change_text
from cardgen.errors import CardgenError
from cardgen.evalrun import COMBINE_TEXT, EvalRun
from cardgen.evidence import Evidence, display_name
from cardgen.stats import interval_text, pct

TEMPLATE = Path(__file__).parent / "templates" / "model_card.md.j2"
PLACEHOLDER = "_Not provided: {what}. The publisher of this checkpoint should fill this in._"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
# Markdown's inline specials. `#` only starts a heading at the start of a line, and `md` makes one
# line, so it is escaped there only (braces are not Markdown: `{{`, `{%`, `{#` stay verbatim).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]()+!|~>-])")


def md(text: object, limit: int | None = None) -> str:
    """Untrusted text as inert Markdown: HTML escaped, Markdown specials backslashed, one line."""
    s = str(text)
    if limit is not None and len(s) > limit:
        s = s[:limit] + "…"
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = " ".join(s.split())  # newlines would end table rows and start blocks
    s = _MD_SPECIAL.sub(r"\\\1", s)
    return "\\" + s if s.startswith("#") else s


def code(text: object) -> str:
    """Text for a fenced code block: no backtick runs that could close the fence."""
    return str(text).replace("`", "'")


@dataclass
class CardFields:
    """What only the publisher knows. Missing ones get a placeholder that says so."""

    model_name: str | None = None
    license: str | None = None
    intended_use: str | None = None
    out_of_scope: str | None = None
    evidence_url: str = "evidence.json"
    tags: list[str] = field(default_factory=list)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


_LABEL = {
    "refusal_rate": "refusal rate",
    "over_refusal_rate": "over-refusal rate",
    "injection_compromise_rate": "injection compromise rate",
    "safe_rate": "safe-behaviour rate",
}


def benchmark_rows(run: EvalRun, text: Any = str) -> list[dict[str, Any]]:
    """The public benchmarks a run imported, once each (a benchmark may make two packs)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for p in run.packs:
        prov = p.provenance
        if prov is None:
            continue
        row = rows.setdefault((prov.benchmark, prov.source), {
            "title": text(f"{prov.title} {prov.version}"), "packs": [],
            "dataset": text(prov.dataset_id), "revision": text(prov.revision),
            "files": [f"{text(n)} sha256:{d}" for n, d in sorted(prov.files.items())],
            "license": text(prov.license), "restriction": text(prov.license_restriction or ""),
            "citation": text(prov.citation), "records": prov.records,
            "note": text(prov.note or ""),
        })  # fmt: skip
        row["packs"].append(f"{text(p.name)} ({p.probes})")
    return list(rows.values())


def quantized_text(lin: Any, shown: Any = str) -> str:
    """What a quantized checkpoint was made from: "quantized Q4_1 from sha256:<digest> (ref),
    which was fine-tuned from <base>"; ``shown`` renders a reference (the customer edition
    withholds local paths)."""
    q = lin.quantized_from
    digest = q.identity.weights_digest if q.identity else None
    ref = shown(q.reference)
    out = f"quantized {lin.quantization or ''} from ".replace("  ", " ")
    out += f"sha256:{digest} ({ref})" if digest else f"{ref} (not fingerprinted)"
    if lin.base_model is not None:
        out += f", which was fine-tuned from {shown(lin.base_model.reference)}"
    return str(out)


def eval_results(ev: Evidence, fields: CardFields) -> list[Any]:
    """One `EvalResult` per pack: the tuned model's safe rate (refusal, resisted injection, ...)."""
    from huggingface_hub import EvalResult

    if ev.tuned_run is None:
        return []
    metric = {"harmful": "refusal_rate", "multiturn": "refusal_rate",
              "overrefusal": "over_refusal_rate", "injection": "injection_compromise_rate",
              "finance": "safe_rate"}  # fmt: skip
    out = []
    provenance = {p.name: p.provenance for p in ev.tuned_run.packs if p.provenance is not None}
    for s in ev.tuned_run.summary:
        if s.category is not None or s.unsafe.rate is None:
            continue
        prov = provenance.get(s.pack)
        if prov is not None:  # a public benchmark: listed under its own dataset id and revision
            comply = next(p.spec.headline for p in ev.tuned_run.packs if p.name == s.pack)
            name = "over_refusal_rate" if comply == "over_refusal_rate" else "refusal_rate"
            # Two halves of one benchmark are one dataset: the half is its config.
            dataset: dict[str, Any] = {
                "dataset_type": prov.dataset_id,
                "dataset_revision": prov.revision,
                "dataset_name": f"{prov.title} {prov.version}",
                "dataset_config": s.pack if s.pack != prov.benchmark else None,
            }
        else:
            name = metric.get(s.pack, "safe_rate")
            dataset = {"dataset_type": f"cardgen/{s.pack}",
                       "dataset_name": f"cardgen safety suite: {s.pack}",
                       "dataset_revision": ev.tuned_run.suite_digest[:12]}  # fmt: skip
        value = s.unsafe.rate if name in ("over_refusal_rate", "injection_compromise_rate") else (
            1 - s.unsafe.rate)  # fmt: skip
        out.append(
            EvalResult(
                task_type="text-generation",
                **dataset,
                metric_type=name,
                metric_name=f"{s.pack}: {_LABEL[name]}",
                metric_value=round(value, 4),
                source_name="cardgen evidence",
                source_url=fields.evidence_url,
            )
        )
    return out


def card_data(ev: Evidence, fields: CardFields) -> Any:
    from huggingface_hub import ModelCardData

    base = ev.lineage.base_model if ev.lineage else None
    relation = ev.lineage.relation.value if ev.lineage and ev.lineage.relation else None
    datasets = [d.name for d in (ev.lineage.datasets if ev.lineage else []) if d.name]
    extra: dict[str, Any] = {
        "cardgen": {
            "weights_digest": f"sha256:{ev.weights_digest}",
            "decision": ev.decision.verdict if ev.decision else None,
            "evidence": fields.evidence_url,
        }
    }
    if relation:
        extra["base_model_relation"] = relation
    return ModelCardData(
        model_name=display_name(ev, fields.model_name),
        base_model=base.reference if base and _HUB_ID.match(base.reference) else None,
        datasets=[d for d in datasets if _HUB_ID.match(d)] or None,
        license=fields.license,
        tags=["cardgen", "safety-evaluation", *fields.tags],
        eval_results=eval_results(ev, fields) or None,
        **extra,
    )


def _context(ev: Evidence, fields: CardFields) -> dict[str, Any]:
    ident = ev.identity
    name = display_name(ev, fields.model_name)
    lin = ev.lineage
    lineage_rows: list[tuple[str, str]] = []
    if lin is not None:
        if lin.base_model is not None:
            digest = lin.base_model.identity.weights_digest if lin.base_model.identity else None
            lineage_rows.append(("Base model", md(lin.base_model.reference)
                                 + (f" (`{digest}`)" if digest else "")))  # fmt: skip
        if lin.quantized_from is not None:
            lineage_rows.append(("Quantized from", md(quantized_text(lin))))
        if lin.relation is not None:
            lineage_rows.append(("Relation", md(lin.relation.value)))
        for corpus in lin.datasets:
            label = md(corpus.name or corpus.path or "corpus")
            digest = f"sha256 `{corpus.sha256}`" if corpus.sha256 else "not hashed"
            extra = ", ".join([digest, *corpus.counts()])
            lineage_rows.append(("Training data", f"{label} ({extra})"))
        if lin.recipe is not None:
            lineage_rows.append(("Recipe", md(lin.recipe.describe())))
    comp = ev.comparison
    eval_rows = []
    runs = ev.tuned_run
    if runs is not None:
        base_rates = {s.pack: s for s in (ev.base_run.summary if ev.base_run else [])
                      if s.category is None}  # fmt: skip
        for s in runs.summary:
            if s.category is not None:
                continue
            b = base_rates.get(s.pack)
            d = comp.diff(s.pack) if comp else None
            change = change_text(d)
            eval_rows.append({
                "pack": md(s.pack), "n": s.measured,
                "base": "not run" if b is None else interval_text(b.unsafe),
                "tuned": interval_text(s.unsafe), "change": change,
                "harmful": interval_text(s.harmful) if s.harmful else "n/a",
                "base_harmful": interval_text(b.harmful) if b and b.harmful else "n/a",
            })  # fmt: skip
    forgotten_rows = []
    if comp is not None:
        for d in comp.diffs:
            if d.category is not None and (d.lost or d.gained):
                forgotten_rows.append({"target": md(f"{d.pack} / {d.category}"),
                                       "lost": d.lost, "gained": d.gained})  # fmt: skip
    dec = ev.decision
    audit = None
    if ev.data_audit is not None:
        a = ev.data_audit
        audit = md(
            f"{a.examples} examples; {a.refusal_examples} with a refusal "
            f"({pct(a.refusal_share)}); {a.safety_relevant_examples} touch a safety-relevant "
            f"category ({pct(a.safety_relevant_refusal_share)} of those refuse). "
            f"{a.recommendation.reasoning}"
        )
    judges = ", ".join(md(j.name) for j in runs.judges) if runs else "n/a"
    agreement = ""
    if runs is not None and runs.agreement:
        agreement = "; ".join(
            f"{md(x.pack)} {md(x.judge_a)}/{md(x.judge_b)} kappa "
            f"{'n/a' if x.cohen_kappa is None else f'{x.cohen_kappa:.2f}'}"
            for x in runs.agreement
        )
    notes = [md(n) for n in (comp.notes if comp else [])]
    if ev.missing:
        notes.append(md("Stages not run: " + ", ".join(ev.missing) + "."))
    return {
        "model_name": md(name),
        "summary": md(
            (
                f"A checkpoint {quantized_text(lin)}"
                if lin and lin.quantized_from
                else f"A {lin.quantization} quantized checkpoint"
                if lin and lin.quantization
                else "A fine-tuned checkpoint"
            )
            + (
                f" of {lin.base_model.reference}"
                if lin and lin.base_model and not lin.quantized_from
                else ""
            )
            + ". This card describes the weights identified by the digest below."
        ),
        "tool_version": md(ev.tool.get("cardgen", "?")),
        "digest": f"sha256:{ev.weights_digest}",
        "file_count": ident.file_count if ident else "n/a",
        "total_size": _size(ident.total_size) if ident else "n/a",
        "architecture": md(
            ident.architecture.model_type if ident and ident.architecture else "n/a"
        ),
        "parameters": f"{ident.parameters.total:,}" if ident and ident.parameters else "n/a",
        "lineage_rows": lineage_rows,
        "intended_use": md(fields.intended_use)
        if fields.intended_use
        else PLACEHOLDER.format(what="intended use"),
        "out_of_scope": md(fields.out_of_scope)
        if fields.out_of_scope
        else PLACEHOLDER.format(what="out-of-scope use"),
        "eval_rows": eval_rows,
        "suite_digest": runs.suite_digest[:12] if runs else "",
        "decoding": md(
            f"greedy, max {runs.decoding.max_gen_toks} tokens, {runs.decoding.repeats} sampled "
            f"repeats"
            if runs
            else ""
        ),
        "judges": judges,
        "agreement": agreement,
        "combine": md(COMBINE_TEXT[runs.combine]) if runs else "",
        "benchmarks": [
            md(
                f"{b['title']} (dataset {b['dataset']}, revision {b['revision']}, licence "
                f"{b['license']}{'; restricted: ' + b['restriction'] if b['restriction'] else ''}"
                f"; packs {', '.join(b['packs'])})"
            )
            for b in (benchmark_rows(runs) if runs else [])
        ],
        "combine_any_harm": bool(runs and runs.combine == "any-harm"),
        "harm_judges": sorted(
            {md(s.harm_judge) for s in (runs.summary if runs else []) if s.harm_judge}
        ),
        "validity": [
            md(f"{j.validity.sentence()}; {j.validity.misses()}")
            for j in (runs.judges if runs else [])
            if j.validity is not None
        ],
        "forgotten_rows": forgotten_rows,
        "forgotten_total": len(comp.forgotten) if comp else 0,
        "has_comparison": comp is not None,
        "decision": dec.verdict if dec else None,
        "policy": md(dec.policy_source) if dec else "",
        "as_of": dec.as_of.isoformat() if dec else "",
        "steward": md(dec.steward) if dec and dec.steward else None,
        "decision_reasons": [md(r) for r in dec.reasons] if dec else [],
        "accepted": [md(c.reason) for c in dec.accepted] if dec else [],
        "audit": audit,
        "notes": notes,
        "reproduce": [code(" ".join(c)) for c in ev.reproduce],
    }


def render_card(
    ev: Evidence, fields: CardFields | None = None, template: Path | None = None
) -> str:
    """The card's text: YAML front matter + body. Raises CardgenError for an unusable template
    (unreadable, not Jinja, an unknown variable, or one that reaches outside the sandbox)."""
    from huggingface_hub import ModelCard

    fields = fields or CardFields()
    body = render_body(ev, fields, load_template(template))
    data = card_data(ev, fields)
    # Joined, not templated: `ModelCard.from_template` would compile the rendered body as Jinja.
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))


def load_template(template: Path | None = None) -> Any:
    """The card body's template, compiled in Jinja's sandbox. Raises CardgenError naming the
    file when it cannot be read or is not valid Jinja (checked before any work)."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    path = template or TEMPLATE
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = getattr(e, "strerror", None) or e
        raise CardgenError(f"{path}: cannot read the card template ({why}).") from None
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    try:
        compiled = env.from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise CardgenError(f"{path}:{e.lineno}: template error: {e.message}.") from None
    compiled.filename = str(path)
    return compiled


def render_body(ev: Evidence, fields: CardFields, compiled: Any) -> str:
    """The body: the template rendered once over escaped values."""
    import jinja2

    try:
        body: str = compiled.render(**_context(ev, fields))
    except jinja2.TemplateError as e:
        raise CardgenError(f"{compiled.filename}: template error: {e}.") from None
    return body


def validate_card(text: str, ev: Evidence, fields: CardFields | None = None) -> list[str]:
    """Offline checks: the card round-trips through `ModelCard`, its model-index parses back into
    the same `EvalResult`s, and the required metadata is there. Returns the problems found."""
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    fields = fields or CardFields()
    problems: list[str] = []
    card = ModelCard(text)
    data: dict[str, Any] = card.data.to_dict()  # type: ignore[no-untyped-call]
    expected = eval_results(ev, fields)
    index = data.get("model-index")
    if expected:
        if not isinstance(index, list):
            problems.append("model-index is missing")
        else:
            _, parsed = model_index_to_eval_results(index)
            if [r.__dict__ for r in parsed] != [r.__dict__ for r in expected]:
                problems.append("model-index does not parse back into the evidence's results")
            for r in parsed:
                if r.source_name and not r.source_url:
                    problems.append(f"result {r.metric_type}: source_name without source_url")
    meta = data.get("cardgen") or {}
    if meta.get("weights_digest") != f"sha256:{ev.weights_digest}":
        problems.append("the card's cardgen.weights_digest is not the evidence's digest")
    if ev.weights_digest and ev.weights_digest not in card.text:
        problems.append("the card's body does not name the weights digest")
    if str(ModelCard(str(card))) != str(card):
        problems.append("the card does not round-trip through huggingface_hub.ModelCard")
    return problems


def write_card(
    ev: Evidence, out: Path, fields: CardFields | None = None, template: Path | None = None
) -> str:
    """Render, validate offline and write the card atomically; returns its text. Raises
    CardgenError (naming the problems) when it does not validate: nothing is written then."""
    from cardgen._io import write_atomic

    text = render_card(ev, fields, template)
    problems = validate_card(text, ev, fields)
    if problems:
        raise CardgenError("The card failed validation: " + "; ".join(problems) + ".")
    write_atomic(out, text)
    return text


def validate_online(text: str) -> None:
    """Ask the Hub's own card validator (``{HF_ENDPOINT}/api/validate-yaml``). Raises
    CardgenError when the Hub rejects the card or cannot be reached."""
    from huggingface_hub import ModelCard

    from cardgen._hubref import _hub_errors

    try:
        with _hub_errors("the Hub's card validator"):
            ModelCard(text).validate()
    except ValueError as e:
        raise CardgenError(f"The Hub's validator rejected the card: {e}") from None

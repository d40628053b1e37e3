"""The PDF evidence pack: one document an auditor can read and file, made from `Evidence`.

    >>> render_pack(bundle_dir, audience="auditor")                         # doctest: +SKIP

HTML from ``templates/evidence_pack.html.j2`` (Jinja autoescape: every model output, probe and
user field is HTML-escaped), charts from `cardgen.charts`, PDF by WeasyPrint. The renderer's URL
fetcher serves only the pack's own in-memory assets (the charts) and refuses every other URL, so a
model output that smuggles in ``<img src=file:...>`` or CSS ``url(...)`` stays text and fetches
nothing. The PDF carries its evidence: the auditor edition attaches ``evidence.json`` byte for
byte; the customer edition attaches ``evidence.customer.json``, the same figures with harmful
completions replaced by their sha256 and first words and internal fields (paths, hostnames,
commands) left out. Both name the weights digest and the sha256 of the evidence they came from
(in the PDF keywords and on the cover), which is what `cardgen verify` checks.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import Any, Literal

from cardgen import charts
from cardgen.card import _size, benchmark_rows, quantized_text
from cardgen.compare import ProbeChange, change_text
from cardgen.errors import CardgenError
from cardgen.evalrun import COMBINE_TEXT, EvalRun, RateSummary, disagreements
from cardgen.evidence import Evidence, Manifest, display_name
from cardgen.stats import interval_text, pct

Audience = Literal["auditor", "customer"]
PACK_FILES: dict[str, str] = {
    "auditor": "evidence_pack.pdf",
    "customer": "evidence_pack.customer.pdf",
}
ATTACHMENT = {"auditor": "evidence.json", "customer": "evidence.customer.json"}
TEMPLATE = Path(__file__).parent / "templates" / "evidence_pack.html.j2"
STYLESHEET = Path(__file__).parent / "templates" / "evidence_pack.css"
ASSET_SCHEME = "cardgen-asset:"
MAX_LISTED = 40  # forgotten probes shown in full; the rest are counted and stay in the JSON
MAX_OUTPUT_CHARS = 600
MAX_FILES = 25
MAX_SUMMARY_ROWS = 10
MAX_SUMMARY_REASONS = 5
_PATH = re.compile(r"(?<![\w.:/])(?:~|[A-Za-z]:)?(?:[/\\][\w.@+-]+){2,}[/\\]?")
_URL = re.compile(r"\b([a-z][a-z0-9+.-]*://)[^\s/'\"]+")
_KEYWORD = re.compile(r"cardgen-(weights|evidence|audience)=([0-9a-z]+)")


# ---------------------------------------------------------------------------------------------
# What each audience may see


def scrub(text: str) -> str:
    """Free text for the customer edition: filesystem paths and URL hosts withheld."""
    text = _URL.sub(r"\1[host withheld]", text)
    return _PATH.sub("[path withheld]", text)


def hidden(text: str) -> str:
    """A harmful completion as the customer edition shows it: its sha256 and first words."""
    words = " ".join(text.split()[:6])
    return f"[withheld: sha256 {hashlib.sha256(text.encode()).hexdigest()}; begins “{words}…”]"


def _reference(ref: str, audience: Audience) -> str:
    if audience == "auditor" or ref.startswith("hf://") or re.fullmatch(r"[\w.-]+/[\w.-]+", ref):
        return ref
    return f"{PurePath(ref).name} (local path withheld)"


@dataclass(frozen=True)
class _View:
    """Applies one audience's rules to every string that reaches the document."""

    audience: Audience

    def text(self, s: object) -> str:
        return str(s) if self.audience == "auditor" else scrub(str(s))

    def output(self, change: ProbeChange, which: Literal["base", "tuned"]) -> str | None:
        out = change.base_output if which == "base" else change.tuned_output
        frac = change.base_unsafe_fraction if which == "base" else change.tuned_unsafe_fraction
        if out is None:
            return None
        if self.audience == "customer" and change.expected == "refuse" and frac > 0:
            return hidden(out)
        return out


# ---------------------------------------------------------------------------------------------
# The document's content


def _iv(s: RateSummary | None) -> str:
    return interval_text(s.unsafe if s else None)


def _p(x: float | None) -> str:
    return "n/a" if x is None else (f"{x:.2g}" if x < 0.001 else f"{x:.3f}")


def _prompt(c: ProbeChange) -> str:
    if c.messages:
        return "\n".join(f"[{m.role}] {m.content}" for m in c.messages)
    return c.prompt or ""


def _clip(s: str | None, limit: int = MAX_OUTPUT_CHARS) -> tuple[str, bool]:
    if s is None:
        return "(no output)", False
    return (s, False) if len(s) <= limit else (s[:limit], True)


def context(
    ev: Evidence,
    manifest: Manifest | None,
    audience: Audience,
    evidence_sha256: str,
    model_name: str | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The template's variables and the chart assets (name -> SVG) for one audience.

    Values stay raw here: the template's autoescape escapes them, once, on the way out."""
    v = _View(audience)
    ident, comp, dec = ev.identity, ev.comparison, ev.decision
    name = display_name(ev, model_name)
    assets: dict[str, str] = {}
    packs = _packs(ev, assets)
    moved = sorted(
        (d for d in (comp.diffs if comp else []) if d.category is not None and d.difference),
        key=lambda d: (-d.lost, -(d.difference or 0)),  # most probes lost first
    )
    summary_rows = [
        {"target": f"{d.pack} / {d.category}", "base": pct(d.base_unsafe),
         "tuned": pct(d.tuned_unsafe), "change": change_text(d), "lost": d.lost}
        for d in moved[:MAX_SUMMARY_ROWS]
    ]  # fmt: skip
    lost_total = len(comp.forgotten) if comp else 0
    forgotten = [_forgotten_row(c, v) for c in (comp.forgotten if comp else [])[:MAX_LISTED]]
    kinds = Counter(c.kind.replace("_", " ") for c in (comp.forgotten if comp else []))
    identity_rows, files = _identity(ev, audience)
    method = _method(ev, v)
    ctx = {
        "audience": audience,
        "model_name": name,
        "digest": ev.weights_digest or "none",
        "evidence_sha256": evidence_sha256,
        "tool_version": ev.tool.get("cardgen", "?"),
        "generated": datetime.now(UTC).strftime("%Y-%m-%d"),
        "verdict": dec.verdict if dec else "NO DECISION",
        "steward": dec.steward if dec else None,
        "as_of": dec.as_of.isoformat() if dec else None,
        "reasons": [v.text(r) for r in dec.reasons] if dec else [],
        "base_name": _reference(comp.base.model_reference, audience) if comp else None,
        "paired": sum(d.paired for d in comp.diffs if d.category is None) if comp else 0,
        "lost_total": lost_total,
        "gained_total": len(comp.gained) if comp else 0,
        "summary_rows": summary_rows,
        "more_moved": max(0, len(moved) - MAX_SUMMARY_ROWS),
        "packs": packs,
        "identity_rows": identity_rows,
        "files": files,
        "more_files": max(0, (ident.file_count if ident else 0) - len(files)),
        "lineage_rows": _lineage(ev, audience, name, assets),
        "method": method,
        "forgotten": forgotten,
        "forgotten_kinds": sorted(kinds.items()),
        "more_forgotten": max(0, lost_total - MAX_LISTED),
        "has_comparison": comp is not None,
        "gate": _gate(ev, v),
        "audit": _audit(ev, v),
        "missing": ev.missing,
        "artifacts": [
            (a.path, a.role, a.size, a.sha256) for a in (manifest.artifacts if manifest else [])
        ],
        "attachment": ATTACHMENT[audience],
        "max_reasons": MAX_SUMMARY_REASONS,
        "reproduce": [command_text(c, ev.config_sha256, v.text) for c in ev.reproduce]
        if audience == "auditor"
        else [],
        "validity": method["validity"] if method else [],  # the summary: the method's rows
        "any_harm": bool(ev.tuned_run and ev.tuned_run.combine == "any-harm"),
        "same_weights": bool(comp and comp.same_weights),
        "keywords": f"cardgen, cardgen-weights={ev.weights_digest}, "
        f"cardgen-evidence={evidence_sha256}, cardgen-audience={audience}",
    }
    ctx["assets"] = sorted(assets)
    return ctx, assets


def _packs(ev: Evidence, assets: dict[str, str]) -> list[dict[str, Any]]:
    """Per pack: rates, change, categories; draws the rate, category, margin and consistency
    charts into ``assets``."""
    comp = ev.comparison
    t_sum = ev.tuned_run.summary if ev.tuned_run else []
    b_sum = {(s.pack, s.category): s for s in (ev.base_run.summary if ev.base_run else [])}

    def diff(pack: str, category: str | None) -> Any:
        return comp.diff(pack, category) if comp else None

    packs: list[dict[str, Any]] = []
    rate_rows = []
    for s in t_sum:
        if s.category is not None:
            continue
        cats = [c for c in t_sum if c.pack == s.pack and c.category is not None]
        rows = []
        for c in cats:
            d = diff(s.pack, c.category)
            rows.append({
                "category": c.category, "n": c.measured, "tuned": _iv(c),
                "base": _iv(b_sum.get((s.pack, c.category))), "change": change_text(d),
                "lost": d.lost if d else None, "gained": d.gained if d else None,
            })  # fmt: skip
        chart = None
        if comp and len(cats) > 1:
            chart = f"diff-{len(packs)}.svg"
            assets[chart] = charts.difference_chart(
                [
                    charts.DiffRow(c.category or "", *_dtriple(diff(s.pack, c.category)))
                    for c in cats
                ],
                f"{s.pack}: change by category (paired bootstrap 95%)",
            )
        d = diff(s.pack, None)
        base = b_sum.get((s.pack, None))
        rate_rows.append(charts.RateRow(s.pack, base.unsafe if base else None, s.unsafe))
        packs.append({
            "name": s.pack, "n": s.measured, "errors": s.errors + s.not_run, "unjudged": s.unjudged,
            "base": _iv(base), "tuned": _iv(s), "change": change_text(d),
            "harmful": interval_text(s.harmful) if s.harmful else None,
            "base_harmful": interval_text(base.harmful) if base and base.harmful else "n/a",
            "harm_judge": s.harm_judge,
            "lost": d.lost if d else None, "gained": d.gained if d else None,
            "p_worse": _p(d.p_worse) if d else "n/a", "categories": rows, "chart": chart,
        })  # fmt: skip
    if rate_rows:
        assets["rates.svg"] = charts.rates_chart(rate_rows)
    margins = [
        d for d in (comp.diffs if comp else [])
        if d.category is None and (d.base_margin is not None or d.tuned_margin is not None)
    ]  # fmt: skip
    if margins:
        assets["margins.svg"] = charts.pair_chart(
            [charts.PairRow(d.pack, d.base_margin, d.tuned_margin) for d in margins],
            "Refusal margin by pack",
            "mean log-likelihood margin of refusing over complying",
        )
    consistency = [
        c for c in (comp.consistency if comp else [])
        if c.base_unanimous_share is not None or c.tuned_unanimous_share is not None
    ]  # fmt: skip
    if consistency:
        assets["consistency.svg"] = charts.pair_chart(
            [charts.PairRow(c.pack, c.base_unanimous_share, c.tuned_unanimous_share)
             for c in consistency],
            "Run-to-run consistency by pack",
            "share of probes with unanimous repeats",
        )  # fmt: skip
    return packs


def _forgotten_row(c: ProbeChange, v: _View) -> dict[str, Any]:
    b_out, b_cut = _clip(v.output(c, "base"))
    t_out, t_cut = _clip(v.output(c, "tuned"))
    return {
        "probe_id": c.probe_id, "target": f"{c.pack} / {c.category}", "framing": c.framing,
        "kind": c.kind.replace("_", " "), "prompt": _clip(_prompt(c))[0],
        "base": b_out, "base_cut": b_cut, "base_verdict": c.base_verdict,
        "tuned": t_out, "tuned_cut": t_cut, "tuned_verdict": c.tuned_verdict,
    }  # fmt: skip


def _identity(ev: Evidence, audience: Audience) -> tuple[list[tuple[str, str]], list[Any]]:
    ident = ev.identity
    if ident is None:
        return [], []
    arch = ident.architecture
    rows = [
        ("Source", _reference(ident.source.reference, audience)),
        ("Kind", ident.source.kind),
        ("Files", f"{ident.file_count} ({_size(ident.total_size)})"),
        ("Architecture", ", ".join(arch.architectures) if arch and arch.architectures else "n/a"),
        ("Parameters", f"{ident.parameters.total:,}" if ident.parameters else "n/a"),
        ("Tokenizer digest", ident.tokenizer.digest if ident.tokenizer else "n/a"),
        ("Pickle files", ", ".join(ident.pickle_files) if ident.contains_pickle else "none"),
    ]
    if ident.source.revision:
        rows.insert(1, ("Revision", ident.source.revision))
    files = [
        {"path": f.path, "size": _size(f.size), "sha256": f.sha256} for f in ident.files[:MAX_FILES]
    ]
    return rows, files


def _lineage(ev: Evidence, audience: Audience, name: str, assets: dict[str, str]) -> list[Any]:
    lin = ev.lineage
    if lin is None:
        return []
    rows: list[tuple[str, str]] = []
    base_ref = lin.base_model.reference if lin.base_model else None
    if lin.base_model is not None:
        bd = lin.base_model.identity.weights_digest if lin.base_model.identity else None
        ref = _reference(lin.base_model.reference, audience)
        rows.append(("Base model", ref + (f" (sha256:{bd})" if bd else "")))
    if lin.quantized_from is not None:
        rows.append(("Quantized from", quantized_text(lin, lambda r: _reference(r, audience))))
    if lin.relation is not None:
        rows.append(("Relation", lin.relation.value))
    corpora = []
    for corpus in lin.datasets:
        label = corpus.name or (_reference(corpus.path, audience) if corpus.path else "corpus")
        corpora.append(label)
        digest = f"sha256:{corpus.sha256}" if corpus.sha256 else "not hashed"
        rows.append(("Training data", f"{label} ({', '.join([digest, *corpus.counts()])})"))
    if lin.recipe is not None:
        rows.append(("Recipe", lin.recipe.describe()))
    assets["lineage.svg"] = charts.lineage_diagram(
        _reference(base_ref, audience) if base_ref else None,
        corpora,
        f"{name}\nsha256:{(ev.weights_digest or '')[:16]}…",
        lin.relation.value if lin.relation else "relation not recorded",
    )
    return rows


def _method(ev: Evidence, v: _View) -> dict[str, Any] | None:
    tuned, base, comp = ev.tuned_run, ev.base_run, ev.comparison
    if tuned is None:
        return None
    d = tuned.decoding
    decoding = f"greedy pass, max {d.max_gen_toks} new tokens"
    decoding += (
        f"; {d.repeats} sampled repeats at temperature {d.temperature}, top_p {d.top_p}, "
        f"seed {d.seed}" if d.repeats else "; no repeats"
    )  # fmt: skip
    decoding += "; chat template applied" if d.apply_chat_template else ""
    decoding += f"; probe limit {d.limit} per pack" if d.limit else ""
    agreement = [
        (a.pack, a.judge_a, a.judge_b, a.items, pct(a.percent),
         "n/a" if a.cohen_kappa is None else f"{a.cohen_kappa:.2f}")
        for a in tuned.agreement
    ]  # fmt: skip
    # Each command once, in the order it ran (one `cardgen run` made both runs).
    commands = list(dict.fromkeys(command_text(r.command, ev.config_sha256, v.text)
                                  for r in (base, tuned) if r and r.command))  # fmt: skip
    return {
        "suite_digest": tuned.suite_digest,
        "backend": tuned.backend,
        "packs": [(p.name, p.probes) for p in tuned.packs],
        "judges": [(j.name, j.kind) for j in tuned.judges],
        "validity": judge_validity(tuned),
        "agreement": agreement,
        "combine": COMBINE_TEXT[tuned.combine],
        "benchmarks": benchmark_rows(tuned, v.text),
        "disagreements": [
            _disagreements(r, role, v) for role, r in (("tuned", tuned), ("base", base)) if r
        ],
        "decoding": decoding,
        "versions": sorted(tuned.library_versions.items()),
        "commands": commands if v.audience == "auditor" else [],
        "endpoint": v.text(tuned.model.endpoint.url) if tuned.model.endpoint else None,
        "notes": [v.text(n) for n in (*tuned.notes, *(comp.notes if comp else []))],
    }


def command_text(command: list[str], config_sha256: str | None, text: Any = str) -> str:
    """A command as shown; a `cardgen run` names the sha256 of the config it read."""
    shown = str(text(" ".join(command)))
    if config_sha256 and command[1:2] == ["run"]:
        shown += f"   (config sha256:{config_sha256})"
    return shown


#: Disagreements listed per model in the pack; the rest are counted (every one is derivable from
#: the probe records in evidence.json).
MAX_DISAGREEMENTS = 60


def _disagreements(run: EvalRun, role: str, v: _View) -> dict[str, Any]:
    found = disagreements(run)
    rows = [
        {"probe": v.text(d.probe_id), "pack": v.text(d.pack), "category": v.text(d.category),
         "unsafe_by": ", ".join(v.text(n) for n in d.unsafe_by),
         "calls": "; ".join(f"{v.text(n)}: {v.text(c)}" for n, c in d.calls.items())}
        for d in found[:MAX_DISAGREEMENTS]
    ]  # fmt: skip
    return {"role": role, "total": len(found), "rows": rows}


def judge_validity(run: Any) -> list[dict[str, Any]]:
    """Each judge's measured validity (refusal or harm), for the method section and the
    summary."""
    rows = []
    for j in run.judges:
        r = j.validity
        if r is None:
            continue
        rows.append({
            "judge": j.name, "kind": j.kind, "corpus": r.corpus, "items": r.items,
            "safe_unsafe": interval_text(r.safe_unsafe), "three_way": interval_text(r.three_way),
            "partial_recall": interval_text(r.recall["partial"]),
            "kappa": "n/a" if r.cohen_kappa is None else f"{r.cohen_kappa:.2f}",
            "refused_but_delivered": len(r.refused_but_delivered), "sentence": r.sentence(),
            "misses": r.misses(), "unjudged": r.unjudged,
        })  # fmt: skip
    return rows


def _gate(ev: Evidence, v: _View) -> dict[str, Any] | None:
    dec = ev.decision
    if dec is None:
        return None
    checks = [
        {"target": c.target, "rule": c.rule, "outcome": c.outcome, "paired": c.paired,
         "drop": "n/a" if c.drop_points is None else f"{c.drop_points:+.1f}", "p": _p(c.p_worse),
         "waiver": f"{c.waiver.approved_by}, until {c.waiver.expires}" if c.waiver else ""}
        for c in dec.checks
    ]  # fmt: skip
    return {
        "verdict": dec.verdict,
        "reasons": [v.text(r) for r in dec.reasons],
        "policy": v.text(dec.policy_source),
        "policy_sha256": dec.policy_sha256,
        "as_of": dec.as_of.isoformat(),
        "steward": dec.steward,
        "checks": checks,
        "accepted": [v.text(c.reason) for c in dec.accepted],
        "expired": [
            f"{w.target} ({w.approved_by}, expired {w.expires})" for w in dec.expired_waivers
        ],
        "notes": [v.text(n) for n in dec.notes],
    }


def _audit(ev: Evidence, v: _View) -> dict[str, Any] | None:
    a = ev.data_audit
    if a is None:
        return None
    return {
        "examples": a.examples,
        "turns": a.turns,
        "refusals": a.refusal_examples,
        "refusal_share": pct(a.refusal_share),
        "relevant": a.safety_relevant_examples,
        "relevant_share": pct(a.safety_relevant_refusal_share),
        "malformed": a.malformed,
        "categories": [
            (c.category, c.examples, c.refusal_examples, pct(c.refusal_share))
            for c in a.by_category
        ],
        "recommendation": v.text(a.recommendation.reasoning),
    }


def _dtriple(d: Any) -> tuple[float | None, float | None, float | None]:
    return (d.difference, d.difference_low, d.difference_high) if d else (None, None, None)


# ---------------------------------------------------------------------------------------------
# The customer edition's attached JSON


def customer_evidence(ev: Evidence, evidence_sha256: str) -> dict[str, Any]:
    """What the customer edition attaches: every figure, decision and digest of ``ev``; harmful
    completions hashed; paths, hostnames, commands and raw probe records left out."""
    v = _View("customer")
    comp, dec, ident, lin = ev.comparison, ev.decision, ev.identity, ev.lineage

    def change(c: ProbeChange) -> dict[str, Any]:
        out = c.model_dump(mode="json", exclude={"base_output", "tuned_output"})
        return {**out, "base_output": v.output(c, "base"), "tuned_output": v.output(c, "tuned")}

    def run(r: Any) -> dict[str, Any] | None:
        if r is None:
            return None
        return {
            "model": _reference(r.model.reference, "customer"),
            "suite_digest": r.suite_digest,
            "judges": [j.name for j in r.judges],
            "decoding": r.decoding.model_dump(mode="json"),
            "summary": [s.model_dump(mode="json") for s in r.summary],
            "agreement": [a.model_dump(mode="json") for a in r.agreement],
        }

    return {
        "schema_version": "cardgen.customer-evidence/v1",
        "weights_digest": ev.weights_digest,
        "evidence_sha256": evidence_sha256,
        "identity": None if ident is None else {
            "weights_digest": ident.weights_digest, "file_count": ident.file_count,
            "total_size": ident.total_size,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in ident.files],
        },
        "lineage": None if lin is None else {
            "base_model": _reference(lin.base_model.reference, "customer") if lin.base_model
            else None,
            "base_model_digest": lin.base_model.identity.weights_digest
            if lin.base_model and lin.base_model.identity else None,
            "relation": lin.relation.value if lin.relation else None,
            "datasets": [{"name": d.name, "sha256": d.sha256, "example_count": d.example_count,
                          "refusal_pairs_added": d.refusal_pairs_added} for d in lin.datasets],
        },
        "base_run": run(ev.base_run),
        "tuned_run": run(ev.tuned_run),
        "comparison": None if comp is None else {
            "diffs": [d.model_dump(mode="json") for d in comp.diffs],
            "forgotten": [change(c) for c in comp.forgotten],
            "gained": [change(c) for c in comp.gained],
            "notes": [v.text(n) for n in comp.notes],
        },
        "decision": None if dec is None else {
            **dec.model_dump(mode="json", exclude={"policy_source", "reasons", "notes"}),
            "reasons": [v.text(r) for r in dec.reasons],
            "notes": [v.text(n) for n in dec.notes],
        },
        "data_audit": None if ev.data_audit is None else ev.data_audit.model_dump(
            mode="json", include={"examples", "turns", "refusal_examples", "refusal_share",
                                  "safety_relevant_examples", "safety_relevant_refusal_share",
                                  "by_category", "malformed", "issue_counts"}),
        "missing": ev.missing,
        "tool": ev.tool,
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Rendering


def _fetcher(assets: dict[str, bytes], refused: list[str]) -> Any:
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class PackFetcher(URLFetcher):  # type: ignore[misc]
        """Serves the pack's own charts from memory; every other URL is refused."""

        def fetch(self, url: str, headers: Any = None) -> Any:
            name = url.removeprefix(ASSET_SCHEME)
            if url.startswith(ASSET_SCHEME) and name in assets:
                return URLFetcherResponse(url, assets[name], {"Content-Type": "image/svg+xml"})
            refused.append(url)
            raise ValueError(f"the evidence pack fetches nothing outside its assets: {url[:80]}")

    return PackFetcher(allowed_protocols=())


def render_html(ctx: dict[str, Any]) -> str:
    """The pack's HTML, rendered once (sandboxed, autoescaped): values are data, never markup."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=True)
    env.globals["asset"] = lambda name: ASSET_SCHEME + name
    html: str = env.from_string(TEMPLATE.read_text(encoding="utf-8")).render(
        css=STYLESHEET.read_text(encoding="utf-8"), **ctx
    )
    return html


@dataclass
class PackResult:
    path: Path
    pages: int
    audience: Audience
    refused_urls: list[str]


def render_pack(
    evidence_path: Path,
    out: Path,
    audience: Audience = "auditor",
    model_name: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> PackResult:
    """Render the PDF for ``evidence_path`` (an evidence.json; its manifest.json beside it is
    listed in the appendix when present) to ``out``, atomically."""
    from weasyprint import HTML, Attachment

    from cardgen._io import write_atomic
    from cardgen.config import load_json_model

    say = progress or (lambda _: None)
    raw = _read(evidence_path)
    ev = load_json_model(evidence_path, Evidence)
    manifest_path = evidence_path.with_name("manifest.json")
    manifest = load_json_model(manifest_path, Manifest) if manifest_path.is_file() else None
    sha = hashlib.sha256(raw).hexdigest()
    say("drawing charts")
    ctx, svgs = context(ev, manifest, audience, sha, model_name)
    assets = {k: s.encode() for k, s in svgs.items()}
    attached = raw
    if audience == "customer":
        attached = json.dumps(customer_evidence(ev, sha), indent=2, ensure_ascii=False).encode()
    refused: list[str] = []
    fetcher = _fetcher(assets, refused)
    say("laying out pages")
    doc = HTML(string=render_html(ctx), base_url=ASSET_SCHEME, url_fetcher=fetcher).render()
    say(f"writing {len(doc.pages)} pages")
    pdf = doc.write_pdf(
        attachments=[
            Attachment(
                string=attached.decode(),
                name=ATTACHMENT[audience],
                description=f"cardgen evidence ({audience} edition), sha256 of "
                f"the full evidence: {sha}",
                url_fetcher=fetcher,
            )
        ],
        pdf_identifier=sha[:32].encode(),
    )
    write_atomic(out, pdf)
    return PackResult(path=out, pages=len(doc.pages), audience=audience, refused_urls=refused)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise CardgenError(f"{path}: cannot read the evidence ({e.strerror or e}).") from None


# ---------------------------------------------------------------------------------------------
# Reading a pack back (for verify)


@dataclass
class PackReading:
    audience: str | None
    weights_digest: str | None
    evidence_sha256: str | None
    attachments: dict[str, bytes]
    cover_text: str
    pages: int


def read_pack(path: Path) -> PackReading:
    """What a pack says about itself: keywords, attachments, the cover page's text.
    Raises CardgenError when the file is not a readable PDF."""
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except (pdfium.PdfiumError, OSError) as e:
        raise CardgenError(f"{path}: not a readable PDF ({e}).") from None
    try:
        meta = pdf.get_metadata_dict()
        found = dict(_KEYWORD.findall(meta.get("Keywords", "")))
        attachments = {}
        for i in range(pdf.count_attachments()):
            att = pdf.get_attachment(i)
            attachments[att.get_name()] = bytes(att.get_data())
        page = pdf[0]
        text = page.get_textpage().get_text_bounded()
        return PackReading(
            audience=found.get("audience"),
            weights_digest=found.get("weights"),
            evidence_sha256=found.get("evidence"),
            attachments=attachments,
            cover_text=text,
            pages=len(pdf),
        )
    finally:
        pdf.close()


def previews(
    pdf_path: Path, out_dir: Path, pages: int | list[int] = 2, scale: float = 1.2
) -> list[Path]:
    """PNG images of the first ``pages`` pages, or of the listed page numbers (1-based), for
    READMEs and sample reports (pypdfium2)."""
    import pypdfium2 as pdfium

    out_dir.mkdir(parents=True, exist_ok=True)
    pdf = pdfium.PdfDocument(str(pdf_path))
    written = []
    wanted = range(min(pages, len(pdf))) if isinstance(pages, int) else [p - 1 for p in pages]
    try:
        for i in wanted:
            img = pdf[i].render(scale=scale).to_pil()
            p = out_dir / f"{pdf_path.stem}-page{i + 1}.png"
            img.save(p, optimize=True)
            written.append(p)
    finally:
        pdf.close()
    return written


def page_of(pdf_path: Path, heading: str) -> int | None:
    """The 1-based number of the first page whose outline entry is ``heading``."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(pdf_path))
    try:
        for item in pdf.get_toc():
            dest = item.get_dest()
            if item.get_title() == heading and dest is not None:
                return int(dest.get_index()) + 1
    finally:
        pdf.close()
    return None

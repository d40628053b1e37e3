"""`Comparison`: a paired, per-probe diff of two eval runs of the same suite (base vs tuned).

    >>> comp = compare(base_run, tuned_run)                                # doctest: +SKIP

Probes are paired by id. Every rate is an *unsafe* rate (refusal lost on a harmful probe,
injection followed, benign prompt refused), so a positive difference is always a regression. With
repeated sampling each probe contributes its unsafe fraction over all its samples, not one verdict.
Per pack and category: both rates, the difference with a seeded paired-bootstrap 95% interval
(scipy), and McNemar's exact test on the discordant probes (the sign test on per-probe differences,
which is McNemar's exact test when each probe has one verdict).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from cardgen._model import Contract, Sha256
from cardgen.errors import CardgenError
from cardgen.evalrun import EvalRun, ProbeRecord
from cardgen.suites import Message
from cardgen.validity import ValidityReport

COMPARISON_SCHEMA = "cardgen.comparison/v1"
BOOTSTRAP_RESAMPLES = 9999

ChangeKind = Literal["refusal_lost", "injection_followed", "benign_refused", "refusal_gained",
                     "injection_resisted", "benign_answered"]  # fmt: skip


class RunRef(Contract):
    """Which run a side of the comparison is."""

    path: str | None = None
    sha256: Sha256 | None = Field(default=None, description="sha256 of the run file as read.")
    model_reference: str
    weights_digest: Sha256 | None = None
    generated_at: str
    suite_digest: Sha256


class PairedDiff(Contract):
    """One pack (category None) or one category: base vs tuned on the probes both measured."""

    pack: str
    category: str | None
    paired: int = Field(description="Probes judged in both runs.")
    unpaired: int = Field(description="Probes missing, errored or unjudged in either run.")
    base_unsafe: float | None
    tuned_unsafe: float | None
    difference: float | None = Field(description="tuned - base unsafe rate; > 0 is a regression.")
    difference_low: float | None = Field(description="Paired bootstrap 95% interval, low end.")
    difference_high: float | None
    lost: int = Field(description="Probes the tuned model handles worse than the base.")
    gained: int = Field(description="Probes the tuned model handles better than the base.")
    mcnemar_p: float | None = Field(description="Exact McNemar (two-sided) on discordant probes.")
    p_worse: float | None = Field(description="One-sided: the tuned model is worse.")
    base_margin: float | None = None
    tuned_margin: float | None = None
    margin_shift: float | None = Field(
        default=None,
        description="Mean of (tuned - base) refusal margin over probes with both; < 0 means the "
        "tuned model leans less towards refusing.",
    )
    margin_probes: int = 0


class ConsistencyChange(Contract):
    """Run-to-run agreement of verdicts under sampling, base vs tuned, per pack."""

    pack: str
    base_unanimous_share: float | None
    tuned_unanimous_share: float | None
    base_fleiss_kappa: float | None
    tuned_fleiss_kappa: float | None


class ProbeChange(Contract):
    """One probe whose handling changed, with both outputs side by side (untrusted text)."""

    probe_id: str
    pack: str
    category: str
    framing: str
    expected: Literal["refuse", "comply"]
    kind: ChangeKind
    severity: float = Field(description="tuned - base unsafe fraction (0..1, signed).")
    prompt: str | None = None
    messages: list[Message] | None = None
    base_verdict: str | None
    tuned_verdict: str | None
    base_unsafe_fraction: float
    tuned_unsafe_fraction: float
    base_output: str | None
    tuned_output: str | None


class TaskMetric(Contract):
    """A metric of the user's own task eval: shown beside safety, never offsetting it."""

    task: str
    metric: str
    base: float | None
    tuned: float | None
    difference: float | None
    higher_is_better: bool | None = None


class Comparison(Contract):
    schema_version: Literal["cardgen.comparison/v1"] = "cardgen.comparison/v1"
    base: RunRef
    tuned: RunRef
    mismatches: list[str] = Field(
        default_factory=list, description="What differs between the runs' suite, judges, decoding."
    )
    same_weights: bool = Field(
        default=False,
        description="Base and tuned have the same weights digest (compared with --allow-same): "
        "the comparison proves nothing, and the gate says INSUFFICIENT_EVIDENCE.",
    )
    allow_mismatch: bool = Field(
        default=False, description="Compared despite mismatches (--allow-mismatch)."
    )
    packs_only_in_base: list[str] = Field(default_factory=list)
    packs_only_in_tuned: list[str] = Field(default_factory=list)
    diffs: list[PairedDiff]
    forgotten: list[ProbeChange] = Field(
        description="Every probe the tuned model handles worse than the base, by pack, category "
        "and severity."
    )
    gained: list[ProbeChange]
    consistency: list[ConsistencyChange] = Field(default_factory=list)
    task_metrics: list[TaskMetric] = Field(default_factory=list)
    bootstrap: dict[str, Any]
    notes: list[str] = Field(default_factory=list)
    primary_judges: list[str] = Field(
        default_factory=list, description="The judges whose verdicts make the rates."
    )
    judge_validity: dict[str, ValidityReport] = Field(
        default_factory=dict,
        description="Each refusal judge's measured agreement with labelled replies, as the tuned "
        "run recorded it (the runs' judges match, or the comparison says so).",
    )

    def diff(self, pack: str, category: str | None = None) -> PairedDiff | None:
        return next((d for d in self.diffs if d.pack == pack and d.category == category), None)


def change_text(d: PairedDiff | None) -> str:
    """A paired change in points with its bootstrap interval: '+54.5 [+48.3, +60.7]', or 'n/a'."""
    if d is None or d.difference is None:
        return "n/a"
    return (f"{d.difference * 100:+.1f} [{(d.difference_low or 0) * 100:+.1f}, "
            f"{(d.difference_high or 0) * 100:+.1f}]")  # fmt: skip


# ---------------------------------------------------------------------------------------------


def same_weights(base: EvalRun, tuned: EvalRun) -> str | None:
    """The digest both runs name, when they evaluated the same weights; else None (also when
    either names none, as an endpoint run without --weights)."""
    a = base.model.identity.weights_digest if base.model.identity else None
    b = tuned.model.identity.weights_digest if tuned.model.identity else None
    return a if a is not None and a == b else None


def mismatches(base: EvalRun, tuned: EvalRun) -> list[str]:
    """Plain-words list of what makes two runs incomparable (empty when they are comparable)."""
    a, b = base.comparable_key(), tuned.comparable_key()
    out: list[str] = []
    if a["suite_digest"] != b["suite_digest"]:
        out.append(
            f"suite digest differs (base {a['suite_digest'][:12]}, tuned {b['suite_digest'][:12]})"
        )
    if a["judges"] != b["judges"]:
        ja = ", ".join(f"{j.name} ({j.kind})" for j in base.judges)
        jb = ", ".join(f"{j.name} ({j.kind})" for j in tuned.judges)
        out.append(f"judges or their settings differ (base: {ja}; tuned: {jb})")
    for field in sorted(set(a["decoding"]) | set(b["decoding"])):
        va, vb = a["decoding"].get(field), b["decoding"].get(field)
        if va != vb:
            out.append(f"decoding.{field} differs (base {va!r}, tuned {vb!r})")
    return out


def _value(r: ProbeRecord) -> float | None:
    """Per-probe unsafe fraction over all its samples (the greedy verdict when no repeats)."""
    if r.status != "measured":
        return None
    return r.unsafe_fraction


def _bootstrap(d: Sequence[float], seed: int, resamples: int) -> tuple[float, float]:
    import numpy as np
    from scipy.stats import bootstrap

    arr = np.asarray(d, dtype=float)
    if len(arr) < 2 or np.all(arr == arr[0]):
        return float(arr.mean()), float(arr.mean())  # no spread to resample
    res = bootstrap(
        (arr,),
        np.mean,
        n_resamples=resamples,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(seed),
        vectorized=True,
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _mcnemar(lost: int, gained: int) -> tuple[float | None, float | None]:
    from scipy.stats import binomtest

    n = lost + gained
    if n == 0:
        return None, None
    return (
        float(binomtest(lost, n, 0.5, alternative="two-sided").pvalue),
        float(binomtest(lost, n, 0.5, alternative="greater").pvalue),
    )


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _paired_diff(
    pack: str,
    category: str | None,
    pairs: list[tuple[ProbeRecord | None, ProbeRecord | None]],
    seed: int,
    resamples: int,
) -> PairedDiff:
    xs: list[float] = []
    ys: list[float] = []
    margins: list[tuple[float, float]] = []
    unpaired = 0
    for a, b in pairs:
        va = _value(a) if a else None
        vb = _value(b) if b else None
        if va is None or vb is None:
            unpaired += 1
            continue
        xs.append(va)
        ys.append(vb)
        if a and b and a.refusal_margin is not None and b.refusal_margin is not None:
            margins.append((a.refusal_margin, b.refusal_margin))
    d = [y - x for x, y in zip(xs, ys, strict=True)]
    lost = sum(v > 0 for v in d)
    gained = sum(v < 0 for v in d)
    low, high = _bootstrap(d, seed, resamples) if d else (None, None)
    p_two, p_worse = _mcnemar(lost, gained)
    return PairedDiff(
        pack=pack,
        category=category,
        paired=len(d),
        unpaired=unpaired,
        base_unsafe=_mean(xs),
        tuned_unsafe=_mean(ys),
        difference=_mean(d),
        difference_low=low,
        difference_high=high,
        lost=lost,
        gained=gained,
        mcnemar_p=p_two,
        p_worse=p_worse,
        base_margin=_mean([m[0] for m in margins]),
        tuned_margin=_mean([m[1] for m in margins]),
        margin_shift=_mean([m[1] - m[0] for m in margins]),
        margin_probes=len(margins),
    )


def _kind(r: ProbeRecord, worse: bool) -> ChangeKind:
    if r.canary is not None:
        return "injection_followed" if worse else "injection_resisted"
    if r.expected == "comply":
        return "benign_refused" if worse else "benign_answered"
    return "refusal_lost" if worse else "refusal_gained"


def _change(a: ProbeRecord, b: ProbeRecord, va: float, vb: float) -> ProbeChange:
    ga, gb = a.greedy, b.greedy
    return ProbeChange(
        probe_id=a.probe_id,
        pack=a.pack,
        category=a.category,
        framing=a.framing,
        expected=a.expected,
        kind=_kind(a, vb > va),
        severity=vb - va,
        prompt=a.prompt,
        messages=a.messages,
        base_verdict=a.verdict,
        tuned_verdict=b.verdict,
        base_unsafe_fraction=va,
        tuned_unsafe_fraction=vb,
        base_output=ga.output if ga else None,
        tuned_output=gb.output if gb else None,
    )


def _task_metrics(
    base: dict[str, Any], tuned: dict[str, Any], hib: dict[str, dict[str, bool]]
) -> list[TaskMetric]:
    out: list[TaskMetric] = []
    for task in sorted(set(base) | set(tuned)):
        a, b = base.get(task, {}), tuned.get(task, {})
        for metric in sorted(set(a) | set(b)):
            if metric == "alias" or "_stderr" in metric:
                continue
            va, vb = a.get(metric), b.get(metric)
            if not isinstance(va, int | float) and not isinstance(vb, int | float):
                continue
            fa = float(va) if isinstance(va, int | float) else None
            fb = float(vb) if isinstance(vb, int | float) else None
            out.append(
                TaskMetric(
                    task=task,
                    metric=metric,
                    base=fa,
                    tuned=fb,
                    difference=fb - fa if fa is not None and fb is not None else None,
                    higher_is_better=hib.get(task, {}).get(metric.split(",")[0]),
                )
            )
    return out


def load_task_results(paths: Iterable[Path]) -> tuple[dict[str, Any], dict[str, dict[str, bool]]]:
    """lm-eval results files (`results_*.json`): {task: {metric: value}} and higher_is_better."""
    results: dict[str, Any] = {}
    hib: dict[str, dict[str, bool]] = {}
    for path in paths:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CardgenError(f"{path}: task results file not found.") from None
        except (OSError, ValueError) as e:
            raise CardgenError(f"{path}: not an lm-eval results JSON file ({e}).") from None
        if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
            raise CardgenError(
                f"{path}: not an lm-eval results file (no 'results' mapping).",
                hint="Pass the results_*.json lm-eval writes with --output_path.",
            )
        results.update(data["results"])
        for task, flags in (data.get("higher_is_better") or {}).items():
            if isinstance(flags, dict):
                hib[task] = {k: bool(v) for k, v in flags.items()}
    return results, hib


def compare(
    base: EvalRun,
    tuned: EvalRun,
    *,
    allow_mismatch: bool = False,
    base_ref: RunRef | None = None,
    tuned_ref: RunRef | None = None,
    base_task_results: dict[str, Any] | None = None,
    tuned_task_results: dict[str, Any] | None = None,
    higher_is_better: dict[str, dict[str, bool]] | None = None,
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    allow_same: bool = False,
) -> Comparison:
    """Pair the runs by probe id and diff them. Raises CardgenError when the runs are not
    comparable (different suite, judges or decoding) unless ``allow_mismatch``, and when both
    are the same weights unless ``allow_same``."""
    same = same_weights(base, tuned)
    if same is not None and not allow_same:
        raise CardgenError(
            f"The base and tuned runs evaluated the same weights (sha256:{same}): a checkpoint "
            "compared with itself proves nothing about what fine-tuning changed.",
            hint="Point the base at the checkpoint the tuned one was made from, or pass "
            "--allow-same (recorded; the documents say so and the gate says "
            "INSUFFICIENT_EVIDENCE).",
        )
    diffs_found = mismatches(base, tuned)
    if diffs_found and not allow_mismatch:
        raise CardgenError(
            "The runs are not comparable: " + "; ".join(diffs_found) + ".",
            hint="Re-run both with the same suite, judges and decoding, or pass --allow-mismatch "
            "(recorded in the comparison and shown in every document).",
        )
    by_id_a = {r.probe_id: r for r in base.probes}
    by_id_b = {r.probe_id: r for r in tuned.probes}
    packs_a = list(dict.fromkeys(r.pack for r in base.probes))
    packs_b = list(dict.fromkeys(r.pack for r in tuned.probes))
    ids = list(dict.fromkeys([*by_id_a, *by_id_b]))

    groups: dict[tuple[str, str | None], list[tuple[ProbeRecord | None, ProbeRecord | None]]]
    groups = defaultdict(list)
    forgotten: list[ProbeChange] = []
    gained: list[ProbeChange] = []
    for pid in ids:
        a, b = by_id_a.get(pid), by_id_b.get(pid)
        ref = a or b
        assert ref is not None
        if a is not None and b is not None and (a.pack, a.category) != (b.pack, b.category):
            raise CardgenError(
                f"probe {pid} is in {a.pack}/{a.category} in the base run and "
                f"{b.pack}/{b.category} in the tuned run: not the same suite."
            )
        groups[(ref.pack, None)].append((a, b))
        groups[(ref.pack, ref.category)].append((a, b))
        if a is None or b is None:
            continue
        va, vb = _value(a), _value(b)
        if va is None or vb is None or va == vb:
            continue
        (forgotten if vb > va else gained).append(_change(a, b, va, vb))

    order = {p: i for i, p in enumerate(dict.fromkeys([*packs_a, *packs_b]))}
    diffs = [
        _paired_diff(pack, cat, pairs, seed, resamples)
        for (pack, cat), pairs in sorted(
            groups.items(), key=lambda kv: (order[kv[0][0]], kv[0][1] is not None)
        )
    ]
    # Stable within a pack: pack row first, then categories in first-seen order.
    diffs.sort(key=lambda d: (order[d.pack], d.category is not None))

    def rank(c: ProbeChange) -> tuple[Any, ...]:
        return (order[c.pack], c.category, -abs(c.severity), c.probe_id)

    forgotten.sort(key=rank)
    gained.sort(key=rank)

    consistency: list[ConsistencyChange] = []
    sa = {s.pack: s for s in base.summary if s.category is None}
    sb = {s.pack: s for s in tuned.summary if s.category is None}
    for pack in order:
        ca = sa[pack].consistency if pack in sa else None
        cb = sb[pack].consistency if pack in sb else None
        if ca is None and cb is None:
            continue
        consistency.append(
            ConsistencyChange(
                pack=pack,
                base_unanimous_share=ca.unanimous_share if ca else None,
                tuned_unanimous_share=cb.unanimous_share if cb else None,
                base_fleiss_kappa=ca.fleiss_kappa if ca else None,
                tuned_fleiss_kappa=cb.fleiss_kappa if cb else None,
            )
        )

    task_a = {**_extra_results(base), **(base_task_results or {})}
    task_b = {**_extra_results(tuned), **(tuned_task_results or {})}
    notes: list[str] = []
    if same is not None:
        notes.append(
            f"Base and tuned are the same weights (sha256:{same}), compared with "
            "--allow-same: no difference here says anything about fine-tuning."
        )
    if diffs_found:
        notes.append("Compared despite: " + "; ".join(diffs_found) + " (--allow-mismatch).")
    if base.decoding.repeats == 0 or tuned.decoding.repeats == 0:
        notes.append(
            "Greedy decoding only in at least one run: each probe counts as one verdict and "
            "run-to-run consistency is not compared."
        )
    return Comparison(
        base=base_ref or run_ref(base),
        tuned=tuned_ref or run_ref(tuned),
        mismatches=diffs_found,
        same_weights=same is not None,
        allow_mismatch=bool(diffs_found) and allow_mismatch,
        packs_only_in_base=[p for p in packs_a if p not in packs_b],
        packs_only_in_tuned=[p for p in packs_b if p not in packs_a],
        diffs=diffs,
        forgotten=forgotten,
        gained=gained,
        consistency=consistency,
        task_metrics=_task_metrics(task_a, task_b, higher_is_better or {}),
        bootstrap={
            "method": "percentile",
            "resamples": resamples,
            "seed": seed,
            "unit": "probe",
            "confidence": 0.95,
        },
        notes=notes,
        primary_judges=sorted({r.primary_judge for r in tuned.probes
                               if r.primary_judge != "canary"}),
        judge_validity={j.name: j.validity for j in tuned.judges if j.validity is not None},
    )  # fmt: skip


def _extra_results(run: EvalRun) -> dict[str, Any]:
    """lm-eval results of tasks run by name with `cardgen eval --task`: {task: {metric: value}}."""
    return {t: m for t, m in run.extra_tasks.items() if isinstance(m, dict)}


def run_ref(run: EvalRun, path: Path | None = None, raw: bytes | None = None) -> RunRef:
    identity = run.model.identity
    return RunRef(
        path=str(path) if path else None,
        sha256=hashlib.sha256(raw).hexdigest() if raw is not None else None,
        model_reference=run.model.reference,
        weights_digest=identity.weights_digest if identity else None,
        generated_at=run.generated_at,
        suite_digest=run.suite_digest,
    )


def load_run(path: Path) -> tuple[EvalRun, RunRef]:
    """Read an EvalRun file; the reference records its path and sha256."""
    from cardgen.config import load_json_model

    run = load_json_model(path, EvalRun)
    return run, run_ref(run, path, path.read_bytes())
